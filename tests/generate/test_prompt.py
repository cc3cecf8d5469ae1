"""Text prompts -> raw request values (daemon/generate/prompt.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_band.generate.prompt import PROMPT_VOCABULARY, Effect, apply_prompt, interpret_prompt
from ai_band.request import KNOWN_PARTS, parse_request
from ai_band.generate.styles import STYLES
from ai_band.theory.keys import parse_key


def _parts(result: dict[str, object]) -> list[str]:
    return str(result.get("parts", "")).split(",") if "parts" in result else []


def _programs(result: dict[str, object]) -> dict[str, int]:
    if "programs" not in result:
        return {}
    pairs = (chunk.split("=") for chunk in str(result["programs"]).split(","))
    return {part: int(number) for part, number in pairs}


def _style(*candidates: str) -> str:
    """The first candidate style that exists (styles are still being added)."""
    return next(name for name in candidates if name in STYLES)


# --- the three examples of the brief -------------------------------------------------


def test_relaxing_piano_melody_for_meditation() -> None:
    result = interpret_prompt("relaxing piano melody for meditation")
    assert result["style"] == _style("ambient")
    assert float(result["energy"]) <= 0.3  # type: ignore[arg-type]
    assert float(result["bpm"]) <= 80  # type: ignore[arg-type]
    parts = _parts(result)
    assert "melody" in parts and ("pad" in parts or "keys" in parts)
    assert _programs(result)["melody"] == 0  # piano
    parse_request(result)


def test_upbeat_house_with_rolling_bassline() -> None:
    result = interpret_prompt("upbeat 128 bpm house with a rolling bassline")
    assert result["style"] == _style("house", "electronic")
    assert result["bpm"] == 128
    assert float(result["energy"]) >= 0.7  # type: ignore[arg-type]
    assert "bass" in _parts(result)
    assert float(result["complexity"]) > 0.5  # type: ignore[arg-type]
    parse_request(result)


def test_sad_slow_jazz_ballad_in_d_minor() -> None:
    result = interpret_prompt("sad slow jazz ballad in D minor")
    assert result["style"] == "jazz"
    assert result["key"] in ("D minor", "Dm")
    assert float(result["bpm"]) <= 80  # type: ignore[arg-type]
    assert float(result["energy"]) <= 0.4  # type: ignore[arg-type]
    assert parse_key(str(result["key"])).mode == "minor"
    parse_request(result)


# --- individual rules -----------------------------------------------------------------


def test_only_implied_keys_are_returned() -> None:
    assert interpret_prompt("") == {}
    assert interpret_prompt("something nice please") == {}
    assert interpret_prompt("jazz") == {"style": "jazz"}
    assert set(interpret_prompt("128 bpm")) == {"bpm"}


@pytest.mark.parametrize(
    ("text", "bpm"),
    [
        ("128 bpm", 128),
        ("at 90bpm", 90),
        ("128BPM", 128),
        ("bpm 100", 100),
        ("tempo of 96", 96),
        ("tempo: 96", 96),
        ("95 beats per minute", 95),
        ("funk at 104", 104),
        ("92.5 bpm", 92.5),
        ("1000 bpm", 400),
        ("5 bpm", 20),
    ],
)
def test_tempo_numbers(text: str, bpm: float) -> None:
    assert interpret_prompt(text)["bpm"] == bpm


def test_numbers_win_over_tempo_words() -> None:
    assert interpret_prompt("slow ballad at 140 bpm")["bpm"] == 140
    assert interpret_prompt("fast 60 bpm")["bpm"] == 60


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("slow", 60, 75),
        ("ballad", 60, 75),
        ("very slow", 40, 60),
        ("upbeat", 110, 130),
        ("fast", 130, 160),
        ("very fast", 160, 200),
        ("meditation", 50, 70),
    ],
)
def test_tempo_words(text: str, low: float, high: float) -> None:
    assert low <= float(interpret_prompt(text)["bpm"]) <= high  # type: ignore[arg-type]


def test_tempo_words_win_over_mood_tempi() -> None:
    assert interpret_prompt("relaxing but fast")["bpm"] == 140


def test_at_a_time_or_length_is_not_a_tempo() -> None:
    assert "bpm" not in interpret_prompt("at 9 pm")
    assert "bpm" not in interpret_prompt("at 30 seconds")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("in D minor", "D minor"),
        ("in F# major", "F# major"),
        ("E dorian", "E dorian"),
        ("in Bb", "Bb"),
        ("Eb minor", "Eb minor"),
        ("F# mixolydian", "F# mixolydian"),
        ("in the key of G", "G"),
        ("key of Am", "A minor"),
        ("in c#m", None),  # lower-case tonic with an attached "m": too ambiguous
        ("rock in e minor", "E minor"),
        ("B flat minor", "Bb minor"),
        ("in a flat major", "Ab major"),
        ("jazz in a minor with piano", "A minor"),
        ("in A", "A"),
        ("in A with strings", "A"),
        ("in A major key", "A major"),
        ("A minor", "A minor"),
        ("F lydian", "F lydian"),
        ("B locrian", "B locrian"),
        ("E phrygian", "E phrygian"),
        ("C ionian", "C major"),
        ("A aeolian", "A minor"),
    ],
)
def test_keys(text: str, key: str | None) -> None:
    result = interpret_prompt(text)
    assert result.get("key") == key
    if key is not None:
        parse_key(key)


@pytest.mark.parametrize(
    "text",
    [
        "a minor key",
        "in a minor key",
        "In A relaxing mood",
        "A minor key",
        "in a dorian groove",
        "A relaxing song",
        "I am happy",
        "a catchy tune",
        "the B section",
        "hammond b3",
        "e piano",
    ],
)
def test_articles_and_words_are_not_keys(text: str) -> None:
    assert "key" not in interpret_prompt(text)


def test_mood_sets_the_mode_of_a_bare_tonic_only() -> None:
    assert interpret_prompt("sad song in C")["key"] == "C minor"
    assert interpret_prompt("happy song in D")["key"] == "D major"
    assert interpret_prompt("sad song in D major")["key"] == "D major"
    assert "key" not in interpret_prompt("sad song")  # no tonic: the key comes from the chords


@pytest.mark.parametrize(
    ("text", "style"),
    [
        ("house", ("house", "electronic")),
        ("deep house", ("house", "electronic")),
        ("techno", ("techno", "electronic")),
        ("edm", ("electronic",)),
        ("hip hop", ("hip-hop", "hiphop")),
        ("hip-hop", ("hip-hop", "hiphop")),
        ("boom bap", ("hip-hop", "hiphop")),
        ("lo-fi", ("lo-fi", "lofi")),
        ("lofi hip hop", ("lo-fi", "lofi")),
        ("bossa nova", ("bossa-nova", "bossa nova", "bossa")),
        ("bossa", ("bossa-nova", "bossa nova", "bossa")),
        ("reggae", ("reggae",)),
        ("salsa", ("salsa", "latin")),
        ("latin", ("latin",)),
        ("metal", ("metal", "rock")),
        ("country", ("country",)),
        ("gospel", ("gospel",)),
        ("waltz", ("waltz",)),
        ("big band", ("swing", "jazz")),
        ("swing", ("swing", "jazz")),
        ("funk", ("funk",)),
        ("blues", ("blues",)),
        ("jazz", ("jazz",)),
        ("rock", ("rock",)),
        ("classical", ("classical",)),
        ("ambient", ("ambient",)),
        ("electronic", ("electronic",)),
        ("meditation", ("ambient",)),
        ("aggressive", ("metal", "rock")),
        ("dark ambient", ("ambient",)),
    ],
)
def test_genres_map_to_existing_styles(text: str, style: tuple[str, ...]) -> None:
    assert interpret_prompt(text)["style"] == _style(*style)


def test_genre_words_beat_mood_styles() -> None:
    assert interpret_prompt("relaxing jazz")["style"] == "jazz"
    assert interpret_prompt("aggressive funk")["style"] == "funk"


def test_first_genre_wins() -> None:
    assert interpret_prompt("jazz meets rock")["style"] == "jazz"
    assert interpret_prompt("rock meets jazz")["style"] == "rock"


def test_unknown_styles_are_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import MappingProxyType

    from ai_band.generate import styles

    only_rock = MappingProxyType({"rock": styles.STYLES["rock"]})
    monkeypatch.setattr(styles, "STYLES", only_rock)
    assert interpret_prompt("metal")["style"] == "rock"  # documented fallback
    assert "style" not in interpret_prompt("reggae")  # no fallback: no style
    assert "style" not in interpret_prompt("relaxing")


@pytest.mark.parametrize(
    ("text", "ts"),
    [
        ("waltz", "3/4"),
        ("in 3", "3/4"),
        ("in three", "3/4"),
        ("6/8", "6/8"),
        ("in 7/8 time", "7/8"),
        ("jazz waltz", "3/4"),
        ("12/8 blues", "12/8"),
        ("waltz in 6/8", "6/8"),  # numbers win over meter words
    ],
)
def test_meters(text: str, ts: str) -> None:
    assert interpret_prompt(text)["ts"] == ts


def test_invalid_or_unit_numbers_are_not_meters() -> None:
    assert "ts" not in interpret_prompt("24/7 party")
    assert "ts" not in interpret_prompt("in 3 minutes")


@pytest.mark.parametrize(
    ("text", "part", "program"),
    [
        ("piano", "keys", 0),
        ("piano melody", "melody", 0),
        ("electric piano", "keys", 4),
        ("rhodes chords", "keys", 4),
        ("organ", "keys", 16),
        ("acoustic guitar", "guitar", 25),
        ("nylon guitar", "guitar", 24),
        ("electric guitar", "guitar", 27),
        ("distorted guitar", "guitar", 30),
        ("upright bass", "bass", 32),
        ("electric bass", "bass", 33),
        ("synth bass", "bass", 38),
        ("fretless bass", "bass", 35),
        ("strings", "strings", 48),
        ("violin", "melody", 40),
        ("cello", "strings", 42),
        ("flute", "melody", 73),
        ("flute melody", "melody", 73),
        ("melody on flute", "melody", 73),
        ("melody played by a trumpet", "melody", 56),
        ("sax", "melody", 65),
        ("tenor sax", "melody", 66),
        ("trumpet", "melody", 56),
        ("synth lead", "melody", 81),
        ("warm pad", "pad", 89),
        ("choir", "pad", 52),
        ("vibraphone", "keys", 11),
        ("bells", "melody", 9),
        ("harp", "arp", 46),
        ("synth arpeggios", "arp", 81),
        ("string pad", "pad", 48),
        ("brushes", "drums", 40),
    ],
)
def test_instruments_set_parts_and_programs(text: str, part: str, program: int) -> None:
    result = interpret_prompt(text)
    assert part in _parts(result)
    assert _programs(result)[part] == program
    parse_request(result)


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("arpeggios", "arp"),
        ("rolling bassline", "bass"),
        ("guitar", "guitar"),
        ("a pad", "pad"),
        ("strings", "strings"),
        ("melody", "melody"),
        ("drums", "drums"),
    ],
)
def test_role_words_add_parts(text: str, part: str) -> None:
    assert part in _parts(interpret_prompt(text))


def test_plain_guitar_keeps_the_style_sound() -> None:
    assert "guitar" not in _programs(interpret_prompt("rock with guitar"))


def test_named_parts_join_the_style_parts() -> None:
    result = interpret_prompt("jazz with a flute melody")
    assert set(_parts(result)) == set(STYLES["jazz"].parts) | {"melody"}


def test_named_parts_join_an_explicit_base_style() -> None:
    result = interpret_prompt("rock with strings", base_style="jazz")
    assert set(_parts(result)) == set(STYLES["jazz"].parts) | {"strings"}


def test_only_and_solo_restrict_to_the_named_parts() -> None:
    assert _parts(interpret_prompt("solo piano")) == ["keys"]
    assert _parts(interpret_prompt("piano and bass only")) == ["bass", "keys"]
    assert _parts(interpret_prompt("just drums and bass")) == ["drums", "bass"]
    assert len(_parts(interpret_prompt("jazz with a sax solo"))) > 1  # a solo is not "solo"


def test_negations_drop_parts() -> None:
    parts = _parts(interpret_prompt("house without drums"))
    assert parts and "drums" not in parts
    assert "bass" not in _parts(interpret_prompt("jazz, no bass, with flute"))


def test_calm_moods_add_a_pad_when_parts_are_named() -> None:
    assert "pad" in _parts(interpret_prompt("calm flute"))


@pytest.mark.parametrize(
    ("text", "field", "low", "high"),
    [
        ("relaxing", "energy", 0.0, 0.3),
        ("calm", "energy", 0.0, 0.3),
        ("aggressive", "energy", 0.8, 1.0),
        ("dark", "energy", 0.6, 1.0),
        ("energetic", "energy", 0.7, 1.0),
        ("happy", "energy", 0.5, 0.8),
        ("rolling", "complexity", 0.6, 1.0),
        ("intricate", "complexity", 0.7, 1.0),
        ("simple", "complexity", 0.0, 0.3),
        ("minimal", "complexity", 0.0, 0.3),
        ("swung", "swing", 0.4, 0.6),
        ("shuffle", "swing", 0.4, 0.6),
        ("straight", "swing", 0.0, 0.0),
        ("loose", "humanize", 0.5, 0.8),
        ("quantized", "humanize", 0.0, 0.0),
    ],
)
def test_mood_and_feel_numbers(text: str, field: str, low: float, high: float) -> None:
    assert low <= float(interpret_prompt(text)[field]) <= high  # type: ignore[arg-type]


def test_phrases_tolerate_case_hyphens_plurals_and_punctuation() -> None:
    assert interpret_prompt("Hip-Hop!")["style"] == interpret_prompt("hiphop")["style"]
    assert interpret_prompt("LO-FI, please")["style"] == interpret_prompt("lofi")["style"]
    assert "arp" in _parts(interpret_prompt("Arpeggios."))


def test_deterministic() -> None:
    text = "dark aggressive 160 bpm metal in E phrygian with distorted guitar, no keys"
    assert all(interpret_prompt(text) == interpret_prompt(text) for _ in range(3))


# --- apply_prompt: explicit request keys win ------------------------------------------


def test_apply_prompt_explicit_keys_win() -> None:
    prompt = "slow sad jazz ballad in D minor"
    merged = apply_prompt({"prompt": prompt, "style": "rock", "bpm": 150, "key": None})
    assert merged["style"] == "rock" and merged["bpm"] == 150
    assert merged["key"] == "D minor"  # None counts as not given
    assert merged["energy"] == interpret_prompt(prompt)["energy"]
    parse_request(merged)


def test_apply_prompt_without_prompt_is_a_copy() -> None:
    raw = {"chords": "C F G"}
    assert apply_prompt(raw) == raw and apply_prompt(raw) is not raw


# --- every result is a valid request ---------------------------------------------------

_PHRASES = sorted({phrase for table in PROMPT_VOCABULARY.values() for phrase in table})
_EXTRAS = [
    "in D minor",
    "in F# major",
    "E dorian",
    "in Bb",
    "128 bpm",
    "at 90bpm",
    "6/8",
    "3/4",
    "in a minor key",
    "a",
    "with",
    "and",
    "no drums",
    "only",
    "without bass",
    "in C",
    "Am",
    "tempo 500",
    "7/8",
    "on",
    "played by",
    "at 75",
    "5/4",
    "1/2",
    "in 3 minutes",
    "for",
    ",",
]
_WORDS = st.sampled_from(_PHRASES + _EXTRAS)


@settings(max_examples=400, deadline=None)
@given(st.lists(_WORDS, min_size=0, max_size=12), st.sampled_from([" ", ", ", " - "]))
def test_word_salads_always_make_valid_requests(words: list[str], sep: str) -> None:
    result = interpret_prompt(sep.join(words))
    request = parse_request(result)
    if request.style is not None:
        assert request.style in STYLES
    if request.key is not None:
        parse_key(request.key)
    if request.parts is not None:
        assert set(request.parts) <= set(KNOWN_PARTS)
        assert {part for part, _ in request.programs or ()} <= set(request.parts)
    for name in ("energy", "complexity", "swing", "humanize"):
        value = getattr(request, name)
        assert value is None or 0.0 <= value <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_makes_a_valid_request(text: str) -> None:
    parse_request(interpret_prompt(text))


def test_vocabulary_is_consistent() -> None:
    for category, table in PROMPT_VOCABULARY.items():
        assert table, category
        for phrase, effect in table.items():
            assert isinstance(effect, Effect)
            assert phrase == phrase.lower().strip(), phrase
            assert effect.part is None or effect.part in KNOWN_PARTS, phrase
            assert effect.program is None or 0 <= effect.program <= 127, phrase
            for value in (effect.energy, effect.complexity, effect.swing, effect.humanize):
                assert value is None or 0.0 <= value <= 1.0, phrase


def test_every_phrase_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "prompts.md").read_text(encoding="utf-8")
    rows = [line for line in doc.splitlines() if line.startswith("| ")]
    listed = {phrase.strip() for row in rows for phrase in row.split("|")[1].split(",")}
    missing = [p for table in PROMPT_VOCABULARY.values() for p in table if p not in listed]
    assert not missing, f"add to docs/prompts.md: {missing}"
