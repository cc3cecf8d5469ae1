"""The band's styles: defaults, instruments and the patterns each part plays.

A :class:`Style` names the pattern every part plays (implemented in
``drums.py``, ``bass.py``, ``keys.py``, ``pad.py``, ``melody.py``, ``arp.py``,
``guitar.py`` and ``strings.py``), its **A** and **B** variations, which parts
play the intro and which enter only in the louder sections, how it ends, its
pocket (how far behind or ahead of the beat each part sits), and the
defaults a request falls back on (tempo, time signature, swing, humanize,
energy, complexity).

Programs are General MIDI Level 1 program numbers, 0-based (GM1 sound set,
MIDI Manufacturers Association 1991: 0 Acoustic Grand Piano, 3 Honky-tonk,
4 Electric Piano 1, 7 Clavinet, 8 Celesta, 11 Vibraphone, 16 Drawbar Organ,
18 Rock Organ, 21 Accordion, 22 Harmonica, 24 Nylon Guitar, 25 Steel Guitar,
26 Jazz Guitar, 27 Clean Guitar, 28 Muted Guitar, 29 Overdriven Guitar,
30 Distortion Guitar, 32 Acoustic Bass, 33 Finger Bass, 34 Pick Bass,
35 Fretless, 36 Slap Bass 1, 38/39 Synth Bass 1/2, 40 Violin, 43 Contrabass,
46 Harp, 48/49 String Ensemble 1/2, 50 Synth Strings 1, 52 Choir Aahs,
56 Trumpet, 61 Brass Section, 65 Alto Sax, 66 Tenor Sax, 73 Flute, 75 Pan
Flute, 80 Square Lead, 81 Saw Lead, 88 New Age Pad, 89 Warm Pad, 90
Polysynth, 91 Choir Pad, 92 Bowed Pad, 94 Halo Pad, 105 Banjo, 110 Fiddle).
Drum programs select a GS/GM2 drum kit on channel 10 (0 Standard, 8 Room,
16 Power, 24 Electronic, 25 TR-808, 32 Jazz, 40 Brush, 48 Orchestra); GM1-only
synths ignore them and play the standard kit.

The parts themselves (names, default channels, the ranges every generator
keeps to, default programs) are declared once, in :data:`ai_band.model.PARTS`;
a style has one ``<part>_program`` field per part there (checked at import).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Literal

from ai_band.errors import StyleError
from ai_band.model import PART_NAMES, PARTS

__all__ = [
    "Style",
    "STYLES",
    "ALIASES",
    "DEFAULT_STYLE",
    "style_names",
    "get_style",
    "DrumGroove",
    "BassPattern",
    "Comping",
    "Voicing",
    "GuitarPattern",
    "ArpRate",
    "ArpShape",
    "MelodyRhythm",
    "Ending",
]

DrumGroove = Literal[
    "rock",
    "jazz",
    "shuffle",
    "four_on_floor",
    "ambient",
    "classical",
    "funk",
    "hiphop",
    "house",
    "bossa",
    "one_drop",
    "salsa",
    "metal",
    "country",
    "gospel",
    "waltz",
    "swing",
    "lofi",
]
BassPattern = Literal[
    "walking",
    "root_eighths",
    "octave_synth",
    "long_roots",
    "shuffle_walk",
    "root_fifth",
    "funk",
    "sparse",
    "offbeat",
    "bossa",
    "one_drop",
    "tumbao",
    "chug",
    "two_beat",
    "gospel",
    "waltz",
]
Comping = Literal[
    "charleston",
    "eighths",
    "stabs",
    "arpeggio",
    "sustain",
    "backbeat",
    "funk",
    "montuno",
    "skank",
    "bossa",
    "oompah",
    "house",
    "gospel",
    "sparse",
]
Voicing = Literal["rootless", "close", "open"]
GuitarPattern = Literal["strum", "power", "funk", "skank", "bossa", "travis", "pick", "four"]
ArpRate = Literal["16th", "8th", "triplet"]
ArpShape = Literal["up", "down", "updown", "broken"]
MelodyRhythm = Literal["straight", "swing", "sparse", "syncopated", "lyrical"]
Ending = Literal["hit", "ring"]

#: Style used when a request names none.
DEFAULT_STYLE = "rock"


@dataclass(frozen=True)
class Style:
    """Defaults and playing patterns of one style.

    Attributes:
        name: lower-case style name, the key in :data:`STYLES`.
        description: one line for humans.
        bpm: default tempo in quarter notes per minute.
        parts: default parts, in playing order (the six original styles keep
            drums, bass and keys; the melody is never a default, since the
            player usually carries the tune).
        swing: default swing 0..1 (0.5 = triplet feel).
        humanize: default humanize 0..1.
        drum_groove: groove name, see ``daemon/generate/drums.py``.
        bass_pattern: bass pattern of the A variation, see ``daemon/generate/bass.py``.
        keys_comping: comping rhythm of the A variation, see ``daemon/generate/keys.py``.
        keys_voicing: voicing family, see ``daemon/generate/keys.py``.
        fill_every: a drum fill ends every phrase of this many bars (4 or 8).
        drums_velocity: accent velocity of the drums, 1..127.
        bass_velocity: base velocity of the bass, 1..127.
        keys_velocity: base velocity of the keys, 1..127.
        keys_center: MIDI pitch the keys voicings gravitate to (range 48..84).
        bass_center: MIDI pitch the bass line gravitates to (range 28..55).
        ts: default time signature ``(numerator, denominator)``.
        energy: default energy 0..1 (density, velocity, fills).
        complexity: default complexity 0..1 (passing notes, syncopation, ornaments).
        swing_level: ``"sub"`` swings the beat's halves (8ths in 4/4), ``"fine"``
            its quarters (16ths, as an MPC's swing in hip-hop and lo-fi).
        drums_program: drum kit program 0..127 (GS/GM2 kit numbers).
        bass_program, keys_program, pad_program, melody_program, arp_program,
        guitar_program, strings_program: GM programs 0..127 of the other
            parts; each defaults to its part's ``program`` in :data:`~ai_band.model.PARTS`.
        bass_pattern_b: bass pattern of the B variation (None: the A pattern, busier).
        keys_comping_b: comping of the B variation (None: the A comping, busier).
        guitar_pattern: guitar pattern of the A variation, see ``daemon/generate/guitar.py``.
        guitar_pattern_b: guitar pattern of the B variation (None: the A pattern).
        arp_rate: arpeggio step: ``"16th"``, ``"8th"`` or ``"triplet"`` of the beat.
        arp_shape: arpeggio order: ``"up"``, ``"down"``, ``"updown"`` or ``"broken"``.
        melody_rhythm: rhythm vocabulary of the melody, see ``daemon/generate/melody.py``.
        melody_range: lowest and highest melody pitch (inside ``PARTS["melody"].pitch_range``).
        pad_velocity, melody_velocity, arp_velocity, guitar_velocity, strings_velocity:
            base velocities 1..127.
        intro_parts: parts that play the intro (others enter after it).
        lift_parts: parts that sit out verses and enter in choruses.
        ending: ``"hit"`` (a short final stab) or ``"ring"`` (the last chord rings out).
        nc_drums: the drums keep time through N.C. (no chord) bars; otherwise the whole band rests.
        pocket: ``(voice, milliseconds)`` pairs: how far behind (+) or ahead (-)
            of the beat a part (``"bass"``, ``"keys"``, ...) or a drum voice
            (``"kick"``, ``"snare"``, ``"hats"``) sits at full humanize.
        groupings: ``((numerator, denominator), beat groups)`` pairs overriding
            the default beat grouping, e.g. ``((7, 8), (3, 2, 2))``.
    """

    name: str
    description: str
    bpm: float
    parts: tuple[str, ...]
    swing: float
    humanize: float
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
    ts: tuple[int, int] = (4, 4)
    energy: float = 0.5
    complexity: float = 0.5
    swing_level: Literal["sub", "fine"] = "sub"
    drums_program: int = PARTS["drums"].program
    bass_program: int = PARTS["bass"].program
    keys_program: int = PARTS["keys"].program
    pad_program: int = PARTS["pad"].program
    melody_program: int = PARTS["melody"].program
    arp_program: int = PARTS["arp"].program
    guitar_program: int = PARTS["guitar"].program
    strings_program: int = PARTS["strings"].program
    bass_pattern_b: BassPattern | None = None
    keys_comping_b: Comping | None = None
    guitar_pattern: GuitarPattern = "strum"
    guitar_pattern_b: GuitarPattern | None = None
    arp_rate: ArpRate = "16th"
    arp_shape: ArpShape = "up"
    melody_rhythm: MelodyRhythm = "straight"
    melody_range: tuple[int, int] = (60, 81)
    pad_velocity: int = 64
    melody_velocity: int = 92
    arp_velocity: int = 74
    guitar_velocity: int = 84
    strings_velocity: int = 70
    intro_parts: tuple[str, ...] = ("drums", "keys", "pad")
    lift_parts: tuple[str, ...] = ("strings", "arp")
    ending: Ending = "ring"
    nc_drums: bool = False
    pocket: tuple[tuple[str, float], ...] = ()
    groupings: tuple[tuple[tuple[int, int], tuple[int, ...]], ...] = ()

    def program(self, part: str) -> int:
        """Return the GM program 0..127 of ``part`` (any name in :data:`~ai_band.model.PARTS`).

        Raises:
            KeyError: unknown part name.
        """
        return getattr(self, f"{PARTS[part].name}_program")

    def channel(self, part: str) -> int:
        """Return the MIDI channel index 0..15 of ``part`` (drums: 9).

        Raises:
            KeyError: unknown part name.
        """
        return PARTS[part].channel

    def pocket_ms(self, voice: str) -> float:
        """Milliseconds ``voice`` sits behind (+) or ahead (-) of the beat."""
        for name, ms in self.pocket:
            if name == voice:
                return ms
        return 0.0

    def grouping(self, ts_num: int, ts_den: int) -> tuple[int, ...] | None:
        """The style's beat grouping of ``ts_num/ts_den`` in units, or None for the default."""
        for ts, groups in self.groupings:
            if ts == (ts_num, ts_den):
                return groups
        return None


_PROGRAM_FIELDS = {f.name for f in fields(Style) if f.name.endswith("_program")}
if _PROGRAM_FIELDS != {f"{name}_program" for name in PART_NAMES}:
    raise TypeError(f"Style's program fields {sorted(_PROGRAM_FIELDS)} do not match the parts {PART_NAMES}")

_ALL = ("drums", "bass", "keys")

STYLES: Mapping[str, Style] = MappingProxyType(
    {
        style.name: style
        for style in (
            Style(
                name="classical",
                description=(
                    "half-note root/fifth contrabass, piano arpeggios (strings, "
                    "harp, flute on request)"
                ),
                bpm=84.0,
                parts=("bass", "keys"),
                swing=0.0,
                humanize=0.3,
                drums_program=48,
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
                energy=0.4,
                complexity=0.5,
                pad_program=49,
                melody_program=73,
                arp_program=46,
                guitar_program=24,
                strings_program=48,
                bass_pattern_b="two_beat",
                guitar_pattern="pick",
                arp_rate="8th",
                arp_shape="updown",
                melody_rhythm="lyrical",
                melody_range=(60, 84),
                melody_velocity=80,
                strings_velocity=66,
                intro_parts=("keys", "strings"),
                lift_parts=("arp", "pad"),
                ending="ring",
            ),
            Style(
                name="jazz",
                description="walking bass, rootless piano comping (Charleston), ride spang-a-lang",
                bpm=140.0,
                parts=_ALL,
                swing=0.55,
                humanize=0.35,
                drums_program=32,
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
                energy=0.5,
                complexity=0.7,
                pad_program=89,
                melody_program=66,
                arp_program=11,
                guitar_program=26,
                strings_program=48,
                keys_comping_b="sparse",
                guitar_pattern="four",
                arp_rate="triplet",
                arp_shape="broken",
                melody_rhythm="swing",
                melody_range=(58, 82),
                intro_parts=("keys", "bass"),
                lift_parts=("strings", "arp", "pad"),
                ending="ring",
                pocket=(("bass", -3.0), ("hats", -2.0), ("snare", 6.0), ("keys", 4.0)),
            ),
            Style(
                name="rock",
                description=(
                    "driving picked-bass eighths, organ eighths, backbeat "
                    "(power-chord guitar on request)"
                ),
                bpm=120.0,
                parts=_ALL,
                swing=0.0,
                humanize=0.2,
                drums_program=16,
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
                energy=0.6,
                complexity=0.4,
                pad_program=89,
                melody_program=30,
                arp_program=81,
                guitar_program=29,
                strings_program=48,
                guitar_pattern="power",
                guitar_pattern_b="strum",
                arp_rate="8th",
                melody_rhythm="straight",
                melody_range=(60, 81),
                intro_parts=("drums", "guitar"),
                lift_parts=("strings", "arp", "pad"),
                ending="hit",
                pocket=(("snare", 5.0), ("hats", -3.0), ("bass", 3.0)),
            ),
            Style(
                name="blues",
                description="boogie walking bass, electric piano backbeat stabs, shuffle drums",
                bpm=96.0,
                parts=_ALL,
                swing=0.5,
                humanize=0.3,
                drums_program=0,
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
                energy=0.5,
                complexity=0.5,
                pad_program=16,
                melody_program=22,
                arp_program=11,
                guitar_program=27,
                strings_program=48,
                keys_comping_b="eighths",
                guitar_pattern="four",
                guitar_pattern_b="strum",
                arp_rate="triplet",
                melody_rhythm="swing",
                melody_range=(58, 81),
                intro_parts=("drums", "guitar"),
                lift_parts=("strings", "arp", "pad"),
                ending="ring",
                pocket=(("snare", 7.0), ("bass", 4.0), ("hats", 2.0)),
            ),
            Style(
                name="electronic",
                description=(
                    "octave synth bass, off-beat polysynth stabs, "
                    "four-on-the-floor 808 (16th saw arp on request)"
                ),
                bpm=124.0,
                parts=_ALL,
                swing=0.0,
                humanize=0.05,
                drums_program=25,
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
                energy=0.7,
                complexity=0.5,
                pad_program=94,
                melody_program=80,
                arp_program=81,
                guitar_program=28,
                strings_program=50,
                guitar_pattern="skank",
                arp_rate="16th",
                arp_shape="up",
                melody_rhythm="straight",
                melody_range=(60, 84),
                intro_parts=("drums", "pad", "arp"),
                lift_parts=("arp", "strings", "melody"),
                ending="hit",
                nc_drums=True,
                groupings=(((7, 8), (3, 2, 2)),),
            ),
            Style(
                name="ambient",
                description="long fretless roots, sustained warm pad, soft brushed pulse",
                bpm=72.0,
                parts=_ALL,
                swing=0.0,
                humanize=0.3,
                drums_program=40,
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
                energy=0.25,
                complexity=0.3,
                pad_program=92,
                melody_program=75,
                arp_program=88,
                guitar_program=24,
                strings_program=49,
                guitar_pattern="pick",
                arp_rate="8th",
                arp_shape="updown",
                melody_rhythm="sparse",
                melody_range=(62, 84),
                melody_velocity=76,
                pad_velocity=58,
                intro_parts=("pad", "keys"),
                lift_parts=("strings", "arp", "drums"),
                ending="ring",
            ),
            Style(
                name="funk",
                description=(
                    "16th clavinet and muted guitar scratches, slap bass, ghost-note groove"
                ),
                bpm=104.0,
                parts=("drums", "bass", "keys", "guitar"),
                swing=0.15,
                swing_level="fine",
                humanize=0.25,
                drums_program=0,
                bass_program=36,
                keys_program=7,
                drum_groove="funk",
                bass_pattern="funk",
                keys_comping="funk",
                keys_voicing="close",
                fill_every=4,
                drums_velocity=108,
                bass_velocity=100,
                keys_velocity=80,
                keys_center=62,
                bass_center=36,
                energy=0.7,
                complexity=0.7,
                pad_program=16,
                melody_program=61,
                arp_program=81,
                guitar_program=27,
                strings_program=48,
                keys_comping_b="stabs",
                guitar_pattern="funk",
                arp_rate="16th",
                melody_rhythm="syncopated",
                melody_range=(60, 81),
                guitar_velocity=78,
                intro_parts=("drums", "guitar"),
                lift_parts=("strings", "arp", "pad"),
                ending="hit",
                nc_drums=True,
                pocket=(("snare", 3.0), ("hats", -2.0), ("bass", -1.0)),
            ),
            Style(
                name="hiphop",
                description="boom-bap drums swung on 16ths, 808 bass, sparse Rhodes chords",
                bpm=90.0,
                parts=("drums", "bass", "keys", "pad"),
                swing=0.3,
                swing_level="fine",
                humanize=0.2,
                drums_program=25,
                bass_program=38,
                keys_program=4,
                drum_groove="hiphop",
                bass_pattern="sparse",
                keys_comping="sparse",
                keys_voicing="open",
                fill_every=8,
                drums_velocity=110,
                bass_velocity=104,
                keys_velocity=72,
                keys_center=62,
                bass_center=36,
                energy=0.55,
                complexity=0.4,
                pad_program=89,
                melody_program=73,
                arp_program=11,
                guitar_program=26,
                strings_program=48,
                guitar_pattern="pick",
                arp_rate="8th",
                arp_shape="broken",
                melody_rhythm="syncopated",
                melody_range=(60, 79),
                intro_parts=("keys", "pad"),
                lift_parts=("strings", "arp"),
                ending="hit",
                nc_drums=True,
                pocket=(("snare", 10.0), ("hats", 4.0), ("bass", 6.0), ("keys", 6.0)),
            ),
            Style(
                name="house",
                description=(
                    "four-on-the-floor, open hats on the off-beats, off-beat bass, M1 piano"
                ),
                bpm=124.0,
                parts=("drums", "bass", "keys", "pad"),
                swing=0.1,
                swing_level="fine",
                humanize=0.05,
                drums_program=24,
                bass_program=39,
                keys_program=0,
                drum_groove="house",
                bass_pattern="offbeat",
                keys_comping="house",
                keys_voicing="close",
                fill_every=8,
                drums_velocity=112,
                bass_velocity=104,
                keys_velocity=86,
                keys_center=64,
                bass_center=36,
                energy=0.75,
                complexity=0.4,
                pad_program=90,
                melody_program=80,
                arp_program=81,
                guitar_program=28,
                strings_program=50,
                bass_pattern_b="octave_synth",
                guitar_pattern="skank",
                arp_rate="16th",
                arp_shape="broken",
                melody_rhythm="straight",
                melody_range=(62, 84),
                intro_parts=("drums",),
                lift_parts=("arp", "strings", "melody"),
                ending="hit",
                nc_drums=True,
            ),
            Style(
                name="bossa",
                description=(
                    "bossa nova: nylon guitar, brushes with cross-stick clave, root-fifth bass"
                ),
                bpm=132.0,
                parts=("drums", "bass", "guitar", "keys"),
                swing=0.0,
                humanize=0.2,
                drums_program=40,
                bass_program=32,
                keys_program=0,
                drum_groove="bossa",
                bass_pattern="bossa",
                keys_comping="bossa",
                keys_voicing="rootless",
                fill_every=8,
                drums_velocity=84,
                bass_velocity=88,
                keys_velocity=68,
                keys_center=64,
                bass_center=38,
                energy=0.4,
                complexity=0.6,
                pad_program=89,
                melody_program=73,
                arp_program=11,
                guitar_program=24,
                strings_program=48,
                guitar_pattern="bossa",
                arp_rate="8th",
                arp_shape="broken",
                melody_rhythm="lyrical",
                melody_range=(60, 81),
                guitar_velocity=74,
                intro_parts=("guitar",),
                lift_parts=("strings", "arp", "pad"),
                ending="ring",
            ),
            Style(
                name="reggae",
                description="one-drop drums, off-beat guitar and piano skank, melodic bass",
                bpm=76.0,
                parts=("drums", "bass", "keys", "guitar"),
                swing=0.3,
                humanize=0.25,
                drums_program=0,
                bass_program=33,
                keys_program=0,
                drum_groove="one_drop",
                bass_pattern="one_drop",
                keys_comping="skank",
                keys_voicing="close",
                fill_every=8,
                drums_velocity=100,
                bass_velocity=100,
                keys_velocity=74,
                keys_center=64,
                bass_center=36,
                energy=0.5,
                complexity=0.4,
                pad_program=16,
                melody_program=22,
                arp_program=11,
                guitar_program=27,
                strings_program=48,
                guitar_pattern="skank",
                arp_rate="8th",
                melody_rhythm="syncopated",
                melody_range=(60, 79),
                guitar_velocity=76,
                intro_parts=("drums", "guitar"),
                lift_parts=("strings", "arp", "pad"),
                ending="ring",
                pocket=(("snare", 8.0), ("hats", 4.0), ("bass", 8.0), ("keys", 4.0)),
            ),
            Style(
                name="latin",
                description=(
                    "salsa: clave, cascara and congas, tumbao bass, piano "
                    "montuno (trumpet lead on request)"
                ),
                bpm=180.0,
                parts=_ALL,
                swing=0.0,
                humanize=0.2,
                drums_program=0,
                bass_program=32,
                keys_program=0,
                drum_groove="salsa",
                bass_pattern="tumbao",
                keys_comping="montuno",
                keys_voicing="close",
                fill_every=4,
                drums_velocity=100,
                bass_velocity=96,
                keys_velocity=82,
                keys_center=66,
                bass_center=38,
                energy=0.7,
                complexity=0.6,
                pad_program=49,
                melody_program=56,
                arp_program=11,
                guitar_program=24,
                strings_program=48,
                guitar_pattern="strum",
                arp_rate="8th",
                arp_shape="broken",
                melody_rhythm="syncopated",
                melody_range=(60, 82),
                intro_parts=("keys",),
                lift_parts=("strings", "arp", "pad"),
                ending="hit",
                nc_drums=True,
            ),
            Style(
                name="metal",
                description="double-kick drums, palm-muted power-chord chugs, locked pick bass",
                bpm=150.0,
                parts=("drums", "bass", "guitar"),
                swing=0.0,
                humanize=0.1,
                drums_program=16,
                bass_program=34,
                keys_program=18,
                drum_groove="metal",
                bass_pattern="chug",
                keys_comping="eighths",
                keys_voicing="close",
                fill_every=4,
                drums_velocity=118,
                bass_velocity=108,
                keys_velocity=80,
                keys_center=60,
                bass_center=34,
                energy=0.85,
                complexity=0.5,
                pad_program=91,
                melody_program=30,
                arp_program=81,
                guitar_program=30,
                strings_program=48,
                guitar_pattern="power",
                arp_rate="16th",
                melody_rhythm="straight",
                melody_range=(60, 84),
                guitar_velocity=96,
                intro_parts=("guitar",),
                lift_parts=("strings", "pad", "arp"),
                ending="hit",
                groupings=(((7, 8), (3, 2, 2)),),
            ),
            Style(
                name="country",
                description=(
                    "two-beat / train-beat drums, two-beat bass, Travis-picked "
                    "steel guitar (banjo rolls on request)"
                ),
                bpm=116.0,
                parts=("drums", "bass", "guitar", "keys"),
                swing=0.0,
                humanize=0.2,
                drums_program=0,
                bass_program=33,
                keys_program=3,
                drum_groove="country",
                bass_pattern="two_beat",
                keys_comping="backbeat",
                keys_voicing="close",
                fill_every=4,
                drums_velocity=96,
                bass_velocity=94,
                keys_velocity=74,
                keys_center=64,
                bass_center=40,
                energy=0.55,
                complexity=0.4,
                pad_program=16,
                melody_program=110,
                arp_program=105,
                guitar_program=25,
                strings_program=48,
                guitar_pattern="travis",
                guitar_pattern_b="strum",
                arp_rate="16th",
                arp_shape="broken",
                melody_rhythm="straight",
                melody_range=(62, 84),
                intro_parts=("guitar", "drums"),
                lift_parts=("arp", "strings", "pad"),
                ending="ring",
                pocket=(("snare", 3.0),),
            ),
            Style(
                name="gospel",
                description=(
                    "12/8 gospel: Hammond pad, rolling piano triplets, heavy laid-back backbeat"
                ),
                bpm=96.0,
                parts=("drums", "bass", "keys", "pad"),
                swing=0.0,
                humanize=0.3,
                drums_program=0,
                bass_program=33,
                keys_program=0,
                drum_groove="gospel",
                bass_pattern="gospel",
                keys_comping="gospel",
                keys_voicing="open",
                fill_every=4,
                drums_velocity=104,
                bass_velocity=96,
                keys_velocity=78,
                keys_center=64,
                bass_center=38,
                ts=(12, 8),
                energy=0.6,
                complexity=0.6,
                pad_program=16,
                melody_program=52,
                arp_program=0,
                guitar_program=27,
                strings_program=48,
                guitar_pattern="four",
                arp_rate="8th",
                arp_shape="updown",
                melody_rhythm="lyrical",
                melody_range=(60, 81),
                pad_velocity=70,
                intro_parts=("keys", "pad"),
                lift_parts=("strings", "arp"),
                ending="ring",
                pocket=(("snare", 8.0), ("bass", 3.0), ("keys", 2.0)),
            ),
            Style(
                name="waltz",
                description=(
                    "3/4 oom-pah-pah: bass on one, piano chords on two and "
                    "three, strings (accordion lead on request)"
                ),
                bpm=132.0,
                parts=("drums", "bass", "keys", "strings"),
                swing=0.0,
                humanize=0.25,
                drums_program=40,
                bass_program=32,
                keys_program=0,
                drum_groove="waltz",
                bass_pattern="waltz",
                keys_comping="oompah",
                keys_voicing="close",
                fill_every=8,
                drums_velocity=80,
                bass_velocity=88,
                keys_velocity=72,
                keys_center=64,
                bass_center=40,
                ts=(3, 4),
                energy=0.45,
                complexity=0.4,
                pad_program=49,
                melody_program=21,
                arp_program=46,
                guitar_program=24,
                strings_program=48,
                guitar_pattern="travis",
                arp_rate="8th",
                arp_shape="updown",
                melody_rhythm="lyrical",
                melody_range=(62, 84),
                intro_parts=("keys",),
                lift_parts=("arp", "pad"),
                ending="ring",
            ),
            Style(
                name="swing",
                description=(
                    "big-band swing: Freddie Green guitar, walking bass, Basie "
                    "piano (brass pads on request)"
                ),
                bpm=176.0,
                parts=("drums", "bass", "keys", "guitar"),
                swing=0.6,
                humanize=0.3,
                drums_program=32,
                bass_program=32,
                keys_program=0,
                drum_groove="swing",
                bass_pattern="walking",
                keys_comping="sparse",
                keys_voicing="rootless",
                fill_every=8,
                drums_velocity=96,
                bass_velocity=92,
                keys_velocity=74,
                keys_center=66,
                bass_center=38,
                energy=0.65,
                complexity=0.6,
                pad_program=61,
                melody_program=65,
                arp_program=11,
                guitar_program=26,
                strings_program=48,
                keys_comping_b="charleston",
                guitar_pattern="four",
                arp_rate="triplet",
                arp_shape="broken",
                melody_rhythm="swing",
                melody_range=(60, 84),
                guitar_velocity=70,
                intro_parts=("keys", "drums"),
                lift_parts=("pad", "strings", "arp"),
                ending="hit",
                pocket=(("hats", -2.0), ("snare", 4.0), ("bass", -2.0)),
            ),
            Style(
                name="lofi",
                description=(
                    "lo-fi hip-hop: lazy swung boom-bap, jazzy Rhodes sevenths, "
                    "warm pad (vibes lead on request)"
                ),
                bpm=78.0,
                parts=("drums", "bass", "keys", "pad"),
                swing=0.35,
                swing_level="fine",
                humanize=0.4,
                drums_program=8,
                bass_program=33,
                keys_program=4,
                drum_groove="lofi",
                bass_pattern="sparse",
                keys_comping="sparse",
                keys_voicing="rootless",
                fill_every=8,
                drums_velocity=90,
                bass_velocity=88,
                keys_velocity=66,
                keys_center=62,
                bass_center=38,
                energy=0.35,
                complexity=0.6,
                pad_program=89,
                melody_program=11,
                arp_program=8,
                guitar_program=26,
                strings_program=49,
                keys_comping_b="sustain",
                guitar_pattern="pick",
                arp_rate="8th",
                arp_shape="broken",
                melody_rhythm="sparse",
                melody_range=(60, 79),
                melody_velocity=78,
                intro_parts=("keys",),
                lift_parts=("strings", "arp", "melody"),
                ending="ring",
                nc_drums=True,
                pocket=(
                    ("snare", 12.0),
                    ("hats", 6.0),
                    ("kick", 3.0),
                    ("bass", 8.0),
                    ("keys", 8.0),
                ),
            ),
        )
    }
)

#: Other spellings users write -> style name.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "salsa": "latin",
        "hip-hop": "hiphop",
        "hip hop": "hiphop",
        "lo-fi": "lofi",
        "lo fi": "lofi",
        "bossa nova": "bossa",
        "bossa-nova": "bossa",
        "bossanova": "bossa",
        "big band": "swing",
        "bigband": "swing",
    }
)


def style_names() -> list[str]:
    """Return the known style names, sorted."""
    return sorted(STYLES)


def get_style(name: str | None) -> Style:
    """Return the style called ``name`` (any case, aliases allowed), or the default for None.

    Raises:
        StyleError: no style has that name.
    """
    key = DEFAULT_STYLE if name is None else " ".join(name.strip().lower().split())
    key = ALIASES.get(key, key)
    try:
        return STYLES[key]
    except KeyError:
        raise StyleError(name or "", style_names()) from None
