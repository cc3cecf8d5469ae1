"""The FluidSynth engine: parts rendered offline through libfluidsynth with a warm SoundFont.

pyfluidsynth (module ``fluidsynth``) finds and drives libfluidsynth (2.x)
through ctypes.  No audio driver is started: audio is pulled with
``fluid_synth_write_float`` into a float32 buffer (pyfluidsynth's
``get_samples`` is the same call with 16-bit output), so nothing is
quantised before the loudness stage.

Warm SoundFont, fresh synth: the SoundFont is loaded once, in the
constructor, by a small pool of "holder" synths (one per render thread;
libfluidsynth reads the sample data once per process and shares it between
them).  Each part is then rendered by a brand-new ``fluid_synth_t`` (about
1 ms to create) at the requested sample rate, to which the holder's loaded
SoundFont is lent with ``fluid_synth_add_sfont`` and taken back with
``fluid_synth_remove_sfont`` afterwards.  A reused synth is not
reproducible: a reset leaves voices in their release phase and per-voice
state (gain ramps) from the previous part, which changed note onsets by up
to 1e-2; a fresh synth makes every render bit-for-bit repeatable.

Rendering one part: select the part's preset, then walk its note events in
time order, rendering audio up to each event and sending it.  Every part
is rendered on its own (solo) into its own stem, so the mix is exactly the
sum of the stems.  The parts are rendered in parallel, one thread per CPU
core (at most :data:`MAX_THREADS` in a daemon's render worker, every CPU
for ``ai-band generate``), longest part first; ctypes releases the GIL
during every libfluidsynth call.  A part is not split further: FluidSynth's
voices of one channel interact (exclusive classes such as the hi-hats' and
cymbals', same-key retriggers), so the notes of a part rendered on two synths
and summed differ from one render by up to -42 dBFS (measured on a rock kit).

Timing: FluidSynth applies MIDI events only between its internal blocks of
:data:`BLOCK` (64) frames.  Events are therefore sent at the nearest block
boundary (at most +-32 frames off, 0.73 ms at 44.1 kHz, on the same grid for
every part, so parts never drift against each other) and every write is a
whole number of blocks.

Presets: a part on channel 9 (GM percussion) uses bank 128 with its program
as the GS drum-kit number when the SoundFont has that kit (FluidR3 has
Standard 0, Room 8, Power 16, Electronic 24, TR-808 25, Jazz 32, Brush 40,
Orchestra 48), else kit 0; other parts use bank 0 and their GM program (GM1
sound set), else program 0.

Effects: chorus off.  FluidSynth's reverb, with a smaller room and lower
level than its defaults (:data:`REVERB`), is fed by a per-part send (CC 91,
:data:`REVERB_SEND`): keys, pad, melody, arp, guitar and strings get some;
drums and bass stay dry (a clean low end, and the reverb costs about 40 % of
a part's render time, so it is switched off where it is not wanted).  Each
part also gets a pan position (CC 10, :data:`PAN`).

libfluidsynth's log messages are routed to this module's logger (errors
as warnings, warnings as debug messages); that hook is process-wide.
"""

from __future__ import annotations

import ctypes
import logging
import math
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import numpy as np

from ai_band.model import Part
from ai_band.system.priority import usable_cpus

__all__ = ["BLOCK", "DRUM_CHANNEL", "MAX_THREADS", "PAN", "REVERB", "REVERB_SEND", "FluidEngine"]

logger = logging.getLogger(__name__)

#: FluidSynth's internal block size (FLUID_BUFSIZE), frames.
BLOCK = 64

#: Largest number of render threads (and holder synths) unless more are asked for.
MAX_THREADS = 4

#: GM percussion channel index (MIDI channel 10).
DRUM_CHANNEL = 9

#: FluidSynth reverb settings (its defaults: room 0.2, damp 0.0, width 0.5, level 0.9).
REVERB = {
    "synth.reverb.room-size": 0.35,
    "synth.reverb.damp": 0.4,
    "synth.reverb.width": 0.8,
    "synth.reverb.level": 0.5,
}

#: Reverb send (CC 91, 0..127) per part name; parts not listed use 30.  A part with send 0
#: is rendered with the reverb switched off (it costs ~40 % of a part's render time).
REVERB_SEND = {
    "drums": 0,
    "bass": 0,
    "keys": 36,
    "pad": 50,
    "melody": 36,
    "arp": 34,
    "guitar": 30,
    "strings": 48,
}

#: Pan (CC 10, 0 = left, 64 = centre, 127 = right) per part name; others are centred.
PAN = {
    "drums": 64,
    "bass": 64,
    "keys": 50,
    "pad": 64,
    "melody": 70,
    "arp": 58,
    "guitar": 80,
    "strings": 74,
}

#: Settings of every synth (besides the sample rate).
_SETTINGS: dict[str, int | float] = {
    "synth.chorus.active": 0,
    "synth.reverb.active": 1,
    "synth.cpu-cores": 1,
    "synth.threadsafe-api": 0,  # each synth is used by one thread at a time
    "synth.lock-memory": 0,  # no mlock(): it fails for unprivileged users
    "synth.polyphony": 256,
    **REVERB,
}

_NOTE_OFF, _NOTE_ON = 0, 1
_FLUID_PANIC, _FLUID_ERR, _FLUID_WARN = 0, 1, 2

_LOG_CALLBACK_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def _log_message(level: int, message: bytes | None, _data: object) -> None:
    text = (message or b"").decode("utf-8", "replace")
    logger.log(logging.WARNING if level <= _FLUID_ERR else logging.DEBUG, "libfluidsynth: %s", text)


#: Kept referenced for as long as libfluidsynth may call it.
_LOG_CALLBACK = _LOG_CALLBACK_TYPE(_log_message)


class _Lib:
    """The few libfluidsynth entry points pyfluidsynth does not wrap the way we need."""

    def __init__(self, library: Any) -> None:
        c_int, c_void_p = ctypes.c_int, ctypes.c_void_p
        self.write_float = ctypes.CFUNCTYPE(
            c_int, c_void_p, c_int, c_void_p, c_int, c_int, c_void_p, c_int, c_int
        )(("fluid_synth_write_float", library))
        self.get_sfont_by_id = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_int)(
            ("fluid_synth_get_sfont_by_id", library)
        )
        self.add_sfont = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)(
            ("fluid_synth_add_sfont", library)
        )
        self.remove_sfont = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)(
            ("fluid_synth_remove_sfont", library)
        )
        set_log = ctypes.CFUNCTYPE(c_void_p, c_int, _LOG_CALLBACK_TYPE, c_void_p)(
            ("fluid_set_log_function", library)
        )
        for level in (_FLUID_PANIC, _FLUID_ERR, _FLUID_WARN):
            set_log(level, _LOG_CALLBACK, None)


class _Holder:
    """A synth that keeps one loaded copy of the SoundFont; used by one thread at a time."""

    def __init__(self, module: Any, lib: _Lib, soundfont: str) -> None:
        self.synth = module.Synth(
            samplerate=44100.0,
            channels=16,
            **{**_SETTINGS, "synth.polyphony": 16, "synth.reverb.active": 0},
        )
        self.sfid = self.synth.sfload(soundfont)
        if self.sfid < 0:
            self.synth.delete()
            raise OSError(f"FluidSynth could not load the SoundFont {soundfont}")
        self.sfont = lib.get_sfont_by_id(self.synth.synth, self.sfid)

    def has_preset(self, bank: int, program: int) -> bool:
        return self.synth.sfpreset_name(self.sfid, bank, program) is not None

    def delete(self) -> None:
        self.synth.delete()


class FluidEngine:
    """FluidSynth rendering with the SoundFont kept loaded (warm).

    Args:
        soundfont: path of a General MIDI .sf2 file.
        threads: render threads, each with a holder synth; None: one per CPU
            this process may use, at most :data:`MAX_THREADS` (a daemon's render
            worker); ``ai-band generate`` asks for one per CPU.
        background: load the SoundFont in a thread of its own and return at
            once (libfluidsynth loads without the GIL, so Python work goes on
            beside it); :meth:`render_parts` waits for it and raises its
            ``OSError``, if any.

    Raises:
        ImportError: pyfluidsynth or libfluidsynth (2.x) is missing.
        OSError: the SoundFont cannot be loaded (when not loaded in the background).
    """

    name = "fluidsynth"

    def __init__(self, soundfont: str, threads: int | None = None, background: bool = False) -> None:
        import fluidsynth  # ImportError/OSError when libfluidsynth is missing

        library = getattr(fluidsynth, "_fl", None)
        if library is None or not hasattr(library, "fluid_synth_add_sfont"):
            raise ImportError("libfluidsynth 2.x is needed (fluid_synth_add_sfont not found)")
        self._module = fluidsynth
        self._lib = _Lib(library)
        self.soundfont = soundfont
        self.threads = max(1, threads if threads is not None else min(MAX_THREADS, usable_cpus()))
        self._holders: list[_Holder] = []
        self._free: queue.SimpleQueue[_Holder] = queue.SimpleQueue()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._load_error: Exception | None = None
        self._loader: threading.Thread | None = None
        if background:
            self._loader = threading.Thread(target=self._load, name="fluidsynth-load", daemon=True)
            self._loader.start()
            return
        self._load()
        if self._load_error is not None:
            self.close()
            raise self._load_error

    def _load(self) -> None:
        """Create the holder synths, each loading the SoundFont; an error is kept for the caller."""
        try:
            for _ in range(self.threads):
                holder = _Holder(self._module, self._lib, self.soundfont)
                self._holders.append(holder)
                self._free.put(holder)
        except Exception as exc:  # noqa: BLE001 - raised where the engine is used
            self._load_error = exc

    def render_parts(
        self,
        parts: Sequence[Part],
        bpm: float,
        sample_rate: int,
        frames: int,
        done: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """Render each part solo, in parallel.

        Args:
            parts: the parts, in order.
            bpm: tempo, quarter notes per minute.
            sample_rate: Hz.
            frames: length of every stem, frames.
            done: called in the calling thread with the index of each part as it finishes.

        Returns:
            One float32 array of shape ``(frames, 2)`` per part, in the order of ``parts``.
        """
        if self._loader is not None:
            self._loader.join()
        if self._load_error is not None:
            raise self._load_error
        with self._lock:
            if not self._holders:
                raise RuntimeError("the FluidSynth engine is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="fluidsynth")
            executor = self._executor

        def job(part: Part) -> np.ndarray:
            holder = self._free.get()
            try:
                return self._render_part(holder, part, bpm, sample_rate, frames)
            finally:
                self._free.put(holder)

        # Longest jobs first, so the threads finish together.
        order = sorted(range(len(parts)), key=lambda i: -_cost(parts[i]))
        futures = {executor.submit(job, parts[i]): i for i in order}
        stems: dict[int, np.ndarray] = {}
        try:
            for future in as_completed(futures):
                index = futures[future]
                stems[index] = future.result()
                if done is not None:
                    done(index)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return [stems[i] for i in range(len(parts))]

    def _render_part(
        self, holder: _Holder, part: Part, bpm: float, sample_rate: int, frames: int
    ) -> np.ndarray:
        """One part solo on a fresh synth lent ``holder``'s SoundFont: float32 ``(frames, 2)``."""
        padded = math.ceil(frames / BLOCK) * BLOCK
        out = np.zeros((padded, 2), dtype=np.float32)
        events = _events(part, bpm, sample_rate, frames)
        if not events:
            return out[:frames]
        channel = part.channel
        if channel == DRUM_CHANNEL:
            bank, program = 128, part.program if holder.has_preset(128, part.program) else 0
        else:
            bank, program = 0, part.program if holder.has_preset(0, part.program) else 0
        if program != part.program:
            logger.info(
                "the SoundFont has no preset %d in bank %d; %s uses %d",
                part.program,
                bank,
                part.name,
                program,
            )
        lib = self._lib
        send = REVERB_SEND.get(part.name, 30)
        settings = {**_SETTINGS, "synth.reverb.active": int(send > 0)}
        synth = self._module.Synth(samplerate=float(sample_rate), channels=16, **settings)
        handle = ctypes.c_void_p(synth.synth)
        sfid = lib.add_sfont(handle, holder.sfont)
        try:
            if sfid < 0:
                raise RuntimeError("FluidSynth could not share the SoundFont with a new synth")
            if synth.program_select(channel, sfid, bank, program) != 0:
                raise RuntimeError(
                    f"FluidSynth could not select bank {bank} program {program} for {part.name!r}"
                )
            synth.cc(channel, 10, PAN.get(part.name, 64))
            synth.cc(channel, 91, send)
            base = out.ctypes.data
            position = 0
            for frame, kind, key, velocity in events:
                if frame > position:
                    address = base + position * 8
                    lib.write_float(handle, frame - position, address, 0, 2, address, 1, 2)
                    position = frame
                if kind == _NOTE_ON:
                    synth.noteon(channel, key, velocity)
                else:
                    synth.noteoff(channel, key)
            if padded > position:
                address = base + position * 8
                lib.write_float(handle, padded - position, address, 0, 2, address, 1, 2)
        finally:
            if sfid >= 0:
                lib.remove_sfont(handle, holder.sfont)  # before delete: the holder still owns it
            synth.delete()
        return out[:frames]

    def close(self) -> None:
        """Stop the render threads and free the synths; idempotent."""
        if self._loader is not None:
            self._loader.join()
        with self._lock:
            executor, self._executor = self._executor, None
            holders, self._holders = self._holders, []
        if executor is not None:
            executor.shutdown(wait=True)
        for holder in holders:
            holder.delete()


def _cost(part: Part) -> float:
    """Rough rendering cost: drums keep many voices ringing."""
    return len(part.notes) * (4.0 if part.channel == DRUM_CHANNEL else 1.0)


def _events(
    part: Part, bpm: float, sample_rate: int, frames: int
) -> list[tuple[int, int, int, int]]:
    """Note events ``(frame on the block grid, kind, key, velocity)``, in time order.

    At equal frames note-offs come first, so a repeated pitch is struck again.
    """
    if not part.notes:
        return []
    frames_per_ppq = 60.0 / bpm * sample_rate
    table = np.array(
        [(n.start_ppq, n.end_ppq, n.pitch, n.velocity) for n in part.notes], dtype=np.float64
    )
    on = np.rint(np.rint(table[:, 0] * frames_per_ppq) / BLOCK).astype(np.int64) * BLOCK
    off = np.rint(np.rint(table[:, 1] * frames_per_ppq) / BLOCK).astype(np.int64) * BLOCK
    keys = table[:, 2].astype(np.int64).tolist()
    velocities = table[:, 3].astype(np.int64).tolist()
    events = [(f, _NOTE_ON, k, v) for f, k, v in zip(on.tolist(), keys, velocities) if f < frames]
    events += [(f, _NOTE_OFF, k, 0) for f, k in zip(off.tolist(), keys) if f < frames]
    events.sort(key=lambda e: (e[0], e[1]))
    return events
