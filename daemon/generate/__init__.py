"""Band-part generation: chord sheet + style in, :class:`Arrangement` out.

Cheat-sheet::

    from daemon.generate import generate, validate_request, STYLES, style_names
    from daemon.generate.request import parse_request

    request = parse_request({"chords": "| Dm7 | G7 | Cmaj7 | % |", "style": "jazz", "seed": 7})
    validate_request(request)           # cheap check: style, chords, key; raises BandError
    arrangement = generate(request)     # CPU-bound, run it in a worker process
    arrangement.part("bass").notes      # tuple of Note(start_ppq, duration_ppq, pitch, velocity)
    arrangement.chords                  # ChordSpan per chord over the whole arrangement
    style_names()                       # ['ambient', 'blues', 'classical', 'electronic', ...]

:func:`generate` is pure and deterministic (same request and seed, same
notes), CPU-bound and returns picklable frozen dataclasses, so it can run in
a ``ProcessPoolExecutor``.  Modules: ``styles`` (defaults and pattern names),
``meter`` (beats of any time signature), ``drums``/``bass``/``keys`` (the
parts, on a straight grid), ``groove`` (swing, humanize and the final clean-up
that guarantees playable parts), ``request`` and ``model`` (the contracts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType

from daemon.errors import BandError, GenerationError, RequestError
from daemon.generate.bass import generate_bass
from daemon.generate.context import PartContext, build_slots
from daemon.generate.drums import generate_drums
from daemon.generate.groove import apply_swing, finalize, humanize
from daemon.generate.keys import generate_keys
from daemon.generate.meter import Meter
from daemon.generate.model import Arrangement, ChordSpan, Note, Part
from daemon.generate.request import GenerationRequest
from daemon.generate.styles import CHANNELS, DEFAULT_STYLE, STYLES, Style, get_style, style_names
from daemon.theory import infer_key, parse_key, parse_progression

__all__ = [
    "validate_request",
    "generate",
    "request_seed",
    "STYLES",
    "Style",
    "style_names",
    "DEFAULT_STYLE",
    "DEFAULT_TS",
]

logger = logging.getLogger(__name__)

#: Time signature used when a request gives none.
DEFAULT_TS = (4, 4)

_GENERATORS: Mapping[str, Callable[[PartContext, random.Random], list[Note]]] = MappingProxyType(
    {"drums": generate_drums, "bass": generate_bass, "keys": generate_keys}
)


def request_seed(request: GenerationRequest) -> int:
    """Derive a seed 0..2**31-1 from the request's musical content.

    Used when ``request.seed`` is None: the same sheet, style and settings
    always give the same seed (``id`` and ``play`` do not count).
    """
    content = {k: v for k, v in request.to_dict().items() if k not in ("id", "play", "seed")}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def validate_request(request: GenerationRequest) -> None:
    """Check cheaply, before queueing, what :func:`generate` would reject.

    Resolves the style, parses the chord sheet in the request's time
    signature and the key when one is given; generates nothing (well under a
    millisecond for a typical sheet, safe to call on the event loop).

    Raises:
        StyleError: unknown style.
        ChordError: a bad chord symbol or sheet (naming the token and bar).
        RequestError: a bad key (field ``"key"``) or an unknown part.
    """
    get_style(request.style)
    ts_num, ts_den = request.ts or DEFAULT_TS
    parse_progression(request.chords, ts_num, ts_den)
    if request.key:
        parse_key(request.key)
    for name in request.parts or ():
        if name not in _GENERATORS:
            raise RequestError("parts", f"unknown part {name!r}", "unknown_part")


def generate(request: GenerationRequest) -> Arrangement:
    """Generate every requested part.

    Defaults for the fields left None: style :data:`DEFAULT_STYLE`; bpm,
    parts, swing and humanize from the style; time signature 4/4; bars = the
    sheet's bar count (a longer arrangement loops the sheet, a shorter one
    truncates it); key inferred from the chords; seed from
    :func:`request_seed`.

    Args:
        request: a validated request (see :func:`daemon.generate.request.parse_request`).

    Returns:
        The arrangement: one part per requested part name in request order
        (drums on channel index 9, bass 1, keys 2), with notes in quarter
        notes (ppq) from the start, and the chord spans of every bar.

    Raises:
        StyleError: unknown style.
        ChordError: a bad chord symbol or sheet (naming the token and bar).
        RequestError: a bad key (field ``"key"``) or unknown part name.
        GenerationError: an internal failure.
    """
    style = get_style(request.style)
    ts_num, ts_den = request.ts or DEFAULT_TS
    sheet = parse_progression(request.chords, ts_num, ts_den)
    key = (
        parse_key(request.key) if request.key else infer_key(c for bar in sheet for c, _, _ in bar)
    )
    bars = request.bars or len(sheet)
    bpm = request.bpm if request.bpm is not None else style.bpm
    parts = request.parts or style.parts
    swing = request.swing if request.swing is not None else style.swing
    amount = request.humanize if request.humanize is not None else style.humanize
    seed = request.seed if request.seed is not None else request_seed(request)
    try:
        meter = Meter.from_ts(ts_num, ts_den)
        slots = build_slots(sheet, bars, meter)
        ctx = PartContext(style, meter, bars, slots, key)
        out_parts = []
        for name in parts:
            if name not in _GENERATORS:
                raise RequestError("parts", f"unknown part {name!r}", "unknown_part")
            raw = _GENERATORS[name](ctx, random.Random(f"{seed}:{name}"))
            swung = apply_swing(raw, meter, swing)
            swung.sort(key=lambda n: (n.start_ppq, n.pitch))
            loose = humanize(swung, amount, random.Random(f"{seed}:{name}:humanize"))
            notes = finalize(loose, ctx.length)
            out_parts.append(Part(name, style.program(name), CHANNELS[name], notes))
    except BandError:
        raise
    except Exception as exc:  # a bug in a generator: report it as such
        logger.exception("generation failed for style %s", style.name)
        raise GenerationError(f"generation failed: {exc}") from exc
    chords = tuple(
        ChordSpan(
            s.chord.symbol,
            s.chord.root_pc,
            s.chord.pitch_classes,
            s.chord.bass_pc,
            s.start,
            s.duration,
            s.bar,
        )
        for s in slots
    )
    logger.debug(
        "generated %s: %d bars %d/%d, key %s, seed %d",
        style.name,
        bars,
        ts_num,
        ts_den,
        key.name,
        seed,
    )
    return Arrangement(
        tuple(out_parts), float(bpm), ts_num, ts_den, bars, style.name, key.name, seed, chords
    )
