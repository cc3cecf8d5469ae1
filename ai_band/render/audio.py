"""Audio rendering of an arrangement: a normalised stereo mix and one stem per part.

Cheat-sheet::

    from ai_band.render.audio import AudioOptions, AudioRenderer, write_audio

    renderer = AudioRenderer()                     # "auto": FluidSynth + GM SoundFont, else numpy
    rendered = renderer.render(arrangement, AudioOptions(sample_rate=48000, bit_depth=24))
    rendered.mix                                   # float32 (frames, 2), -14 LUFS, <= -1 dBTP
    rendered.stems["bass"]                         # float32 (frames, 2); the stems sum to the mix
    write_audio(rendered, job_dir, ("wav", "flac"), stems=True, bit_depth=24)
    # -> [("mix", .../mix.wav), ("mix", .../mix.flac), ("drums", .../drums.wav), ...]
    renderer.close()

Pipeline: every part is rendered on its own (solo) by the engine
(:mod:`ai_band.render.fluid` or :mod:`ai_band.render.synth`) into a stem of
exactly ``round((music_s + tail_s) * sample_rate)`` frames, where
``music_s`` is the arrangement's length (bars x beats x 60 / bpm, beats
counted in quarter notes); sound still ringing at the end is faded out
over the last :data:`END_FADE_S`.  The mix is the sum of the stems.
:func:`ai_band.render.loudness.normalize` then applies one static gain for
the integrated-loudness target (ITU-R BS.1770-4 / EBU R128) and, where the
true peak (BS.1770-4 Annex 2) would exceed the ceiling, a look-ahead
limiter whose gain curve is applied to the mix and to every stem alike.

Files are written with soundfile (libsndfile) as WAV or FLAC, PCM 16 or 24
bit, atomically: all files go to ``*.tmp`` files first and are renamed only
when every one of them is complete (see :mod:`ai_band.render.atomic`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

import numpy as np
import soundfile

from ai_band.config.shipped import BIT_DEPTHS as ALLOWED_BIT_DEPTHS, SAMPLE_RATES_HZ
from ai_band.errors import RenderError
from ai_band.model import Arrangement, Part
from ai_band.render.atomic import fsync_dir, remove_temps, write_temp
from ai_band.render.loudness import import_libraries, normalize
from ai_band.system.priority import usable_cpus

__all__ = [
    "AUDIO_FORMATS",
    "BIT_DEPTHS",
    "DEFAULT_SOUNDFONTS",
    "ENGINES",
    "MIX",
    "SAMPLE_RATES",
    "AudioOptions",
    "AudioRenderer",
    "RenderedAudio",
    "find_soundfont",
    "write_audio",
]

logger = logging.getLogger(__name__)

#: Engine names accepted by :class:`AudioRenderer`.
ENGINES = ("auto", "fluidsynth", "numpy")

#: Where a General MIDI SoundFont is looked for when none is configured, in order.
DEFAULT_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)

#: Sample rates offered, Hz (the config's allowed values).
SAMPLE_RATES = SAMPLE_RATES_HZ

#: File sample sizes offered, bits (the config's allowed values), and their soundfile subtypes.
BIT_DEPTHS = {bits: f"PCM_{bits}" for bits in ALLOWED_BIT_DEPTHS}

#: File formats :func:`write_audio` writes and their soundfile format names.
AUDIO_FORMATS = {"wav": "WAV", "flac": "FLAC"}

#: Name of the mix in :func:`write_audio`'s result (and its file, ``mix.<ext>``).
MIX = "mix"

#: Fade-out at the very end of the audio, seconds (cuts releases cleanly).
END_FADE_S = 0.05

#: Longest release tail accepted, seconds.
MAX_TAIL_S = 30.0

#: Refuse renders whose stems and mixes would need more memory than this, bytes
#: (8 parts at 48 kHz: about 12 minutes).
MAX_AUDIO_BYTES = 3 << 30

_INSTALL_HINT = (
    "install fluid-soundfont-gm and libfluidsynth3 (apt) and pyfluidsynth (pip), "
    "or set render.soundfont to a General MIDI .sf2"
)


@dataclass(frozen=True)
class AudioOptions:
    """How to render.

    Attributes:
        sample_rate: Hz, 44100 or 48000.
        bit_depth: file sample size, 16 or 24 bits (the render itself is float32).
        target_lufs: integrated loudness of the mix, LUFS (ITU-R BS.1770-4 / EBU R128), -60..-5.
        true_peak_dbtp: true-peak ceiling of the mix, dBTP (4x oversampled, BS.1770-4
            Annex 2), -20..0.
        tail_s: audio after the last bar, seconds (0..30); the audio is exactly this long
            past the music, and whatever still rings is faded out over the last 50 ms.

    Raises:
        ValueError: a value outside the ranges above (names the field).
    """

    sample_rate: int = 44100
    bit_depth: int = 16
    target_lufs: float = -14.0
    true_peak_dbtp: float = -1.0
    tail_s: float = 2.0

    def __post_init__(self) -> None:
        if self.sample_rate not in SAMPLE_RATES:
            raise ValueError(f"sample_rate must be 44100 or 48000 Hz, not {self.sample_rate!r}")
        if self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"bit_depth must be 16 or 24, not {self.bit_depth!r}")
        if not (math.isfinite(self.target_lufs) and -60.0 <= self.target_lufs <= -5.0):
            raise ValueError(f"target_lufs must be in -60..-5 LUFS, not {self.target_lufs!r}")
        if not (math.isfinite(self.true_peak_dbtp) and -20.0 <= self.true_peak_dbtp <= 0.0):
            raise ValueError(f"true_peak_dbtp must be in -20..0 dBTP, not {self.true_peak_dbtp!r}")
        if not (math.isfinite(self.tail_s) and 0.0 <= self.tail_s <= MAX_TAIL_S):
            raise ValueError(f"tail_s must be in 0..{MAX_TAIL_S:g} s, not {self.tail_s!r}")


@dataclass(frozen=True)
class RenderedAudio:
    """A rendered, normalised arrangement.

    Attributes:
        sample_rate: Hz.
        mix: float32, shape ``(frames, 2)``; the float32 sum of the stems.
        stems: part name -> float32 ``(frames, 2)``, in part order; the same gain
            curve as the mix was applied to each.
        engine: ``"fluidsynth"`` or ``"numpy"``.
        soundfont: path of the .sf2 used, or None (numpy engine).
        loudness_lufs: integrated loudness of the final mix, LUFS (-70.0 for silence).
        true_peak_dbtp: true peak of the final mix, dBTP (-200.0 for digital silence).
        gain_db: static gain applied for the loudness target, dB (0 for silence).
        limited: the true-peak limiter had to reduce the gain somewhere.
        music_s: length of the arrangement, seconds (bars x beats x 60 / bpm).
        duration_s: ``frames / sample_rate`` = ``music_s + tail_s`` (to the nearest frame), seconds.
    """

    sample_rate: int
    mix: np.ndarray
    stems: dict[str, np.ndarray]
    engine: str
    soundfont: str | None
    loudness_lufs: float
    true_peak_dbtp: float
    gain_db: float
    limited: bool
    music_s: float
    duration_s: float


class _Engine(Protocol):
    name: str

    def render_parts(
        self,
        parts: Sequence[Part],
        bpm: float,
        sample_rate: int,
        frames: int,
        done: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]: ...

    def close(self) -> None: ...


def find_soundfont(path: str = "") -> str | None:
    """The SoundFont to use: ``path`` when given (and it exists), else the first of
    :data:`DEFAULT_SOUNDFONTS` that exists; None when there is none."""
    candidates = (path,) if path else DEFAULT_SOUNDFONTS
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.realpath(candidate) if os.path.islink(candidate) else candidate
    return None


class AudioRenderer:
    """Renders arrangements to audio, keeping one engine warm (the SoundFont is loaded once, here).

    Args:
        engine: ``"auto"``: FluidSynth when libfluidsynth imports and a SoundFont
            is found (``soundfont`` when given, else :data:`DEFAULT_SOUNDFONTS`),
            else the numpy synthesizer; ``"fluidsynth"``: that, or :class:`RenderError`;
            ``"numpy"``: always the built-in numpy synthesizer.
        soundfont: path of a General MIDI .sf2, or "" to search the default places.
        threads: FluidSynth render threads (parts render in parallel): None = one
            per CPU this process may use, at most four; 0 = one per such CPU.
        background: FluidSynth loads the SoundFont in a thread of its own while
            the caller goes on (``ai-band generate`` generates meanwhile); then a
            SoundFont that exists but cannot be loaded is a :class:`RenderError`
            from :meth:`render`, not a fall-back to the numpy engine.  The loudness
            stage's libraries (pyloudnorm, scipy, ~1 s) are imported in another
            thread too (:func:`ai_band.render.loudness.import_libraries`), beside the
            generation and FluidSynth's rendering; a failed import is a
            :class:`RenderError` from :meth:`render`.

    Attributes:
        engine: the engine in use, ``"fluidsynth"`` or ``"numpy"``.
        soundfont: path of the loaded SoundFont, or None.

    Raises:
        RenderError: unknown engine; ``"fluidsynth"`` without libfluidsynth or
            without a loadable SoundFont (the message says what to install or set).

    One render at a time: concurrent calls to :meth:`render` are serialised.
    """

    def __init__(
        self, engine: str = "auto", soundfont: str = "", threads: int | None = None, background: bool = False
    ) -> None:
        if engine not in ENGINES:
            raise RenderError(f"unknown audio engine {engine!r}; use one of {', '.join(ENGINES)}")
        if background:
            import_libraries(background=True)
        self._lock = threading.Lock()
        self._engine: _Engine | None = None
        self.engine = "numpy"
        self.soundfont: str | None = None
        if engine in ("auto", "fluidsynth"):
            self._engine = self._fluidsynth(engine, soundfont, threads, background)
        if self._engine is None:
            from ai_band.render.synth import NumpySynth

            self._engine = NumpySynth()
        self.engine = self._engine.name

    def _fluidsynth(self, engine: str, soundfont: str, threads: int | None, background: bool) -> _Engine | None:
        """FluidSynth, or when it is unusable None (``auto``) or RenderError (``fluidsynth``)."""
        path = find_soundfont(soundfont)
        if path is None:
            where = soundfont if soundfont else " or ".join(DEFAULT_SOUNDFONTS)
            problem = f"no SoundFont found at {where}"
        else:
            try:
                from ai_band.render.fluid import FluidEngine

                t0 = time.perf_counter()
                fluid = FluidEngine(path, usable_cpus() if threads == 0 else threads, background)
                if not background:
                    logger.info("FluidSynth ready with %s in %.2f s", path, time.perf_counter() - t0)
                self.soundfont = path
                return fluid
            except (ImportError, OSError) as exc:
                problem = f"FluidSynth is not usable ({exc})"
        if engine == "fluidsynth":
            raise RenderError(f"audio engine fluidsynth: {problem}; {_INSTALL_HINT}")
        logger.warning("%s; rendering audio with the built-in numpy synthesizer", problem)
        return None

    def render(
        self,
        arrangement: Arrangement,
        options: AudioOptions = AudioOptions(),
        progress: Callable[[float], None] | None = None,
    ) -> RenderedAudio:
        """Render ``arrangement`` to a normalised mix and stems.

        Args:
            arrangement: the parts (part names must be unique).
            options: sample rate, loudness target, true-peak ceiling, tail.
            progress: called in the calling thread with a fraction 0..1: after each
                part with ``parts done / (parts + 1)``, and with 1.0 once the
                loudness stage is done.

        Returns:
            The :class:`RenderedAudio`.

        Raises:
            RenderError: the engine is closed, part names repeat, the render would
                be too large, or the engine failed.
        """
        if self._engine is None:
            raise RenderError("the audio renderer is closed")
        names = [part.name for part in arrangement.parts]
        if len(set(names)) != len(names):
            raise RenderError(f"part names must be unique to render stems: {names}")
        sr = options.sample_rate
        music_s = arrangement.length_ppq * 60.0 / arrangement.bpm
        frames = round((music_s + options.tail_s) * sr)
        # Stems, the raw and the final mix (float32 stereo) and the gain curve.
        need = frames * 8 * (len(arrangement.parts) + 3)
        if need > MAX_AUDIO_BYTES:
            raise RenderError(
                f"audio of {frames / sr:.0f} s with {len(names)} parts is too long to render "
                f"(needs about {need / 2**30:.1f} GiB)"
            )
        total = len(arrangement.parts) + 1
        finished = 0

        def done(_index: int) -> None:
            nonlocal finished
            finished += 1
            if progress is not None:
                progress(finished / total)

        with self._lock:
            t0 = time.perf_counter()
            try:
                stems = self._engine.render_parts(
                    arrangement.parts, arrangement.bpm, sr, frames, done
                )
                if not stems:
                    stems = [np.zeros((frames, 2), dtype=np.float32)]
                _fade_end(stems, sr)
                mix, processed, result = normalize(
                    stems, sr, options.target_lufs, options.true_peak_dbtp
                )
            except RenderError:
                raise
            except Exception as exc:
                raise RenderError(f"rendering audio with {self.engine} failed: {exc}") from exc
            elapsed = time.perf_counter() - t0
        logger.info(
            "rendered %d part(s), %.1f s of audio with %s in %.2f s (%.0fx real time): "
            "%.2f LUFS, %.2f dBTP, gain %+.2f dB%s",
            len(names),
            frames / sr,
            self.engine,
            elapsed,
            music_s / elapsed if elapsed > 0 else math.inf,
            result.loudness_lufs,
            result.true_peak_dbtp,
            result.gain_db,
            ", limited" if result.limited else "",
        )
        if progress is not None:
            progress(1.0)
        return RenderedAudio(
            sample_rate=sr,
            mix=mix,
            stems=dict(zip(names, processed)),
            engine=self.engine,
            soundfont=self.soundfont,
            loudness_lufs=result.loudness_lufs,
            true_peak_dbtp=result.true_peak_dbtp,
            gain_db=result.gain_db,
            limited=result.limited,
            music_s=music_s,
            duration_s=frames / sr,
        )

    def close(self) -> None:
        """Release the engine (FluidSynth synths, caches); idempotent."""
        engine, self._engine = self._engine, None
        if engine is not None:
            with self._lock:
                engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fade_end(stems: Sequence[np.ndarray], sample_rate: int) -> None:
    """Fade every stem out (in place) over the last :data:`END_FADE_S` seconds, raised cosine."""
    frames = stems[0].shape[0] if stems else 0
    n = min(frames, round(END_FADE_S * sample_rate))
    if n <= 0:
        return
    ramp = (0.5 + 0.5 * np.cos(np.linspace(0.0, math.pi, n))).astype(np.float32)[:, None]
    for stem in stems:
        stem[-n:] *= ramp


def _check_name(name: str) -> None:
    if not name or name in (".", "..", MIX) or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"part name {name!r} cannot be an audio file name")


def write_audio(
    rendered: RenderedAudio,
    job_dir: Path,
    formats: Sequence[str],
    stems: bool,
    bit_depth: int,
) -> list[tuple[str, Path]]:
    """Write ``mix.<ext>`` and, with ``stems``, ``<part>.<ext>`` for each format, atomically.

    Every file is first written completely to a ``*.tmp`` file in ``job_dir``
    (flushed and fsynced); only when all are written are they renamed to
    their final names, so either every file is new or (on error) none is
    replaced and no ``*.tmp`` is left.  Samples are rounded to PCM here
    (full scale 2**(bits-1), no dither); a stem sample beyond +-1 (the mix
    never is) is clipped, with a warning.

    Args:
        rendered: the result of :meth:`AudioRenderer.render`.
        job_dir: the job's folder (created when missing).
        formats: a subset of ``("wav", "flac")``.
        stems: also write one file per part.
        bit_depth: 16 or 24 (PCM_16 / PCM_24).

    Returns:
        ``[(name, path), ...]`` in writing order: the mix first (each format in
        the order given), then each part in part order.

    Raises:
        RenderError: a bad format, bit depth or part name, or the directory or a
            file cannot be written.
    """
    job_dir = Path(job_dir)
    if bit_depth not in BIT_DEPTHS:
        raise RenderError(f"bit_depth must be 16 or 24, not {bit_depth!r}")
    unknown = [f for f in formats if f not in AUDIO_FORMATS]
    if unknown or not formats:
        raise RenderError(
            f"audio formats must be a non-empty subset of {tuple(AUDIO_FORMATS)}, "
            f"not {tuple(formats)}"
        )
    subtype = BIT_DEPTHS[bit_depth]
    sources: list[tuple[str, np.ndarray]] = [(MIX, rendered.mix)]
    if stems:
        sources += list(rendered.stems.items())
    temps: list[Path] = []
    result: list[tuple[str, Path]] = []
    try:
        for name, _ in sources[1:]:
            _check_name(name)
        job_dir.mkdir(parents=True, exist_ok=True)
        pending: list[tuple[Path, Path]] = []
        for name, audio in sources:
            data = _to_pcm(name, audio, bit_depth)
            for fmt in dict.fromkeys(formats):
                final = job_dir / f"{name}.{fmt}"

                def write(handle, data=data, fmt=fmt) -> None:
                    soundfile.write(
                        handle,
                        data,
                        rendered.sample_rate,
                        subtype=subtype,
                        format=AUDIO_FORMATS[fmt],
                    )

                pending.append((write_temp(job_dir, write, temps), final))
                result.append((name, final))
        for temp, final in pending:
            os.replace(temp, final)
            temps.remove(temp)
        fsync_dir(job_dir)
    except Exception as exc:
        remove_temps(temps)
        raise RenderError(f"writing audio files to {job_dir} failed: {exc}") from exc
    logger.debug("wrote %d audio file(s) to %s", len(result), job_dir)
    return result


def _to_pcm(name: str, audio: np.ndarray, bit_depth: int) -> np.ndarray:
    """Round float samples to integer PCM (int16, or int32 holding 24 bits in its top bytes).

    Full scale is 2**(bits-1) (the convention libsndfile reads back with), so a
    file read back as float is the rounded input; values beyond full scale are
    clipped, with a warning (the normalised mix never is; a stem could be in theory).
    Rounding here, not in libsndfile, gives WAV and FLAC the very same samples.
    """
    scale = float(1 << (bit_depth - 1))
    scaled = np.rint(audio * np.float32(scale))
    if np.any(np.abs(scaled) > scale - 1.0):
        peak = float(np.max(np.abs(audio)))
        if peak > 1.0:
            logger.warning(
                "%s peaks at %+.2f dBFS; clipping it to full scale in the file",
                name,
                20 * math.log10(peak),
            )
        np.clip(scaled, -scale, scale - 1.0, out=scaled)
    if bit_depth == 16:
        return scaled.astype(np.int16)
    return scaled.astype(np.int32) << 8
