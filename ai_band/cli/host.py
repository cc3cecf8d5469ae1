"""``ai-band host``: a simulated DAW transport, for trying the daemon without the plugin.

It sends ``/band/transport`` to a daemon at 25 Hz, and at once on every
change, exactly as the JUCE plugin reports ``AudioPlayHead::PositionInfo``
(the argument table is in :mod:`ai_band.host`). It registers with
``/band/hello`` first (with ``AI_BAND_OSC_TOKEN`` when set; a daemon with
``[osc] token`` takes the transport only from a client that gave it); the
daemon's errors reach this process and are printed on stderr.

Control, while it runs:

* on a terminal (stdin a TTY in the foreground), single keys:
  space play/stop, ``+``/``-`` tempo +-1 bpm, ``1``..``9`` relocate to that
  bar, ``r`` back to ``--start-ppq``, ``q`` quit;
* otherwise one command per line on stdin: ``play``, ``stop``, ``bpm 128``,
  ``+``, ``-``, ``bar 9``, ``ppq 12.5``, ``ts 3/4``, ``start``, ``quit``.
  At the end of stdin it keeps running (``ai-band host &`` in a script).

It prints one status line per change on stdout, stamped with CLOCK_MONOTONIC
seconds (the clock of the daemon's ``/band/status`` ``deadline_monotonic_s``).
On exit (``quit``, ``--seconds``, Ctrl-C, SIGTERM) it sends a stopped transport.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator

TYPE_CHECKING = False  # importing typing costs ~4 ms per start; only type checkers read the names below
if TYPE_CHECKING:
    from typing import TextIO

    from ai_band.host import HostSimulator, TransportState

#: ``/band/transport`` messages per second (docs/osc-api.md recommends 25 Hz).
RATE_HZ = 25.0
#: Longest wait between checks of the terminal (foreground or not), seconds.
POLL_S = 0.2
#: How long to wait for the daemon's ``/band/pong`` at start, seconds.
PING_TIMEOUT_S = 1.0
#: Tempo change per ``+``/``-``, bpm.
BPM_STEP = 1.0

LINE_COMMANDS = "play, stop, bpm <1..999>, +, -, bar <n>, ppq <x>, ts <n/d>, start, quit"
KEYS = "space play/stop, +/- tempo, 1-9 bar, r start, q quit"


# ------------------------------------------------------------------ flags


def _number(convert: Callable[[str], float], lo: float, hi: float, what: str) -> Callable[[str], float]:
    """An argparse ``type``: ``convert(text)``, finite and in ``lo..hi``, else an error naming ``what``."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


_port = _number(int, 1, 65535, "a UDP port 1..65535")
_bpm = _number(float, 1.0, 999.0, "a tempo in 1..999 bpm")
_bars = _number(int, 0, 10_000, "a whole number of bars 0..10000 (0 = no loop)")
_ppq = _number(float, -1e6, 1e6, "a position in quarter notes, -1e6..1e6")
_seconds = _number(float, 0.001, 1e6, "a number of seconds, 0.001..1e6")
_bar_number = _number(int, -10_000, 10_000, "a bar number, 1 = the first (-10000..10000)")


def _time_signature(text: str) -> tuple[int, int]:
    from ai_band.errors import RequestError
    from ai_band.request import parse_time_signature

    try:
        return parse_time_signature("ts", text)
    except RequestError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("ts: ")) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``host`` and its flags."""
    host = sub.add_parser(
        "host", help="simulate a DAW transport: send /band/transport at 25 Hz to a daemon",
        description="Send /band/transport to an ai-band daemon at 25 Hz, as the plugin does, "
                    f"and at once on every change. Keys on a terminal: {KEYS}. "
                    f"Lines on stdin otherwise: {LINE_COMMANDS}.",
    )
    host.add_argument("--host", default="127.0.0.1", help="the daemon's address or name (default: %(default)s)")
    host.add_argument("--port", type=_port, default=9100, help="the daemon's OSC UDP port (default: %(default)s)")
    host.add_argument("--bpm", type=_bpm, default=120.0, help="tempo, quarter notes per minute (default: %(default)g)")
    host.add_argument("--ts", type=_time_signature, default=(4, 4), metavar="N/D",
                      help="time signature (default: 4/4)")
    host.add_argument("--bars", type=_bars, default=0,
                      help="loop this many bars from the bar of --start-ppq; 0 = no loop (default: %(default)s)")
    host.add_argument("--start-ppq", type=_ppq, default=0.0, metavar="PPQ",
                      help="start position in quarter notes; 0 is bar 1 beat 1 (default: %(default)g)")
    state = host.add_mutually_exclusive_group()
    state.add_argument("--play", dest="playing", action="store_true", default=True,
                       help="start playing (the default)")
    state.add_argument("--stopped", dest="playing", action="store_false", help="start stopped")
    host.add_argument("--seconds", type=_seconds, metavar="N",
                      help="run N seconds, then stop the transport and exit (default: until quit)")
    host.set_defaults(func=cmd_host)


# ----------------------------------------------------------------- session


class HostSession:
    """The command interpreter of ``ai-band host`` around a :class:`~ai_band.host.HostSimulator`.

    Args:
        sim: the running simulator (its clock holds tempo, meter and position).
        start_ppq: where ``start`` / ``r`` relocates to, quarter notes.
        loop_bars: loop length in bars from the bar of ``start_ppq``; 0 = no loop.
        out: where status lines go.
    """

    def __init__(self, sim: HostSimulator, start_ppq: float, loop_bars: int, out: TextIO) -> None:
        from ai_band.host import bar_start_ppq

        clock = sim.clock
        self.sim = sim
        self.start_ppq = start_ppq
        self.loop_bars = loop_bars
        self.loop_start_ppq = bar_start_ppq(start_ppq, clock.ts_num, clock.ts_den)
        self.out = out

    # -- status ----------------------------------------------------------------
    def report(self, what: str, state: TransportState) -> None:
        """Print one status line: ``[monotonic s] what  bar B beat b  ppq  bpm  n/d  playing|stopped``.

        Bars and beats count from 1 as musicians do (ppq 0 is bar 1 beat 1);
        the beat is in units of the time signature's denominator.
        """
        from ai_band.host import bar_length_ppq

        bar = round(state.bar_start_ppq / bar_length_ppq(state.ts_num, state.ts_den)) + 1
        beat = (state.ppq - state.bar_start_ppq) * state.ts_den / 4.0 + 1.0
        print(f"[{state.time_s:.6f}] {what:<8} bar {bar} beat {beat:.2f}  ppq {state.ppq:.3f}  "
              f"{state.bpm:.2f} bpm  {state.ts_num}/{state.ts_den}  "
              f"{'playing' if state.playing else 'stopped'}", file=self.out, flush=True)

    # -- loop ------------------------------------------------------------------
    def loop_end_ppq(self) -> float | None:
        """End of the loop in quarter notes (the current meter's bars), or None without a loop."""
        if not self.loop_bars:
            return None
        from ai_band.host import bar_length_ppq

        clock = self.sim.clock
        return self.loop_start_ppq + self.loop_bars * bar_length_ppq(clock.ts_num, clock.ts_den)

    def loop_deadline_s(self) -> float | None:
        """CLOCK_MONOTONIC seconds at which the playing transport reaches the loop end, else None.

        The deadline may have passed (:meth:`tick` wraps then). A transport
        that started or was relocated at or past the end plays on, as in a DAW.
        """
        end = self.loop_end_ppq()
        segment = self.sim.clock.current
        if end is None or not segment.playing or segment.ppq >= end:
            return None
        return self.sim.clock.time_at(end)

    def tick(self) -> None:
        """Wrap to the loop start if the loop end has passed (exactly at its instant)."""
        deadline = self.loop_deadline_s()
        if deadline is not None and deadline <= self.sim.clock.now():
            self.report("loop", self.sim.relocate(self.loop_start_ppq, at_time_s=deadline, reason="loop"))

    # -- commands --------------------------------------------------------------
    def toggle(self) -> None:
        """Play if stopped, stop if playing."""
        self.command("stop" if self.sim.clock.playing else "play")

    def command(self, line: str) -> bool:
        """Run one command line (see :data:`LINE_COMMANDS`); return False for ``quit``.

        Raises:
            ValueError: unknown command or bad value (the message names the allowed values).
        """
        from ai_band.host import bar_length_ppq

        words = line.split()
        if not words:
            return True
        verb, rest = words[0].lower(), words[1:]
        parse_value = {"bpm": _bpm, "bar": _bar_number, "ppq": _ppq, "ts": _time_signature}.get(verb)
        if len(rest) != (parse_value is not None):
            raise ValueError(f"{line.strip()!r}: expected one of {LINE_COMMANDS}")
        try:
            value = parse_value(rest[0]) if parse_value is not None else None
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"{verb} {exc}") from None
        sim, clock = self.sim, self.sim.clock
        if verb in ("quit", "q", "exit"):
            return False
        if verb == "play":
            self.report("play", sim.play())
        elif verb == "stop":
            self.report("stop", sim.stop())
        elif verb in ("+", "-"):
            bpm = min(999.0, max(1.0, clock.bpm + (BPM_STEP if verb == "+" else -BPM_STEP)))
            self.report("tempo", sim.set_tempo(bpm))
        elif verb == "bpm":
            self.report("tempo", sim.set_tempo(value))
        elif verb == "bar":
            self.report("relocate", sim.relocate((value - 1) * bar_length_ppq(clock.ts_num, clock.ts_den)))
        elif verb == "ppq":
            self.report("relocate", sim.relocate(value))
        elif verb == "ts":
            self.report("meter", sim.set_time_signature(*value))
        elif verb == "start":
            self.report("relocate", sim.relocate(self.start_ppq))
        else:
            raise ValueError(f"unknown command {verb!r}; commands: {LINE_COMMANDS}")
        return True

    def key(self, char: str) -> bool:
        """Run one key pressed on the terminal (see :data:`KEYS`); return False for ``q``."""
        if char == " ":
            self.toggle()
            return True
        if char in "123456789":
            return self.command(f"bar {char}")
        command = {"+": "+", "=": "+", "-": "-", "r": "start", "q": "quit"}.get(char.lower())
        return True if command is None else self.command(command)


# ----------------------------------------------------------------- terminal


class _Terminal:
    """Keys from a terminal in cbreak mode while this process is in the foreground.

    In the background (``ai-band host &``) it never reads the terminal (which
    would stop the process with SIGTTIN); brought to the foreground, it (re)enters
    cbreak mode. The saved mode is restored on exit.
    """

    def __init__(self, fd: int) -> None:
        import termios

        self.fd = fd
        self._termios = termios
        self._saved: list | None = None

    def foreground(self) -> bool:
        """Whether this process group owns the terminal."""
        try:
            return os.tcgetpgrp(self.fd) == os.getpgrp()
        except OSError:
            return False

    def ready(self) -> bool:
        """Enter cbreak mode if in the foreground; return whether keys can be read."""
        if not self.foreground():
            return False
        import tty

        attrs = self._termios.tcgetattr(self.fd)
        if attrs[3] & self._termios.ICANON:  # canonical: not (or no longer) in cbreak mode
            if self._saved is None:
                self._saved = attrs
            tty.setcbreak(self.fd, self._termios.TCSANOW)
        return True

    def restore(self) -> None:
        """Restore the terminal mode saved on entering cbreak (in the foreground only)."""
        if self._saved is not None and self.foreground():
            self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, self._saved)


class _Stop(Exception):
    """SIGTERM: leave the main loop as ``quit`` does."""


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_replies(sim: HostSimulator) -> None:
    """Print the daemon's ``/band/error`` replies (the only ones a transport gets) on stderr."""
    for address, args in sim.osc.drain():
        if address == "/band/error":
            print(f"ai-band host: the daemon answered {address} {' '.join(map(str, args))}", file=sys.stderr)


def _run(session: HostSession, stdin: TextIO | None, end_s: float | None) -> None:
    """The main loop: keys or lines, loop wraps, daemon replies, until quit or ``end_s``.

    stdin is read unbuffered (``os.read``), so ``select`` sees every line that waits.
    """
    fd = stdin.fileno() if stdin is not None else -1
    terminal = _Terminal(fd) if stdin is not None and stdin.isatty() else None
    lines_open = stdin is not None and terminal is None
    pending = b""
    sim = session.sim
    try:
        while True:
            session.tick()
            now = time.monotonic()
            if end_s is not None and now >= end_s:
                return
            waits = [POLL_S] + [t - now for t in (end_s, session.loop_deadline_s()) if t is not None]
            keys = terminal is not None and terminal.ready()
            sources = [sim.osc.fileno()] + ([fd] if keys or lines_open else [])
            readable, _, _ = select.select(sources, [], [], max(0.0, min(waits)))
            if sim.osc.fileno() in readable:
                _print_replies(sim)
            if fd not in readable:
                continue
            data = os.read(fd, 4096)
            if keys and not data:  # the terminal hung up
                terminal = None
                continue
            if keys:
                if not all(session.key(char) for char in data.decode(errors="replace")):
                    return
                continue
            if not data:
                lines_open = False  # end of stdin: keep running
            *lines, pending = (pending + data).split(b"\n") if data else (pending, b"")
            for line in lines:
                try:
                    if not session.command(line.decode(errors="replace")):
                        return
                except ValueError as exc:
                    print(f"ai-band host: {exc}", file=sys.stderr, flush=True)
    finally:
        if terminal is not None:
            terminal.restore()


def cmd_host(args: argparse.Namespace) -> int:
    """``ai-band host``: run the simulated transport until quit, ``--seconds`` or a signal."""
    from ai_band.errors import ProtocolError
    from ai_band.host import HostClock, HostSimulator, OscClient

    try:
        osc = OscClient((args.host, args.port), loopback_only=False)
    except ValueError as exc:
        print(f"ai-band: error: argument --host: {exc}", file=sys.stderr)
        return 2
    with osc:
        registered = True
        try:
            osc.request("/band/ping", "ai-band host", reply_address="/band/pong", timeout=PING_TIMEOUT_S)
        except TimeoutError:
            registered = False
            print(f"ai-band host: no answer from {osc.target[0]}:{osc.target[1]} within {PING_TIMEOUT_S:g} s "
                  "(is `ai-band run` running there?); sending the transport anyway", file=sys.stderr)
        except ProtocolError as exc:
            print(f"ai-band: error: {osc.target[0]}:{osc.target[1]} refused the registration: {exc.code}: {exc}",
                  file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"ai-band: error: cannot send to {osc.target[0]}:{osc.target[1]}: {exc.strerror}",
                  file=sys.stderr)
            return 1
        ts_num, ts_den = args.ts
        clock = HostClock(bpm=args.bpm, ts_num=ts_num, ts_den=ts_den, ppq=args.start_ppq)
        with HostSimulator(osc.target, rate_hz=RATE_HZ, clock=clock, osc=osc, register=registered) as sim:
            session = HostSession(sim, args.start_ppq, args.bars, sys.stdout)
            print(f"ai-band host: /band/transport to {osc.target[0]}:{osc.target[1]} at {RATE_HZ:g} Hz; "
                  f"{'keys: ' + KEYS if sys.stdin is not None and sys.stdin.isatty() else 'commands: ' + LINE_COMMANDS}",
                  file=sys.stderr, flush=True)
            session.report("play" if args.playing else "ready", sim.play() if args.playing else sim.send_now())
            end_s = None if args.seconds is None else time.monotonic() + args.seconds
            try:
                with _sigterm_stops():
                    _run(session, sys.stdin, end_s)
            except (KeyboardInterrupt, _Stop):
                pass
            finally:
                session.report("stop", sim.stop())
    return 0
