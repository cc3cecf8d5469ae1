"""``python -m ai_band.testing.demo`` (``make demo``): a whole session, driven exactly as the JUCE plugin would drive it.

Starts a private JACK server (dummy driver) and the daemon, registers with
``/band/hello``, lists the styles, sends a chord sheet with ``/band/generate``
(``play=1``), runs a simulated host transport at 25 Hz through a few loops,
changes tempo, stops, then prints what each MIDI port played (recorded
through a real JACK MIDI input) and where the files are.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from ai_band.testing.daemonproc import DaemonProcess
from ai_band.host import HostSimulator, OscClient
from ai_band.testing.jackserver import JackServer
from ai_band.testing.recorder import MidiRecorder
from ai_band.request import KNOWN_PARTS

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
GM_DRUMS = {35: "kick", 36: "kick", 37: "stick", 38: "snare", 39: "clap", 40: "snare", 42: "hat", 44: "pedal hat",
            46: "open hat", 49: "crash", 51: "ride", 53: "ride bell", 41: "tom", 43: "tom", 45: "tom", 47: "tom",
            48: "tom", 50: "tom", 57: "crash", 54: "tambourine", 56: "cowbell", 70: "shaker"}


def note_name(pitch: int) -> str:
    """MIDI pitch 0..127 -> scientific name, e.g. 60 -> C4."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _say(text: str) -> None:
    print(text, flush=True)


def run_demo(output_dir: Path, bars: int = 4, style: str = "jazz", chords: str = "| Cmaj7 | Am7 | Dm7 | G7 |") -> int:
    """Run the session; print a report; return 0 when every check holds, else 1.

    Args:
        output_dir: where the daemon writes the job's files.
        bars: bars of the arrangement.
        style: style name.
        chords: the chord sheet sent with ``/band/generate``.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    with JackServer() as jack:
        _say(f"JACK server {jack.name!r} (dummy driver, 48 kHz, period 64) started")
        with DaemonProcess(output_dir.resolve(), env=jack.env(), zeroconf_interfaces="127.0.0.1") as daemon, \
                MidiRecorder(servername=jack.name) as rec:
            _say(f"daemon listening on udp 127.0.0.1:{daemon.port} (pid {daemon.proc.pid})")
            ports = rec.wait_for_ports("ai-band", count=len(KNOWN_PARTS), timeout_s=20)
            rec.connect("ai-band")
            _say(f"recording its MIDI ports: {', '.join(sorted(ports))}")
            target = ("127.0.0.1", daemon.port)
            with OscClient(target) as osc, HostSimulator(target, rate_hz=25, jitter_ms=5, osc=None) as host:
                name, version = osc.hello("demo-plugin")[:2]
                _say(f"-> /band/hello      <- /band/welcome {name} {version}")
                osc.send("/band/styles")
                _say(f"-> /band/styles     <- {' '.join(osc.receive('/band/styles')[1])}")
                request = {"id": "demo-1", "chords": chords, "style": style, "bars": bars, "seed": 1, "play": 1}
                osc.send("/band/generate", *[x for kv in request.items() for x in kv])
                _say(f"-> /band/generate   {json.dumps(request)}")
                files: dict[str, str] = {}
                job_id = ""
                while True:
                    address, args = osc.receive(timeout=20)
                    if address == "/band/file":
                        files[args[1]] = args[2]
                    elif address == "/band/job" and args[3] == "demo-1":
                        job_id = args[0]
                        _say(f"<- /band/job {args[0]} {args[1]} {args[2]:.1f}")
                        if args[1] in ("done", "failed", "cancelled"):
                            break
                    elif address == "/band/error":
                        _say(f"<- /band/error {args}")
                        return 1
                osc.send("/band/status")
                status = json.loads(osc.receive("/band/status")[1][0])
                bpm = 120.0
                _say(f"host: play at {bpm:g} bpm (transport at 25 Hz, +/-5 ms jitter)")
                rec.clear()
                host.play()
                bar_s = 4 * 60.0 / bpm
                time.sleep(bar_s * (bars + 1) + 0.2)
                _say("host: tempo change to 132 bpm")
                host.set_tempo(132.0)
                time.sleep(4 * 60.0 / 132.0 * 2)
                stop_at = time.monotonic()
                host.stop()
                _say("host: stop")
                time.sleep(0.4)
            events = rec.events()
            hanging = rec.hanging_notes()
            clock = host.clock
            code, took = daemon.terminate()
    _say(f"daemon stopped with SIGTERM in {took:.2f} s, exit code {code}")

    per_port: dict[str, list] = defaultdict(list)
    for e in events:
        if e.is_note_on:
            per_port[e.source_port].append(e)
    _say("\nWhat the ports played (bar:beat of the host, first 12 note-ons per port):")
    for port in sorted(per_port):
        ons = per_port[port]
        shown = []
        for e in ons[:12]:
            seg = [c for c in clock.changes if c.time_s <= e.time_s][-1]
            ppq = round(seg.ppq_at(e.time_s) * 100) / 100  # to 1/100 beat: 3.998 (1 ms early) is bar 2's downbeat
            what = GM_DRUMS.get(e.data[1], note_name(e.data[1])) if "drums" in port else note_name(e.data[1])
            shown.append(f"{int(ppq // 4) + 1}:{ppq % 4 + 1:.2f} {what}")
        _say(f"  {port:18s} {len(ons):4d} notes  " + ", ".join(shown))
    late = [e for e in events if e.is_note_on and e.time_s > stop_at + 0.03]
    _say(f"\nports: {status['ports']}")
    _say("files:")
    for part, path in files.items():
        _say(f"  {part:6s} {path}")
    _say(f"job {job_id}; hanging notes: {len(hanging)}; note-ons after stop: {len(late)}")
    ok = bool(per_port) and not hanging and not late and code == 0 and len(files) >= 2
    _say("demo: OK" if ok else "demo: FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m ai_band.testing.demo [--output-dir DIR] [--bars N] [--style NAME]``; returns the exit code."""
    import argparse
    import logging

    parser = argparse.ArgumentParser(prog="python -m ai_band.testing.demo", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("demo-output"), help="where the job files go")
    parser.add_argument("--bars", type=int, default=4, help="bars of the arrangement")
    parser.add_argument("--style", default="jazz", help="style name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)-7s %(name)s: %(message)s")
    return run_demo(output_dir=args.output_dir.expanduser(), bars=args.bars, style=args.style)


if __name__ == "__main__":
    raise SystemExit(main())
