"""The band's styles: defaults and the patterns each part plays.

A :class:`Style` names a drum groove, a bass pattern and a keys comping
rhythm and voicing (implemented in ``drums.py``, ``bass.py`` and ``keys.py``)
plus the defaults a request falls back on.  Programs are General MIDI Level 1
program numbers, 0-based (GM1 sound set: 0 Acoustic Grand Piano, 32 Acoustic
Bass, 33 Electric Bass (finger), 34 Electric Bass (pick), 35 Fretless Bass,
38 Synth Bass 1, 43 Contrabass, 4 Electric Piano 1, 18 Rock Organ, 48 String
Ensemble 1, 89 Pad 2 (warm), 90 Pad 3 (polysynth)).  Drum programs select a
GS/GM2 drum kit on channel 10 (0 Standard, 16 Power, 25 TR-808, 32 Jazz,
40 Brush, 48 Orchestra); GM1-only synths ignore them and play the standard kit.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal
from collections.abc import Mapping

from daemon.errors import StyleError

__all__ = [
    "Style",
    "STYLES",
    "DEFAULT_STYLE",
    "CHANNELS",
    "style_names",
    "get_style",
    "DrumGroove",
    "BassPattern",
    "Comping",
    "Voicing",
]

DrumGroove = Literal["rock", "jazz", "shuffle", "four_on_floor", "ambient", "classical"]
BassPattern = Literal[
    "walking", "root_eighths", "octave_synth", "long_roots", "shuffle_walk", "root_fifth"
]
Comping = Literal["charleston", "eighths", "stabs", "arpeggio", "sustain", "backbeat"]
Voicing = Literal["rootless", "close", "open"]

#: MIDI channel index (0..15) of each part; 9 is the GM percussion channel.
CHANNELS: Mapping[str, int] = MappingProxyType({"drums": 9, "bass": 1, "keys": 2})

#: Style used when a request names none.
DEFAULT_STYLE = "rock"


@dataclass(frozen=True)
class Style:
    """Defaults and playing patterns of one style.

    Attributes:
        name: lower-case style name, the key in :data:`STYLES`.
        description: one line for humans.
        bpm: default tempo in quarter notes per minute.
        parts: default parts, in playing order.
        swing: default swing 0..1 (0.5 = triplet feel).
        humanize: default humanize 0..1.
        drum_program: drum kit program 0..127 (GS/GM2 kit numbers).
        bass_program: GM program 0..127 of the bass.
        keys_program: GM program 0..127 of the keys.
        drum_groove: groove name, see ``daemon/generate/drums.py``.
        bass_pattern: bass pattern name, see ``daemon/generate/bass.py``.
        keys_comping: comping rhythm, see ``daemon/generate/keys.py``.
        keys_voicing: voicing family, see ``daemon/generate/keys.py``.
        fill_every: a drum fill ends every phrase of this many bars (4 or 8).
        drums_velocity: accent velocity of the drums, 1..127.
        bass_velocity: base velocity of the bass, 1..127.
        keys_velocity: base velocity of the keys, 1..127.
        keys_center: MIDI pitch the keys voicings gravitate to (range 48..84).
        bass_center: MIDI pitch the bass line gravitates to (range 28..55).
    """

    name: str
    description: str
    bpm: float
    parts: tuple[str, ...]
    swing: float
    humanize: float
    drum_program: int
    bass_program: int
    keys_program: int
    drum_groove: DrumGroove
    bass_pattern: BassPattern
    keys_comping: Comping
    keys_voicing: Voicing
    fill_every: int = 4
    drums_velocity: int = 100
    bass_velocity: int = 96
    keys_velocity: int = 80
    keys_center: int = 62
    bass_center: int = 40

    def program(self, part: str) -> int:
        """Return the program 0..127 of ``part`` (``"drums"``, ``"bass"`` or ``"keys"``).

        Raises:
            KeyError: unknown part name.
        """
        return {"drums": self.drum_program, "bass": self.bass_program, "keys": self.keys_program}[
            part
        ]


_ALL = ("drums", "bass", "keys")

STYLES: Mapping[str, Style] = MappingProxyType(
    {
        style.name: style
        for style in (
            Style(
                name="classical",
                description="half-note root/fifth contrabass, piano arpeggios, soft orchestra kit",
                bpm=84.0,
                parts=("bass", "keys"),
                swing=0.0,
                humanize=0.3,
                drum_program=48,
                bass_program=43,
                keys_program=0,
                drum_groove="classical",
                bass_pattern="root_fifth",
                keys_comping="arpeggio",
                keys_voicing="open",
                fill_every=8,
                drums_velocity=70,
                bass_velocity=80,
                keys_velocity=72,
                keys_center=64,
                bass_center=40,
            ),
            Style(
                name="jazz",
                description="walking bass, rootless piano comping (Charleston), ride spang-a-lang",
                bpm=140.0,
                parts=_ALL,
                swing=0.55,
                humanize=0.35,
                drum_program=32,
                bass_program=32,
                keys_program=0,
                drum_groove="jazz",
                bass_pattern="walking",
                keys_comping="charleston",
                keys_voicing="rootless",
                fill_every=8,
                drums_velocity=90,
                bass_velocity=92,
                keys_velocity=76,
                keys_center=62,
                bass_center=38,
            ),
            Style(
                name="rock",
                description="driving picked-bass eighths, rock organ eighths, kick/snare backbeat",
                bpm=120.0,
                parts=_ALL,
                swing=0.0,
                humanize=0.2,
                drum_program=16,
                bass_program=34,
                keys_program=18,
                drum_groove="rock",
                bass_pattern="root_eighths",
                keys_comping="eighths",
                keys_voicing="close",
                fill_every=4,
                drums_velocity=110,
                bass_velocity=100,
                keys_velocity=78,
                keys_center=60,
                bass_center=38,
            ),
            Style(
                name="blues",
                description="boogie walking bass, electric piano backbeat stabs, shuffle drums",
                bpm=96.0,
                parts=_ALL,
                swing=0.5,
                humanize=0.3,
                drum_program=0,
                bass_program=33,
                keys_program=4,
                drum_groove="shuffle",
                bass_pattern="shuffle_walk",
                keys_comping="backbeat",
                keys_voicing="close",
                fill_every=4,
                drums_velocity=100,
                bass_velocity=96,
                keys_velocity=80,
                keys_center=62,
                bass_center=38,
            ),
            Style(
                name="electronic",
                description="octave synth bass, off-beat polysynth stabs, four-on-the-floor 808",
                bpm=124.0,
                parts=_ALL,
                swing=0.0,
                humanize=0.05,
                drum_program=25,
                bass_program=38,
                keys_program=90,
                drum_groove="four_on_floor",
                bass_pattern="octave_synth",
                keys_comping="stabs",
                keys_voicing="close",
                fill_every=8,
                drums_velocity=112,
                bass_velocity=104,
                keys_velocity=84,
                keys_center=64,
                bass_center=36,
            ),
            Style(
                name="ambient",
                description="long fretless roots, sustained warm pad, soft brushed pulse",
                bpm=72.0,
                parts=_ALL,
                swing=0.0,
                humanize=0.3,
                drum_program=40,
                bass_program=35,
                keys_program=89,
                drum_groove="ambient",
                bass_pattern="long_roots",
                keys_comping="sustain",
                keys_voicing="open",
                fill_every=8,
                drums_velocity=64,
                bass_velocity=76,
                keys_velocity=64,
                keys_center=60,
                bass_center=38,
            ),
        )
    }
)


def style_names() -> list[str]:
    """Return the known style names, sorted."""
    return sorted(STYLES)


def get_style(name: str | None) -> Style:
    """Return the style called ``name`` (case-insensitive), or the default one for None.

    Raises:
        StyleError: no style has that name.
    """
    key = DEFAULT_STYLE if name is None else name.strip().lower()
    try:
        return STYLES[key]
    except KeyError:
        raise StyleError(name or "", style_names()) from None
