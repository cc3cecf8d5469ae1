"""Audio preview: play a job's rendered mix through PortAudio (sounddevice), at a set time.

The daemon calls :class:`Previewer` from its asyncio loop; PortAudio calls
the stream callback from its own audio thread.  The two meet in two
attributes swapped whole (lock-free under the GIL): the loop stores an
immutable request (a voice to play, or a stop), the callback publishes an
immutable progress tuple back.

Blocking budget (measured on the JACK dummy server, 48 kHz / 64 frames):

* :meth:`Previewer.open` initialises PortAudio (which enumerates devices and
  opens PortAudio's JACK client), opens and starts one output stream at the
  device's rate (30-50 ms), and the first time imports ``scipy.signal``
  (~0.5-0.8 s).  Call it once through ``asyncio.to_thread``;
  :meth:`~Previewer.play` calls it itself when the stream is not open.
* The stream then stays open (it plays silence while idle) until
  :meth:`~Previewer.close`; one stream at the device's rate serves every
  preview, because buffers at other rates are resampled to it.
* :meth:`~Previewer.play` validates, resamples (``scipy.signal.resample_poly``)
  and hands the buffer over: 2-3 ms for one second of 44.1 kHz stereo,
  16 ms for ten seconds.  For minutes-long mixes call it through
  ``asyncio.to_thread`` too (it is safe from any thread).
* :meth:`~Previewer.stop` (0.2 ms) and :meth:`~Previewer.status` never block.

Start alignment: the callback maps the stream's frames to CLOCK_MONOTONIC.
For each callback it knows the stream frame ``n`` of the buffer's first
sample, the time of the call (``time.monotonic()``), and PortAudio's output
latency for the buffer (``outputBufferDacTime - currentTime``, 2 periods on
JACK).  ``call time + latency - n / rate`` is an upper bound of the DAC time
of stream frame 0 (the callback runs a little after its period starts); the
minimum over the callbacks of the last ~30 ms removes most of the wake-up
delay.  A window and not an all-time minimum, because when the
``--no-realtime`` dummy server skips periods PortAudio skips callbacks and
the bound jumps up by whole periods for good; the window also restarts when
PortAudio flags an xrun (``output_underflow``).  The stream's own clock
(``currentTime``) comes from JACK's delay-locked loop and wandered 8 ms
against ``time.monotonic()`` within a second, so it is not used.  Silence is
output up to the sample whose DAC time is ``start_at_s``, then the buffer.
Measured with :class:`ai_band.testing.audio_recorder.AudioRecorder` (first
sound + reported latency - ``start_at_s``): 0.01-0.05 ms typically, up to
1.5-5 ms while another process keeps a core busy and the server skips periods.

On JACK, PortAudio appears as one JACK client, named ``ai-band-preview``
here (``PaJack_SetClientName``; PortAudio's default is ``PortAudio``), with
ports ``out_0``, ``out_1`` connected to ``system:playback_1``/``_2``.  A
process holds one PortAudio JACK client, on the server that was reachable
when PortAudio initialised; :meth:`~Previewer.open` re-initialises PortAudio
when no stream of this module is open, so a JACK server started after the
import is found.  The module assumes it is PortAudio's only user in the
process.

Limitations:

* The stream callback is Python and needs the GIL once per JACK period
  while the stream is open (2-2.5 % of a core at 48 kHz / 64 frames, idle).
* libjack waits for every client of the graph, so a thread of this process
  that holds the GIL while it waits for the JACK server stalls the graph
  until JACK's client timeout: python-rtmidi opening a JACK port took 1.0 s
  and deleting one 0.5 s while the stream was open (30 and 12 ms without).
  Open rtmidi ports before :meth:`~Previewer.open`, delete them after
  :meth:`~Previewer.close`.
* When the JACK server goes away under an open stream, PortAudio 19.6 hangs
  in every stop, close and terminate call, sounddevice's exit handler
  included; the stream is then abandoned (see ``Previewer._abandon_stream``)
  and previews stay off until the process restarts.
* On other host APIs (ALSA, PulseAudio) the timing rests on PortAudio's
  ``outputBufferDacTime``, only as good as the driver's report.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ai_band.errors import PlaybackError

log = logging.getLogger(__name__)

#: Fade applied to a preview that is stopped or replaced, seconds.
FADE_S = 0.010
#: How far back the callback looks for its tightest clock observation, seconds.
CLOCK_WINDOW_S = 0.030
#: JACK client name PortAudio gets (JACK appends ``-01`` etc. when it is taken).
JACK_CLIENT_NAME = "ai-band-preview"
#: Accepted sample rates of a buffer, Hz.
MIN_RATE, MAX_RATE = 1000, 384000


class PreviewError(PlaybackError):
    """No audio output device, or PortAudio could not open or run an output stream."""

    code = "no_audio_device"


# -- PortAudio lifetime (process-wide: PortAudio itself is) -------------------

_pa_lock = threading.Lock()
_pa_users = 0
#: Set when a stream lost its JACK server: PortAudio then hangs in stop/close/terminate.
_pa_wedged = False
#: Streams left open on purpose (see Previewer._abandon_stream); kept referenced.
_abandoned: list = []
#: PortAudio keeps the pointer it is given, so the name must outlive it.
_jack_name_buffer: ctypes.Array | None = None


def _set_jack_client_name(name: str) -> None:
    """Name PortAudio's JACK client; takes effect at the next PortAudio initialisation."""
    global _jack_name_buffer
    sd = sys.modules.get("sounddevice")
    libname = getattr(sd, "_libname", None) or ctypes.util.find_library("portaudio")
    if not libname:
        return
    try:
        func = ctypes.CDLL(libname).PaJack_SetClientName
    except (OSError, AttributeError):  # no PortAudio, or built without JACK
        return
    func.argtypes = [ctypes.c_char_p]
    func.restype = ctypes.c_int
    buffer = ctypes.create_string_buffer(name.encode())
    if func(buffer) == 0:
        _jack_name_buffer = buffer
    else:
        log.debug("PortAudio refused JACK client name %r", name)


def _acquire_portaudio(jack_client_name: str) -> ModuleType:
    """Import sounddevice (initialising PortAudio) with a fresh device list; count one user.

    Raises:
        PreviewError: the PortAudio library is missing or does not initialise.
    """
    global _pa_users
    with _pa_lock:
        if _pa_wedged:
            raise PreviewError(
                "no audio output: the JACK server went away while the preview stream was open, "
                "and PortAudio cannot reinitialise in this process; restart the daemon"
            )
        first_import = "sounddevice" not in sys.modules
        if _pa_users == 0:
            _set_jack_client_name(jack_client_name)
        try:
            import sounddevice as sd
        except OSError as exc:
            raise PreviewError(
                f"no audio output: the PortAudio library is missing ({exc}); "
                "install it with `apt-get install libportaudio2`"
            ) from exc
        try:
            if _pa_users == 0 and not first_import:
                # PortAudio enumerates devices (and joins a JACK server) only when it
                # initialises: start over so that a server started since is found.
                while sd._initialized > 0:
                    sd._terminate()
            if sd._initialized == 0:
                sd._initialize()
        except sd.PortAudioError as exc:
            raise PreviewError(f"no audio output: PortAudio does not initialise: {exc}") from exc
        _pa_users += 1
        return sd


def _release_portaudio() -> None:
    """Count one user less; terminate PortAudio (and its JACK client) after the last."""
    global _pa_users
    with _pa_lock:
        _pa_users = max(0, _pa_users - 1)
        sd = sys.modules.get("sounddevice")
        if _pa_users == 0 and sd is not None and not _pa_wedged:
            try:
                while sd._initialized > 0:
                    sd._terminate()
            except sd.PortAudioError as exc:
                log.debug("terminating PortAudio: %s", exc)


def _jack_client_name_in_use(sd: ModuleType) -> str:
    """The JACK client name PortAudio got, or ``""`` (not on JACK / not known)."""
    try:
        func = ctypes.CDLL(sd._libname).PaJack_GetClientName
    except (OSError, AttributeError):
        return ""
    func.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    func.restype = ctypes.c_int
    out = ctypes.c_char_p()
    if func(ctypes.byref(out)) != 0 or not out.value:
        return ""
    return out.value.decode(errors="replace")


# -- objects handed between the loop and the callback -------------------------


@dataclass(frozen=True, eq=False)
class _Voice:
    """One buffer to play: float32 (frames, stream channels) at the stream rate, read-only."""

    audio: np.ndarray
    start_at_s: float | None  # CLOCK_MONOTONIC DAC time of the first sample; None: at once
    label: str


@dataclass(frozen=True, eq=False)
class _Request:
    """What the loop wants playing; a new object per request (compared by identity)."""

    voice: _Voice | None  # None: silence (stop)


_IDLE = _Request(None)


def _mix(out: np.ndarray, audio: np.ndarray, start: int, n: int, gain: np.ndarray | None) -> None:
    """Add ``audio`` (whose sample 0 is stream frame ``start``) to ``out`` (stream frames n...)."""
    frames = len(out)
    i0 = n - start
    lo = max(0, -i0)
    hi = min(frames, len(audio) - i0)
    if hi <= lo:
        return
    seg = audio[i0 + lo:i0 + hi]
    if gain is not None:
        seg = seg * gain[lo:hi, None]
    out[lo:hi] += seg


class Previewer:
    """Plays one float32 stereo buffer through PortAudio, optionally starting at a monotonic time.

    Args:
        device: PortAudio output device: ``""`` for the default, which is the
            JACK host API's device (``system``) when a JACK server is reachable,
            else PortAudio's default output; otherwise a device index or a name
            as sounddevice matches it (space-separated substrings of
            ``"<device>, <host API>"``, e.g. ``"pulse"``).
        latency: ``"low"``, ``"high"`` or seconds as a string (``"0.05"``); the
            stream's suggested output latency.  JACK ignores it (the server's
            period decides).
        jack_client_name: PortAudio's JACK client name, when on JACK.

    Raises:
        ValueError: ``latency`` is none of the accepted forms.

    Threading: :meth:`play`, :meth:`stop`, :meth:`status`, :meth:`open`
    and :meth:`close` may be called from any thread (the asyncio loop, or
    ``asyncio.to_thread`` for the blocking ones); PortAudio's thread runs
    the callback.  See the module docstring for what blocks and how long.
    """

    def __init__(
        self, device: str = "", latency: str = "high", jack_client_name: str = JACK_CLIENT_NAME,
    ) -> None:
        if latency not in ("low", "high"):
            try:
                seconds = float(latency)
            except ValueError:
                raise ValueError(
                    f"latency must be 'low', 'high' or seconds, got {latency!r}") from None
            if not (0.0 < seconds < 10.0):
                raise ValueError(f"latency must be in (0, 10) seconds, got {latency!r}")
        self.device = device
        self.latency = latency
        self.jack_client_name = jack_client_name
        self._lock = threading.Lock()  # serialises open/close; never taken by the callback
        self._closed = False
        self._stream = None
        self._rate = 0
        self._channels = 2
        self._device_name = ""
        self._host_api = ""
        self._jack_client = ""
        self._fade_frames = 1
        # Loop -> callback.
        self._request: _Request = _IDLE
        # Callback -> loop: (request seen, voice sounding or else waiting, position s, sounding).
        self._progress: tuple[_Request, _Voice | None, float, bool] = (_IDLE, None, 0.0, False)
        # (anchor s, next stream frame, frames per call): DAC time of frame k = anchor + k / rate.
        self._clock: tuple[float, int, int] | None = None
        self._latency_s = 0.0
        self._reset_callback_state()

    # -- lifecycle ----------------------------------------------------------

    def open(self) -> None:
        """Open and start the output stream (silence until :meth:`play`); idempotent.

        Blocks for PortAudio's initialisation and the stream's opening
        (30-50 ms measured on JACK), and the first time for importing
        ``scipy.signal`` (~0.5 s): call it through ``asyncio.to_thread``.
        Reopens the stream when it stopped, except on JACK: when the JACK
        server went away, PortAudio cannot be used again in this process.

        Raises:
            PreviewError: the previewer is closed, there is no output device,
                the device is not found, PortAudio cannot open the stream, or
                the JACK server went away since PortAudio initialised.
        """
        with self._lock:
            if self._closed:
                raise PreviewError("the audio previewer is closed")
            if self._stream is not None:
                if self._stream.active:
                    return
                log.warning("audio preview stream on %r (%s) stopped: audio server gone?",
                            self._device_name, self._host_api)
                self._close_stream()
            sd = _acquire_portaudio(self.jack_client_name)
            try:
                self._open_stream(sd)
            except BaseException:
                _release_portaudio()
                raise
            import scipy.signal  # noqa: F401 - imported here, not in play(): it takes ~0.5 s

    def _open_stream(self, sd: ModuleType) -> None:
        index, info, host_api = self._choose_device(sd)
        rate = round(info["default_samplerate"])
        channels = min(2, int(info["max_output_channels"]))
        self._reset_callback_state()
        self._rate, self._channels = rate, channels
        self._fade_frames = max(1, round(FADE_S * rate))
        latency: str | float = self.latency
        if latency not in ("low", "high"):
            latency = float(latency)
        try:
            stream = sd.OutputStream(
                samplerate=rate, device=index, channels=channels, dtype="float32",
                latency=latency, callback=self._callback,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise PreviewError(
                f"cannot open audio output {info['name']!r} ({host_api}) at {rate} Hz: {exc}"
            ) from exc
        try:
            stream.start()
        except sd.PortAudioError as exc:
            stream.close(ignore_errors=True)
            raise PreviewError(
                f"cannot start audio output {info['name']!r} ({host_api}): {exc}") from exc
        self._stream = stream
        self._latency_s = float(stream.latency)
        self._device_name, self._host_api = str(info["name"]), host_api
        self._jack_client = _jack_client_name_in_use(sd) if "JACK" in host_api else ""
        log.info("audio preview on %r (%s) at %d Hz, %d channel(s)%s",
                 self._device_name, host_api, rate, channels,
                 f", JACK client {self._jack_client!r}" if self._jack_client else "")

    def _choose_device(self, sd: ModuleType) -> tuple[int, dict, str]:
        """Return (device index, device info, host API name) for the output stream."""
        try:
            hostapis = sd.query_hostapis()
            devices = sd.query_devices()
        except sd.PortAudioError as exc:
            raise PreviewError(f"no audio output: PortAudio cannot list devices: {exc}") from exc
        outputs = [d for d in devices if d["max_output_channels"] > 0]
        if self.device:
            key: int | str = int(self.device) if self.device.isdigit() else self.device
            try:
                info = sd.query_devices(key, "output")
            except (ValueError, sd.PortAudioError) as exc:
                known = ", ".join(
                    f"{d['name']!r} ({hostapis[d['hostapi']]['name']})" for d in outputs) or "none"
                raise PreviewError(
                    f"audio output device {self.device!r} not found: {exc}; outputs: {known}"
                ) from exc
            return int(info["index"]), info, hostapis[info["hostapi"]]["name"]
        for api in hostapis:  # prefer JACK: present only when a server was reachable
            if "JACK" in api["name"] and api["default_output_device"] >= 0:
                info = sd.query_devices(api["default_output_device"])
                return int(info["index"]), info, api["name"]
        try:
            info = sd.query_devices(kind="output")
        except sd.PortAudioError:
            info = outputs[0] if outputs else None
        if info is None:
            counts = {
                api["name"]: sum(1 for i in api["devices"] if devices[i]["max_output_channels"] > 0)
                for api in hostapis
            }
            apis = ", ".join(f"{name} ({n} outputs)" for name, n in counts.items()) or "none"
            server = os.environ.get("JACK_DEFAULT_SERVER") or "default"
            raise PreviewError(
                f"no audio output device: PortAudio found no output (host APIs: {apis}) and no "
                f"JACK server is reachable (server name {server!r}); start JACK or set the "
                "preview device"
            )
        return int(info["index"]), info, hostapis[info["hostapi"]]["name"]

    def _abandon_stream(self) -> None:
        """Drop a stream whose audio server went away, without touching PortAudio again.

        The callback never stops a stream, so an inactive one lost its server.
        PortAudio 19.6's JACK host API then waits forever in Pa_StopStream,
        Pa_AbortStream, Pa_CloseStream and Pa_Terminate (checked with jackd
        killed under an open stream), and sounddevice calls Pa_Terminate at
        exit: the stream is left open and referenced, PortAudio is marked
        unusable for this process, and sounddevice's exit handler is disarmed.
        """
        global _pa_wedged
        stream, self._stream = self._stream, None
        self._clock = None
        log.error("the JACK server of the audio preview went away; previews are off until the "
                  "daemon restarts (PortAudio cannot reinitialise in a running process)")
        with _pa_lock:
            _abandoned.append(stream)
            _pa_wedged = True
            sd = sys.modules.get("sounddevice")
            if sd is not None:
                sd._initialized = 0  # its atexit handler would call Pa_Terminate and hang

    def _close_stream(self) -> None:
        if self._stream is not None and not self._stream.active and "JACK" in self._host_api:
            self._abandon_stream()
            return
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
        finally:
            _release_portaudio()
            self._clock = None

    def close(self) -> None:
        """Fade out, close the stream and release PortAudio; idempotent.

        Blocks ~40 ms (fade, then PortAudio closes its JACK client); a stream
        whose JACK server went away is left open instead (see
        :meth:`_abandon_stream`). After it, :meth:`play` and :meth:`open`
        raise :class:`PreviewError`.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            stream = self._stream
            if stream is not None and stream.active and self._request.voice is not None:
                self.stop()
                time.sleep(FADE_S + 2 * max(self._latency_s, 0.005))
            self._close_stream()

    # -- loop API -----------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """The output stream's rate in Hz, or 0 before :meth:`open`."""
        return self._rate

    def play(
        self, audio: np.ndarray, sample_rate: int, start_at_s: float | None = None, label: str = "",
    ) -> float:
        """Play ``audio``, replacing any preview playing or waiting.

        The preview playing goes on until the new one starts (at once, or at
        ``start_at_s``, as the scheduler switches jobs at a bar line), then
        fades out over ``FADE_S``; a preview still waiting for its start is
        dropped.

        Args:
            audio: float32 (or float64) samples, shape (frames, 2), -1..1; a
                copy is kept.
            sample_rate: rate of ``audio`` in Hz; resampled to the device's
                rate when it differs (JACK runs at the server's rate only).
            start_at_s: CLOCK_MONOTONIC seconds at which the first sample
                should reach the output (PortAudio's DAC time), or ``None`` for
                at once.  A time already past keeps the buffer in step with it:
                the part that should have played is skipped.
            label: shown by :meth:`status` (e.g. the job id).

        Returns:
            The CLOCK_MONOTONIC time the first sample is scheduled for
            (``start_at_s``, or an estimate of "at once": now + output
            latency + up to one period).

        Raises:
            ValueError: ``audio`` is not a finite float array of shape
                (frames > 0, 2), ``sample_rate`` is out of 1000..384000 Hz or
                ``start_at_s`` is not finite.
            PreviewError: no output device, PortAudio cannot open the stream,
                or the previewer is closed.
        """
        data = self._validate(audio, sample_rate, start_at_s)
        self.open()  # no-op while the stream runs
        if sample_rate != self._rate:
            from scipy.signal import resample_poly

            g = math.gcd(sample_rate, self._rate)
            data = resample_poly(data, self._rate // g, sample_rate // g, axis=0).astype(
                np.float32, copy=False)
        if self._channels == 1:
            data = data.mean(axis=1, keepdims=True, dtype=np.float32)
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data is audio:
            data = data.copy()
        data.setflags(write=False)
        voice = _Voice(data, None if start_at_s is None else float(start_at_s), label)
        self._request = _Request(voice)
        if start_at_s is not None:
            scheduled = float(start_at_s)
        else:
            scheduled = self._estimate_next_output()
        log.debug("preview %r: %.3f s scheduled at %.4f", label, len(data) / self._rate, scheduled)
        return scheduled

    @staticmethod
    def _validate(audio: np.ndarray, sample_rate: int, start_at_s: float | None) -> np.ndarray:
        if not isinstance(audio, np.ndarray):
            raise ValueError(f"audio must be a numpy array, got {type(audio).__name__}")
        if audio.ndim != 2 or audio.shape[1] != 2 or audio.shape[0] == 0:
            raise ValueError(f"audio must have shape (frames > 0, 2), got {audio.shape}")
        if audio.dtype not in (np.float32, np.float64):
            raise ValueError(f"audio must be float32 (or float64), got {audio.dtype}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
            raise ValueError(f"sample_rate must be an int in Hz, got {sample_rate!r}")
        if not (MIN_RATE <= sample_rate <= MAX_RATE):
            raise ValueError(
                f"sample_rate must be in {MIN_RATE}..{MAX_RATE} Hz, got {sample_rate}")
        if start_at_s is not None and not math.isfinite(start_at_s):
            raise ValueError(
                f"start_at_s must be finite CLOCK_MONOTONIC seconds, got {start_at_s!r}")
        if not np.isfinite(audio).all():
            raise ValueError("audio contains NaN or infinite samples")
        return audio.astype(np.float32, copy=False)

    def _estimate_next_output(self) -> float:
        """DAC time of the first frame of the next callback's buffer (CLOCK_MONOTONIC s)."""
        now = time.monotonic()
        clock = self._clock
        if clock is None:
            return now + self._latency_s
        anchor, next_frame, frames = clock
        t = anchor + next_frame / self._rate
        period = frames / self._rate
        earliest = now + self._latency_s
        if t < earliest:
            t += math.ceil((earliest - t) / period) * period
        return t

    def stop(self) -> None:
        """Stop the preview at once (``FADE_S`` fade-out); idempotent, never blocks."""
        if self._request.voice is not None:
            self._request = _Request(None)

    def status(self) -> dict:
        """JSON-ready view of the preview.

        Returns:
            ``{"playing": bool (sounding or waiting for its start), "label": str,
            "position_s": seconds of the buffer played (at the stream's rate),
            "device": str, "host_api": str, "sample_rate": Hz (0 before open),
            "latency_s": output latency PortAudio reports, s,
            "jack_client": PortAudio's JACK client name or ""}``.
        """
        request = self._request
        seen, voice, position_s, sounding = self._progress
        if seen is not request:  # the callback has not taken the request yet
            new = request.voice
            if new is None or new.start_at_s is None or not sounding:
                voice, position_s = new, 0.0
        return {
            "playing": voice is not None,
            "label": voice.label if voice is not None else "",
            "position_s": round(position_s, 4),
            "device": self._device_name,
            "host_api": self._host_api,
            "sample_rate": self._rate,
            "latency_s": round(self._latency_s, 6),
            "jack_client": self._jack_client,
        }

    # -- PortAudio's thread -------------------------------------------------

    def _reset_callback_state(self) -> None:
        self._seen: _Request = _IDLE
        # Sounding: (voice, stream frame of its sample 0).
        self._current: tuple[_Voice, int] | None = None
        self._pending: _Voice | None = None  # waiting for its start time
        self._fades: list[tuple[np.ndarray, int, int]] = []  # (audio, start frame, fade-from frame)
        self._frames = 0
        self._observations: collections.deque[tuple[float, float]] = collections.deque()
        self._callback_failed = False
        self._progress = (_IDLE, None, 0.0, False)
        self._clock = None

    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        try:
            self._render(outdata, frames, time_info, bool(status.output_underflow))
        except Exception:  # noqa: BLE001 - an exception here would kill the stream silently
            outdata.fill(0)
            if not self._callback_failed:
                self._callback_failed = True
                log.exception("audio preview callback failed; outputting silence")

    def _retire_current(self, fade_from: int) -> None:
        """Fade the sounding voice out from stream frame ``fade_from`` on."""
        if self._current is not None:
            voice, start = self._current
            self._fades.append((voice.audio, start, fade_from))
            self._current = None

    def _render(self, out: np.ndarray, frames: int, time_info, xrun: bool) -> None:
        now = time.monotonic()
        rate = self._rate
        n = self._frames
        latency = time_info.outputBufferDacTime - time_info.currentTime
        if not (0.0 <= latency < 1.0):  # host API without timestamps
            latency = self._latency_s
        else:
            self._latency_s = latency
        # Upper bound of the DAC time of stream frame 0; the window's minimum is the estimate.
        obs = self._observations
        if xrun:  # the server skipped periods: earlier observations now project too early
            obs.clear()
        obs.append((now, now + latency - n / rate))
        horizon = now - max(CLOCK_WINDOW_S, 16 * frames / rate)
        while len(obs) > 1 and obs[0][0] < horizon:
            obs.popleft()
        anchor = min(value for _, value in obs)
        self._clock = (anchor, n + frames, frames)

        request = self._request
        if request is not self._seen:
            self._seen = request
            self._pending = request.voice
            if request.voice is None or request.voice.start_at_s is None:
                self._retire_current(n)  # stop, or "at once": the old voice goes now
        pending = self._pending
        if pending is not None:
            # Recomputed each call until the first sample goes out, from the latest clock.
            start = n if pending.start_at_s is None else round((pending.start_at_s - anchor) * rate)
            if start < n + frames:  # due in this buffer (or late: joins in step)
                self._retire_current(max(start, n))
                self._current, self._pending = (pending, start), None

        out.fill(0)
        position_s = 0.0
        if self._current is not None:
            voice, start = self._current
            _mix(out, voice.audio, start, n, None)
            played = n + frames - start
            position_s = max(0, played) / rate
            if played >= len(voice.audio):
                self._current = None
        if self._fades:
            length = self._fade_frames
            kept = []
            for audio, start, fade_from in self._fades:
                k = n - fade_from  # frames of the fade done before this buffer (< 0: not begun)
                gain = np.interp(np.arange(k, k + frames), (0, length), (1.0, 0.0))
                _mix(out, audio, start, n, gain)
                if k + frames < length:
                    kept.append((audio, start, fade_from))
            self._fades = kept
        self._frames = n + frames
        if self._current is not None:
            self._progress = (request, self._current[0], position_s, True)
        else:
            self._progress = (request, self._pending, 0.0, False)
