"""Text prompts: "upbeat 128 bpm house with a rolling bassline" -> request values.

:func:`interpret_prompt` reads a free-text prompt with a fixed vocabulary
(:data:`PROMPT_VOCABULARY`, documented in docs/prompts.md) and returns the raw
request values it implies, in the form :func:`~ai_band.request.parse_request`
accepts: ``style``, ``bpm``, ``key``, ``ts``, ``parts``, ``programs``,
``energy``, ``complexity``, ``swing``, ``humanize``; only the keys the prompt
implies.  It is deterministic: no randomness, no models, no network.

:func:`apply_prompt` merges those values under an explicit request: every key
the request gives wins over the prompt.

Reading order (each step blanks what it consumed, so later steps do not see it):

1. tempo numbers (``128 bpm``, ``at 90bpm``, ``tempo 100``); they beat tempo words;
2. time signatures (``3/4``, ``6/8``); they beat meter words (``waltz``, ``in 3``);
3. the key (``in D minor``, ``F# major``, ``E dorian``, ``in Bb``, ``key of Am``);
4. negations (``no drums``, ``without bass``);
5. the vocabulary's words and phrases, longest first (``deep house`` before
   ``house``, ``lofi hip hop`` before ``hip hop``); spaces and hyphens inside a
   phrase are optional (``hip-hop`` = ``hip hop`` = ``hiphop``) and a plural
   ``s`` is accepted.

Style: the first genre word (in reading order) whose candidate list names a
style in :data:`ai_band.generate.styles.STYLES` at call time; failing that, the
first mood that suggests one (``relaxing`` -> ambient, ``aggressive`` -> metal);
failing that, a style name written literally; else no style.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any

from ai_band.errors import RequestError
from ai_band.request import KNOWN_PARTS, TS_DENOMINATORS
from ai_band.theory.keys import parse_key

__all__ = ["PROMPT_VOCABULARY", "Effect", "apply_prompt", "interpret_prompt"]


@dataclass(frozen=True)
class Effect:
    """What one word or phrase of a prompt means.

    Attributes:
        styles: candidate style names, most specific first; the first that
            exists is used (``("techno", "electronic")``).
        weak_style: the styles are only a mood's suggestion: any genre word wins.
        bpm: tempo suggested by a tempo word or mood, quarter notes per minute.
        energy: 0..1; the prompt's energy is the mean of every word's value.
        complexity: 0..1; averaged like energy.
        swing: 0..1 (0.5 = triplet feel); the first feel word wins.
        humanize: 0..1; the first feel word wins.
        ts: time signature ``"n/d"`` a meter word implies.
        mode: mode for a tonic written without one (``sad ... in D`` -> D minor).
        part: the part an instrument plays by default, or the part a role
            word (``melody``, ``bassline``) names.
        program: GM program 0..127 (0-based) of an instrument.
        role: a role word: an instrument written just before it (``piano
            melody``) or after ``on``/``by`` (``melody on flute``) plays that
            part instead of its default one.
        role_programs: program of the instrument per role it takes, when it
            differs from ``program`` (``synth`` as bass -> 38).
        add_parts: parts a mood adds when the prompt sets parts (calm -> pad).
        exclusive: ``only``/``solo``: parts are just the named ones, not the
            style's parts plus the named ones.
    """

    styles: tuple[str, ...] = ()
    weak_style: bool = False
    bpm: float | None = None
    energy: float | None = None
    complexity: float | None = None
    swing: float | None = None
    humanize: float | None = None
    ts: str | None = None
    mode: str | None = None
    part: str | None = None
    program: int | None = None
    role: bool = False
    role_programs: Mapping[str, int] = field(default_factory=dict)
    add_parts: tuple[str, ...] = ()
    exclusive: bool = False


def _same(effect: Effect, *phrases: str) -> dict[str, Effect]:
    return dict.fromkeys(phrases, effect)


# The vocabulary tables are laid out by hand, several phrases a line.
# fmt: off
# Candidate spellings of the styles (the first existing one is used).
_HIPHOP = ("hip-hop", "hiphop", "hip hop")
_LOFI = ("lo-fi", "lofi", "lo fi")
_BOSSA = ("bossa-nova", "bossa nova", "bossa", "bossanova")

_STYLES: dict[str, Effect] = {
    # classical
    **_same(Effect(styles=("classical",)), "classical", "orchestral", "baroque", "symphonic",
            "symphony", "chamber music", "string quartet", "romantic era", "concerto", "sonata"),
    **_same(Effect(styles=("cinematic", "classical")), "cinematic", "film score", "soundtrack",
            "movie score", "epic orchestral"),
    # jazz
    **_same(Effect(styles=("jazz",)), "jazz", "jazzy", "bebop", "hard bop", "cool jazz",
            "smooth jazz", "modal jazz", "jazz fusion", "fusion", "jazz trio", "jazz standard"),
    "jazz waltz": Effect(styles=("jazz", "waltz"), ts="3/4"),
    "latin jazz": Effect(styles=("latin", *_BOSSA, "jazz")),
    **_same(Effect(styles=("swing", "jazz")), "swing", "big band", "swing era", "gypsy jazz",
            "manouche", "jump blues"),
    "electro swing": Effect(styles=("swing", "electronic")),
    # rock and pop
    **_same(Effect(styles=("rock",)), "rock", "rock and roll", "rock n roll", "rockabilly",
            "hard rock", "classic rock", "indie", "indie rock", "alternative", "alt rock", "grunge",
            "garage rock", "surf rock", "pop rock", "britpop", "stadium rock", "progressive rock",
            "prog rock", "psychedelic", "psychedelic rock", "southern rock"),
    **_same(Effect(styles=("punk", "rock")), "punk", "punk rock", "pop punk"),
    "pop": Effect(styles=("pop", "rock")),
    # blues
    **_same(Effect(styles=("blues",)), "blues", "bluesy", "12 bar", "twelve bar", "12 bar blues",
            "delta blues", "chicago blues", "blues shuffle"),
    "blues rock": Effect(styles=("blues", "rock")),
    # electronic
    **_same(Effect(styles=("electronic",)), "electronic", "electronica", "edm", "electro", "idm",
            "big beat", "future bass", "chiptune", "8 bit"),
    **_same(Effect(styles=("techno", "electronic")), "techno", "minimal techno", "detroit techno"),
    **_same(Effect(styles=("trance", "electronic")), "trance", "psytrance"),
    **_same(Effect(styles=("drum-and-bass", "dnb", "electronic")), "drum and bass",
            "drum n bass", "dnb", "jungle", "liquid dnb"),
    **_same(Effect(styles=("dubstep", "electronic")), "dubstep", "brostep"),
    **_same(Effect(styles=("synthwave", "electronic")), "synthwave", "retrowave", "outrun",
            "vaporwave", "synthpop", "synth pop"),
    **_same(Effect(styles=("breakbeat", "electronic")), "breakbeat", "breaks"),
    **_same(Effect(styles=("house", "electronic")), "house", "deep house", "tech house",
            "progressive house", "acid house", "chicago house", "french house", "afro house",
            "disco house", "club", "dance", "dance music", "four on the floor", "uk garage"),
    # ambient
    **_same(Effect(styles=("ambient",)), "ambient", "drone", "new age", "soundscape",
            "chillout", "chill out", "downtempo ambient", "dark ambient"),
    # funk, soul, r&b, disco
    **_same(Effect(styles=("funk",)), "funk", "funky", "p funk", "jazz funk"),
    **_same(Effect(styles=("disco", "funk", "house")), "disco", "nu disco"),
    **_same(Effect(styles=("soul", "gospel", "funk")), "soul", "neo soul", "motown"),
    **_same(Effect(styles=("r&b", "rnb", "soul", "funk")), "r&b", "rnb", "rhythm and blues"),
    # hip-hop and lo-fi
    **_same(Effect(styles=_HIPHOP), "hip hop", "rap", "boom bap", "old school hip hop"),
    **_same(Effect(styles=("trap", *_HIPHOP)), "trap", "drill"),
    **_same(Effect(styles=(*_LOFI, *_HIPHOP)), "lo fi", "lofi hip hop", "lo fi hip hop",
            "chillhop", "lo fi beats", "study beats", "jazzhop", "jazzy hip hop"),
    # brazil, latin, caribbean
    **_same(Effect(styles=(*_BOSSA, "latin", "jazz")), "bossa nova", "bossa", "brazilian", "mpb"),
    **_same(Effect(styles=("samba", *_BOSSA, "latin")), "samba"),
    **_same(Effect(styles=("latin",)), "latin", "afro cuban", "cuban", "son cubano", "mambo",
            "cha cha", "cha cha cha", "rumba", "merengue", "bachata", "cumbia", "timba"),
    **_same(Effect(styles=("salsa", "latin")), "salsa"),
    **_same(Effect(styles=("tango", "latin")), "tango"),
    **_same(Effect(styles=("flamenco", "latin")), "flamenco"),
    **_same(Effect(styles=("reggaeton", "latin", "reggae")), "reggaeton"),
    **_same(Effect(styles=("reggae",)), "reggae", "roots reggae", "rocksteady", "one drop",
            "jamaican", "lovers rock"),
    **_same(Effect(styles=("dub", "reggae")), "dub"),
    **_same(Effect(styles=("ska", "reggae")), "ska"),
    **_same(Effect(styles=("dancehall", "reggae")), "dancehall"),
    # metal
    **_same(Effect(styles=("metal", "rock")), "metal", "heavy metal", "thrash", "thrash metal",
            "death metal", "black metal", "doom metal", "djent", "metalcore", "nu metal",
            "power metal", "hardcore"),
    # country and folk
    **_same(Effect(styles=("country",)), "country", "country western", "western", "honky tonk",
            "nashville", "outlaw country", "cowboy"),
    **_same(Effect(styles=("bluegrass", "country")), "bluegrass"),
    **_same(Effect(styles=("folk", "country")), "folk", "americana"),
    # gospel
    **_same(Effect(styles=("gospel",)), "gospel", "spiritual", "praise", "worship", "church music"),
    "hymn": Effect(styles=("gospel", "classical")),
    # waltz (a meter too)
    "waltz": Effect(styles=("waltz",), ts="3/4"),
    **_same(Effect(styles=("waltz", "classical"), ts="3/4"), "viennese waltz", "minuet"),
}

_CALM_PADS = ("pad",)

_MOODS: dict[str, Effect] = {
    **_same(Effect(energy=0.2, bpm=70, styles=("ambient",), weak_style=True, add_parts=_CALM_PADS),
            "relaxing", "relax", "calm", "calming", "peaceful", "serene", "tranquil", "soothing",
            "relaxation", "spa"),
    **_same(Effect(energy=0.1, bpm=60, styles=("ambient",), weak_style=True, add_parts=_CALM_PADS),
            "meditation", "meditative", "meditate", "zen", "yoga", "sleep", "sleepy", "mindfulness"),
    **_same(Effect(energy=0.3, styles=("ambient",), weak_style=True, add_parts=_CALM_PADS),
            "dreamy", "ethereal", "atmospheric", "spacey", "floating", "hypnotic"),
    **_same(Effect(energy=0.25), "gentle", "soft", "quiet", "delicate", "tender", "intimate",
            "mellow", "warm", "lush", "romantic", "sensual", "smooth"),
    **_same(Effect(energy=0.35, bpm=85, styles=_LOFI, weak_style=True),
            "chill", "chilled", "chilling", "easygoing", "cozy", "cosy"),
    **_same(Effect(energy=0.3, mode="minor"), "sad", "melancholic", "melancholy", "sorrowful",
            "somber", "sombre", "gloomy", "mournful", "tragic", "lonely", "heartbroken",
            "heartbreaking", "depressing", "wistful", "bittersweet"),
    **_same(Effect(energy=0.35), "nostalgic", "reflective", "introspective", "pensive"),
    **_same(Effect(energy=0.4, mode="minor"), "moody", "brooding", "mysterious", "eerie",
            "spooky", "haunting", "creepy", "tense", "suspenseful"),
    **_same(Effect(energy=0.7, mode="minor", styles=("metal",), weak_style=True),
            "dark", "ominous", "sinister", "menacing", "evil"),
    **_same(Effect(energy=0.9, styles=("metal",), weak_style=True), "aggressive", "angry",
            "furious", "brutal", "heavy", "fierce", "violent", "raging", "intense"),
    **_same(Effect(energy=0.65, mode="major"), "happy", "bright", "cheerful", "joyful", "joyous",
            "uplifting", "sunny", "playful", "fun", "feel good", "optimistic", "hopeful"),
    **_same(Effect(energy=0.8), "energetic", "energizing", "energising", "powerful", "driving",
            "exciting", "hype", "hyped", "party", "danceable", "lively", "bouncy", "punchy",
            "anthemic", "triumphant", "epic"),
    "groovy": Effect(energy=0.65, complexity=0.6),
    # a mode alone (no tonic): applies to a tonic written without one
    **_same(Effect(mode="minor"), "minor", "minor key", "in a minor key"),
    **_same(Effect(mode="major"), "major", "major key", "in a major key"),
}

_TEMPO: dict[str, Effect] = {
    **_same(Effect(bpm=55, energy=0.2), "very slow", "really slow", "super slow", "glacial"),
    **_same(Effect(bpm=70, energy=0.3), "slow", "slowly", "slower", "largo", "adagio"),
    "ballad": Effect(bpm=68, energy=0.3),
    **_same(Effect(bpm=85, energy=0.35), "laid back", "relaxed", "downtempo", "andante",
            "unhurried", "lazy"),
    **_same(Effect(bpm=100, energy=0.5), "medium", "moderate", "mid tempo", "moderato",
            "medium tempo"),
    **_same(Effect(bpm=120, energy=0.75), "upbeat", "allegro"),
    **_same(Effect(bpm=130, energy=0.75), "uptempo", "up tempo"),
    **_same(Effect(bpm=140, energy=0.8), "fast", "quick", "faster", "rapid", "presto"),
    **_same(Effect(bpm=170, energy=0.9), "very fast", "really fast", "super fast", "frantic",
            "breakneck"),
}

_METERS: dict[str, Effect] = {
    **_same(Effect(ts="3/4"), "in 3", "in three", "three four", "3 4 time", "triple meter",
            "triple time"),
    **_same(Effect(ts="4/4"), "in 4", "in four", "four four", "common time"),
    **_same(Effect(ts="6/8"), "in 6", "in six", "six eight", "compound time", "jig"),
    **_same(Effect(ts="12/8"), "twelve eight", "12 8 time"),
    **_same(Effect(ts="5/4"), "in 5", "in five", "five four"),
    **_same(Effect(ts="7/8"), "in 7", "in seven", "seven eight"),
    **_same(Effect(ts="2/2"), "cut time", "alla breve"),
    **_same(Effect(ts="2/4"), "march", "polka", "in 2", "in two"),
}

_FEEL: dict[str, Effect] = {
    **_same(Effect(swing=0.5), "swung", "swing feel", "swinging", "with swing", "shuffle",
            "shuffled", "triplet feel"),
    **_same(Effect(swing=0.7), "heavy swing", "hard swing", "deep swing"),
    **_same(Effect(swing=0.25), "light swing", "slight swing", "gentle swing", "lazy swing"),
    **_same(Effect(swing=0.0), "straight", "straight eighths", "straight feel", "no swing",
            "unswung"),
    **_same(Effect(humanize=0.6), "humanized", "humanised", "human", "human feel", "loose",
            "live feel", "played live", "organic", "natural"),
    "sloppy": Effect(humanize=0.85),
    "tight": Effect(humanize=0.1),
    **_same(Effect(humanize=0.0), "quantized", "quantised", "robotic", "mechanical",
            "on the grid", "programmed", "precise"),
}

_COMPLEXITY: dict[str, Effect] = {
    **_same(Effect(complexity=0.75), "rolling", "syncopated", "sophisticated", "rich"),
    **_same(Effect(complexity=0.8), "busy", "elaborate", "dense", "detailed"),
    **_same(Effect(complexity=0.85), "intricate", "complex", "complicated"),
    **_same(Effect(complexity=0.9), "technical", "virtuosic", "virtuoso", "shredding"),
    **_same(Effect(complexity=0.25), "simple", "basic", "plain", "easy"),
    "straightforward": Effect(complexity=0.3),
    **_same(Effect(complexity=0.15, energy=0.3), "minimal", "minimalist", "sparse",
            "stripped back", "stripped down", "bare"),
}

_ROLES: dict[str, Effect] = {
    **_same(Effect(part="melody", role=True), "melody", "melodies", "lead", "lead line",
            "tune", "topline", "top line", "hook", "riff", "theme", "solo line"),
    **_same(Effect(part="bass", role=True), "bass", "bassline", "bass line", "low end"),
    "walking bass": Effect(part="bass", role=True, program=32, complexity=0.6),
    **_same(Effect(part="keys", role=True), "chords", "chord", "comping", "keys", "keyboard",
            "keyboards"),
    **_same(Effect(part="pad", role=True), "pad", "synth pad", "texture", "atmosphere", "drones",
            "wash"),
    "warm pad": Effect(part="pad", program=89),
    "choir pad": Effect(part="pad", program=52),
    **_same(Effect(part="arp", role=True), "arpeggio", "arpeggios", "arpeggiated", "arp",
            "arpeggiator", "arpeggiation", "broken chords"),
    **_same(Effect(part="strings", role=True), "string section", "string ensemble",
            "orchestra"),
    **_same(Effect(part="guitar", role=True), "strumming", "strummed", "rhythm guitar"),
    **_same(Effect(part="drums"), "drums", "drum", "beat", "beats", "percussion", "drum kit",
            "rhythm section"),
    **_same(Effect(part="drums", program=25), "808", "tr 808", "drum machine"),
    **_same(Effect(part="drums", program=24), "electronic drums", "electronic kit"),
    **_same(Effect(part="drums", program=40), "brushes", "brush", "brush kit"),
    "jazz kit": Effect(part="drums", program=32),
    "orchestral percussion": Effect(part="drums", program=48),
}


def _instrument(part: str, program: int | None, **role_programs: int) -> Effect:
    return Effect(part=part, program=program, role_programs=MappingProxyType(role_programs))


#: General MIDI level 1 programs, 0-based (0 Acoustic Grand Piano .. 127 Gunshot).
_INSTRUMENTS: dict[str, Effect] = {
    # pianos and keyboards
    **_same(_instrument("keys", 0), "piano", "grand piano", "acoustic piano", "upright piano"),
    "bright piano": _instrument("keys", 1),
    "honky tonk piano": _instrument("keys", 3),
    **_same(_instrument("keys", 4), "electric piano", "rhodes", "e piano", "epiano", "wurlitzer",
            "wurli", "fender rhodes"),
    "harpsichord": _instrument("keys", 6),
    **_same(_instrument("keys", 7), "clavinet", "clav"),
    **_same(_instrument("keys", 11), "vibraphone", "vibes"),
    "marimba": _instrument("keys", 12),
    **_same(_instrument("keys", 16), "organ", "hammond", "hammond organ", "drawbar organ", "b3"),
    "rock organ": _instrument("keys", 18),
    **_same(_instrument("keys", 19), "church organ", "pipe organ"),
    "accordion": _instrument("keys", 21),
    # bells and mallets as melody
    "celesta": _instrument("melody", 8),
    **_same(_instrument("melody", 9), "glockenspiel", "bells", "bell"),
    "music box": _instrument("melody", 10),
    "xylophone": _instrument("melody", 13),
    **_same(_instrument("melody", 14), "tubular bells", "church bells", "chimes"),
    **_same(_instrument("melody", 114), "steel drums", "steel drum", "steelpan"),
    "harmonica": _instrument("melody", 22),
    # guitars (a plain "guitar" keeps the style's guitar sound)
    **_same(_instrument("guitar", None), "guitar", "guitars"),
    **_same(_instrument("guitar", 24), "nylon guitar", "nylon", "classical guitar",
            "spanish guitar", "flamenco guitar", "ukulele", "uke"),
    **_same(_instrument("guitar", 25), "acoustic guitar", "steel string guitar", "mandolin"),
    **_same(_instrument("guitar", 26), "jazz guitar", "hollow body guitar"),
    **_same(_instrument("guitar", 27), "electric guitar", "clean guitar", "clean electric guitar"),
    **_same(_instrument("guitar", 28), "muted guitar", "palm muted guitar"),
    **_same(_instrument("guitar", 29), "overdriven guitar", "overdrive guitar", "crunchy guitar",
            "crunch guitar", "lead guitar"),
    **_same(_instrument("guitar", 30), "distorted guitar", "distortion guitar", "heavy guitar",
            "metal guitar", "power chords", "fuzz guitar"),
    "banjo": _instrument("guitar", 105),
    "shamisen": _instrument("guitar", 106),
    "sitar": _instrument("melody", 104),
    "koto": _instrument("arp", 107),
    "kalimba": _instrument("arp", 108),
    "harp": _instrument("arp", 46),
    # basses
    **_same(_instrument("bass", 32), "acoustic bass", "upright bass", "double bass",
            "stand up bass", "jazz bass"),
    **_same(_instrument("bass", 33), "electric bass", "bass guitar", "fingered bass",
            "finger bass", "fender bass"),
    **_same(_instrument("bass", 34), "picked bass", "pick bass"),
    **_same(_instrument("bass", 35), "fretless bass", "fretless"),
    **_same(_instrument("bass", 36), "slap bass", "slapped bass"),
    **_same(_instrument("bass", 38), "synth bass", "808 bass", "sub bass", "subbass", "acid bass",
            "303", "wobble bass", "reese bass", "moog bass"),
    "contrabass": _instrument("bass", 43),
    "tuba": _instrument("bass", 58),
    # strings
    **_same(_instrument("strings", 48), "strings", "string", "orchestral strings", "violins"),
    "synth strings": _instrument("strings", 50),
    "tremolo strings": _instrument("strings", 44),
    **_same(_instrument("strings", 45), "pizzicato", "pizzicato strings", "pizz"),
    **_same(_instrument("melody", 40), "violin", "fiddle", "solo violin"),
    "viola": _instrument("strings", 41),
    **_same(_instrument("strings", 42), "cello", "cellos", "celli"),
    # voices
    **_same(_instrument("pad", 52), "choir", "choral", "voices", "aahs"),
    **_same(_instrument("pad", 53), "oohs", "vocal pad", "voice pad", "humming"),
    # brass
    "trumpet": _instrument("melody", 56),
    "muted trumpet": _instrument("melody", 59),
    "trombone": _instrument("melody", 57),
    "french horn": _instrument("melody", 60),
    **_same(_instrument("strings", 61), "brass", "brass section", "horns", "horn section", "horn"),
    "synth brass": _instrument("strings", 62),
    # reeds and pipes
    "soprano sax": _instrument("melody", 64),
    **_same(_instrument("melody", 65), "sax", "saxophone", "alto sax", "alto saxophone"),
    **_same(_instrument("melody", 66), "tenor sax", "tenor saxophone"),
    **_same(_instrument("melody", 67), "baritone sax", "bari sax"),
    "oboe": _instrument("melody", 68),
    "english horn": _instrument("melody", 69),
    "bassoon": _instrument("melody", 70),
    "clarinet": _instrument("melody", 71),
    "piccolo": _instrument("melody", 72),
    "flute": _instrument("melody", 73),
    "recorder": _instrument("melody", 74),
    **_same(_instrument("melody", 75), "pan flute", "pan pipes", "panpipes"),
    "shakuhachi": _instrument("melody", 77),
    **_same(_instrument("melody", 78), "whistle", "whistling"),
    "ocarina": _instrument("melody", 79),
    # synths
    **_same(_instrument("melody", 80), "square lead", "square wave", "chip lead"),
    **_same(_instrument("melody", 81), "synth lead", "lead synth", "saw lead", "sawtooth"),
    **_same(_instrument("pad", 90, bass=38, melody=81, arp=81, keys=90), "synth", "synths",
            "synthesizer", "synthesiser", "polysynth"),
    "analog synth": _instrument("pad", 90, bass=38, melody=81, arp=81),
    "new age pad": _instrument("pad", 88),
    "halo pad": _instrument("pad", 94),
    "sweep pad": _instrument("pad", 95),
}

#: ``only``/``alone``/``unaccompanied``/``nothing but`` anywhere; ``solo`` and
#: ``just`` only right before an instrument (``solo piano``, but not ``sax solo``).
_EXCLUSIVE: dict[str, Effect] = {
    **_same(Effect(exclusive=True), "only", "alone", "unaccompanied", "nothing but"),
    **_same(Effect(exclusive=True, role=True), "solo", "just"),
}

# fmt: on

#: Every word and phrase the prompt reader understands, by category:
#: ``{category: {phrase: Effect}}``.  Documented in docs/prompts.md.
PROMPT_VOCABULARY: Mapping[str, Mapping[str, Effect]] = MappingProxyType(
    {
        "styles": MappingProxyType(_STYLES),
        "moods": MappingProxyType(_MOODS),
        "tempo": MappingProxyType(_TEMPO),
        "meters": MappingProxyType(_METERS),
        "feel": MappingProxyType(_FEEL),
        "complexity": MappingProxyType(_COMPLEXITY),
        "roles": MappingProxyType(_ROLES),
        "instruments": MappingProxyType(_INSTRUMENTS),
        "exclusive": MappingProxyType(_EXCLUSIVE),
    }
)

# Tempo numbers: "128 bpm", "90bpm", "bpm 120", "tempo 100", "tempo of 100",
# "100 beats per minute"; then, weaker, "at 90" (a 2-3 digit number after "at"
# and before no unit).
_BPM_RE = re.compile(
    r"(?<![\w.])(?P<a>\d{1,4}(?:\.\d+)?)\s*(?:bpm|beats?\s+(?:per|a)\s+minute)(?![a-z])"
    r"|(?<![a-z])(?:bpm|tempo)\s*(?:of|=|:|at|is)?\s*(?P<b>\d{1,4}(?:\.\d+)?)(?![\w.])"
)
_AT_BPM_RE = re.compile(
    r"(?<![a-z])at\s+(?P<c>\d{2,3})(?![\w./%])"
    r"(?!\s*(?:bars?|measures?|seconds?|secs?|minutes?|mins?|percent|hz|times?|am|pm)\b)"
)
_TS_RE = re.compile(r"(?<![\w/.])(\d{1,2})\s*/\s*(\d{1,2})(?![\w/])")
_MODE_WORDS = {
    "m": "minor",
    "min": "minor",
    "minor": "minor",
    "aeolian": "minor",
    "maj": "major",
    "major": "major",
    "ionian": "major",
    "dorian": "dorian",
    "phrygian": "phrygian",
    "lydian": "lydian",
    "mixolydian": "mixolydian",
    "locrian": "locrian",
}
_KEY_RE = re.compile(
    r"(?P<pre>(?<![A-Za-z])(?i:in\s+the\s+key\s+of|key\s+of|in)\s+)?"
    r"(?<![A-Za-z0-9#])(?P<tonic>[A-Ga-g])"
    r"(?P<acc>#|b|\s*-?\s*(?i:sharp|flat))?"
    r"(?:(?P<m>m)|\s*(?P<mode>(?i:major|minor|maj|min|dorian|phrygian|lydian|mixolydian"
    r"|locrian|aeolian|ionian)))?"
    r"(?![A-Za-z0-9#])"
)
_CLAUSE_END_RE = re.compile(
    r"\s*(?:$|[,.;:!?)]|(?i:with|and|at|for|over|in|using|featuring|but|please)\b)"
)
_NEGATION_RE = re.compile(r"(?<![a-z])(?:no|without|minus|not)\s+(?:any\s+|the\s+)?")
_BIND_AFTER_RE = re.compile(
    r"^\s*(?:played\s+|performed\s+)?(?:on|by|from)\s+(?:an?\s+|the\s+|some\s+)?$"
)
_UNIT_AFTER_RE = re.compile(r"\s*(?:minutes?|mins?|seconds?|secs?|bars?|measures?|hours?|parts?)\b")


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    phrase: str
    category: str
    effect: Effect


@cache
def _phrase_re(phrase: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s-]+", phrase) if w]
    return re.compile(r"(?<![a-z0-9&])" + r"[\s-]*".join(words) + r"(?:e?s)?(?![a-z0-9&])")


def _normalise(text: str) -> str:
    text = text.replace("♯", "#").replace("♭", "b").replace("’", "").replace("'", "")
    text = text.replace("–", "-").replace("—", " ").replace("_", " ")
    return "".join(c if c.isascii() or len(c.lower()) == 1 else " " for c in text)


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _number(value: float) -> int | float:
    return int(value) if value == int(value) else round(value, 2)


def _find_bpm(text: str) -> tuple[float | None, str]:
    lower = text.lower()
    match = _BPM_RE.search(lower) or _AT_BPM_RE.search(lower)
    if match is None:
        return None, text
    number = next(g for g in match.groups() if g is not None)
    bpm = min(400.0, max(20.0, float(number)))
    return bpm, _blank(text, *match.span())


def _find_ts(text: str) -> tuple[str | None, str]:
    for match in _TS_RE.finditer(text):
        num, den = int(match.group(1)), int(match.group(2))
        if 1 <= num <= 32 and den in TS_DENOMINATORS:
            return f"{num}/{den}", _blank(text, *match.span())
    return None, text


def _is_key(match: re.Match[str], text: str) -> bool:
    """Whether a ``_KEY_RE`` match is a key and not an article or a word.

    An upper-case tonic needs ``in``/``key of`` or a mode after it (``in D``,
    ``E dorian``, ``Am``); a lower-case one needs either and no attached
    ``m`` (``I am``).  A bare ``a``/``A`` is the article unless the clause ends
    after it (``in A major key`` needs no clause end): ``in a minor, ...``
    and ``in A with ...`` are keys, ``a minor key``, ``in a dorian groove``
    and ``in A relaxing mood`` are not.
    """
    tonic, pre, word = match.group("tonic"), match.group("pre"), match.group("mode")
    attached_m = match.group("m") is not None
    if tonic.isupper():
        ok = bool(pre or word or attached_m)
    else:
        ok = bool(pre or word) and not attached_m
    if tonic in "aA" and not match.group("acc") and not attached_m:
        clause_ends = _CLAUSE_END_RE.match(text, match.end()) is not None
        if tonic == "a":
            ok = ok and bool(pre and word) and clause_ends
        else:
            ok = ok and (bool(pre and word) or clause_ends)
    return ok


def _find_key(text: str) -> tuple[tuple[str, str | None] | None, str]:
    """Return ``((tonic, mode or None), text with the key blanked)``."""
    for match in _KEY_RE.finditer(text):
        if not _is_key(match, text):
            continue
        acc, word = (match.group("acc") or "").lower(), match.group("mode")
        accidental = "#" if "#" in acc or "sharp" in acc else "b" if acc.strip() else ""
        mode = "minor" if match.group("m") else _MODE_WORDS[word.lower()] if word else None
        name = match.group("tonic").upper() + accidental
        try:
            parse_key(f"{name} {mode or 'major'}")
        except RequestError:
            continue
        return (name, mode), _blank(text, match.start("tonic"), match.end())
    return None, text


def _find_negations(lower: str, table: Mapping[str, Effect]) -> tuple[set[str], str]:
    dropped: set[str] = set()
    for match in list(_NEGATION_RE.finditer(lower)):
        rest = lower[match.end() :]
        best: tuple[int, str] | None = None
        for phrase, effect in table.items():
            if effect.part is None:
                continue
            found = _phrase_re(phrase).match(rest)
            if found and (best is None or found.end() > best[0]):
                best = (found.end(), effect.part)
        if best is not None:
            dropped.add(best[1])
            lower = _blank(lower, match.start(), match.end() + best[0])
    return dropped, lower


def _vocabulary_with(styles: list[str]) -> list[tuple[str, str, Effect]]:
    """Every (phrase, category, effect), longest phrase first; literal style names added."""
    entries = [(p, c, e) for c, table in PROMPT_VOCABULARY.items() for p, e in table.items()]
    known = {p for p, _, _ in entries}
    for name in styles:
        spoken = re.sub(r"[-_]+", " ", name)
        if spoken not in known and name not in known:
            entries.append((spoken, "styles", Effect(styles=(name,))))
    entries.sort(key=lambda entry: (-len(entry[0]), entry[0]))
    return entries


def _find_phrases(lower: str, styles: list[str]) -> list[_Hit]:
    taken = [False] * len(lower)
    hits: list[_Hit] = []
    for phrase, category, effect in _vocabulary_with(styles):
        for match in _phrase_re(phrase).finditer(lower):
            start, end = match.span()
            if any(taken[start:end]):
                continue
            if category == "meters" and phrase[-1].isdigit() and _UNIT_AFTER_RE.match(lower, end):
                continue  # "in 3 minutes" is not a meter
            taken[start:end] = [True] * (end - start)
            hits.append(_Hit(start, end, phrase, category, effect))
    hits.sort(key=lambda hit: hit.start)
    return hits


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def _choose_style(hits: list[_Hit], existing: set[str]) -> str | None:
    for weak in (False, True):
        for hit in hits:
            if hit.effect.styles and hit.effect.weak_style == weak:
                for name in hit.effect.styles:
                    if name in existing:
                        return name
    return None


def _pair(first: _Hit, second: _Hit, lower: str) -> tuple[_Hit, _Hit] | None:
    """``(instrument, role)`` when neighbouring hits mean one part: ``piano melody``, ``melody on flute``."""
    gap = lower[first.end : second.start]
    if first.category == "instruments" and second.category == "roles" and second.effect.role:
        return (first, second) if not gap.strip(" -") else None
    if first.category == "roles" and first.effect.role and second.category == "instruments":
        return (second, first) if _BIND_AFTER_RE.match(gap) else None
    return None


def _exclusive(hits: list[_Hit], lower: str) -> bool:
    """True for ``only``/``alone`` anywhere, or ``solo``/``just`` right before an instrument."""
    for index, hit in enumerate(hits):
        if not hit.effect.exclusive:
            continue
        if not hit.effect.role:
            return True
        following = hits[index + 1] if index + 1 < len(hits) else None
        if (
            following is not None
            and following.category in ("instruments", "roles")
            and not lower[hit.end : following.start].strip(" -")
        ):
            return True
    return False


def _parts_and_programs(
    hits: list[_Hit], lower: str, dropped: set[str], style_parts: tuple[str, ...]
) -> tuple[list[str], dict[str, int]]:
    """The parts to play (in KNOWN_PARTS order) and the programs the prompt names.

    Named parts join ``style_parts`` (and the calm moods' pad) unless the
    prompt is exclusive; dropped parts leave.  Nothing when the prompt names
    no part and drops none.
    """
    sounding = [h for h in hits if h.category in ("roles", "instruments")]
    named: dict[str, int | None] = {}  # part -> program; the first program named wins
    index = 0
    while index < len(sounding):
        hit = sounding[index]
        pair = _pair(hit, sounding[index + 1], lower) if index + 1 < len(sounding) else None
        if pair is not None:
            instrument, role = pair
            part = role.effect.part
            program = instrument.effect.role_programs.get(part or "", instrument.effect.program)
            program = role.effect.program if program is None else program
            index += 2
        else:
            part, program = hit.effect.part, hit.effect.program
            index += 1
        if part is not None and named.get(part) is None:
            named[part] = program

    if not named and not dropped:
        return [], {}
    chosen = set(named)
    if not _exclusive(hits, lower):
        chosen |= set(style_parts)
        for hit in hits:
            chosen |= set(hit.effect.add_parts)
    chosen -= dropped
    parts = [p for p in KNOWN_PARTS if p in chosen]
    return parts, {p: n for p, n in named.items() if n is not None and p in chosen}


def interpret_prompt(text: str, *, base_style: str | None = None) -> dict[str, object]:
    """Read a free-text prompt into raw request values.

    Args:
        text: e.g. ``"relaxing piano melody for meditation"``,
            ``"upbeat 128 bpm house with a rolling bassline"``,
            ``"sad slow jazz ballad in D minor"``.
        base_style: the style the request names explicitly, if any: named
            instruments are added to *its* parts rather than to those of the
            prompt's style (or of the default style).

    Returns:
        Only the keys the prompt implies, among ``style`` (an existing style
        name), ``bpm`` (number 20..400), ``key`` (``"D minor"``, ``"Bb"``,
        ``"E dorian"``), ``ts`` (``"3/4"``), ``parts`` (comma list of
        :data:`~ai_band.request.KNOWN_PARTS`), ``programs``
        (``"melody=0,bass=33"``), ``energy``, ``complexity``, ``swing`` and
        ``humanize`` (numbers 0..1).  The result always passes
        :func:`~ai_band.request.parse_request`.
    """
    from ai_band.generate.styles import STYLES  # read at call time: styles grow

    existing = set(STYLES)
    text = _normalise(text)
    bpm_number, text = _find_bpm(text)
    ts_number, text = _find_ts(text)
    key, text = _find_key(text)
    lower = text.lower()
    dropped, lower = _find_negations(lower, {**_ROLES, **_INSTRUMENTS})
    hits = _find_phrases(lower, sorted(existing))

    out: dict[str, object] = {}
    style = _choose_style(hits, existing)
    if style is not None:
        out["style"] = style

    tempo_words = [h.effect.bpm for h in hits if h.category == "tempo" and h.effect.bpm]
    mood_tempi = [h.effect.bpm for h in hits if h.category != "tempo" and h.effect.bpm]
    bpm = bpm_number if bpm_number is not None else _mean(tempo_words) or _mean(mood_tempi)
    if bpm is not None:
        out["bpm"] = _number(round(bpm, 2))

    if key is not None:
        tonic, mode = key
        mode = mode or next((h.effect.mode for h in hits if h.effect.mode), None)
        out["key"] = f"{tonic} {mode}" if mode else tonic

    ts = ts_number or next((h.effect.ts for h in hits if h.effect.ts), None)
    if ts is not None:
        out["ts"] = ts

    style_parts: tuple[str, ...] = ()
    base = STYLES.get((base_style or style or "").strip().lower())
    if base is None:
        from ai_band.generate.styles import DEFAULT_STYLE

        base = STYLES.get(DEFAULT_STYLE)
    if base is not None:
        style_parts = tuple(getattr(base, "parts", ()) or ())
    parts, programs = _parts_and_programs(hits, lower, dropped, style_parts)
    if parts:
        out["parts"] = ",".join(parts)
        if programs:
            out["programs"] = ",".join(f"{p}={n}" for p, n in programs.items())

    for name in ("energy", "complexity"):
        value = _mean(
            [getattr(h.effect, name) for h in hits if getattr(h.effect, name) is not None]
        )
        if value is not None:
            out[name] = value
    for name in ("swing", "humanize"):
        first = next(
            (getattr(h.effect, name) for h in hits if getattr(h.effect, name) is not None), None
        )
        if first is not None:
            out[name] = first
    return out


def apply_prompt(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Fill the keys a request leaves out from its ``prompt``.

    Explicit request keys always win, key by key (a request's ``parts``
    replaces the prompt's parts entirely, likewise ``programs``); a key
    given as None counts as left out.

    Args:
        raw: raw request values, possibly with a ``prompt`` string.

    Returns:
        A new mapping: ``raw`` plus the prompt's values for the missing keys.
    """
    out = dict(raw)
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return out
    style = raw.get("style")
    base_style = style if isinstance(style, str) else None
    for key, value in interpret_prompt(prompt, base_style=base_style).items():
        if out.get(key) is None:
            out[key] = value
    return out
