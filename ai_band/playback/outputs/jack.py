"""JACK MIDI output: one JACK client with one MIDI output port per part.

python-rtmidi opens one JACK client per virtual port, so eight parts made the
daemon eight clients in the JACK graph, each woken by jackd every period.
Without realtime scheduling every client in the graph is one more thread
the kernel must schedule in time, every period (750 times a second at
64 frames / 48 kHz). Measured on the 2-vCPU VM named in the README, jackd
``--no-realtime -d dummy -r 48000 -p 64`` plus a recorder, over 15 s, with
the render's loudness stage running on the other vCPU:

* 8 python-rtmidi clients: 256 xruns (43 with no load);
* 1 client with 8 ports: 47 xruns (15 with no load).

So on JACK the daemon uses JACK-Client (the ``jack`` module, which the
recorder already used) for one client, ``ai-band``, with ports
``ai-band:drums``, ``ai-band:bass``, ... Owning the client also lets each
message carry the time it is due: the process callback writes it at that
frame of the period (python-rtmidi's JACK backend can only write at offset 0
of the next period, so its timing was quantised to the period and exposed
to every late wake-up of the sending thread).

The process callback is Python, so it needs the GIL each period: the daemon
keeps GIL hold times short (see :mod:`ai_band.model` and
:mod:`ai_band.system.heap`) and lowers the interpreter's switch interval so that a
busy thread hands the GIL over within
:data:`ai_band.system.priority.SWITCH_INTERVAL_S`.

The JACK server may stop and come back (a studio restarts it with other
settings, or it crashes).  JACK then calls the client's shutdown callback,
from its own thread; the client is dead from then on.  The callback only
notes it (JACK-Client: "write it as if it were an asynchronous POSIX signal
handler") and wakes :class:`JackMidiClient`'s watch thread, which logs it,
tells the listeners (the scheduler, ``/band/status``), closes the dead
client (JACK leaves that to the user) and, every ``reconnect_s``, tries to
open a client of the same name on a server of the same name.  When one
answers it registers the ports under the same names, holds them
(:meth:`JackOutput.hold`), activates and tells the listeners, which resume
playback.  Meanwhile every send is dropped and counted
(:attr:`JackMidiClient.dropped_messages`), and the notes that sounded when
the server died are forgotten: the new server never had their note-ons.
Client creation can block, hence a thread of its own, never the event loop
or the scheduler's.  libjack prints every failed attempt (5 lines) to
stderr: during the attempts its error messages go to this module's debug log.

A new port has no reader; each port writes
:data:`~ai_band.playback.output.RESET_MESSAGES` first to its first reader:
the process callback writes them, at offset 0 before anything queued,
:data:`RESET_AFTER_S` after the port first has a connection
(``jack_port_connected``), after opening and again after each restore, and
writes nothing else of the port until then.  Before that nothing the port
wrote reached anyone, so a reader never gets a note of the daemon's before
the reset.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

import jack

from ai_band.errors import MidiPortError
from ai_band.playback.output import RESET_MESSAGES, Link, LinkListener, Output, QueuedMessage, due_ns
from ai_band.system.jackclient import JackClientOwner, open_client
from ai_band.system.priority import SWITCH_INTERVAL_S, make_realtime, name_thread

log = logging.getLogger(__name__)


class ProcessHook(Protocol):
    """Work done in the :class:`JackMidiClient`'s process callback besides its ports (clock in/out, transport).

    Both methods are called by the client; ``process`` in JACK's process
    thread, so it must not block, allocate much or log in the normal case.
    """

    def attach(self, client: jack.Client) -> None:
        """Register the hook's ports on ``client`` (at :meth:`JackMidiClient.add_process_hook`, after each restore)."""

    def process(self, frames: int, frame: int, start_ns: float, writable: bool) -> None:
        """One period: ``frames`` long, starting at JACK frame ``frame`` (unwrapped, int).

        ``start_ns`` is when the period starts on CLOCK_MONOTONIC, ns, the
        same estimate the client's ports are written with (an event due at
        ``t`` ns goes at offset ``(t - start_ns) * rate / 1e9``).  Output
        buffers may be written only when ``writable`` (else the period is
        held: see :class:`JackMidiClient`, and what is due waits a period).
        """


#: Recent periods whose callback times anchor the current period's start.
ANCHOR_PERIODS = 16

#: A port writes the reset this long (s) after it first has a reader, and
#: nothing before.  ``jack_port_connected`` counts a connection as soon as
#: the server has made it, before the reader reads it: JACK2 switches to
#: the new graph at a later cycle, and the reader's own thread must return
#: from ``jack_connect`` to start reading the port.  Written in the first
#: such period the reset reached the test recorder on 3 to 7 of 8 ports,
#: four periods (5.3 ms) later on 6 or 7 of 8, none lost to a missed period.
RESET_AFTER_S = 0.050

#: How long (s) closing one port waits for its queue to be written, and for a
#: process callback under way to finish with it.
CLOSE_TIMEOUT_S = 0.2


def _xrun_delayed_usecs(client: jack.Client) -> float:
    """``jack_get_xrun_delayed_usecs()``: the delay the server noted with its latest xrun, µs.

    The server sets it when it notes the xrun, before the next cycle (JACK2
    ``JackEngineControl::NotifyXRun``), so a process callback sees it change
    at the first cycle after the xrun; the xrun callback comes later, from the
    client's notification thread.  JACK-Client passes it only to that
    callback, so it is read through the module's cffi library.
    """
    return jack._lib.jack_get_xrun_delayed_usecs(client._ptr)


class JackOutput(Output):
    """One port of a :class:`JackMidiClient`: timed, each message written at the frame it is due.

    Messages are queued with the CLOCK_MONOTONIC time they are due
    (``collections.deque``: append and popleft are atomic under the GIL) and
    written by the client's process callback at the frame of the period
    that contains that time (see :class:`JackMidiClient`).  Opened by the
    client (:func:`open_outputs`); closing the last of its ports closes the client.

    Attributes:
        client: the :class:`JackMidiClient` that holds the port.
        queue: the messages not yet written, in the order sent.
        paused: while True the process callback writes nothing of this port
            and keeps its queue (:meth:`hold`).
    """

    timed = True

    def __init__(self, client: JackMidiClient, port: jack.OwnMidiPort, part: str) -> None:
        super().__init__(part, port.name)
        self.client = client
        self.port = port
        self.queue: deque[QueuedMessage] = deque()
        self.paused = False
        #: Write :data:`RESET_MESSAGES` first once the port has had a reader :data:`RESET_AFTER_S`.
        self.reset_due = False
        #: Frames the port has had a reader while the reset was due.
        self.reset_frames = 0

    def _send(self, data: bytes, at_s: float | None) -> None:
        """Queue one message due at ``at_s`` (``None`` or a past time: at offset 0 of the next period).

        Once the JACK server has gone (or the client is closed) nothing would
        ever drain the queue, so the message is dropped and counted in
        :attr:`JackMidiClient.dropped_messages` instead.
        """
        client = self.client
        if not client.accepting:
            client.dropped_messages += 1
            return
        if at_s is None:
            self.queue.append((0, data))
            return
        self.queue.append((self._queued_ns(due_ns(at_s) + self.offset_ns, time.monotonic_ns()), data))

    def _queued_ns(self, at_ns: int, now_ns: int) -> int:
        """The time to queue a message due at ``at_ns`` for: 0 (at once) if it is already due.

        Such a message counts in :attr:`JackMidiClient.late_on_arrival`: its
        lateness is the sender's (or a transport change's), not this output's.
        """
        if at_ns < now_ns:
            self.client.late_on_arrival += 1
            return 0
        return at_ns

    @property
    def link(self) -> Link:
        """The client's :class:`Link` (all its ports share it)."""
        return self.client.link()

    def add_link_listener(self, listener: LinkListener) -> None:
        """Register ``listener`` with the client (once, however many ports pass it)."""
        self.client.add_link_listener(listener)

    def reset_channels(self) -> None:
        """Write :data:`RESET_MESSAGES` first, at offset 0, once the port has had a reader :data:`RESET_AFTER_S`."""
        self.reset_frames = 0
        self.reset_due = True

    def _take_back(self, keep: Callable[[bytes], bool]) -> list[QueuedMessage]:
        with self.client.queue_lock:
            queued = list(self.queue)
            self.queue.clear()
            self.queue.extend(item for item in queued if keep(item[1]))
        return [item for item in queued if not keep(item[1])]

    def hold(self) -> None:
        """Write nothing from now on, keep what is queued, until :meth:`resume`.

        For the moment a transport change arrives: notes already queued for
        the old position must not go out while the scheduler thread wakes
        up to take them back.
        """
        self.paused = True

    def resume(self) -> None:
        """Undo :meth:`hold`."""
        self.paused = False

    def retime(self, moves: dict[int, int]) -> int:
        """Move queued messages not yet written from one due time to another.

        Args:
            moves: CLOCK_MONOTONIC ns a message is queued for -> the ns it is
                now due.  Map times monotonically (a message waits behind the
                ones queued before it).

        Returns:
            How many messages moved.  Holds :attr:`JackMidiClient.queue_lock`
            for the rewrite (the process callback writes nothing in a period
            that finds it taken).
        """
        offset_ns = self.offset_ns  # queued times carry the port's offset; moves are of due times
        now_ns = time.monotonic_ns()
        with self.client.queue_lock:
            queue = self.queue
            items = [(moves[at_ns - offset_ns] + offset_ns if at_ns - offset_ns in moves else at_ns, data)
                     for at_ns, data in queue]
            moved = 0
            for i, ((new_ns, data), (at_ns, _)) in enumerate(zip(items, queue)):
                if new_ns != at_ns:
                    moved += 1
                    items[i] = (self._queued_ns(new_ns, now_ns), data)  # moved into the past: at once
            if moved:
                queue.clear()
                queue.extend(items)
        return moved

    def stats(self) -> dict:
        """The client's counters (see :meth:`JackMidiClient.stats`)."""
        return self.client.stats()

    def write_log(self) -> dict | None:
        """The client's write log (see :meth:`JackMidiClient.write_log_record`), or ``None`` if not kept."""
        return self.client.write_log_record()

    def _close(self) -> None:
        """Let the queue go out (at most :data:`CLOSE_TIMEOUT_S`), then unregister the port."""
        self.client.close_output(self)


class JackMidiClient(JackClientOwner):
    """One JACK client with a MIDI output port per part, writing messages at their frame.

    Args:
        parts: part names, in order; each becomes a port ``<client>:<part>``.
        client_name: JACK client name; JACK appends ``-01`` etc. if it is taken.
        servername: JACK server; ``None`` uses ``$JACK_DEFAULT_SERVER`` or the
            default server. Never starts a server.
        rtprio: if > 0, the process thread makes itself ``SCHED_FIFO`` at this
            priority (1..99) in its first period, unless libjack already made
            it realtime (a realtime server's clients are).  A server started
            ``--no-realtime`` leaves its clients' threads ordinary, and an
            ordinary thread waits its turn behind every other thread of its
            priority on the CPU: measured with ``bench/tempo_lock.py
            --render-load`` (10 interleaved runs each, README), the client
            missed 296-428 periods per run as an ordinary thread at nice -10,
            and 13-37 at ``SCHED_FIFO`` 10.  Refused (no ``CAP_SYS_NICE``, ``RLIMIT_RTPRIO``
            too low), it is logged once and the thread stays as it is.
        write_log_size: if > 0, :attr:`write_log` keeps the last this many
            note-ons written (diagnostics: which frame each went out in).
        reconnect_s: once the server has gone, try this often (seconds) to
            reach a server of the same name again (module docstring).

    Raises:
        MidiPortError: no JACK server is reachable, or a port cannot be registered.

    Timing: the process callback estimates when its period started on
    CLOCK_MONOTONIC, as the smallest of ``callback time - (frame - frame_j) /
    rate`` over the last :data:`ANCHOR_PERIODS` callbacks (each callback runs a
    little after its period starts, so each gives an upper bound; the
    recorder in ``ai_band/testing/recorder.py`` times periods the same way).
    After the driver overruns, the dummy and ALSA drivers start a new
    timeline (JACK2 ``JackTimedDriver::ProcessWait`` re-anchors), so the
    window starts again in the first callback after it: the server records
    the overrun's delay before it starts the next cycle
    (``JackEngineControl::NotifyXRun``), and the callback sees it change
    (``jack_get_xrun_delayed_usecs``).  Not on the xrun callback: it comes
    later, from the notification thread (the window stayed on the old
    timeline meanwhile, every message written as late as the timeline had
    moved: 1.3-2.3 ms in callback logs), and it also reports a client that
    finished late, which moves no timeline (~1000 such xruns per minute under
    render load, against ~150 overruns).  Two overruns in a row with the same
    delay (whole microseconds) look like one: the window then keeps old
    periods for at most :data:`ANCHOR_PERIODS`.  A message due at time ``t``
    in the period
    ``[start, start + frames / rate)`` is written at the nearest frame
    offset, ``round((t - start) * rate)``; one due earlier (late) at offset 0.  A sender that
    queues a few milliseconds ahead therefore gets frame-accurate output,
    whatever the jitter of its own wake-ups or of the callback's.

    Nothing lost when a callback runs late: JACK2 starts a new cycle on time
    even while a client is still in the last one, and re-arms the graph: the
    client's readers then wait for its *next* finish, and that is the late
    callback's (``JackEngine::Process``, ``JackConnectionManager::ResetGraph``).
    The libjack thread runs the current cycle's callback straight after. If
    that callback cleared the port buffers, a reader woken by the late finish
    could find them empty, and the late callback's messages would be lost
    to every reader, the DAW included. So a callback whose
    predecessor finished after the current cycle began (the server's cycle start,
    ``jack_frames_since_cycle_start``), or saw the frame time move on before
    it ended, leaves the buffers as they are and
    writes nothing: what is due goes out in the next period, at most one
    period late (counted in :attr:`held_periods`). The README gives the
    notes ``bench/tempo_lock.py --render-load`` found missing before and after.
    Holding is only right after such a late finish: a callback that leaves the
    buffers of a predecessor whose readers have already read them has them read
    again, in this cycle (a margin of a quarter period before the cycle start
    held ~200 periods per run and recorded 6-12 notes twice in 5 of 7 runs).
    """

    def __init__(self, parts: Iterable[str], client_name: str = "ai-band",
                 servername: str | None = None, rtprio: int = 0, write_log_size: int = 0,
                 reconnect_s: float = 1.0) -> None:
        if not reconnect_s > 0:
            raise ValueError(f"reconnect_s must be > 0 s, got {reconnect_s!r}")
        self._open(client_name, servername, MidiPortError)
        self._servername = servername
        self._name = self._client.name  # the dead client's name cannot be asked
        #: Seconds between attempts to reach a server again once it has gone.
        self.reconnect_s = reconnect_s
        #: Sends are queued (True) or dropped and counted (False: the server has gone, or closed).
        self.accepting = True
        #: How many times the server came back and the ports were recreated.
        self.restores = 0
        self._since_s = time.monotonic()  # when the link state last changed
        self._listeners: list[LinkListener] = []
        self._wake = threading.Event()  # the shutdown callback or close() wakes the watch thread
        self._stopping = threading.Event()
        self._life_lock = threading.Lock()  # replacing the client vs closing it
        #: Held while a port's queue is rewritten (:meth:`JackOutput.retime`,
        #: taking messages back); the callback only tries it.
        self.queue_lock = threading.Lock()
        #: The open ports by part, in order.
        self.outputs: dict[str, JackOutput] = {}
        # What the process callback writes: (port, queue, name, output) of each open port.
        self._ports: tuple[tuple[jack.OwnMidiPort, deque[QueuedMessage], str, JackOutput], ...] = ()
        #: Called in every period after the ports are written (:meth:`add_process_hook`).
        self._hooks: tuple[ProcessHook, ...] = ()
        #: Exceptions raised by process hooks (the first is logged).
        self.hook_errors = 0
        self._in_callback = False  # the process callback is running (closing a port waits for it)
        self._anchors: deque[float] = deque(maxlen=ANCHOR_PERIODS)
        self._start_timing()
        #: Messages queued in time that went out more than a period after their due time:
        #: lateness of this output path (late callbacks, held or skipped periods).
        self.late_messages = 0
        #: Messages already due when queued or retimed (handed over late, or moved into the past
        #: by a transport change learnt after it happened): sent at once, not in ``late_messages``.
        self.late_on_arrival = 0
        #: Messages dropped because the server had gone or the client was closed.
        self.dropped_messages = 0
        #: Periods between two callbacks that this client never saw (frame time
        #: jumped by more than one period: the server skipped the client, or
        #: the driver skipped ahead after an xrun).
        self.skipped_periods = 0
        #: Callbacks that left the buffers to readers of the previous one
        #: (it finished after this cycle began); their messages waited a period.
        self.held_periods = 0
        self._rtprio = rtprio
        #: With ``write_log_size``: ``(JACK frame, port name, pitch)`` of each note-on
        #: written (velocity > 0), the frame wrapped at 2**32 as JACK's are.  The
        #: frame is the callback's ``last_frame_time`` plus the offset: for a
        #: callback that started after the server began the next cycle that is
        #: the next cycle's frame time (the server's), one period after the
        #: buffer written (the recorder corrects its own such reads; this log does not).
        self.write_log: deque[tuple[int, str, int]] | None = deque(maxlen=write_log_size) if write_log_size > 0 else None
        #: With ``write_log_size``: for each callback that wrote a note-on,
        #: ``(last_frame_time, frames since the server began the cycle when the
        #: callback started, µs from the end of the callback before to the
        #: cycle's start (negative: it ended after), whether the frame time had
        #: moved on when it ended)`` (diagnostics of lost notes).
        self.write_callbacks: deque[tuple[int, int, float, bool]] | None = (
            deque(maxlen=write_log_size) if write_log_size > 0 else None)
        #: Each late message (see :meth:`stats`) while the write log is kept: (frame time of the
        #: period, status byte, data byte 1, lateness us, frames since the cycle start, callbacks
        #: held so far, periods skipped so far, queue lock taken, CLOCK_MONOTONIC ns in the callback).
        self.late_log: deque[tuple[int, int, int, float, int, int, int, bool, int]] | None = (
            deque(maxlen=write_log_size) if write_log_size > 0 else None)
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        # Active before the ports exist: JACK2 refuses connections to an inactive
        # client's ports, and a patchbay (or a recorder) connects as they appear.
        self._activate(self._process)
        try:
            for part in parts:
                self.outputs[part] = JackOutput(self, self._client.midi_outports.register(part), part)
        except jack.JackError as exc:
            super().close()
            raise MidiPortError(f"cannot register JACK MIDI port: {exc}") from exc
        self._ports = tuple((out.port, out.queue, out.name, out) for out in self.outputs.values())
        self._watch = threading.Thread(target=self._watch_server, name="ai-band-jack-watch", daemon=True)
        self._watch.start()

    def _start_timing(self) -> None:
        """Set the process callback's timing state for a newly opened client (no period seen yet).

        A server that came back may run another sample rate or period size.
        """
        self.samplerate = self._client.samplerate
        self._ns_per_frame = 1e9 / self.samplerate
        self._frames_per_ns = self.samplerate / 1e9
        self._reset_after_frames = int(RESET_AFTER_S * self.samplerate)
        self._last_base = -1
        self._frame = 0  # last_frame_time, unwrapped
        self._anchors.clear()
        self._xrun_delayed_usecs = _xrun_delayed_usecs(self._client)
        self._end_ns = 0  # when the last callback finished, CLOCK_MONOTONIC ns
        #: The process thread's scheduling, e.g. ``"SCHED_FIFO 10"``, once it has run.
        self.process_thread: str | None = None
        self._late_end = False  # the last callback ended after the server had begun the next cycle
        # This callback's entry for write_callbacks, less the late-end flag known only at its end.
        self._write_callback: tuple[int, int, float] | None = None

    def _process(self, frames: int) -> None:
        self._in_callback = True
        try:
            self._write_period(frames)
        finally:
            self._in_callback = False
            self._end_ns = time.monotonic_ns()  # the next callback's hold test
            self._late_end = self._client.last_frame_time != self._last_base
            if self._write_callback is not None:
                self.write_callbacks.append((*self._write_callback, self._late_end))
                self._write_callback = None

    def _write_period(self, frames: int) -> None:
        # Frame time first, clock second: ``now_ns - frame`` is then an upper
        # bound of the period's start even if the thread is descheduled (or
        # waits for the GIL) between the two reads.  The other order gave an
        # anchor as early as that wait (5 ms seen), and with it every message
        # of the next 16 periods went out that much late.
        base = self._client.last_frame_time
        now_ns = time.monotonic_ns()
        if base == self._last_base:
            # A late client thread can run two callbacks for one period (same
            # frame time, same buffers): what the first wrote must stay.
            return
        if self._last_base < 0:
            name_thread("ai-band-jack")  # libjack's process thread, once
            self.process_thread = make_realtime(self._rtprio)
            self._frame = base
        else:
            step = (base - self._last_base) & 0xFFFFFFFF
            if step > frames:
                self.skipped_periods += step // frames - 1
            self._frame += step
        self._last_base = base
        frame_ns = self._frame * self._ns_per_frame
        since_start = self._client.frames_since_cycle_start
        delayed_usecs = _xrun_delayed_usecs(self._client)
        if delayed_usecs != self._xrun_delayed_usecs:
            # The driver overran before this cycle: its timeline starts again (class docstring).
            self._xrun_delayed_usecs = delayed_usecs
            self._anchors.clear()
        self._anchors.append(now_ns - frame_ns)
        cycle_start_ns = now_ns - since_start * self._ns_per_frame
        start_ns = frame_ns + min(self._anchors)
        if self._late_end or (since_start < frames * ANCHOR_PERIODS and self._end_ns > cycle_start_ns):
            # The last callback finished inside this cycle: a reader may be
            # reading its output now (see the class docstring). Hands off.
            self.held_periods += 1
            self._run_hooks(frames, start_ns, False)
            return
        end_ns = start_ns + frames * self._ns_per_frame
        frames_per_ns = self._frames_per_ns
        half_frame_ns = 0.5 * self._ns_per_frame
        locked = self.queue_lock.acquire(blocking=False)
        try:
            write_log = self.write_log
            for port, queue, name, output in self._ports:
                port.clear_buffer()
                if output.reset_due and port.number_of_connections:
                    output.reset_frames += frames
                    if output.reset_frames <= self._reset_after_frames:
                        continue  # the reader may not read the port yet; nothing before the reset
                    output.reset_due = False
                    try:
                        for data in RESET_MESSAGES:
                            port.write_midi_event(0, data)
                    except jack.JackError:
                        pass  # cannot happen in an empty buffer of JACK2's size (32 KiB); nothing to retry
                if not locked or output.paused:
                    continue  # a queue is being rewritten, or output is held: next period
                last = 0
                while queue:
                    at_ns, data = queue[0]
                    if at_ns >= end_ns - half_frame_ns:
                        break  # its nearest frame is in a later period
                    if at_ns > start_ns:
                        # The nearest frame: a message due on a frame's time goes out on that frame.
                        offset = min(frames - 1, max(last, int((at_ns - start_ns) * frames_per_ns + 0.5)))
                    else:
                        offset = last
                        if at_ns and start_ns - at_ns > self._ns_per_frame * frames:
                            self.late_messages += 1
                            if self.late_log is not None:
                                self.late_log.append((base, data[0], data[1] if len(data) > 1 else 0,
                                                      round((start_ns - at_ns) / 1000.0, 1), since_start,
                                                      self.held_periods, self.skipped_periods, locked, now_ns))
                    try:
                        port.write_midi_event(offset, data)
                    except jack.JackError:
                        break  # this period's buffer is full: the rest goes out next period
                    queue.popleft()
                    if write_log is not None and data[0] & 0xF0 == 0x90 and len(data) > 2 and data[2]:
                        write_log.append(((base + offset) & 0xFFFFFFFF, name, data[1]))
                        self._write_callback = (base, since_start, round((cycle_start_ns - self._end_ns) / 1000.0, 1))
                    last = offset
        finally:
            if locked:
                self.queue_lock.release()
        self._run_hooks(frames, start_ns, True)

    def _run_hooks(self, frames: int, start_ns: float, writable: bool) -> None:
        """Call each :class:`ProcessHook` for this period (process thread); a failing hook is counted, never fatal."""
        for hook in self._hooks:
            try:
                hook.process(frames, self._frame, start_ns, writable)
            except Exception:  # noqa: BLE001 - the output must keep running
                self.hook_errors += 1
                if self.hook_errors == 1:
                    log.exception("JACK process hook %r failed (counted in hook_errors; logged once)", hook)

    def add_process_hook(self, hook: ProcessHook) -> None:
        """Run ``hook`` in every period of this client, from now on and after every restore.

        ``hook.attach(client)`` is called at once (and again with the new
        ``jack.Client`` after the server came back), outside the process
        thread: it registers the hook's own ports.  Then
        ``hook.process(...)`` runs at the end of every process callback.

        Raises:
            MidiPortError: ``attach`` failed (e.g. a port cannot be registered).
        """
        with self._life_lock:
            try:
                hook.attach(self._client)
            except jack.JackError as exc:
                raise MidiPortError(f"cannot register JACK port: {exc}") from exc
            self._hooks = (*self._hooks, hook)

    def remove_process_hook(self, hook: ProcessHook) -> None:
        """Stop calling ``hook``; waits for a process callback under way (at most :data:`CLOSE_TIMEOUT_S`)."""
        self._hooks = tuple(h for h in self._hooks if h is not hook)
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while self._in_callback and time.monotonic() < deadline:
            time.sleep(0.0005)

    @property
    def frames_per_period(self) -> int:
        """The server's period size, frames."""
        return self._client.blocksize

    def stats(self) -> dict:
        """JSON-ready output counters.

        ``timed`` (True); ``late_messages`` (queued before they were due,
        written more than a period after it: this output path's lateness);
        ``late_on_arrival`` (already due when queued or retimed, sent at
        once: the scheduler's lateness, or a transport change learnt late); ``skipped_periods`` (periods whose
        callback never ran); ``held_periods`` (callbacks that left the
        previous, late callback's output to its readers, their own messages
        going out a period later); ``xruns`` (reported by the JACK server
        since start-up); ``process_thread`` (the scheduling of the client's
        process thread, e.g. ``"SCHED_FIFO 10"``; ``None`` before its first
        period); ``server_gone`` (why the server dropped the client, while
        it is gone, else ``None``), ``dropped_messages`` (sent while it was
        gone, never written) and ``restores`` (times a server came back).
        Counters run on across restores.
        """
        return {"timed": True, "late_messages": self.late_messages, "late_on_arrival": self.late_on_arrival,
                "skipped_periods": self.skipped_periods,
                "held_periods": self.held_periods, "xruns": self.xruns,
                "process_thread": self.process_thread,
                "dropped_messages": self.dropped_messages,
                "server_gone": None if self.accepting or self.closed else self.shutdown_reason,
                "restores": self.restores}

    def write_log_record(self) -> dict | None:
        """The write log as JSON-ready lists, or ``None`` unless kept (``write_log_size``).

        Returns:
            ``{"note_ons": [(JACK frame, port name, pitch), ...], "callbacks":
            [(last_frame_time, frames since cycle start, µs lead, late end), ...],
            "late": [(see late_log), ...]}``,
            oldest first: :attr:`write_log`, :attr:`write_callbacks` and :attr:`late_log`.
        """
        if self.write_log is None or self.write_callbacks is None:
            return None
        return {"note_ons": list(self.write_log), "callbacks": list(self.write_callbacks),
                "late": list(self.late_log or ())}

    def close_output(self, output: JackOutput) -> None:
        """Close one port: let its queue go out, stop writing it, unregister it.

        Waits at most :data:`CLOSE_TIMEOUT_S` in all for the queue to empty
        (what is left is dropped), for two more periods to begin (the port's
        readers take a period's output in its cycle, after this client's
        callback), and for a process callback under way to finish (the next
        one no longer sees the port).  Closing the last open port closes the client.
        """
        if not self.closed and self.shutdown_reason is None:
            deadline = time.monotonic() + CLOSE_TIMEOUT_S
            frames = self._client.blocksize
            period_s = frames / self.samplerate
            while output.queue and time.monotonic() < deadline and self.shutdown_reason is None:
                time.sleep(period_s)
            written_base = self._last_base
            while (written_base >= 0 and (self._last_base - written_base) & 0xFFFFFFFF < 2 * frames
                   and time.monotonic() < deadline and self.shutdown_reason is None):
                time.sleep(period_s)
            with self.queue_lock:
                self._ports = tuple(item for item in self._ports if item[3] is not output)
            while self._in_callback and time.monotonic() < deadline:
                time.sleep(period_s / 8)
            try:
                output.port.unregister()
            except jack.JackError as exc:
                log.debug("unregistering %s: %s", output.name, exc)
        else:
            self._ports = tuple(item for item in self._ports if item[3] is not output)
        output.queue.clear()
        self.outputs.pop(output.part, None)
        if not self.outputs:
            self.close()

    # -- the server going and coming back ---------------------------------------
    @property
    def name(self) -> str:
        """The JACK client's name, kept while the server is gone (a restore asks for it exactly)."""
        return self._name

    def link(self) -> Link:
        """``ok`` while sends go out, ``lost`` while the server is gone, ``closed`` after :meth:`close`."""
        if self.closed:
            return Link("closed", self._since_s, None, self.restores)
        if self.accepting:
            return Link("ok", self._since_s, None, self.restores)
        return Link("lost", self._since_s, self.shutdown_reason, self.restores)

    def add_link_listener(self, listener: LinkListener) -> None:
        """Call ``listener(link)`` from the watch thread when the server goes or comes back; once per listener."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def _tell(self) -> None:
        link = self.link()
        for listener in list(self._listeners):
            try:
                listener(link)
            except Exception:  # noqa: BLE001 - the watch thread must live on
                log.exception("MIDI link listener failed")

    def _on_shutdown(self, status: jack.Status, reason: str) -> None:
        # JACK's thread, "as if an asynchronous signal handler": note it and wake the watch thread.
        super()._on_shutdown(status, reason)
        self.accepting = False
        self._since_s = time.monotonic()
        for _port, queue, _name, _output in self._ports:
            queue.clear()  # nothing will write them
        self._wake.set()

    def _watch_server(self) -> None:
        """The watch thread: wait for the server to go, then reach one again every :attr:`reconnect_s`."""
        name_thread("ai-band-jackwatch")
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            if self.accepting:
                continue
            lost_s = self._since_s
            log.error("JACK server gone (%s): MIDI output lost, sends are dropped; "
                      "trying to reach it again every %.1f s", self.shutdown_reason, self.reconnect_s)
            self._tell()
            with self._life_lock:
                if self._stopping.is_set():
                    return
                self._client.close()  # JACK leaves the dead client to us (JACK-Client: set_shutdown_callback)
            attempts = 0
            while not self._stopping.wait(self.reconnect_s):
                attempts += 1
                if self._restore():
                    log.warning("JACK server back after %.1f s (%d attempts): MIDI ports %s recreated",
                                time.monotonic() - lost_s, attempts, ", ".join(self.outputs_names()))
                    self._tell()
                    break
            else:
                return

    def outputs_names(self) -> list[str]:
        """The ports' full names, e.g. ``ai-band:bass``."""
        return [output.name for output in self.outputs.values()]

    def _restore(self) -> bool:
        """One attempt: open a client of the same name, the same ports, activate; True if done.

        The ports come back held (:meth:`JackOutput.hold`) with empty queues,
        nothing sounding and the reset due; the listeners resume them.
        """
        jack.set_error_function(_libjack_message)
        try:
            client, idle_syscalls = open_client(self._name, self._servername, use_exact_name=True)
        except jack.JackError as exc:
            log.debug("JACK server not reachable yet: %s", exc)
            return False
        finally:
            jack.set_error_function(None)
        with self._life_lock:
            if self._stopping.is_set():
                client.close()
                return False
            # No hook runs with the dead client's ports (its callbacks begin at
            # activation): they run again once attached to the new client.
            hooks, self._hooks = self._hooks, ()
            with self.queue_lock:
                self._ports = ()
                self._client = client
                self._idle_syscalls = idle_syscalls
                self._start_timing()
                self._shutdown_reason = None
            try:
                # Active first, as at opening: connections to the ports can be made as they appear.
                self._activate(self._process)
                ports = {part: client.midi_outports.register(part) for part in self.outputs}
            except jack.JackError as exc:
                log.warning("JACK server is back but the MIDI client cannot be set up: %s", exc)
                self._shutdown_reason = self._shutdown_reason or str(exc)
                client.close()
                self._hooks = hooks
                return False
            with self.queue_lock:
                for output in self.outputs.values():
                    output.hold()
                    output.port = ports[output.part]
                    if output.port.name != output.name:
                        log.warning("JACK port %s is now %s", output.name, output.port.name)
                        output.name = output.port.name
                    output.queue.clear()
                    output._forget_notes()  # the new server never had their note-ons
                    output.reset_channels()
                self._ports = tuple((out.port, out.queue, out.name, out) for out in self.outputs.values())
            for hook in hooks:
                try:
                    hook.attach(client)
                except jack.JackError as exc:
                    log.warning("JACK server is back but process hook %r cannot attach: %s", hook, exc)
            self._hooks = hooks
            self._since_s = time.monotonic()
            self.restores += 1
            self.accepting = True  # held: queued, written once the listeners resume the ports
        return True

    def close(self) -> None:
        """Stop the watch thread, deactivate and close the JACK client. Idempotent."""
        self._stopping.set()
        self._wake.set()
        self.accepting = False
        with self._life_lock:
            super().close()
        self._since_s = time.monotonic()
        watch = getattr(self, "_watch", None)
        if watch is not None and watch is not threading.current_thread():
            watch.join(CLOSE_TIMEOUT_S)


def _libjack_message(message: str) -> None:
    """libjack's error messages while the server is being reached again: debug log, not stderr."""
    log.debug("libjack: %s", message)


def open_outputs(parts: Iterable[str], client_name: str = "ai-band", servername: str | None = None,
                 rtprio: int = 0, write_log_size: int = 0, reconnect_s: float = 1.0) -> dict[str, JackOutput]:
    """Open one JACK client with a timed :class:`JackOutput` per part (arguments as :class:`JackMidiClient`).

    Returns:
        Part -> its output, in order; closing the last one closes the client.

    Raises:
        MidiPortError: no JACK server is reachable, or a port cannot be registered.
    """
    return dict(JackMidiClient(parts, client_name, servername, rtprio, write_log_size, reconnect_s).outputs)
