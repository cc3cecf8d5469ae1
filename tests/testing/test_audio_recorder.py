"""AudioRecorder: JACK audio capture with CLOCK_MONOTONIC times, on a private dummy server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import jack
import numpy as np
import pytest
from scipy.signal import chirp, correlate

from conftest import DropoutGuard
from ai_band.testing.audio_recorder import AudioRecorder, AudioRecorderError
from ai_band.testing.jackserver import JackServer

pytestmark = pytest.mark.jack


class SignalSource:
    """A JACK client with outputs ``out_1``, ``out_2`` that plays a float32 (frames, 2) signal once.

    The signal starts at the first frame of the period after :meth:`play` and
    is locked to JACK frames (sample i at frame start + i), so a period this
    client misses leaves a hole, not a shift. ``started`` is then ``(start
    frame, time.monotonic() at that period's callback)``.
    """

    def __init__(self, servername: str, signal: np.ndarray) -> None:
        self.signal = signal
        self.client = jack.Client("aiband-src", no_start_server=True, servername=servername)
        self.ports = [self.client.outports.register(f"out_{i + 1}") for i in range(2)]
        self.armed = False
        self.started: tuple[int, float] | None = None
        self.done = threading.Event()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def play(self) -> None:
        self.started = None
        self.done.clear()
        self.armed = True

    def _process(self, frames: int) -> None:
        now = time.monotonic()
        outs = [port.get_array() for port in self.ports]
        for out in outs:
            out.fill(0)
        if self.armed and self.started is None:
            self.started = (self.client.last_frame_time, now)
        if not self.armed or self.started is None:
            return
        pos = self.client.last_frame_time - self.started[0]
        chunk = self.signal[pos:pos + frames]
        for i, out in enumerate(outs):
            out[:len(chunk)] = chunk[:, i]
        if pos + frames >= len(self.signal):
            self.armed = False
            self.done.set()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def _signal(rate: int, seconds: float = 0.3) -> np.ndarray:
    """Left: white noise starting at 0.5; right: a 300-3000 Hz chirp (starts at 0.4)."""
    n = round(seconds * rate)
    rng = np.random.default_rng(7)
    left = rng.uniform(-0.5, 0.5, n)
    left[0] = 0.5
    t = np.arange(n) / rate
    right = 0.4 * chirp(t, 300, seconds, 3000)
    return np.stack([left, right], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def recorder(jack_server: JackServer) -> Iterator[AudioRecorder]:
    with AudioRecorder(jack_server.name) as rec:
        yield rec


@pytest.fixture(scope="module")
def source(jack_server: JackServer, recorder: AudioRecorder) -> Iterator[SignalSource]:
    src = SignalSource(jack_server.name, _signal(recorder.samplerate))
    try:
        assert recorder.connect("aiband-src:") == ["aiband-src:out_1", "aiband-src:out_2"]
        time.sleep(0.3)  # the graph changed: let the xruns of a --no-realtime server pass
        yield src
    finally:
        src.close()


def _normalised_peak(recorded: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    xc = correlate(recorded, reference, mode="valid", method="fft")
    energy = np.convolve(recorded.astype(np.float64) ** 2, np.ones(len(reference)), mode="valid")
    score = xc / (np.sqrt(energy * float(np.dot(reference, reference))) + 1e-12)
    lag = int(np.argmax(score))
    return float(score[lag]), lag


def test_records_signal_with_monotonic_time(recorder: AudioRecorder, source: SignalSource) -> None:
    assert recorder.sources == [("aiband-src:out_1", f"{recorder.name}:in_1"),
                                ("aiband-src:out_2", f"{recorder.name}:in_2")]
    assert recorder.connect("aiband-src:") == []  # already connected
    with DropoutGuard(recorder, count_xruns=True):
        recorder.clear()
        assert recorder.wait_until(time.monotonic() + 0.02)
        source.play()
        assert source.done.wait(2.0)
        assert source.started is not None
        _, started_at = source.started
        assert recorder.wait_until(started_at + 0.4)

        audio, start_time = recorder.audio()
        rate = recorder.samplerate
        assert audio.dtype == np.float32 and audio.shape[1] == 2
        assert start_time < started_at
        signal = source.signal
        lags = []
        for ch in (0, 1):
            score, lag = _normalised_peak(audio[:, ch], signal[:, ch])
            # A digital path: 1.0 but for the periods lost to xruns (holes of 64 frames).
            assert score > 0.99, f"channel {ch}: correlation {score:.4f}"
            other, _ = _normalised_peak(audio[:, 1 - ch], signal[:, ch])
            assert other < 0.2, "channels swapped or mixed"
            lags.append(lag)
        assert lags[0] == lags[1]
        recorded = audio[lags[0]:lags[0] + len(signal)]
        exact = np.mean(np.all(recorded == signal, axis=1))
        assert exact > 0.97, f"only {exact:.1%} of the frames arrived bit-exact"
        first = recorder.first_sound_time(threshold=0.1)
        assert first is not None
        # The sound starts at a period start: its time is the recorder's estimate of that
        # start, and the source's callback ran at about that start (measured -0.04..+0.03
        # ms apart over 30 runs; the bound leaves room for wake-up delays under load).
        assert -0.0005 < started_at - first < 0.003, f"{(started_at - first) * 1e3:.2f} ms"
        # The same instant read off the array: its start time + lag / rate.
        assert abs(start_time + lags[0] / rate - first) < 0.005


def test_silence_has_no_sound_time(recorder: AudioRecorder) -> None:
    recorder.clear()
    audio, start = recorder.audio()
    assert audio.shape == (0, 2) and np.isnan(start)
    assert recorder.wait_until(time.monotonic() + 0.05)
    audio, start = recorder.audio()
    assert len(audio) > 0 and start <= time.monotonic()
    assert recorder.first_sound_time() is None and recorder.last_sound_time() is None
    assert isinstance(recorder.missed_periods, int) and isinstance(recorder.xruns, int)


def test_connect_without_match_connects_nothing(recorder: AudioRecorder) -> None:
    assert recorder.connect("no-such-client:") == []


def test_bad_arguments(jack_server: JackServer) -> None:
    with pytest.raises(ValueError, match="channels"):
        AudioRecorder(jack_server.name, channels=0)
    with pytest.raises(ValueError, match="max_seconds"):
        AudioRecorder(jack_server.name, max_seconds=0)


def test_close_is_idempotent_and_keeps_recording(jack_server: JackServer) -> None:
    rec = AudioRecorder(jack_server.name, client_name="aiband-audio-rec-2", channels=1)
    try:
        assert rec.channels == 1 and rec.samplerate == jack_server.rate
        assert rec.wait_until(time.monotonic() + 0.02)
    finally:
        rec.close()
    rec.close()
    audio, _ = rec.audio()
    assert audio.shape[1] == 1 and len(audio) > 0
    with pytest.raises(AudioRecorderError, match="closed"):
        rec.connect("system:")
