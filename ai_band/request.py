"""The generation request: one table of fields, validated once.

The same keys arrive from ``/band/generate`` (OSC key/value pairs or a JSON
object) and from ``ai-band generate`` flags.  Values may come as int, float or
a string holding a number; :func:`parse_request` converts and range-checks
each one and raises :class:`~ai_band.errors.RequestError` naming the field.
Missing fields stay ``None`` and are filled from the style's defaults by
:func:`ai_band.generate.pipeline.generate`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from ai_band.errors import RequestError
from ai_band.model import PART_NAMES, TS_DENOMINATORS as _ALL_DENOMINATORS

#: Parts this version can generate, in the order they are offered (the
#: names of :data:`ai_band.model.PARTS`, where the parts are declared).
KNOWN_PARTS = PART_NAMES

#: File formats a job can produce: Standard MIDI Files, WAV and FLAC audio.
RENDER_FORMATS = ("mid", "wav", "flac")

#: The audio formats among :data:`RENDER_FORMATS` (the others are MIDI).
AUDIO_FORMATS = tuple(f for f in RENDER_FORMATS if f != "mid")

#: Fields that choose output files only; they never change the notes.
OUTPUT_FIELDS = ("id", "play", "render", "stems", "sample_rate", "bit_depth")

#: Longest text prompt accepted, characters.
MAX_PROMPT_CHARS = 1000

#: Time-signature denominators a generation request accepts (note values:
#: whole .. 32nd; :data:`ai_band.model.TS_DENOMINATORS` without the 64th).
TS_DENOMINATORS = tuple(d for d in _ALL_DENOMINATORS if d <= 32)

MAX_CHORDS_CHARS = 4096
MAX_ID_CHARS = 128


@dataclass(frozen=True)
class GenerationRequest:
    """A validated generation request; ``None`` means "use the style's default".

    Attributes:
        id: client's request id, echoed in ``/band/job`` (<= 128 chars).
        chords: chord sheet, bars separated by ``|`` (see docs/osc-api.md).
        key: key name such as ``"C"``, ``"F#m"``, ``"Bb"``; inferred from chords when None.
        style: style name, lower case.
        bpm: tempo in quarter notes per minute, 20..400.
        bars: arrangement length in bars, 1..512; defaults to the chord sheet's length.
        ts: time signature ``(numerator 1..32, denominator in 1,2,4,8,16,32)``.
        parts: part names from :data:`KNOWN_PARTS`, no repeats.
        seed: random seed 0..2**31-1; the same seed and request give the same notes.
        humanize: 0..1 timing/velocity looseness; 0 puts every note exactly on the grid.
        swing: 0..1 swing of off-beat eighths/16ths; 0 is straight.
        play: arm the job for playback as soon as it is generated.
        prompt: free text ("upbeat 128 bpm house with a rolling bassline") that
            fills the fields the request leaves None (see docs/generation.md).
        energy: 0..1 density, velocity and fill intensity.
        complexity: 0..1 rhythmic and harmonic elaboration.
        structure: section names in playing order, e.g.
            ``("intro", "verse", "chorus", "verse", "chorus", "outro")`` or ``("A", "A", "B", "A")``.
        sections: chord sheet per section name, ``((name, chords), ...)``;
            sections without one use ``chords``.
        duration_s: arrangement length in seconds, 1..600 (alternative to ``bars``).
        programs: GM program overrides ``((part, program 0..127), ...)``.
        channels: MIDI channel overrides ``((part, channel index 0..15), ...)``;
            given as 1..16 in requests, as users count channels.
        render: output formats, a subset of :data:`RENDER_FORMATS`; None = ``("mid",)``.
        stems: also write one audio file per part (with ``wav``/``flac``).
        sample_rate: audio sample rate in Hz, 44100 or 48000; None = the config's.
        bit_depth: audio sample size in bits, 16 or 24; None = the config's.
    """

    id: str = ""
    chords: str = "C Am F G"
    key: str | None = None
    style: str | None = None
    bpm: float | None = None
    bars: int | None = None
    ts: tuple[int, int] | None = None
    parts: tuple[str, ...] | None = None
    seed: int | None = None
    humanize: float | None = None
    swing: float | None = None
    play: bool = False
    prompt: str | None = None
    energy: float | None = None
    complexity: float | None = None
    structure: tuple[str, ...] | None = None
    sections: tuple[tuple[str, str], ...] | None = None
    duration_s: float | None = None
    programs: tuple[tuple[str, int], ...] | None = None
    channels: tuple[tuple[str, int], ...] | None = None
    render: tuple[str, ...] | None = None
    stems: bool = False
    sample_rate: int | None = None
    bit_depth: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the request as JSON-ready plain values (``ts`` as ``"n/d"``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "ts" and value is not None:
                value = f"{value[0]}/{value[1]}"
            elif f.name in ("sections", "programs", "channels") and value is not None:
                value = {k: (v + 1 if f.name == "channels" else v) for k, v in value}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def load_json(field: str, text: str, expected: str = "not valid JSON") -> Any:
    """Parse JSON text from a client.

    Besides syntax errors, the stdlib parser raises a plain ``ValueError``
    for an integer longer than Python's int conversion limit (4300 digits,
    ``sys.set_int_max_str_digits``) and ``RecursionError`` for nesting deeper
    than the interpreter's recursion limit (e.g. 100,000 ``[``); both are the
    client's fault and refused like a syntax error.

    Args:
        field: the request field, for the error.
        text: the JSON.
        expected: how a syntax error's message begins.

    Raises:
        RequestError: ``bad_value``, naming ``field`` and what was wrong.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(field, f"{expected}: {exc.msg} at char {exc.pos}", "bad_value") from None
    except ValueError as exc:
        raise RequestError(field, f"not usable JSON: {str(exc)[:120]}", "bad_value") from None
    except RecursionError:
        raise RequestError(field, "JSON nested too deeply", "bad_value") from None


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        try:
            result = float(value)
        except OverflowError:  # an int past float64's range, e.g. 10**400
            raise RequestError(field, f"a number of {value.bit_length()} bits is too large") from None
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise RequestError(field, f"expected a number, got {value!r}", "bad_value") from None
    else:
        raise RequestError(field, f"expected a number, got {type(value).__name__}", "bad_value")
    if not math.isfinite(result):
        raise RequestError(field, f"must be a finite number, got {value!r}")
    return result


def _ranged_float(lo: float, hi: float) -> Callable[[str, Any], float]:
    def check(field: str, value: Any) -> float:
        result = _number(field, value)
        if not lo <= result <= hi:
            raise RequestError(field, f"must be in {lo:g}..{hi:g}, got {result:g}")
        return result

    return check


def _ranged_int(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        result = _number(field, value)
        if result != int(result):
            raise RequestError(field, f"must be a whole number, got {result:g}", "bad_value")
        if not lo <= result <= hi:
            raise RequestError(field, f"must be in {lo}..{hi}, got {result:g}")
        return int(result)

    return check


def _text(max_chars: int, *, allow_empty: bool = True) -> Callable[[str, Any], str]:
    def check(field: str, value: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                value = f"{value:g}"
            except OverflowError:
                raise RequestError(field, "expected a string, got a number too large to show", "bad_value") from None
        if not isinstance(value, str):
            raise RequestError(field, f"expected a string, got {type(value).__name__}", "bad_value")
        value = value.strip()
        if len(value) > max_chars:
            raise RequestError(field, f"longer than {max_chars} characters")
        if not value and not allow_empty:
            raise RequestError(field, "must not be empty", "bad_value")
        return value

    return check


def _style(field: str, value: Any) -> str:
    return _text(64, allow_empty=False)(field, value).lower()


def _key(field: str, value: Any) -> str:
    return _text(32, allow_empty=False)(field, value)


def parse_time_signature(field: str, value: Any) -> tuple[int, int]:
    """Parse ``"n/d"`` into ``(numerator, denominator)``.

    Args:
        field: field name for the error message.
        value: a string such as ``"4/4"``, ``"6/8"`` or ``"7/8"``.

    Raises:
        RequestError: not of the form n/d, numerator outside 1..32, or a
            denominator that is not a power of two in 1..32.
    """
    text = _text(16, allow_empty=False)(field, value)
    num_text, sep, den_text = text.partition("/")
    if not sep or not num_text.strip().isdigit() or not den_text.strip().isdigit():
        raise RequestError(field, f"expected a time signature such as '4/4', got {text!r}", "bad_value")
    num, den = int(num_text), int(den_text)
    if not 1 <= num <= 32:
        raise RequestError(field, f"numerator must be in 1..32, got {num}")
    if den not in TS_DENOMINATORS:
        raise RequestError(field, f"denominator must be one of {TS_DENOMINATORS}, got {den}")
    return num, den


def _parts(field: str, value: Any) -> tuple[str, ...]:
    text = _text(256, allow_empty=False)(field, value)
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise RequestError(field, "must name at least one part", "bad_value")
    for name in names:
        if name not in KNOWN_PARTS:
            raise RequestError(
                field, f"unknown part {name!r}; known: {', '.join(KNOWN_PARTS)}", "unknown_part"
            )
    if len(set(names)) != len(names):
        raise RequestError(field, f"a part is named twice in {text!r}", "bad_value")
    return tuple(names)


def _part_map(lo: int, hi: int, offset: int) -> Callable[[str, Any], tuple[tuple[str, int], ...]]:
    """``"bass=33,keys=4"`` or ``{"bass": 33}`` -> ``(("bass", 33), ("keys", 4))``; values lo..hi."""

    def check(field: str, value: Any) -> tuple[tuple[str, int], ...]:
        if isinstance(value, Mapping):
            items = list(value.items())
        else:
            text = _text(512, allow_empty=False)(field, value)
            items = []
            for chunk in text.split(","):
                name, sep, number = chunk.partition("=")
                if not sep:
                    name, sep, number = chunk.partition(":")
                if not sep:
                    raise RequestError(field, f"expected part=number pairs such as 'bass=33', got {chunk.strip()!r}", "bad_value")
                items.append((name, number))
        out: dict[str, int] = {}
        for name, number in items:
            part = str(name).strip().lower()
            if part not in KNOWN_PARTS:
                raise RequestError(field, f"unknown part {part!r}; known: {', '.join(KNOWN_PARTS)}", "unknown_part")
            out[part] = _ranged_int(lo, hi)(f"{field}.{part}", number) - offset
        return tuple(out.items())

    return check


def _structure(field: str, value: Any) -> tuple[str, ...]:
    text = _text(500, allow_empty=False)(field, value)
    if text.isalpha() and text.isupper() and len(text) <= 64:  # song form letters: "AABA"
        return tuple(text.lower())
    names = tuple(name.lower() for name in text.replace(",", " ").split())
    if len(names) > 64:
        raise RequestError(field, f"at most 64 sections, got {len(names)}")
    for name in names:
        if not name.replace("-", "").replace("_", "").isalnum() or len(name) > 32:
            raise RequestError(field, f"bad section name {name!r}", "bad_value")
    return names


def _sections(field: str, value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):
        value = load_json(field, value, "expected a JSON object of section -> chords")
    if not isinstance(value, Mapping) or not value:
        raise RequestError(field, "expected a JSON object of section name -> chord sheet", "bad_value")
    out = []
    for name, chords in value.items():
        section = str(name).strip().lower()
        out.append((section, FIELDS["chords"](f"{field}.{section}", chords)))
    return tuple(out)


def _render(field: str, value: Any) -> tuple[str, ...]:
    text = _text(64, allow_empty=False)(field, value)
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()))
    for fmt in formats:
        if fmt not in RENDER_FORMATS:
            raise RequestError(field, f"unknown format {fmt!r}; known: {', '.join(RENDER_FORMATS)}", "bad_value")
    if not formats:
        raise RequestError(field, "must name at least one format", "bad_value")
    return formats


def _choice_int(choices: tuple[int, ...]) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        number = _number(field, value)
        if number not in choices:
            raise RequestError(field, f"must be one of {', '.join(map(str, choices))}, got {number:g}")
        return int(number)

    return check


def _flag(field: str, value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "off"):
        return False
    return bool(_ranged_int(0, 1)(field, value))


#: Field name -> converter(field, raw) -> value.  Each raises RequestError.
FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "id": _text(MAX_ID_CHARS),
    "chords": _text(MAX_CHORDS_CHARS, allow_empty=False),
    "key": _key,
    "style": _style,
    "bpm": _ranged_float(20.0, 400.0),
    "bars": _ranged_int(1, 512),
    "ts": parse_time_signature,
    "parts": _parts,
    "seed": _ranged_int(0, 2**31 - 1),
    "humanize": _ranged_float(0.0, 1.0),
    "swing": _ranged_float(0.0, 1.0),
    "play": _flag,
    "prompt": _text(MAX_PROMPT_CHARS, allow_empty=False),
    "energy": _ranged_float(0.0, 1.0),
    "complexity": _ranged_float(0.0, 1.0),
    "structure": _structure,
    "sections": _sections,
    "duration_s": _ranged_float(1.0, 600.0),
    "programs": _part_map(0, 127, 0),
    "channels": _part_map(1, 16, 1),
    "render": _render,
    "stems": lambda field, value: _flag(field, value),
    "sample_rate": _choice_int((44100, 48000)),
    "bit_depth": _choice_int((16, 24)),
}

#: Request keys as users write them -> field names (``duration`` is seconds).
KEY_ALIASES = {"duration": "duration_s"}


#: Words users reach for -> the key we use, for "did you mean" hints.
SYNONYMS = {
    "tempo": "bpm",
    "time_signature": "ts",
    "timesig": "ts",
    "meter": "ts",
    "progression": "chords",
    "changes": "chords",
    "instruments": "parts",
    "tracks": "parts",
    "length": "bars",
    "request_id": "id",
    "genre": "style",
    "seconds": "duration",
    "length_s": "duration",
    "program": "programs",
    "instrument": "programs",
    "channel": "channels",
    "form": "structure",
    "text": "prompt",
    "description": "prompt",
    "format": "render",
    "formats": "render",
    "samplerate": "sample_rate",
    "sr": "sample_rate",
    "bits": "bit_depth",
}


def parse_request(raw: Mapping[str, Any]) -> GenerationRequest:
    """Validate a mapping of raw request values into a :class:`GenerationRequest`.

    Args:
        raw: field name -> value as received (str, int, float or bool).

    Raises:
        RequestError: for the first unknown key (with a "did you mean" hint) or
            invalid value, naming the field.
    """
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = KEY_ALIASES.get(key, key)
        check = FIELDS.get(name)
        if check is None:
            import difflib  # only for an unknown field's "did you mean"

            hint = [SYNONYMS[name]] if name in SYNONYMS else difflib.get_close_matches(name, FIELDS, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise RequestError(name, f"unknown key{suggestion}", "unknown_key")
        values[name] = check(key, value)
    if values.get("bars") is not None and values.get("duration_s") is not None:
        raise RequestError("duration", "give bars or duration, not both", "bad_value")
    return GenerationRequest(**values)


def parse_json_request(text: str) -> GenerationRequest:
    """Parse a JSON object of request fields (the one-string form of ``/band/generate``).

    Raises:
        RequestError: the text is not a JSON object, or a field is invalid.
    """
    obj = load_json("json", text)
    if not isinstance(obj, dict):
        raise RequestError("json", "must be a JSON object", "bad_value")
    return parse_request(obj)
