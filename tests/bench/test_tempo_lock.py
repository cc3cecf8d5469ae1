"""bench/tempo_lock.py's late-note causes on hand-made write logs with known answers."""

from __future__ import annotations

from bench.tempo_lock import late_note_causes

P = 64


def _note(frame: int, late_ms: float = 1.3, wake_us: float | None = 0.0, t: float = 10.0, overrun=None) -> dict:
    return {"t": t, "late_ms": late_ms, "frame": frame, "port": "ai-band:drums", "pitch": 36,
            "wake_minus_start_us": wake_us, "server_overrun": overrun}


def test_each_cause_is_told_from_the_logs():
    writes = [(1000, "ai-band:drums", 36), (2000, "ai-band:drums", 36), (3010, "ai-band:drums", 36),
              (4000, "ai-band:drums", 36), (5000, "ai-band:drums", 36)]
    callbacks = [(960, 3, 1200.0, False), (1984, 60, 300.0, True), (3008, 2, 1200.0, False),
                 (3968, 2, 1200.0, False), (4992, 2, 1200.0, False)]
    late_groups = [{"deadline_monotonic_s": 49.9987, "late_ms": 3.0, "note_ons_dropped": 0}]
    notes = [
        _note(1000),                               # written on time by its callback, nothing explains it
        _note(2064),                               # its callback ended after the next cycle began
        _note(3010, late_ms=0.9, wake_us=-800.0),  # the server's loop 0.8 ms behind its driver
        _note(4064),                               # written at 4000, read a period later
        _note(5000, t=50.0),                       # handed over 3 ms late by the playback thread
        _note(6000),                               # no write of it in the log
        _note(1000, overrun={"from_due_ms": 0.2, "lost_ms": 3.0}),
    ]
    counts = late_note_causes(notes, writes, callbacks, late_groups, P)
    assert [n["cause"] for n in notes] == ["written_late", "daemon_callback_late", "server_clock_lag",
                                           "recorded_later_than_written", "daemon_handed_over_late", "unknown",
                                           "server_overrun"]
    assert counts == {"server_overrun": 1, "daemon_handed_over_late": 1, "daemon_callback_late": 1,
                      "server_clock_lag": 1, "recorded_later_than_written": 1, "written_late": 1, "unknown": 1}
    assert notes[1]["written_frame"] == 2000 and notes[1]["write_callback"] == (1984, 60, 300.0, True)


def test_without_a_write_log_every_unexplained_note_is_unknown():
    notes = [_note(1000, wake_us=None), _note(2000, late_ms=0.8, wake_us=-700.0)]
    counts = late_note_causes(notes, None, [], [], P)
    assert [n["cause"] for n in notes] == ["unknown", "server_clock_lag"]
    assert counts["unknown"] == 1 and counts["server_clock_lag"] == 1
