"""Song form: sections, bar counts, variations, fills, endings and who plays when.

A :class:`Plan` says, for every bar of the arrangement, which section it
belongs to, which variation the band plays (``"intro"``, ``"A"``, ``"B"`` or
``"ending"``), its energy, whether it carries a fill (the last bar of a phrase
or section) or a crash (the first), and which parts play.  The part
generators read it bar by bar; :func:`ai_band.generate.pipeline.generate` then drops
the notes of parts that sit a bar out.

Rules (the arranger's conventions of Band-in-a-Box and MMA style files):

* **No structure** (one section ``"main"``): A for bars 1-8, B for bars 9-16,
  and so on; a fill ends every phrase of ``Style.fill_every`` bars; all
  requested parts play throughout; the last bar is an ending only when the
  arrangement has 8 bars or more, so short loops stay loopable.
* **Structure**: each section name has a *role* (:func:`section_role`):
  ``intro`` (variation intro, only ``Style.intro_parts``, energy -0.15),
  ``verse`` (A, without ``Style.lift_parts``), ``prechorus`` (A, +0.08, pads
  and strings enter), ``chorus`` (B, everyone, +0.15 and +0.05 more for every
  repeat), ``bridge`` (B, +0.05, like the pre-chorus), ``solo`` (B, +0.1),
  ``breakdown`` (A, -0.25, no drums or bass), ``outro`` (A, -0.1, like the
  verse).  Every section ends with a fill and starts with a crash; the last
  bar of the song is the ending, played by the whole band.
* Song-form letters: ``a`` is a verse, ``b`` and ``d`` bridges, ``c`` a chorus
  (``AABA`` = verse, verse, bridge, verse).

Bar counts: a section lasts as many bars as its chord sheet; when the request
also fixes the total (``bars``/``duration_s``) the sections are scaled in
proportion (:func:`allocate_bars`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ai_band.generate.styles import Style

__all__ = [
    "BarPlan",
    "Plan",
    "ROLES",
    "MAIN",
    "section_role",
    "allocate_bars",
    "plan_song",
    "plan_loop",
    "ENDING_MIN_BARS",
]

#: Name of the single section of an arrangement without a structure.
MAIN = "main"

#: An arrangement without structure ends with an ending only from this many bars on.
ENDING_MIN_BARS = 8

#: Without structure, A and B alternate every this many bars.
AB_PERIOD = 8

#: Role -> (variation, energy offset).
ROLES: dict[str, tuple[str, float]] = {
    "main": ("A", 0.0),
    "intro": ("intro", -0.15),
    "verse": ("A", 0.0),
    "prechorus": ("A", 0.08),
    "chorus": ("B", 0.15),
    "bridge": ("B", 0.05),
    "solo": ("B", 0.1),
    "breakdown": ("A", -0.25),
    "outro": ("A", -0.1),
}

#: Section names (after removing "-", "_" and trailing digits) -> role.
_ROLE_NAMES = {
    "main": "main",
    "intro": "intro",
    "introduction": "intro",
    "verse": "verse",
    "a": "verse",
    "prechorus": "prechorus",
    "pre": "prechorus",
    "build": "prechorus",
    "buildup": "prechorus",
    "lift": "prechorus",
    "chorus": "chorus",
    "refrain": "chorus",
    "hook": "chorus",
    "drop": "chorus",
    "c": "chorus",
    "bridge": "bridge",
    "middle": "bridge",
    "middle8": "bridge",
    "b": "bridge",
    "d": "bridge",
    "solo": "solo",
    "instrumental": "solo",
    "interlude": "solo",
    "break": "breakdown",
    "breakdown": "breakdown",
    "outro": "outro",
    "coda": "outro",
    "ending": "outro",
    "end": "outro",
    "tag": "outro",
}

#: Parts that join the pre-chorus and bridge even when they sit the verse out.
_SWELL = frozenset({"pad", "strings"})


def section_role(name: str) -> str:
    """The role of a section name: ``"verse2"``, ``"Verse"`` and ``"a"`` are verses.

    Returns:
        One of :data:`ROLES`; unknown names play as verses.
    """
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    if key in _ROLE_NAMES:
        return _ROLE_NAMES[key]
    stripped = key.rstrip("0123456789")
    return _ROLE_NAMES.get(stripped, "verse")


@dataclass(frozen=True)
class BarPlan:
    """What the band does in one bar.

    Attributes:
        section: the section's name, e.g. ``"verse"`` or ``"main"``.
        role: the section's role (a key of :data:`ROLES`).
        variation: ``"intro"``, ``"A"``, ``"B"`` or ``"ending"``.
        energy: 0..1, the request's energy shifted by the section's role.
        fill: the bar ends a phrase or section: drum fill, bass pick-up.
        crash: the bar starts a phrase or section: crash cymbal on beat 1.
        parts: names of the parts that play in this bar.
        section_bar: 0-based bar index inside the section.
        section_bars: the section's length in bars.
        occurrence: how many earlier sections had the same name (0 for the first).
    """

    section: str
    role: str
    variation: str
    energy: float
    fill: bool
    crash: bool
    parts: frozenset[str]
    section_bar: int
    section_bars: int
    occurrence: int = 0


@dataclass(frozen=True)
class Plan:
    """The whole arrangement's form.

    Attributes:
        bars: one :class:`BarPlan` per bar.
        sections: ``(section name, first bar, bar count)`` in playing order.
    """

    bars: tuple[BarPlan, ...]
    sections: tuple[tuple[str, int, int], ...]

    def plays(self, part: str, bar: int) -> bool:
        """True when ``part`` plays in 0-based ``bar``."""
        return part in self.bars[bar].parts


def allocate_bars(lengths: Sequence[int], total: int) -> list[int]:
    """Scale section lengths to add up to ``total`` bars, in proportion.

    Every section keeps at least one bar; rounding errors go to (or come
    from) the longest sections.  When ``total`` is smaller than the number of
    sections, the first ``total - 1`` sections and the last one get one bar
    each and the rest get none.

    Args:
        lengths: natural length of each section in bars (>= 1 each).
        total: wanted total in bars (>= 1).

    Returns:
        One bar count per section (0 for a dropped section).
    """
    count = len(lengths)
    natural = sum(lengths)
    if total == natural:
        return list(lengths)
    if total < count:
        out = [0] * count
        for i in range(total - 1):
            out[i] = 1
        out[-1] = 1
        return out
    out = [max(1, round(n * total / natural)) for n in lengths]
    order = sorted(range(count), key=lambda i: (-out[i], i))
    k = 0
    while sum(out) != total:
        i = order[k % count]
        if sum(out) < total:
            out[i] += 1
        elif out[i] > 1:
            out[i] -= 1
        k += 1
    return out


def _layer(role: str, style: Style, parts: Sequence[str]) -> frozenset[str]:
    """The parts playing a section of ``role``, from the requested ``parts``."""
    requested = list(parts)
    lift = set(style.lift_parts)
    verse = [p for p in requested if p not in lift] or requested
    if role == "intro":
        chosen = [p for p in requested if p in style.intro_parts]
        chosen = chosen or [p for p in requested if p != "melody"] or requested
    elif role in ("verse", "outro"):
        chosen = verse
    elif role in ("prechorus", "bridge"):
        chosen = [p for p in requested if p in verse or p in _SWELL]
    elif role == "breakdown":
        chosen = [p for p in requested if p not in ("drums", "bass")] or requested
    else:  # main, chorus, solo
        chosen = requested
    return frozenset(chosen)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def plan_song(
    style: Style,
    sections: Sequence[tuple[str, int]],
    parts: Sequence[str],
    energy: float,
) -> Plan:
    """The plan of a song with a structure.

    Args:
        style: the resolved style (phrase length, intro and lift parts).
        sections: ``(section name, bar count)`` in playing order; sections of 0 bars are skipped.
        parts: the requested parts.
        energy: the request's energy 0..1.

    Returns:
        The plan: fills on phrase and section ends, crashes on their starts,
        an ending on the last bar when the song has two bars or more.
    """
    bars: list[BarPlan] = []
    spans: list[tuple[str, int, int]] = []
    seen: dict[str, int] = {}
    everyone = frozenset(parts)
    phrase = style.fill_every
    for name, count in sections:
        if count <= 0:
            continue
        role = section_role(name)
        variation, offset = ROLES[role]
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        if role == "chorus":
            offset += min(0.15, 0.05 * occurrence)
        layer = _layer(role, style, parts)
        spans.append((name, len(bars), count))
        for k in range(count):
            bars.append(
                BarPlan(
                    section=name,
                    role=role,
                    variation=variation,
                    energy=_clamp(energy + offset),
                    fill=k == count - 1 or k % phrase == phrase - 1,
                    crash=k % phrase == 0,
                    parts=layer,
                    section_bar=k,
                    section_bars=count,
                    occurrence=occurrence,
                )
            )
    if len(bars) >= 2:
        _add_ending(bars, everyone)
    return Plan(tuple(bars), tuple(spans))


def plan_loop(style: Style, bars: int, parts: Sequence[str], energy: float) -> Plan:
    """The plan of an arrangement without structure: one section ``"main"``.

    A and B alternate every :data:`AB_PERIOD` bars, fills end every phrase of
    ``style.fill_every`` bars, a crash opens every phrase, and the last bar is
    an ending only when ``bars >= ENDING_MIN_BARS``.

    Args:
        style: the resolved style.
        bars: number of bars (>= 1).
        parts: the requested parts (all play every bar).
        energy: the request's energy 0..1 (B bars get +0.1).
    """
    everyone = frozenset(parts)
    phrase = style.fill_every
    out = []
    for k in range(bars):
        b = (k // AB_PERIOD) % 2 == 1
        out.append(
            BarPlan(
                section=MAIN,
                role="main",
                variation="B" if b else "A",
                energy=_clamp(energy + (0.1 if b else 0.0)),
                fill=k % phrase == phrase - 1,
                crash=k % phrase == 0,
                parts=everyone,
                section_bar=k,
                section_bars=bars,
            )
        )
    if bars >= ENDING_MIN_BARS:
        _add_ending(out, everyone)
    return Plan(tuple(out), ((MAIN, 0, bars),))


def _add_ending(bars: list[BarPlan], everyone: frozenset[str]) -> None:
    """Turn the last bar into the ending (whole band) and give the bar before it a fill."""
    bars[-1] = replace(bars[-1], variation="ending", fill=False, crash=True, parts=everyone)
    bars[-2] = replace(bars[-2], fill=True)
