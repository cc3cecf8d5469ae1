"""Previewer: audio preview through PortAudio on a private JACK server, captured by AudioRecorder.

The Previewer runs in a child process, as it does in the daemon. In the
test process, PortAudio's JACK client (open from ``import sounddevice`` until
PortAudio terminates) would pin libjack to this module's server, and later
modules' clients would join it (see ai_band/testing/jackserver.py); both
Python JACK callbacks would also share one GIL.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pytest
from scipy.signal import chirp, correlate, resample_poly

from conftest import DropoutGuard
from ai_band.testing.audio_recorder import AudioRecorder
from ai_band.testing.jackserver import JackServer
from ai_band.preview.player import Previewer

pytestmark = pytest.mark.jack

MIX_RATE = 44100
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: |first sound + output latency - start_at_s| measured 0.01-0.05 ms on an idle
#: machine (JACK dummy server, 48 kHz / 64 frames), 1.5-5 ms at worst with one core
#: kept busy (periods the server skips around the start). Failures with xruns rerun.
START_TOLERANCE_S = 0.005


# -- the Previewer in a child process ------------------------------------------


def _serve(conn: Connection) -> None:
    from ai_band.preview.player import Previewer

    try:  # as for jackd (JackServer): libjack's process thread, created later, inherits it
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        pass
    previewer = Previewer()
    while True:
        cmd, args = conn.recv()
        try:
            if cmd == "open":
                previewer.open()
                result: Any = previewer.status()
            elif cmd == "play":
                t0 = time.perf_counter()
                scheduled = previewer.play(*args)
                result = (scheduled, time.perf_counter() - t0)
            elif cmd == "stop":
                result = time.monotonic()
                previewer.stop()
            elif cmd == "status":
                result = previewer.status()
            elif cmd == "close":
                previewer.close()
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
            conn.send(("ok", result))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class PreviewProcess:
    """A :class:`Previewer` in a spawned child; the environment (JACK server) is inherited."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()

    def call(self, cmd: str, *args: object, timeout_s: float = 10.0) -> Any:
        self._conn.send((cmd, args))
        if not self._conn.poll(timeout_s):
            raise TimeoutError(f"previewer process did not answer {cmd!r} in {timeout_s} s")
        kind, result = self._conn.recv()
        if kind == "error":
            raise RuntimeError(result)
        return result

    def close(self) -> None:
        try:
            self.call("close")
        finally:
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()


@pytest.fixture(scope="module")
def preview(jack_server: JackServer) -> Iterator[PreviewProcess]:
    proc = PreviewProcess()
    try:
        proc.call("open", timeout_s=30.0)  # spawn, imports, PortAudio: ~1 s
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="module")
def module_recorder(jack_server: JackServer, preview: PreviewProcess) -> Iterator[AudioRecorder]:
    with AudioRecorder(jack_server.name) as rec:
        client = preview.call("status")["jack_client"]
        assert rec.connect(f"{client}:") == [f"{client}:out_0", f"{client}:out_1"]
        yield rec


@pytest.fixture
def recorder(module_recorder: AudioRecorder, preview: PreviewProcess) -> AudioRecorder:
    preview.call("stop")
    time.sleep(0.03)  # let a previous test's fade finish
    module_recorder.clear()
    return module_recorder


# -- signals and measures --------------------------------------------------------


def _seconds(n: float, rate: int = MIX_RATE) -> np.ndarray:
    return np.arange(round(n * rate)) / rate


def make_mix(seconds: float = 1.0) -> np.ndarray:
    """Stereo float32 at 44.1 kHz: a chirp on the left, two sines on the right."""
    t = _seconds(seconds)
    left = 0.5 * chirp(t, 200, seconds, 4000)
    right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    return np.stack([left, right], axis=1).astype(np.float32)


def sine(freq_hz: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    x = amplitude * np.sin(2 * np.pi * freq_hz * _seconds(seconds))
    return np.stack([x, x], axis=1).astype(np.float32)


def peak_correlation(recorded: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Normalised cross-correlation peak of a reference inside a recording, and its lag (frames)."""
    xc = correlate(recorded, reference, mode="valid", method="fft")
    energy = np.convolve(recorded.astype(np.float64) ** 2, np.ones(len(reference)), mode="valid")
    norm = np.sqrt(energy * float(np.dot(reference, reference))) + 1e-12
    score = xc / norm
    lag = int(np.argmax(score))
    return float(score[lag]), lag


def chunk_scores(recorded: np.ndarray, expected: np.ndarray, lag: int, rate: int) -> np.ndarray:
    """Normalised correlation peak of each 100 ms chunk of ``expected``, searched within
    +-10 ms of where it belongs (``lag`` + its offset) in ``recorded``.

    A period the dummy server skips shifts the rest of a recording by 64 frames
    and a period the recorder misses leaves a hole: the whole-buffer peak then
    drops, while every chunk away from the dropout still matches.
    """
    chunk, search = round(0.1 * rate), round(0.01 * rate)
    scores = []
    for k in range(0, len(expected) - chunk + 1, chunk):
        lo = max(0, lag + k - search)
        part = recorded[lo:lag + k + chunk + search]
        ok = len(part) >= chunk
        scores.append(peak_correlation(part, expected[k:k + chunk])[0] if ok else 0.0)
    return np.array(scores)


def tone_level(x: np.ndarray, freq_hz: float, rate: int) -> float:
    """Amplitude of the ``freq_hz`` sine in a mono segment: median over 20 ms Hann windows.

    Short windows, because a dropout shifts the rest of a recording (its phase)
    and a single long DFT would then cancel itself.
    """
    n = round(0.02 * rate)
    window = np.hanning(n)
    basis = window * np.exp(-2j * np.pi * freq_hz * np.arange(n) / rate)
    levels = [2 * abs(np.dot(x[k:k + n], basis)) / window.sum()
              for k in range(0, len(x) - n + 1, n)]
    return float(np.median(levels))


def segment(recorder: AudioRecorder, t0: float, t1: float) -> np.ndarray:
    """Recorded frames between CLOCK_MONOTONIC t0 and t1 (approximate, see AudioRecorder.audio)."""
    audio, start = recorder.audio()
    rate = recorder.samplerate
    return audio[max(0, round((t0 - start) * rate)):max(0, round((t1 - start) * rate))]


# -- tests ---------------------------------------------------------------------------


def test_opens_on_jack(preview: PreviewProcess, jack_server: JackServer) -> None:
    status = preview.call("status")
    assert status["host_api"] == "JACK Audio Connection Kit"
    assert status["device"] == "system"
    assert status["sample_rate"] == jack_server.rate
    assert status["jack_client"] == "ai-band-preview"
    assert status["playing"] is False


def test_plays_buffer_at_start_time(preview: PreviewProcess, recorder: AudioRecorder) -> None:
    mix = make_mix(1.0)
    lost_before = recorder.missed_periods + recorder.xruns
    with DropoutGuard(recorder, count_xruns=True):
        start_at = time.monotonic() + 0.5
        scheduled, call_s = preview.call("play", mix, MIX_RATE, start_at, "job-1")
        assert scheduled == start_at
        assert call_s < 0.05  # validation, 44.1 -> 48 kHz resampling, hand-over: 2-3 ms measured
        status = preview.call("status")
        assert status["playing"] is True and status["label"] == "job-1"
        assert recorder.wait_until(start_at + 1.1)
        status = preview.call("status")
        assert status["playing"] is False

        audio, _ = recorder.audio()
        assert np.abs(audio).max() > 0.1, "nothing reached the recorder"
        first = recorder.first_sound_time()
        assert first is not None
        # The recorder sees a period's output when the period starts; PortAudio's DAC
        # time adds the playback latency it reports (2 periods on the dummy server).
        error_s = first + status["latency_s"] - start_at
        assert abs(error_s) < START_TOLERANCE_S, f"first sound {error_s * 1e3:+.2f} ms off"
        expected = resample_poly(mix, recorder.samplerate, MIX_RATE, axis=0)
        window = segment(recorder, start_at - 0.05, start_at + 1.1)
        lost = recorder.missed_periods + recorder.xruns - lost_before
        for ch in (0, 1):
            score, lag = peak_correlation(window[:, ch], expected[:, ch])
            if lost == 0:
                assert score > 0.9, f"channel {ch}: correlation {score:.3f}"
            # Dropouts (lost periods, 10-200 per second on a busy machine) lower the
            # whole-buffer peak to 0.4-0.7 measured, and a few chunks (see chunk_scores).
            chunks = chunk_scores(window[:, ch], expected[:, ch], lag, recorder.samplerate)
            assert np.median(chunks) > 0.95, f"channel {ch}: chunk correlations {chunks.round(2)}"


def test_play_at_once_returns_its_start(preview: PreviewProcess, recorder: AudioRecorder) -> None:
    with DropoutGuard(recorder, count_xruns=True):
        scheduled, _ = preview.call("play", sine(440, 0.3), MIX_RATE, None, "now")
        assert recorder.wait_until(scheduled + 0.4)
        first = recorder.first_sound_time()
        assert first is not None
        # An estimate: the first frame of the next callback's buffer.
        error_s = first + preview.call("status")["latency_s"] - scheduled
        assert abs(error_s) < START_TOLERANCE_S, f"first sound {error_s * 1e3:+.2f} ms off"


def test_stop_silences_within_50_ms(preview: PreviewProcess, recorder: AudioRecorder) -> None:
    with DropoutGuard(recorder, count_xruns=True):
        start_at = time.monotonic() + 0.2
        preview.call("play", sine(440, 3.0), MIX_RATE, start_at, "long")
        time.sleep(max(0.0, start_at + 0.4 - time.monotonic()))
        stopped_at = preview.call("stop")
        preview.call("stop")  # idempotent
        assert recorder.wait_until(stopped_at + 0.3)
        status = preview.call("status")
        assert status["playing"] is False and status["position_s"] == 0.0
        last = recorder.last_sound_time()
        assert last is not None and last > start_at + 0.3
        # Measured 10-12 ms: the rest of the period, then the 10 ms fade.
        assert last - stopped_at < 0.05, f"sound {(last - stopped_at) * 1e3:.1f} ms after stop()"
        assert np.abs(segment(recorder, stopped_at + 0.05, stopped_at + 0.3)).max() == 0.0


def test_second_play_takes_over_at_its_start(
    preview: PreviewProcess, recorder: AudioRecorder,
) -> None:
    rate = recorder.samplerate
    with DropoutGuard(recorder, count_xruns=True):
        t0 = time.monotonic()
        preview.call("play", sine(440, 3.0), MIX_RATE, t0 + 0.2, "first")
        time.sleep(max(0.0, t0 + 0.5 - time.monotonic()))
        second_at = time.monotonic() + 0.3
        preview.call("play", sine(1000, 0.6, amplitude=0.4), MIX_RATE, second_at, "second")
        assert preview.call("status")["label"] == "first"  # sounds on until the second starts
        assert recorder.wait_until(second_at + 0.7)
        before = segment(recorder, second_at - 0.25, second_at - 0.01)[:, 0]
        after = segment(recorder, second_at + 0.02, second_at + 0.55)[:, 0]
        # 0.5 before, 0.4 after (a lost period removes 1.3 ms of a tone, a window at most).
        assert tone_level(before, 440, rate) > 0.4
        assert tone_level(before, 1000, rate) < 0.01
        assert tone_level(after, 440, rate) < 0.01
        assert tone_level(after, 1000, rate) > 0.3
        assert np.abs(segment(recorder, second_at + 0.65, second_at + 0.7)).max() == 0.0


def test_play_at_once_replaces_at_once(preview: PreviewProcess, recorder: AudioRecorder) -> None:
    rate = recorder.samplerate
    with DropoutGuard(recorder, count_xruns=True):
        preview.call("play", sine(440, 3.0), MIX_RATE, time.monotonic() + 0.1, "first")
        time.sleep(0.4)
        switched, _ = preview.call("play", sine(1000, 0.5, amplitude=0.4), MIX_RATE, None, "second")
        assert recorder.wait_until(switched + 0.6)
        after = segment(recorder, switched + 0.02, switched + 0.45)[:, 0]
        assert tone_level(after, 440, rate) < 0.01
        assert tone_level(after, 1000, rate) > 0.3


# -- errors (no JACK needed) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("audio", "rate", "start", "message"),
    [
        (np.zeros(100, np.float32), MIX_RATE, None, "shape"),
        (np.zeros((100, 1), np.float32), MIX_RATE, None, "shape"),
        (np.zeros((0, 2), np.float32), MIX_RATE, None, "shape"),
        (np.zeros((100, 2), np.int16), MIX_RATE, None, "float32"),
        (np.full((100, 2), np.nan, np.float32), MIX_RATE, None, "NaN"),
        ([[0.0, 0.0]], MIX_RATE, None, "numpy array"),
        (np.zeros((100, 2), np.float32), 500, None, "sample_rate"),
        (np.zeros((100, 2), np.float32), 44100.0, None, "sample_rate"),
        (np.zeros((100, 2), np.float32), MIX_RATE, float("nan"), "start_at_s"),
    ],
)
def test_bad_buffer_raises_value_error(audio: Any, rate: Any, start: Any, message: str) -> None:
    previewer = Previewer()  # validation comes before PortAudio is touched
    with pytest.raises(ValueError, match=message):
        previewer.play(audio, rate, start)
    assert previewer.status()["sample_rate"] == 0
    previewer.close()


def test_bad_latency_raises_value_error() -> None:
    with pytest.raises(ValueError, match="latency"):
        Previewer(latency="medium")


_NO_DEVICE_SCRIPT = """
import json, numpy as np
from ai_band.preview.player import Previewer, PreviewError
p = Previewer()
out = {}
try:
    p.play(np.zeros((4410, 2), np.float32), 44100)
except PreviewError as exc:
    out = {"type": type(exc).__name__, "code": exc.code, "message": str(exc)}
out["status"] = p.status()
p.close()
try:
    p.play(np.zeros((4410, 2), np.float32), 44100)
except PreviewError as exc:
    out["after_close"] = str(exc)
print(json.dumps(out))
"""


def test_no_device_raises_preview_error() -> None:
    env = dict(os.environ)
    env["JACK_DEFAULT_SERVER"] = f"aiband-none-{secrets.token_hex(4)}"
    env["JACK_NO_START_SERVER"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _NO_DEVICE_SCRIPT], env=env, capture_output=True, text=True,
        check=False, timeout=30, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["type"] == "PreviewError" and out["code"] == "no_audio_device"
    assert "no audio output device" in out["message"]
    assert env["JACK_DEFAULT_SERVER"] in out["message"]
    assert out["status"]["playing"] is False and out["status"]["sample_rate"] == 0
    assert "closed" in out["after_close"]


_SERVER_GONE_SCRIPT = """
import json, os, time
import numpy as np
from ai_band.testing.jackserver import JackServer
from ai_band.preview.player import Previewer, PreviewError
server = JackServer().start()
os.environ["JACK_DEFAULT_SERVER"] = server.name
p = Previewer()
p.play(np.zeros((44100, 2), np.float32), 44100)
server.stop()
time.sleep(0.3)
out = {}
try:
    p.play(np.zeros((4410, 2), np.float32), 44100)
except PreviewError as exc:
    out["error"] = str(exc)
t = time.monotonic()
p.close()
out["close_s"] = time.monotonic() - t
print(json.dumps(out))
"""


def test_jack_server_gone_raises_and_never_hangs() -> None:
    # PortAudio 19.6 waits forever in stop/close/terminate once its JACK server is
    # gone (sounddevice's exit handler included): the Previewer must not call them.
    done = subprocess.run(
        [sys.executable, "-c", _SERVER_GONE_SCRIPT], capture_output=True, text=True,
        check=False, timeout=30, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "JACK server went away" in out["error"]
    assert out["close_s"] < 0.1
