#!/usr/bin/env python3
"""JACK transport benchmark (issue 16 item 2): the band's note-ons against a timebase master's grid, in frames.

Set-up: a private JACK server (dummy driver, 48 kHz, period 64), the band's
playback as in the daemon (:class:`~ai_band.playback.outputs.jack.JackMidiClient`
with a ``drums`` port, the :class:`~ai_band.playback.scheduler.Scheduler`, the
``jack`` source :class:`~ai_band.sync.jack_transport.JackTransportSource`),
a timebase master (:class:`TimebaseMaster`, a JACK client of this process that
keeps a tempo and meter map and answers JACK's timebase callback from it, bar,
beat and tick truncated to the tick as Ardour does), and a frame-accurate
recorder in a process of its own (:class:`~ai_band.testing.recorder_process.RecorderProcess`).

The job is a one-bar pattern of 32nds.  The master rolls at 120 bpm, changes
tempo to 137 bpm (frames per 16th no longer whole), locates, loops a stretch
of two bars a few times, and stops.  Each recorded note-on's JACK frame is
mapped to the transport frame it fell on (the master's process callback logs
``JACK frame - transport frame`` in every rolling period) and compared with
the master's grid: the deviation is ``transport frame - exact frame of the
nearest 32nd`` (a real number: at 137 bpm a 32nd is 2627.74 frames), and
the pitch must be the one of that 16th in the bar.  Notes within
``--settle-ms`` after a start, locate or loop jump are reported apart (the
band learns of the jump when it happens and hands them over late).

Figures: median / p99 / max of |deviation| in frames over the steady notes,
the share on their grid frame and within one frame, for each run; the bound
is p99 <= 1 frame (issue 16 item 2).  Also: the same over the notes the
recorder read at the frame the band's write log says they were written
(recorder artifacts out), the recorder's xruns and missed periods, the JACK
output's late and held periods, the source's event counts.

Usage: python -m bench.sync_jack [--runs 3] [--seconds 30] [--realtime] [--json out.json]
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass

import jack

from bench.machine import machine_name
from ai_band.playback.output import NOTE_OFF, NOTE_ON
from bench.band_rig import BandRig
from ai_band.playback.scheduler import PlayableJob
from ai_band.sync.jack_transport import JackTransportSource
from ai_band.testing.jackserver import JackServer

#: Ticks per beat of the master (Ardour's and jack_transport's).
TICKS_PER_BEAT = 1920.0

#: Periods an offset between JACK frame time and transport frame must hold to count.
STABLE_PERIODS = 3

#: The pattern's grid, quarter notes.
GRID_QN = 0.125


@dataclass
class Segment:
    """One piece of the master's map: from transport frame ``frame`` on, ``bpm`` and meter, bar ``bar`` at ``ppq``.

    ``ppq`` counts quarter notes continuously; ``bpm`` is quarter notes per minute.
    """

    frame: int
    ppq: float
    bpm: float
    ts_num: int = 4
    ts_den: int = 4
    bar: int = 1  # bar number at ``bar_ppq``
    bar_ppq: float = 0.0


class TimebaseMaster:
    """A JACK client acting as timebase master from a piecewise-constant tempo and meter map.

    Args:
        servername: the JACK server.
        bpm: the tempo at frame 0, quarter notes per minute.
        ts: the meter at frame 0.
        timebase: register as timebase master; False: only a probe of the
            transport (the map then describes the grid the band keeps without a
            master: the configured tempo and meter from frame 0).

    The map is a list of :class:`Segment` s by transport frame; :meth:`set_tempo`
    and :meth:`set_meter` add one at the next period's frame (the master's
    position stays continuous: JACK's BBT then agrees with the frame before).
    BBT is computed from the frame by truncation to the tick.  The process
    callback logs ``(JACK frame, JACK frame - transport frame)`` whenever that
    offset changes while rolling (:meth:`transport_frame_of`), and can loop the
    transport (:meth:`set_loop`).
    """

    def __init__(self, servername: str, bpm: float = 120.0, ts: tuple[int, int] = (4, 4),
                 name: str = "bench-master", timebase: bool = True) -> None:
        self.client = jack.Client(name, servername=servername, no_start_server=True)
        self.rate = self.client.samplerate
        self.segments: list[Segment] = [Segment(0, 0.0, bpm, ts[0], ts[1], 1, 0.0)]
        self._pending: tuple | None = None
        self.offsets: list[tuple[int, int]] = []  # (jack frame, jack frame - transport frame)
        self.jumps: list[int] = []  # jack frames of starts and jumps
        self.stops: list[int] = []  # jack frames of the first period stopped after rolling
        self._rolling = False
        #: Transport jumps to make, one each period while rolling (odd input: a transport jumping every period).
        self.jump_every_period: list[int] = []
        #: Write an invalid meter (beat_type 3) into the BBT.
        self.invalid_bbt = False
        self._loop: tuple[int, int] | None = None
        #: Locates made by the loop.
        self.loop_jumps = 0
        self._candidate: list | None = None  # [offset, first jack frame, periods seen]
        self.client.set_process_callback(self._process)
        if timebase:
            self.client.set_timebase_callback(self._timebase)
        self.client.activate()

    # -- the map -------------------------------------------------------------------
    def segment_at(self, frame: int) -> Segment:
        i = bisect.bisect_right([s.frame for s in self.segments], frame) - 1
        return self.segments[max(i, 0)]

    def ppq_at(self, frame: int) -> float:
        seg = self.segment_at(frame)
        return seg.ppq + (frame - seg.frame) * seg.bpm / 60.0 / self.rate

    def frame_of(self, ppq: float, near_frame: int) -> float:
        """The exact (real) transport frame at which the segment around ``near_frame`` reaches ``ppq``."""
        seg = self.segment_at(near_frame)
        return seg.frame + (ppq - seg.ppq) * 60.0 * self.rate / seg.bpm

    def bbt_at(self, frame: int) -> tuple[int, int, int, Segment]:
        seg = self.segment_at(frame)
        unit = 4.0 / seg.ts_den
        beats = (self.ppq_at(frame) - seg.bar_ppq) / unit
        ticks = math.floor(beats * TICKS_PER_BEAT + 1e-9)
        beat_index, tick = divmod(ticks, int(TICKS_PER_BEAT))
        bar_off, beat = divmod(beat_index, seg.ts_num)
        return seg.bar + bar_off, beat + 1, tick, seg

    # -- commands -------------------------------------------------------------------
    def start(self) -> None:
        self.client.transport_start()

    def stop(self) -> None:
        self.client.transport_stop()

    def locate(self, frame: int) -> None:
        self.client.transport_frame = frame

    def set_tempo(self, bpm: float) -> None:
        """From the next period on, ``bpm`` quarter notes per minute (continuous position)."""
        self._pending = ("tempo", bpm)

    def set_meter(self, num: int, den: int) -> None:
        """From the next period on, ``num/den``; the current bar is the new meter's first (bar numbers go on)."""
        self._pending = ("meter", num, den)

    def set_loop(self, loop: tuple[int, int] | None) -> None:
        """Locate to ``loop[0]`` whenever the transport passes ``loop[1]`` (transport frames), as a DAW's loop."""
        self._loop = loop

    def release(self) -> None:
        self.client.release_timebase()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()

    # -- JACK callbacks ---------------------------------------------------------------------
    def _process(self, frames: int) -> None:
        state, pos = self.client.transport_query_struct()
        jf = self.client.last_frame_time
        if state != jack.ROLLING:
            if self._rolling:
                self.stops.append(jf)
            self._rolling = False
            self._candidate = None
            return
        self._rolling = True
        if self.jump_every_period:
            self.client.transport_frame = self.jump_every_period.pop()
        tf = pos.frame
        offset = (jf - tf) & 0xFFFFFFFF
        # Around a driver overrun frame time and transport frame are out of step for a
        # period or two: an offset counts once it has held for STABLE_PERIODS periods.
        if self._candidate is not None and self._candidate[0] == offset:
            self._candidate[2] += 1
        else:
            self._candidate = [offset, jf, 1]
        if self._candidate[2] == STABLE_PERIODS and (not self.offsets or self.offsets[-1][1] != offset):
            self.offsets.append((self._candidate[1], offset))
            self.jumps.append(self._candidate[1])
        loop = self._loop
        if loop is not None and tf <= loop[1] < tf + frames:
            self.client.transport_frame = loop[0]  # realtime-safe (jack_transport_locate)
            self.loop_jumps += 1

    def _timebase(self, state: int, blocksize: int, pos, new_pos: bool) -> None:
        frame = pos.frame
        pending, self._pending = self._pending, None
        if pending is not None:
            seg = self.segment_at(frame)
            ppq = self.ppq_at(frame)
            if pending[0] == "tempo":
                new = Segment(frame, ppq, pending[1], seg.ts_num, seg.ts_den, seg.bar, seg.bar_ppq)
            else:
                bar, _beat, _tick, _ = self.bbt_at(frame)
                # The new meter's first bar begins at the current bar line.
                bar_ppq = seg.bar_ppq + (bar - seg.bar) * seg.ts_num * 4.0 / seg.ts_den
                new = Segment(frame, ppq, seg.bpm, pending[1], pending[2], bar, bar_ppq)
            self.segments = [s for s in self.segments if s.frame < frame] + [new]
        bar, beat, tick, seg = self.bbt_at(frame)
        pos.valid = jack.POSITION_BBT
        pos.bar = bar
        pos.beat = beat
        pos.tick = tick
        pos.bar_start_tick = 0.0
        pos.beats_per_bar = float(seg.ts_num)
        pos.beat_type = 3.0 if self.invalid_bbt else float(seg.ts_den)
        pos.ticks_per_beat = TICKS_PER_BEAT
        pos.beats_per_minute = seg.bpm * seg.ts_den / 4.0  # JACK's beats are beat_type notes

    # -- analysis ----------------------------------------------------------------------
    def transport_frame_of(self, jack_frame: int) -> int | None:
        """The transport frame a note at ``jack_frame`` fell on (None: the transport was not rolling)."""
        i = bisect.bisect_right([j for j, _ in self.offsets], jack_frame) - 1
        if i < 0:
            return None
        return (jack_frame - self.offsets[i][1]) & 0xFFFFFFFF


def grid_job(job_id: str = "grid") -> PlayableJob:
    """A one-bar (4/4) job: a note on every 32nd (:data:`GRID_QN`), pitch 36 + index (36..67), each a 64th long."""
    offsets, groups = [], []
    for i in range(int(round(4.0 / GRID_QN))):
        at = i * GRID_QN
        offsets += [at, at + GRID_QN / 2]
        groups += [(("drums", (NOTE_ON | 9, 36 + i, 100)),), (("drums", (NOTE_OFF | 9, 36 + i, 0)),)]
    return PlayableJob(job_id, 4.0, tuple(offsets), tuple(groups), {"drums": (9, 0)})


def expected_pitch(ppq: float) -> int:
    """The pitch :func:`grid_job` plays at ``ppq`` when its bars start at multiples of 4 quarter notes."""
    return 36 + int(round((ppq % 4.0) / GRID_QN)) % int(round(4.0 / GRID_QN))


@dataclass
class NoteCheck:
    """One recorded note-on against the master's grid."""

    jack_frame: int
    transport_frame: int
    ppq: float  # the nearest grid position, quarter notes
    deviation_frames: int  # from the grid frame: the frame nearest the exact grid time
    pitch: int
    after_jump_frames: int  # frames since the last start or jump


def check_notes(master: TimebaseMaster, note_ons) -> list[NoteCheck]:
    """Each recorded note-on with its deviation from the nearest 32nd of the master's map (transport frames)."""
    out = []
    for event in note_ons:
        tf = master.transport_frame_of(event.frame)
        if tf is None:
            continue
        grid = round(master.ppq_at(tf) / GRID_QN) * GRID_QN
        exact = master.frame_of(grid, tf)
        i = bisect.bisect_right(master.jumps, event.frame) - 1
        since = event.frame - master.jumps[i] if i >= 0 else 1 << 40
        out.append(NoteCheck(event.frame, tf, grid, tf - round(exact), event.data[1], since))
    return out


def summary(values: list[float]) -> dict:
    """Count, median, p99 (nearest rank), max of ``values`` (|deviations|, frames), and the shares at 0 and <= 1."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {"count": len(ordered), "median": statistics.median(ordered), "p99": p99, "max": ordered[-1],
            "on_frame": round(sum(1 for v in ordered if v == 0) / len(ordered), 4),
            "within_1": round(sum(1 for v in ordered if v <= 1) / len(ordered), 4)}


class Rig(BandRig):
    """The band's playback following the JACK transport, a master and a recorder on one private server."""

    def __init__(self, server: JackServer, bpm: float = 120.0, client_name: str = "ai-band") -> None:
        super().__init__(server, JackTransportSource, bpm=bpm, client_name=client_name)


def run_once(seconds: float, realtime: bool, settle_ms: float) -> dict:
    """One run of the scenario (module docstring); returns its figures."""
    with JackServer(realtime=realtime) as server:
        rig = Rig(server)
        m = TimebaseMaster(server.name, 120.0)
        try:
            rate = m.rate
            m.locate(0)
            time.sleep(0.2)
            rig.scheduler.play(grid_job())
            m.start()
            part = seconds / 5.0
            time.sleep(part)
            m.set_tempo(137.0)
            time.sleep(part)
            m.locate(int(40 * rate))  # a locate while rolling
            time.sleep(part)
            # A one-bar loop from the next bar line, a few passes.
            tf = m.client.transport_frame
            bar_qn = 4.0
            start_qn = math.ceil(m.ppq_at(tf) / bar_qn) * bar_qn
            loop_start = math.ceil(m.frame_of(start_qn, tf))
            loop_end = math.ceil(m.frame_of(start_qn + bar_qn, tf))
            m.set_loop((loop_start, loop_end))
            time.sleep(part)
            m.set_loop(None)
            time.sleep(part)
            m.stop()
            time.sleep(0.3)
            checks = check_notes(m, rig.note_ons())
            stats = rig.recorder.stats()
            hanging = rig.recorder.hanging_notes()
            out_stats = rig.ports.stats()
            written = {(frame, pitch) for frame, _name, pitch in rig.ports.write_log()["note_ons"]}
        finally:
            m.close()
            rig.close()
    settle = int(settle_ms * rate / 1000.0)
    steady = [c for c in checks if c.after_jump_frames >= settle]
    early = [c for c in checks if c.after_jump_frames < settle]
    wrong_pitch = [c for c in steady if c.pitch != expected_pitch(c.ppq)]
    # Where the recorder saw a note at another frame than the daemon's write log says it wrote it.
    not_as_written = [c for c in steady if (c.jack_frame, c.pitch) not in written]
    worst = sorted(steady, key=lambda c: -abs(c.deviation_frames))[:5]
    return {
        "worst": [(c.jack_frame, c.transport_frame, round(c.deviation_frames, 2), c.after_jump_frames,
                   (c.jack_frame, c.pitch) in written) for c in worst],
        "recorded_not_as_written": len(not_as_written),
        "steady": summary([abs(c.deviation_frames) for c in steady]),
        "steady_as_written": summary([abs(c.deviation_frames) for c in steady if (c.jack_frame, c.pitch) in written]),
        "signed_median_frames": statistics.median([c.deviation_frames for c in steady]) if steady else None,
        "after_jumps": summary([abs(c.deviation_frames) for c in early]),
        "wrong_pitch": len(wrong_pitch),
        "over_1_frame": sum(1 for c in steady if abs(c.deviation_frames) > 1.0),
        "hanging": len(hanging),
        "recorder": {k: stats[k] for k in ("xruns", "missed_periods")},
        "output": {k: out_stats.get(k) for k in ("late_messages", "held_periods", "skipped_periods", "xruns")},
        "source_events": dict(rig.source.events),
        "source_counters": dict(rig.source.counters),
        "retimed_groups": rig.scheduler.stats.retimed_groups,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle-ms", type=float, default=100.0,
                        help="notes this soon after a start, locate or loop jump are reported apart")
    parser.add_argument("--realtime", action="store_true", help="jackd --realtime (SCHED_FIFO)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--retime-min-ns", type=int, default=None,
                        help="override ai_band.playback.scheduler.RETIME_MIN_NS (comparison)")
    args = parser.parse_args(argv)
    if args.retime_min_ns is not None:
        import ai_band.playback.scheduler as scheduler_module

        scheduler_module.RETIME_MIN_NS = args.retime_min_ns
    from ai_band.playback import scheduler as scheduler_module

    print(f"RETIME_MIN_NS {scheduler_module.RETIME_MIN_NS}; machine: {machine_name()}; jackd {'--realtime' if args.realtime else '--no-realtime'} "
          f"-d dummy -r 48000 -p 64")
    results = []
    for i in range(args.runs):
        result = run_once(args.seconds, args.realtime, args.settle_ms)
        results.append(result)
        s = result["steady"]
        print(f"run {i + 1}: steady note-ons {s.get('count', 0)}, |deviation| median {s.get('median', 0):.3f} "
              f"p99 {s.get('p99', 0):.3f} max {s.get('max', 0):.3f} frames, on the frame {s.get('on_frame')}, "
              f"within 1 {s.get('within_1')}; as written {result['steady_as_written']}; > 1 frame {result['over_1_frame']}; "
              f"wrong pitch {result['wrong_pitch']}; after jumps {result['after_jumps']}; "
              f"hanging {result['hanging']}; recorder {result['recorder']}; output {result['output']}; "
              f"source {result['source_events']} {result['source_counters']}; retimed {result['retimed_groups']}; "
              f"worst (jack frame, transport frame, deviation, frames since jump) {result['worst']}")
    p99s = sorted(r["steady"].get("p99", math.inf) for r in results)
    median_p99 = p99s[len(p99s) // 2]
    met = median_p99 <= 1.0
    print(f"median of the runs' p99: {median_p99:.3f} frames (bound <= 1 frame: {'met' if met else 'NOT met'})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine_name(), "args": vars(args), "runs": results}, fh, indent=1)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
