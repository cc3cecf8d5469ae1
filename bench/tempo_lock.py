#!/usr/bin/env python3
"""Tempo-lock benchmark: the daemon against a simulated host, recorded from a real JACK server.

What it does (issue 2, item 8):
  * starts a private JACK server (dummy driver, 48 kHz, period 64) and the
    daemon as its own process (``ai-band run``, JACK MIDI API);
  * a simulated DAW host (ai_band.host) sends ``/band/transport``
    over UDP to 127.0.0.1 at 25 Hz; every message carries the ppq of its
    nominal time but is sent with +/-10 ms uniform jitter;
  * generates a job (humanize 0, swing 0: every note on the 16th grid),
    arms it while the host plays, holds 120 bpm, changes tempo, relocates,
    then stops the host;
  * records every port with a frame-accurate JACK MIDI recorder and compares
    each note-on with the host's exact 16th-note grid.

Recorders (``--recorder``): ``cycle`` (the default, issue 15 item 11) is
``bench/cycle_recorder.py``, written apart from the daemon's code, which times
every period from the server's own cycle times (``jack_get_cycle_times``) and
keeps the server's timeline, so that a late note can be matched with the
server's overruns; ``project`` is ``ai_band/testing/recorder.py``, which
estimates period starts from its callbacks' clock reads the way the daemon's
client does.  ``--realtime`` runs ``jackd -R`` (SCHED_FIFO), as studios run
JACK; the default is the test set-up's ``--no-realtime``.

Figures: median phase error (signed, ms), p99 of |deviation - median|, the
grid after the tempo change (from one beat after it), the first note of the
armed job (at the bar the daemon armed it for) against the host bar line,
the latest note-on after the stop, hanging notes, and notes lost: every note
the host position called for must be recorded, except those the daemon wrote
into periods the recorder itself missed, or that a late recorder callback
missed by reading the daemon's buffers while they were being written (both
counted apart, frame-exactly from the daemon's write log), and no note
recorded twice.
Exit code 1 if a target is missed.

Usage: python -m bench.tempo_lock [--seconds 40] [--render-load] [--daemon-config ai-band.toml]
       [--recorder cycle|project] [--realtime] [--json bench/results/tempo_lock.json]
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path


from bench.cycle_recorder import CycleRecorderProcess
from bench.machine import machine_name
from ai_band.testing.daemonproc import DaemonProcess
from ai_band.host import HostSimulator, OscClient
from ai_band.testing.jackserver import JackServer
from ai_band.testing.recorder import sounding_notes
from ai_band.testing.recorder_process import RecorderProcess
from ai_band.generate.pipeline import generate
from ai_band.request import KNOWN_PARTS, parse_request

TARGETS = {
    "p99_dev_ms": 1.5,
    "median_phase_ms": 2.0,
    "after_tempo_p99_dev_ms": 1.5,
    "first_note_from_bar_ms": 1.5,
    "latest_note_on_after_stop_ms": 30.0,
    "hanging_notes": 0,
}

#: A group partly recorded is the recorder's torn read only if the daemon's
#: callback before the one that wrote it ended at least this long (µs) before
#: the cycle began (else a reader woken by that end may have read early).
TORN_READ_MIN_LEAD_US = 100.0

#: A note-on this much (ms) later than the run's median phase counts as late
#: in the lateness breakdown (``late_notes``).
LATE_MS = 0.75

#: A late note is explained by a server overrun if it was due between this
#: long (s) before the old timeline's end and the new timeline's start.
OVERRUN_MARGIN_S = 0.0014

#: A missing note's write is looked for between the notes recorded this long
#: (seconds) before and after it was due: 16th notes are >= 107 ms apart here.
BRACKET_S = 0.02


def late_note_causes(late_notes: list[dict], writes: list | None, callbacks: list, late_groups: list[dict],
                     period: int) -> dict[str, int]:
    """Why each late note went out late, from the server's record and the daemon's own logs.

    Args:
        late_notes: the run's ``late_notes`` (each with ``t`` recorded,
            ``late_ms``, ``frame``, ``port``, ``pitch``, ``server_overrun`` and
            ``wake_minus_start_us``), updated in place with ``cause`` and the
            daemon's write (``written_frame``, ``write_callback``).
        writes: the daemon's ``(frame, port, pitch)`` note-on writes, or None.
        callbacks: the daemon's writing callbacks ``(last_frame_time, frames
            since the cycle began when it started, µs its predecessor ended
            before the cycle began, ended after the next cycle began)``.
        late_groups: the daemon's groups handed to the JACK thread > 0.5 ms
            after their deadline (``/band/status``).
        period: frames per period.

    Returns:
        Count per cause, checked in this order: ``server_overrun`` (due while
        the server's timeline jumped: no frame existed for it);
        ``daemon_handed_over_late`` (the playback thread handed the group to the
        JACK thread after its deadline); ``daemon_callback_late`` (the daemon's
        callback that wrote it ended after the next cycle had begun, so
        readers took it a cycle later: the Python callback waited for the GIL
        or a CPU); ``server_clock_lag`` (on time when timed from the driver's
        wake-up stamp: the server's loop lagged its own driver, JACK2 1.9.21
        after an overrun); ``recorded_later_than_written`` (read a period or
        more after the frame written); ``written_late`` (the rest: written at
        a later frame than due by a callback that ran in time); ``unknown``
        (no write found).
    """
    by_note: dict[tuple[str, int], list[int]] = {}
    for frame, port, pitch in writes or ():
        by_note.setdefault((port.split(":")[-1], pitch), []).append(frame)
    for v in by_note.values():
        v.sort()
    bases = [c[0] for c in callbacks]
    counts = dict.fromkeys(("server_overrun", "daemon_handed_over_late", "daemon_callback_late", "server_clock_lag",
                            "recorded_later_than_written", "written_late", "unknown"), 0)
    for note in late_notes:
        due_s = note["t"] - note["late_ms"] / 1000.0
        frame = note.get("frame")
        frames = by_note.get((note["port"].split(":")[-1], note["pitch"]), [])
        i = bisect.bisect_right(frames, frame) - 1 if frame is not None else -1
        written = frames[i] if i >= 0 and frame - frames[i] <= 8 * period else None
        callback = None
        if written is not None:
            k = bisect.bisect_right(bases, written) - 1
            callback = callbacks[k] if k >= 0 and written - bases[k] < period else None
        note["written_frame"], note["write_callback"] = written, callback
        wake_us = note.get("wake_minus_start_us")
        if note.get("server_overrun"):
            cause = "server_overrun"
        elif any(abs(g["deadline_monotonic_s"] - due_s) < 0.002 and g["late_ms"] > LATE_MS for g in late_groups):
            cause = "daemon_handed_over_late"
        elif callback is not None and callback[3]:
            cause = "daemon_callback_late"
        elif wake_us is not None and abs(note["late_ms"] + wake_us / 1000.0) <= LATE_MS:
            cause = "server_clock_lag"
        elif written is None:
            cause = "unknown"
        elif frame - written >= period:
            cause = "recorded_later_than_written"
        else:
            cause = "written_late"
        note["cause"] = cause
        counts[cause] += 1
    return counts


def armed_at_ppq(client: OscClient) -> float | None:
    """The host ppq at which the daemon says the armed job starts (``/band/status``), or None."""
    for _ in range(20):
        client.send("/band/status")
        _, args = client.receive("/band/status", timeout=2.0)
        start_ppq = json.loads(args[0])["playback"].get("pending_start_ppq")
        if start_ppq is not None:
            return float(start_ppq)
        time.sleep(0.02)
    return None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


class RenderLoad:
    """Keeps the daemon rendering long songs to WAV/FLAC (with stems) while the benchmark plays.

    A second OSC client submits one render job at a time until stopped;
    each finished job's audio figures are read from its job.json.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        import threading

        self.target = target
        self.results: list[dict] = []
        self.busy_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="render-load", daemon=True)

    def _run(self) -> None:
        n = 0
        with OscClient(self.target) as client:
            while not self._stop.is_set():
                n += 1
                request_id = f"load-{n}"
                t0 = time.monotonic()
                client.send("/band/generate", "id", request_id, "chords", "| C | Am7 | Dm7 G7 | Cmaj7 |",
                            "style", "funk", "bars", 64, "parts", ",".join(KNOWN_PARTS),
                            "render", "wav,flac", "stems", 1, "seed", n)
                try:
                    _, files = client.wait_job(request_id, timeout=120)
                except (TimeoutError, RuntimeError) as exc:
                    self.results.append({"error": str(exc)})
                    continue
                self.busy_s += time.monotonic() - t0
                meta = json.loads(Path(files["job"]).read_text())
                self.results.append(meta.get("audio", {}))

    def start(self) -> None:
        """Start submitting render jobs."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the job in progress."""
        self._stop.set()
        self._thread.join(150)


def run(seconds: float, jitter_ms: float, rate_hz: float, style: str, render_load: bool = False,
        daemon_config: Path | None = None, dump_notes: Path | None = None,
        jack_realtime: bool = False, recorder: str = "cycle") -> dict:
    """Run the scenario (optionally with renders running all along); return the figures.

    ``recorder`` is ``"cycle"`` (:mod:`bench.cycle_recorder`, timed from the
    server's cycle times) or ``"project"`` (:mod:`ai_band.testing.recorder`).
    """
    if recorder not in ("cycle", "project"):
        raise ValueError(f"recorder must be 'cycle' or 'project', got {recorder!r}")
    recorder_class = CycleRecorderProcess if recorder == "cycle" else RecorderProcess
    load_before = os.getloadavg()
    phase_a_s = seconds * 0.5
    phase_b_s = seconds * 0.3
    phase_c_s = seconds * 0.2
    request = {"id": "bench", "chords": "| C | Am | F | G |", "style": style, "bpm": 120,
               "humanize": 0, "swing": 0, "seed": 11, "bars": 4}
    arrangement = generate(parse_request(request))
    off_grid = [n for p in arrangement.parts for n in p.notes if abs(n.start_ppq * 4 - round(n.start_ppq * 4)) > 1e-9]
    assert not off_grid, "benchmark needs an arrangement on the 16th grid"
    expected = {(p.name, round(n.start_ppq, 6), n.pitch) for p in arrangement.parts for n in p.notes}

    with tempfile.TemporaryDirectory() as out, JackServer(realtime=jack_realtime) as jack:
        env = jack.env()
        os.environ["JACK_DEFAULT_SERVER"] = jack.name
        write_log = Path(out) / "jack-writes.json"
        extra = ("--config", str(daemon_config)) if daemon_config else ()
        extra += ("--jack-write-log", str(write_log))
        with DaemonProcess(Path(out), env=env, extra_args=extra) as daemon, recorder_class(jack.name, "ai-band", count=len(KNOWN_PARTS)) as rec:
            target = ("127.0.0.1", daemon.port)
            with HostSimulator(target, rate_hz=rate_hz, jitter_ms=jitter_ms, seed=5) as host, OscClient(target) as client:
                client.send("/band/generate", *[x for kv in request.items() for x in kv])
                job_id, _ = client.wait_job("bench")
                load = RenderLoad(target) if render_load else None
                if load is not None:
                    load.start()
                    time.sleep(1.0)  # the render workers start and load the SoundFont
                clock = host.clock
                host.play()
                time.sleep(2.0)  # let the clock model fill its window before arming
                client.send("/band/play", job_id)
                play_sent_s = time.monotonic()
                arm_ppq = armed_at_ppq(client)
                time.sleep(phase_a_s - (time.monotonic() - play_sent_s))
                host.set_tempo(140.0)
                time.sleep(phase_b_s)
                relocate_to = 4.0 * 37  # bar 38
                host.relocate(relocate_to)
                time.sleep(phase_c_s)
                stop_s = time.monotonic()
                host.stop()
                time.sleep(1.0)
                if load is not None:
                    load.stop()
                client.send("/band/status")
                _, status_args = client.receive("/band/status", timeout=2.0)
                sent_log = host.sent()
            status = json.loads(status_args[0])
            events = rec.events()
            stats = rec.stats()
            periods = rec.periods() if isinstance(rec, CycleRecorderProcess) else []
            xruns, missed = stats["xruns"], stats["missed_periods"]
            missed_spans = stats["missed_spans_s"]
            missed_frames = stats["missed_frame_ranges"]
            code, stop_took = daemon.terminate()
            jackd_log = jack.output()
            try:
                write_data = json.loads(write_log.read_text())
                writes, write_callbacks = write_data["note_ons"], write_data.get("callbacks", [])
                late_log = write_data.get("late", [])
                gc_log = write_data.get("gc", [])
            except (OSError, ValueError, KeyError):
                writes, write_callbacks = None, []  # the daemon wrote no log: the time-based rule only
                late_log, gc_log = [], []

    note_ons = [e for e in events if e.is_note_on]
    changes = clock.changes

    def segment(t: float):
        current = changes[0]
        for ch in changes:
            if ch.time_s <= t:
                current = ch
        return current

    rows = []
    for e in note_ons:
        seg = segment(e.time_s)
        if not seg.playing:
            rows.append({"t": e.time_s, "after_stop": True, "port": e.source_port, "pitch": e.data[1]})
            continue
        ppq = seg.ppq_at(e.time_s)
        grid = round(ppq * 4.0) / 4.0
        grid_time = seg.time_s + (grid - seg.ppq) * 60.0 / seg.bpm
        rows.append({"t": e.time_s, "ppq": ppq, "grid": grid, "dev_ms": (e.time_s - grid_time) * 1000.0,
                     "seg": seg.kind, "seg_t": seg.time_s, "bpm": seg.bpm, "port": e.source_port, "pitch": e.data[1],
                     "frame": e.frame, "wake_us": getattr(e, "wake_minus_start_us", None)})

    playing_rows = [r for r in rows if not r.get("after_stop")]
    # The run never plays a host position twice, so a note recorded twice at
    # one grid position was written twice (or read twice).
    times_by_note: dict[tuple[str, int, float], list[float]] = {}
    for r in playing_rows:
        times_by_note.setdefault((r["port"], r["pitch"], r["grid"]), []).append(r["t"])
    duplicates = [{"port": k[0], "pitch": k[1], "ppq": k[2], "t": v} for k, v in times_by_note.items() if len(v) > 1]
    if arm_ppq is None and playing_rows:  # the daemon did not say: the first note recorded
        arm_ppq = min(playing_rows, key=lambda r: r["t"])["grid"]
    arm_ppq = arm_ppq or 0.0
    first = min((r for r in playing_rows if r["seg"] == "play" and r["grid"] == arm_ppq),
                key=lambda r: r["t"], default=None)

    def in_recorder_gap(t: float, late_s: float = 0.0) -> bool:
        """Whether a note due at ``t`` and handed to JACK ``late_s`` after that fell in a period the recorder missed.

        A group the daemon handed over late is written in the first period
        after the hand-over, so the recorder's gap is looked for there.
        """
        t_written = t + late_s
        return any(start - 0.002 <= t_written <= end + 0.002 for start, end in missed_spans)

    # Groups the daemon sent more than 0.5 ms late, by deadline (its clock model
    # is within a millisecond of the host's: 16th notes are 107-125 ms apart).
    late_groups = status["playback"].get("late_groups", [])

    # Frame-exact, when the daemon logged the frame of every note-on its JACK
    # client wrote: a missing note was written into a period the recorder
    # missed, or written where the recorder read (lost after the write), or
    # never written.  A time maps to a frame through the nearest recorded note;
    # the note's write is looked for between the frames of the notes recorded
    # at least BRACKET_S before and after it.  Not within a fixed distance of
    # that mapping: the timeline can re-anchor by tens of milliseconds between
    # two recorded groups (seen: 53 ms within half a second, and a write 35 ms
    # of frames before the interpolated frame).
    anchors = sorted((e.time_s, e.frame) for e in note_ons)
    anchor_times = [a[0] for a in anchors]
    writes_by_note: dict[tuple[str, int], list[int]] = {}
    for frame, port, pitch in writes or ():
        writes_by_note.setdefault((port.split(":")[-1], pitch), []).append(frame)

    def written_frame(part: str, pitch: int, t: float) -> int | None:
        if not anchors:
            return None
        at = bisect.bisect_left(anchor_times, t)
        i = min(range(max(0, at - 1), min(len(anchors), at + 1)), key=lambda k: abs(anchors[k][0] - t))
        guess = anchors[i][1] + round((t - anchors[i][0]) * jack.rate)
        before = bisect.bisect_right(anchor_times, t - BRACKET_S) - 1
        after = bisect.bisect_left(anchor_times, t + BRACKET_S)
        lo = anchors[before][1] if before >= 0 else guess - BRACKET_S * jack.rate
        hi = anchors[after][1] if after < len(anchors) else guess + BRACKET_S * jack.rate
        near = [f for f in writes_by_note.get((part, pitch), ()) if lo < f < hi]
        return min(near, key=lambda f: abs(f - guess)) if near else None

    callback_bases = [c[0] for c in write_callbacks]

    def write_callback(frame: int) -> dict | None:
        # The daemon's callback that wrote ``frame``: its period starts at or before it.
        i = bisect.bisect_right(callback_bases, frame) - 1
        if i < 0 or frame - callback_bases[i] >= 4096:
            return None
        base, since_start, lead_us, late_end = write_callbacks[i]
        return {"frame_time": base, "frames_since_cycle_start": since_start,
                "previous_end_before_cycle_us": lead_us, "ended_after_next_cycle_began": late_end}

    recorded_frames = {e.frame for e in note_ons}
    written_frames = sorted({frame for frame, _port, _pitch in writes or ()})

    def torn_recorder_read(callback: dict | None) -> bool:
        # The recorder read the daemon's port buffers while the daemon's
        # callback was writing them: some of that callback's note-ons were
        # recorded at their frames, others not.  A reader in step with JACK
        # reads a client's buffers only after the client's callback has
        # finished, all or nothing; one woken by the daemon's previous callback
        # finishing late (the case the daemon holds for) is ruled out when that
        # callback ended well before this cycle began.  What remains is a
        # recorder callback running late, as the recorder's missed periods
        # right before such reads show: the recorder's loss, not the daemon's.
        if callback is None or callback["previous_end_before_cycle_us"] < TORN_READ_MIN_LEAD_US:
            return False
        base = callback["frame_time"]
        lo = bisect.bisect_left(written_frames, base)
        hi = bisect.bisect_left(written_frames, base + jack.period)
        return any(f in recorded_frames for f in written_frames[lo:hi])

    def in_missed_frames(frame: int) -> bool:
        return any(first <= frame < after for first, after in missed_frames)

    def group_lateness(t: float) -> dict | None:
        return min((g for g in late_groups if abs(g["deadline_monotonic_s"] - t) < 0.02),
                   key=lambda g: abs(g["deadline_monotonic_s"] - t), default=None)
    # Steady state: skip one beat after every transport change (start, tempo, relocation).
    def settled(r: dict) -> bool:
        return r["t"] - r["seg_t"] >= 60.0 / r["bpm"]

    # The scenario: steady tempo and the tempo change.  A relocation
    # restarts the clock model's smoothing, so it is reported on its own.
    steady = [r for r in playing_rows if settled(r) and r["seg"] != "relocate"]
    devs = [r["dev_ms"] for r in steady]
    median = statistics.median(devs) if devs else float("nan")
    abs_from_median = [abs(d - median) for d in devs]
    all_abs = [abs(r["dev_ms"] - median) for r in playing_rows]
    tempo_rows = [r for r in playing_rows if r["seg"] == "tempo"]
    tempo_settled = [abs(r["dev_ms"] - median) for r in tempo_rows if settled(r)]
    tempo_first_beat = [abs(r["dev_ms"] - median) for r in tempo_rows if not settled(r)]
    reloc_rows = [r for r in playing_rows if r["seg"] == "relocate"]
    reloc_settled = [abs(r["dev_ms"] - median) for r in reloc_rows if settled(r)]
    reloc_bar_s = 4 * 60.0 / 140.0
    reloc_2bars = [abs(r["dev_ms"] - median) for r in reloc_rows if r["t"] - r["seg_t"] >= 2 * reloc_bar_s]
    play_rows = [abs(r["dev_ms"] - median) for r in playing_rows if settled(r) and r["seg"] == "play"]

    # Locked to the host position: each note-on's (part, position in the loop, pitch) must exist.
    length = arrangement.length_ppq
    def position_matches(r: dict, seg_ppq: float, part: str) -> bool:
        pos = round((round(seg_ppq * 4) / 4 - arm_ppq) % length, 6)
        return (part, pos, r["pitch"]) in expected

    matched = 0
    mismatches = []
    for r in playing_rows:
        part = r["port"].split(":")[-1]
        if position_matches(r, r["ppq"], part):
            matched += 1
            continue
        # A note sent just as the host changed, before the message telling of
        # the change was sent (the host simulator sends it with its jitter),
        # belongs to the position the host had until then.
        prev = [c for c in changes if c.time_s < r["seg_t"]]
        told_s = min((m.send_time_s for m in sent_log if m.reason != "periodic" and m.nominal_time_s >= r["seg_t"] - 1e-6),
                     default=r["seg_t"])
        if (prev and prev[-1].playing and r["t"] < max(told_s, r["seg_t"]) + 0.002
                and position_matches(r, prev[-1].ppq_at(r["t"]), part)):
            matched += 1
            continue
        mismatches.append({"part": part, "pitch": r["pitch"], "ppq": round(r["ppq"], 4), "seg": r["seg"],
                           "since_change_ms": round((r["t"] - r["seg_t"]) * 1000, 2),
                           "change_sent_after_ms": round((told_s - r["seg_t"]) * 1000, 2)})
    after_stop = [(r["t"] - stop_s) * 1000.0 for r in rows if r["t"] > stop_s]

    # Nothing lost: every note of the arrangement the host's positions called
    # for (from one beat after each change to 50 ms before the next) was
    # recorded.  One missing where the recorder itself missed periods cannot
    # be told from a note the daemon lost: those are counted apart.
    by_position: dict[float, list[tuple[str, int]]] = {}
    for part, pos, pitch in expected:
        by_position.setdefault(pos, []).append((part, pitch))
    recorded = {(r["port"].split(":")[-1], r["grid"], r["pitch"]) for r in playing_rows}
    expected_count = 0
    missing = []
    for seg, nxt in zip(changes, changes[1:]):
        if not seg.playing:
            continue
        beat_s = 60.0 / seg.bpm
        lo_ppq = seg.ppq_at(seg.time_s + beat_s)
        if seg.kind == "play":
            lo_ppq = max(lo_ppq, arm_ppq)
        hi_ppq = seg.ppq_at(nxt.time_s - 0.05)
        grid = math.ceil(lo_ppq * 4.0) / 4.0
        while grid <= hi_ppq:
            for part, pitch in by_position.get(round((grid - arm_ppq) % length, 6), ()):
                expected_count += 1
                if (part, grid, pitch) not in recorded:
                    t = seg.time_s + (grid - seg.ppq) * beat_s
                    late = group_lateness(t)
                    dropped = bool(late and late["note_ons_dropped"])
                    late_s = late["late_ms"] / 1000.0 if late else 0.0
                    entry = {"part": part, "pitch": pitch, "ppq": grid, "t": t,
                             "group_late_ms": late["late_ms"] if late else None, "dropped_by_daemon": dropped}
                    if writes is None:
                        entry["in_recorder_gap"] = not dropped and in_recorder_gap(t, late_s)
                    else:
                        frame = written_frame(part, pitch, t)
                        entry["written_frame"] = frame
                        entry["in_recorder_gap"] = frame is not None and in_missed_frames(frame)
                        if frame is not None:
                            entry["write_callback"] = write_callback(frame)
                        entry["in_torn_recorder_read"] = (not entry["in_recorder_gap"]
                                                          and torn_recorder_read(entry.get("write_callback")))
                    missing.append(entry)
            grid += 0.25
    lost = [m for m in missing if not m["in_recorder_gap"] and not m.get("in_torn_recorder_read")]

    # Hanging notes: a note-off (or the release at a stop or relocation) that
    # was due inside a period the recorder missed cannot be seen either.
    durations = {(p.name, round(n.start_ppq, 6), n.pitch): n.duration_ppq for p in arrangement.parts for n in p.notes}
    by_key = {(r["port"], r["pitch"], r["t"]): r for r in rows if not r.get("after_stop")}
    sounding = sounding_notes(events)
    hanging_unobserved = []
    for (port, _channel, pitch), t_on in sounding.items():
        r = by_key.get((port, pitch, t_on))
        off_s = t_on + 4 * 60.0 / 120.0  # not a note of the arrangement: allow a bar
        if r is not None:
            pos = round((r["grid"] - arm_ppq) % length, 6)
            off_s = t_on + durations.get((port.split(":")[-1], pos, pitch), 4.0) * 60.0 / r["bpm"]
        off_s = min([off_s] + [c.time_s for c in changes if c.time_s > t_on]) + 0.05
        if any(start <= off_s and end >= t_on for start, end in missed_spans):
            hanging_unobserved.append((port, pitch))
    first_unobserved = first is None and any(m["ppq"] == arm_ppq and m["in_recorder_gap"] for m in missing)

    # Late notes against the server's own record (issue 15, item 11): the
    # cycle recorder keeps the server's timeline; where it jumps forward the
    # (non-realtime) server overran and lost that much time, and a note due in
    # it can only go out late.  jackd logs each overrun of its dummy driver too.
    overruns = [(t_s, jump_ms) for _frame, t_s, jump_ms in stats.get("timeline_jumps", ()) if jump_ms > 0]
    jackd_overruns_us = [int(m) for m in re.findall(r"XRun = (-?\d+) usec", jackd_log)]

    def overrun_at(due_s: float) -> tuple[float, float] | None:
        return next(((t_s, jump_ms) for t_s, jump_ms in overruns
                     if t_s - OVERRUN_MARGIN_S <= due_s <= t_s + jump_ms / 1000.0 + OVERRUN_MARGIN_S), None)

    late_notes = []
    for r in steady:
        late_ms = r["dev_ms"] - median
        if late_ms > LATE_MS:
            due_s = r["t"] - late_ms / 1000.0
            overrun = overrun_at(due_s)
            late_notes.append({"t": round(r["t"], 4), "late_ms": round(late_ms, 3), "port": r["port"], "pitch": r["pitch"],
                               "frame": r.get("frame"), "bpm": r["bpm"], "wake_minus_start_us": r.get("wake_us"),
                               "server_overrun": None if overrun is None else
                               {"from_due_ms": round((overrun[0] - due_s) * 1000.0, 3), "lost_ms": overrun[1]}})
    causes = late_note_causes(late_notes, writes, write_callbacks, late_groups, jack.period)
    # Where the server's own record shows its clock on time (its driver woke
    # within a period of the cycle start it gave), the timing is the daemon's.
    on_time = [abs(r["dev_ms"] - median) for r in steady
               if r.get("wake_us") is None or abs(r["wake_us"]) <= 1e6 * jack.period / jack.rate]
    late_in_overruns = [n for n in late_notes if n["server_overrun"]]
    late_elsewhere = [n for n in late_notes if not n["server_overrun"]]
    overrun_keys = {(n["t"], n["port"], n["pitch"]) for n in late_in_overruns}
    without_overruns = [abs(r["dev_ms"] - median) for r in steady
                        if (round(r["t"], 4), r["port"], r["pitch"]) not in overrun_keys]
    output_stats = status["playback"].get("output") or {}

    # The same notes timed from the driver's wake-up stamps instead of the
    # server's loop (cycle recorder only): JACK2 1.9.21's loop lags the
    # driver's schedule by up to a millisecond for seconds after an overrun
    # (docs/timing.md), and the stamp is the server's own record of when the
    # cycle began.  Deviations move by the stamp minus the loop's start.
    wake_basis = None
    if all(r.get("wake_us") is not None for r in steady) and steady:
        wdev = {id(r): r["dev_ms"] + r["wake_us"] / 1000.0 for r in playing_rows if r.get("wake_us") is not None}
        wmedian = statistics.median(wdev[id(r)] for r in steady)
        def wp99(rs: list[dict]) -> float:
            return round(percentile([abs(wdev[id(r)] - wmedian) for r in rs if id(r) in wdev], 99), 3)
        wake_basis = {"median_phase_ms": round(wmedian, 3), "p99_dev_ms": wp99(steady),
                      "steady_120bpm_p99_dev_ms": wp99([r for r in steady if r["seg"] == "play"]),
                      "after_tempo_p99_dev_ms": wp99([r for r in steady if r["seg"] == "tempo"]),
                      "late_notes": sum(1 for r in steady if wdev[id(r)] - wmedian > LATE_MS),
                      "early_notes": sum(1 for r in steady if wdev[id(r)] - wmedian < -LATE_MS)}

    figures = {
        "machine": machine_name(),
        "recorder": ("bench/cycle_recorder.py: periods timed by jack_get_cycle_times" if recorder == "cycle"
                     else "ai_band/testing/recorder.py: periods timed by its callbacks' clock reads"),
        "load_average_before_after": [round(x, 2) for x in load_before] + [round(x, 2) for x in os.getloadavg()],
        "jack": f"jackd {'--realtime -P 70' if jack_realtime else '--no-realtime'} -d dummy -r 48000 -p 64 (period 1.333 ms)",
        "transport": f"{rate_hz:g} Hz, +/-{jitter_ms:g} ms uniform send jitter, ppq stamped at nominal time",
        "note_ons": len(note_ons),
        "steady_note_ons": len(steady),
        "median_phase_ms": round(median, 3),
        "p50_dev_ms": round(percentile(abs_from_median, 50), 3),
        "p99_dev_ms": round(percentile(abs_from_median, 99), 3),
        "max_dev_ms": round(max(abs_from_median), 3) if abs_from_median else None,
        "signed_dev_p1_p99_ms": [round(percentile([d - median for d in devs], q), 3) for q in (1, 99)],
        "p99_dev_all_notes_ms": round(percentile(all_abs, 99), 3),
        "after_tempo_p99_dev_ms": round(percentile(tempo_settled, 99), 3),
        "after_tempo_first_beat_max_dev_ms": round(max(tempo_first_beat), 3) if tempo_first_beat else None,
        "steady_120bpm_p99_dev_ms": round(percentile(play_rows, 99), 3),
        "after_relocate_p99_dev_ms": round(percentile(reloc_settled, 99), 3),
        "after_relocate_2bars_p99_dev_ms": round(percentile(reloc_2bars, 99), 3),
        "armed_at_ppq": arm_ppq,
        "first_note_from_bar_ms": round(abs(first["dev_ms"] - median), 3) if first else None,
        "first_note_unobserved": first_unobserved,
        "first_note_delay_after_play_s": round(first["t"] - play_sent_s, 3) if first else None,
        "notes_matching_arrangement": f"{matched}/{len(playing_rows)}",
        "mismatches": mismatches[:10],
        "latest_note_on_after_stop_ms": round(max(after_stop), 3) if after_stop else 0.0,
        "note_ons_after_stop": len(after_stop),
        "notes_expected": expected_count,
        "notes_missing": len(missing),
        "notes_missing_in_recorder_gaps": sum(1 for m in missing if m["in_recorder_gap"]),
        "notes_missing_in_torn_recorder_reads": sum(1 for m in missing if m.get("in_torn_recorder_read")),
        "lost_notes_accounted": ("frame-exact: daemon's JACK write log against the recorder's missed frames"
                                 if writes is not None else "by time: recorder gaps around the due time"),
        "notes_lost_never_written": sum(1 for m in lost if m.get("written_frame", 0) is None),
        "notes_lost": lost[:10],
        "duplicate_notes": len(duplicates),
        "duplicates": duplicates[:10],
        "hanging_notes": len(sounding),
        "hanging_notes_off_in_recorder_gaps": len(hanging_unobserved),
        "recorder_xruns": xruns,
        "recorder_missed_periods": missed,
        "recorder_late_reads": stats["late_reads"],
        "recorder_partial_reads": stats.get("partial_reads"),
        "recorder_torn_reads": stats["torn_reads"],
        "daemon_late_dropped": status["playback"].get("late_dropped"),
        "daemon_max_late_ms": status["playback"].get("max_late_ms"),
        "daemon_groups_late_over_ms": status["playback"].get("late_over_ms"),
        "daemon_max_dropped_late_ms": status["playback"].get("max_dropped_late_ms"),
        "daemon_late_groups": late_groups,
        "daemon_retimed_groups": status["playback"].get("retimed_groups"),
        "daemon_output": status["playback"].get("output"),
        "daemon_late_messages": output_stats.get("late_messages"),
        "daemon_late_on_arrival": output_stats.get("late_on_arrival"),
        # (period frame time, status, data 1, lateness us, frames since cycle start, held, skipped, locked, ns)
        "daemon_late_log": late_log,
        # The daemon's garbage collections: (generation, start ns, us, collected); those over 1 ms
        # and those in the 50 ms before a late message.
        "daemon_gc_count": len(gc_log),
        "daemon_gc_over_1ms": [g for g in gc_log if g[2] > 1000.0],
        "daemon_gc_before_late": sorted({tuple(g) for g in gc_log for e in late_log
                                         if len(e) > 8 and 0 <= e[8] - g[1] <= 50_000_000}),
        "daemon_held_periods": output_stats.get("held_periods"),
        "daemon_skipped_periods": output_stats.get("skipped_periods"),
        "daemon_jack_thread": output_stats.get("process_thread"),
        "jackd_logged_overruns": len(jackd_overruns_us),
        "jackd_logged_overrun_max_us": max(jackd_overruns_us, default=0),
        "server_timeline_jumps_forward": len(overruns),
        "server_timeline_lost_ms_max": max((j for _t, j in overruns), default=0.0),
        "late_notes_over_ms": LATE_MS,
        "late_notes": len(late_notes),
        "late_notes_due_in_server_overruns": len(late_in_overruns),
        "late_note_causes": causes,
        # The simulated host is an ordinary process: on a loaded machine its
        # sends go out later than its jitter allows, and the clock model follows.
        "host_sends_beyond_jitter": sum(1 for m in sent_log if (m.send_time_s - m.nominal_time_s) * 1000.0 > jitter_ms + 0.5),
        "host_send_late_max_ms": round(max(((m.send_time_s - m.nominal_time_s) * 1000.0 for m in sent_log), default=0.0), 1),
        "late_notes_elsewhere": late_elsewhere[:20],
        "early_notes": sum(1 for r in steady if r["dev_ms"] - median < -LATE_MS),
        "p99_dev_without_overrun_notes_ms": round(percentile(without_overruns, 99), 3),
        "p99_dev_where_server_clock_on_time_ms": round(percentile(on_time, 99), 3),
        "timed_from_driver_wakeups": wake_basis,
        "steady_notes_where_server_clock_off": len(steady) - len(on_time),
        "recorder_reanchored_reads": stats.get("reanchored_reads"),
        "server_wake_minus_cycle_start_us_p1_p50_p99": stats.get("wake_minus_start_us_p1_p50_p99"),
        "recorder_thread": stats.get("process_thread"),
        "jack_clock_offset_drift_ms": stats.get("clock_offset_drift_ms"),
        "daemon_exit_code": code,
        "daemon_stop_s": round(stop_took, 3),
    }
    if render_load:
        done = [r for r in load.results if "engine" in r]
        ratios = sorted(r["realtime_ratio"] for r in done)
        figures.update({
            "render_load": "8-part 64-bar funk songs to WAV+FLAC with stems, one after another, all along",
            "renders_completed": len(done),
            "render_errors": len(load.results) - len(done),
            "render_engine": done[0]["engine"] if done else None,
            "render_realtime_ratio_median": ratios[len(ratios) // 2] if ratios else None,
            "render_loudness_lufs": [r["loudness_lufs"] for r in done],
            "render_true_peak_dbtp_max": max((r["true_peak_dbtp"] for r in done), default=None),
            "render_busy_s": round(load.busy_s, 1),
        })
    checks = {
        "p99_dev_ms": figures["p99_dev_ms"] <= TARGETS["p99_dev_ms"],
        "median_phase_ms": abs(figures["median_phase_ms"]) <= TARGETS["median_phase_ms"],
        "after_tempo_p99_dev_ms": figures["after_tempo_p99_dev_ms"] <= TARGETS["after_tempo_p99_dev_ms"],
        "first_note_from_bar_ms": (first_unobserved if figures["first_note_from_bar_ms"] is None
                                   else figures["first_note_from_bar_ms"] <= TARGETS["first_note_from_bar_ms"]),
        "latest_note_on_after_stop_ms": figures["latest_note_on_after_stop_ms"] <= TARGETS["latest_note_on_after_stop_ms"],
        "hanging_notes": figures["hanging_notes"] == len(hanging_unobserved),
        "notes_match_arrangement": matched == len(playing_rows) and matched > 0,
        "no_notes_lost": not lost and expected_count > 0,
        "no_duplicate_notes": not duplicates,
    }
    figures["checks"] = checks
    figures["pass"] = all(checks.values())
    if dump_notes is not None:
        sent = [{"nominal_time_s": m.nominal_time_s, "send_time_s": m.send_time_s, "reason": m.reason,
                 "state": dataclasses.asdict(m.state)} for m in sent_log]
        dump_notes.write_text(json.dumps({"median_ms": median, "rows": rows, "sent": sent,
                                          "recorder_missed_spans_s": missed_spans, "late_groups": late_groups,
                                          "recorder_missed_frame_ranges": missed_frames, "daemon_note_on_writes": writes,
                                          "daemon_write_callbacks": write_callbacks,
                                          "late_notes": late_notes, "server_overruns": overruns,
                                          "jackd_overruns_us": jackd_overruns_us, "recorder_periods": periods}))
    return figures


def main() -> int:
    """Run the benchmark, print the figures, optionally save them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="length of the played part of the run")
    parser.add_argument("--jitter-ms", type=float, default=10.0)
    parser.add_argument("--rate-hz", type=float, default=25.0)
    parser.add_argument("--style", default="rock")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--daemon-config", type=Path, help="TOML config for the daemon (default: built-in defaults)")
    parser.add_argument("--render-load", action="store_true",
                        help="keep the daemon rendering long songs to WAV/FLAC all along (issue 4)")
    parser.add_argument("--dump-notes", type=Path, help="write every recorded note-on with its deviation here (JSON)")
    parser.add_argument("--realtime", "--jack-realtime", dest="jack_realtime", action="store_true",
                        help="run jackd -R (SCHED_FIFO 70), as studios run JACK, instead of the test set-up's --no-realtime")
    parser.add_argument("--recorder", choices=("cycle", "project"), default="cycle",
                        help="cycle: bench/cycle_recorder.py, timed from the server's cycle times (default); "
                             "project: ai_band/testing/recorder.py")
    args = parser.parse_args()
    figures = run(args.seconds, args.jitter_ms, args.rate_hz, args.style, args.render_load, args.daemon_config,
                  args.dump_notes, args.jack_realtime, args.recorder)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        if key != "checks":
            print(f"{key:<{width}}  {value}")
    for key, ok in figures["checks"].items():
        print(f"check {key:<{width}}  {'ok' if ok else 'FAILED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
