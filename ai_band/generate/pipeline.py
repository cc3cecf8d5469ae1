"""Band-part generation: chord sheet + style in, :class:`Arrangement` out.

Cheat-sheet::

    from ai_band.generate.pipeline import generate, resolve_request, validate_request, STYLES, style_names
    from ai_band.request import parse_request

    request = parse_request({"chords": "| Dm7 | G7 | Cmaj7 | % |", "style": "jazz", "seed": 7,
                             "structure": "intro verse chorus outro", "energy": 0.6})
    validate_request(request)           # cheap check: style, sheets, key; raises BandError
    resolved = resolve_request(request) # every None field filled (style defaults, bars, seed, ...)
    arrangement = generate(resolved)    # CPU-bound, run it in a worker process
    arrangement.part("bass").notes      # tuple of Note(start_ppq, duration_ppq, pitch, velocity)
    arrangement.chords                  # ChordSpan per chord over the whole arrangement
    arrangement.sections                # (("intro", 0, 4), ("verse", 4, 4), ...)
    style_names()                       # ['ambient', 'blues', 'bossa', 'classical', ...]

:func:`generate` is pure and deterministic (same request and seed, same
notes; each part has its own seeded random source), CPU-bound and returns
picklable frozen dataclasses, so it can run in a ``ProcessPoolExecutor``.

Modules: ``styles`` (the style table and each style's GM programs),
``arrange`` (song form: sections, variations, fills, endings, who plays
when), ``context`` (what each generator is handed), ``parts/<name>.py`` with
``generate_<name>`` for every part of :data:`ai_band.model.PARTS` (on a
straight grid), ``groove`` (layering, swing, humanize and the final clean-up
that guarantees playable parts), ``prompt`` (free text -> request fields).
Beside the generator: :mod:`ai_band.theory` (chords, keys, meter),
:mod:`ai_band.request` and :mod:`ai_band.model` (the contracts: the parts
table, time signature, note, part, arrangement).  See docs/generation.md.
"""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, replace

from ai_band.errors import BandError, GenerationError, RequestError
from ai_band.generate.arrange import MAIN, Plan, allocate_bars, plan_loop, plan_song
from ai_band.generate.context import PartContext, build_section_slots, build_slots
from ai_band.generate.groove import apply_swing, finalize, humanize, mute_bars
from ai_band.generate.styles import DEFAULT_STYLE, STYLES, Style, get_style, style_names
from ai_band.model import PART_NAMES, PARTS, Arrangement, ChordSpan, Note, Part, TimeSignature
from ai_band.request import OUTPUT_FIELDS, GenerationRequest, parse_request
from ai_band.theory import Bar, Key, infer_key, parse_key, parse_progression
from ai_band.theory.meter import Meter

__all__ = [
    "validate_request",
    "resolve_request",
    "generate",
    "request_seed",
    "STYLES",
    "Style",
    "style_names",
    "DEFAULT_STYLE",
    "DEFAULT_TS",
    "MAX_BARS",
    "GENERATORS",
]

logger = logging.getLogger(__name__)

#: Time signature used when neither the request nor the style gives one.
DEFAULT_TS = (4, 4)

#: Longest arrangement in bars, however it is asked for (bars, duration or structure).
MAX_BARS = 512

Generator = Callable[[PartContext, random.Random], list[Note]]


class _Generators(Mapping[str, Generator]):
    """Part name -> its generator, the part's module imported on first use.

    The keys are those of :data:`ai_band.model.PARTS`; the generator of part
    ``name`` is ``ai_band.generate.parts.<name>.generate_<name>``, so a job
    loads only the generators of the parts it plays.
    """

    def __getitem__(self, name: str) -> Generator:
        """The generator of part ``name``; raises KeyError for a name not in PARTS."""
        if name not in PARTS:
            raise KeyError(name)
        return getattr(importlib.import_module(f"ai_band.generate.parts.{name}"), f"generate_{name}")

    def __contains__(self, name: object) -> bool:
        return name in PARTS

    def __iter__(self) -> Iterator[str]:
        return iter(PART_NAMES)

    def __len__(self) -> int:
        return len(PART_NAMES)


#: Part name -> generator(context, seeded rng) -> notes on the straight grid:
#: ``ai_band.generate.parts.<name>.generate_<name>`` for every part of
#: :data:`ai_band.model.PARTS`, imported when a part is first generated.
GENERATORS: Mapping[str, Generator] = _Generators()

#: GM percussion keys -> the drum voice a style's pocket names.
_DRUM_VOICES = {35: "kick", 36: "kick", 37: "snare", 38: "snare", 39: "snare", 40: "snare"}
_DRUM_VOICES.update({k: "hats" for k in (42, 44, 46, 51, 53, 54, 56, 70, 82)})


def request_seed(request: GenerationRequest) -> int:
    """Derive a seed 0..2**31-1 from the request's musical content.

    Used when ``request.seed`` is None: the same sheet, style and settings
    always give the same seed (:data:`~ai_band.request.OUTPUT_FIELDS`
    such as ``id``, ``play`` and the audio format do not count).
    """
    import hashlib
    import json

    skip = (*OUTPUT_FIELDS, "seed")
    content = {k: v for k, v in request.to_dict().items() if k not in skip}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class _Score:
    """What resolution parsed on the way: the style, key and every sheet."""

    style: Style
    key: Key
    main: list[Bar]
    sheets: dict[str, list[Bar]]

    def sheet(self, section: str) -> list[Bar]:
        return self.sheets.get(section, self.main)


def _parse_sheets(
    request: GenerationRequest, ts: tuple[int, int], key: Key | None
) -> tuple[list[Bar], dict[str, list[Bar]]]:
    """Parse the main sheet and every section's sheet (roman numerals need ``key``)."""
    main = parse_progression(request.chords, ts[0], ts[1], key=key)
    sheets = {
        name: parse_progression(text, ts[0], ts[1], key=key)
        for name, text in request.sections or ()
    }
    return main, sheets


def _structure(request: GenerationRequest) -> tuple[str, ...]:
    """The section order: the request's, else the named sections in order, else ``("main",)``."""
    if request.structure:
        return request.structure
    if request.sections:
        return tuple(name for name, _ in request.sections)
    return (MAIN,)


def _check_sections(request: GenerationRequest, structure: tuple[str, ...]) -> None:
    for name, _ in request.sections or ():
        if name not in structure:
            raise RequestError(
                "sections",
                f"section {name!r} is not in the structure ({' '.join(structure)})",
                "bad_value",
            )


def _bars(request: GenerationRequest, bpm: float, ts: tuple[int, int], natural: list[int]) -> int:
    """The arrangement length: bars, else from duration_s, else the sections' natural lengths."""
    if request.bars is not None:
        bars = request.bars
        field = "bars"
    elif request.duration_s is not None:
        bars = max(1, round(request.duration_s * bpm / 60.0 / TimeSignature(*ts).bar_length_ppq))
        field = "duration"
    else:
        bars = sum(natural)
        field = "structure" if request.structure else "chords"
    if bars > MAX_BARS:
        raise RequestError(field, f"gives {bars} bars; at most {MAX_BARS}")
    return bars


def _channels(
    parts: tuple[str, ...], style: Style, overrides: dict[str, int]
) -> tuple[tuple[str, int], ...]:
    """Each part's channel: the override, else the style's, moved to a free channel on a clash."""
    taken = set(overrides.values())
    defaults = {p: style.channel(p) for p in parts if p not in overrides}
    free = [c for c in range(16) if c != 9 and c not in taken and c not in defaults.values()]
    out = []
    for part in parts:
        if part in overrides:
            channel = overrides[part]
        else:
            channel = defaults[part]
            if channel in taken:
                channel = free.pop(0) if free else channel
        taken.add(channel)
        out.append((part, channel))
    return tuple(out)


def with_prompt(request: GenerationRequest) -> GenerationRequest:
    """Fill the fields ``request`` leaves None from its text prompt; explicit fields always win.

    The prompt is read by :func:`ai_band.generate.prompt.interpret_prompt`
    (vocabulary in docs/prompts.md) and validated like any request.

    Raises:
        RequestError: the prompt implies a value that fails validation (not expected).
    """
    if not request.prompt:
        return request
    from ai_band.generate.prompt import interpret_prompt

    from_prompt = parse_request(interpret_prompt(request.prompt, base_style=request.style))
    fills = {
        f.name: getattr(from_prompt, f.name)
        for f in fields(GenerationRequest)
        if getattr(request, f.name) is None and getattr(from_prompt, f.name) is not None
    }
    return replace(request, **fills) if fills else request


def _resolve(request: GenerationRequest) -> tuple[GenerationRequest, _Score]:
    request = with_prompt(request)
    style = get_style(request.style)
    ts = request.ts or style.ts or DEFAULT_TS
    key = parse_key(request.key) if request.key else None
    main, sheets = _parse_sheets(request, ts, key)
    structure = _structure(request)
    _check_sections(request, structure)
    if key is None:
        chords = [c for sheet in (main, *sheets.values()) for bar in sheet for c, _, _ in bar]
        key = infer_key(c for c in chords if not c.is_no_chord)
    bpm = float(request.bpm if request.bpm is not None else style.bpm)
    natural = [len(sheets.get(name, main)) for name in structure]
    bars = _bars(request, bpm, ts, natural)
    parts = request.parts or style.parts
    programs = dict(request.programs or ())
    resolved = replace(
        request,
        style=style.name,
        bpm=bpm,
        key=key.name,
        ts=ts,
        parts=parts,
        bars=bars,
        duration_s=None,
        seed=request.seed if request.seed is not None else request_seed(request),
        humanize=request.humanize if request.humanize is not None else style.humanize,
        swing=request.swing if request.swing is not None else style.swing,
        energy=request.energy if request.energy is not None else style.energy,
        complexity=request.complexity if request.complexity is not None else style.complexity,
        structure=structure,
        programs=tuple((p, programs.get(p, style.program(p))) for p in parts),
        channels=_channels(parts, style, dict(request.channels or ())),
    )
    return resolved, _Score(style, key, main, sheets)


def resolve_request(request: GenerationRequest) -> GenerationRequest:
    """Return ``request`` with every None field filled, as :func:`generate` will play it.

    Fills: ``style`` (:data:`DEFAULT_STYLE`, canonical name), ``bpm``,
    ``ts``, ``parts``, ``humanize``, ``swing``, ``energy`` and ``complexity``
    from the style; ``key`` inferred from the chords (its canonical name);
    ``structure`` (the request's, else the ``sections`` names in order, else
    ``("main",)``, the single looping section); ``bars`` (the request's, else
    ``round(duration_s * bpm / 60 / quarter notes per bar)`` at least 1, else
    the sum of the sections' sheet lengths); ``seed`` (:func:`request_seed`
    of the unresolved request); ``programs`` and ``channels`` for every part
    (overrides kept, GM programs and channels from the style; a default
    channel taken by another part's override moves to a free one).
    ``duration_s`` is cleared once it has become ``bars`` (so the resolved
    request is itself a valid request); ``prompt`` and ``sections`` are kept
    as given.  Resolving a resolved request changes nothing.

    Raises:
        StyleError: unknown style.
        ChordError: a bad chord symbol or sheet (naming the token and bar).
        RequestError: a bad key, a section not in the structure, or more than
            :data:`MAX_BARS` bars.
    """
    return _resolve(request)[0]


def validate_request(request: GenerationRequest) -> None:
    """Check cheaply, before queueing, what :func:`generate` would reject.

    Resolves the style, parses the key (first, so roman numerals resolve),
    the chord sheet and every section's sheet in the request's time
    signature, checks that every named section is in the structure, that
    the arrangement is at most :data:`MAX_BARS` bars and that every part is
    known; generates nothing (well under a millisecond for a typical sheet,
    safe to call on the event loop).

    Raises:
        StyleError: unknown style.
        ChordError: a bad chord symbol or sheet (naming the token and bar).
        RequestError: a bad key (field ``"key"``), a section not in the
            structure, too many bars, or an unknown part.
    """
    request = with_prompt(request)
    style = get_style(request.style)
    ts = request.ts or style.ts or DEFAULT_TS
    key = parse_key(request.key) if request.key else None
    main, sheets = _parse_sheets(request, ts, key)
    structure = _structure(request)
    _check_sections(request, structure)
    bpm = float(request.bpm if request.bpm is not None else style.bpm)
    _bars(request, bpm, ts, [len(sheets.get(name, main)) for name in structure])
    for name in request.parts or ():
        if name not in GENERATORS:
            raise RequestError("parts", f"unknown part {name!r}", "unknown_part")


def _plan(resolved: GenerationRequest, score: _Score, meter: Meter) -> tuple[Plan, tuple]:
    """The form and the chord slots of the resolved request."""
    assert resolved.bars is not None and resolved.parts is not None
    assert resolved.structure is not None and resolved.energy is not None
    if resolved.structure == (MAIN,):
        plan = plan_loop(score.style, resolved.bars, resolved.parts, resolved.energy)
        return plan, build_slots(score.main, resolved.bars, meter)
    natural = [len(score.sheet(name)) for name in resolved.structure]
    lengths = allocate_bars(natural, resolved.bars)
    plan = plan_song(
        score.style, list(zip(resolved.structure, lengths)), resolved.parts, resolved.energy
    )
    slots = build_section_slots(
        [(score.sheet(name), first, count) for name, first, count in plan.sections], meter
    )
    return plan, slots


def _pocket(part: str, style: Style, bpm: float) -> Callable[[Note], float] | None:
    """The part's pocket as quarter notes per note (drums: per voice), or None when flat."""
    per_ms = bpm / 60000.0
    if part == "drums":
        leans = {v: style.pocket_ms(v) * per_ms for v in ("kick", "snare", "hats")}
        if not any(leans.values()):
            return None
        return lambda note: leans.get(_DRUM_VOICES.get(note.pitch, ""), 0.0)
    lean = style.pocket_ms(part) * per_ms
    return (lambda note: lean) if lean else None


def generate(request: GenerationRequest) -> Arrangement:
    """Generate every requested part of the arrangement.

    The request is resolved first (:func:`resolve_request`); each part is
    then written on the straight grid by its generator with its own seeded
    random source (``f"{seed}:{part}"``), silenced in the bars the
    arrangement leaves it out of, swung, humanized and cleaned up
    (:mod:`ai_band.generate.groove`).

    Args:
        request: a validated request (see :func:`ai_band.request.parse_request`),
            resolved or not.

    Returns:
        The arrangement: one part per requested part name in request order,
        with the resolved GM program and channel, notes in quarter notes
        (ppq) from the start; the chord spans of every bar; the sections as
        ``(name, first bar, bar count)``.

    Raises:
        StyleError: unknown style.
        ChordError: a bad chord symbol or sheet (naming the token and bar).
        RequestError: a bad key (field ``"key"``), a section not in the
            structure, too many bars, or an unknown part name.
        GenerationError: an internal failure.
    """
    resolved, score = _resolve(request)
    style = score.style
    assert resolved.ts is not None and resolved.parts is not None and resolved.seed is not None
    ts_num, ts_den = resolved.ts
    bars = resolved.bars or 1
    seed = resolved.seed
    swing = float(resolved.swing or 0.0)
    amount = float(resolved.humanize or 0.0)
    programs = dict(resolved.programs or ())
    channels = dict(resolved.channels or ())
    try:
        meter = Meter.from_ts(ts_num, ts_den, style.grouping(ts_num, ts_den))
        plan, slots = _plan(resolved, score, meter)
        ctx = PartContext(
            style,
            meter,
            bars,
            slots,
            score.key,
            plan,
            float(resolved.bpm or style.bpm),
            resolved.energy,
            resolved.complexity,
            amount,
        )
        out_parts = []
        for name in resolved.parts:
            if name not in GENERATORS:
                raise RequestError("parts", f"unknown part {name!r}", "unknown_part")
            raw = GENERATORS[name](ctx, random.Random(f"{seed}:{name}"))
            raw = mute_bars(raw, [plan.plays(name, b) for b in range(bars)], meter.bar_length)
            swung = apply_swing(raw, meter, swing, style.swing_level)
            swung.sort(key=lambda n: (n.start_ppq, n.pitch))
            loose = humanize(
                swung,
                amount,
                random.Random(f"{seed}:{name}:humanize"),
                _pocket(name, style, ctx.bpm),
            )
            notes = finalize(loose, ctx.length)
            out_parts.append(Part(name, programs[name], channels[name], notes))
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
        "generated %s: %d bars %d/%d, key %s, seed %d, sections %s",
        style.name,
        bars,
        ts_num,
        ts_den,
        score.key.name,
        seed,
        plan.sections,
    )
    return Arrangement(
        tuple(out_parts),
        float(resolved.bpm or style.bpm),
        ts_num,
        ts_den,
        bars,
        style.name,
        score.key.name,
        seed,
        chords,
        plan.sections,
    )
