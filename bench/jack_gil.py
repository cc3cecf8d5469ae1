#!/usr/bin/env python3
"""How long a Python JACK process callback takes when another Python thread wants the GIL.

Why (issue 15, item 11): the daemon's JACK callback (``ai_band/playback/outputs/jack.py``)
makes its C calls through JACK-Client, i.e. cffi, which releases the GIL for
every C call; JACK-Client 0.5.7 makes three per ``clear_buffer()`` and per
``write_midi_event()``.  Whenever another thread is waiting for the GIL the
callback then waits to get it back, up to the switch interval each time.
This compares, on a realtime private JACK server (``jackd -R``, dummy driver,
48 kHz / 64 frames), one client with 8 MIDI output ports whose callback clears
every port and writes a 6-note group each period:

* ``cffi``: through JACK-Client, as the daemon does;
* ``pydll``: the same libjack calls through ``ctypes.PyDLL``, which keeps the GIL.

Meanwhile another Python thread of the same process works 2 ms, sleeps 3 ms.
The callback's own duration is timed from its first line (the wait for the
GIL on entry is the same in both and not included).

Usage: python -m bench.jack_gil [--seconds 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import sys
import threading
import time

import jack

from ai_band.testing.jackserver import JackServer
from bench.machine import machine_name

PORTS = 8
GROUP = 6
NOTE_ON = bytes((0x90, 60, 100))


def _pydll() -> ctypes.PyDLL:
    """libjack through ctypes.PyDLL (calls keep the GIL), the callback's functions declared."""
    lib = ctypes.PyDLL(ctypes.util.find_library("jack") or "libjack.so.0")
    lib.jack_port_get_buffer.restype = ctypes.c_void_p
    lib.jack_port_get_buffer.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_midi_clear_buffer.argtypes = [ctypes.c_void_p]
    lib.jack_midi_event_write.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
    for name in ("jack_last_frame_time", "jack_frames_since_cycle_start"):
        getattr(lib, name).restype = ctypes.c_uint32
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    return lib


def measure(mode: str, servername: str, seconds: float) -> dict:
    """One client for ``seconds``; the callback durations (µs) past the first 500 periods."""
    client = jack.Client(f"gil-{mode}", no_start_server=True, servername=servername)
    ports = [client.midi_outports.register(f"p{i}") for i in range(PORTS)]
    lib = _pydll()
    client_ptr = int(jack._ffi.cast("uintptr_t", client._ptr))
    port_ptrs = [int(jack._ffi.cast("uintptr_t", p._ptr)) for p in ports]
    durations_ns: list[int] = []

    def process(frames: int) -> None:
        t0 = time.perf_counter_ns()
        if mode == "cffi":
            client.last_frame_time
            client.frames_since_cycle_start
            for port in ports:
                port.clear_buffer()
            for k in range(GROUP):
                ports[k].write_midi_event(k, NOTE_ON)
        else:
            lib.jack_last_frame_time(client_ptr)
            lib.jack_frames_since_cycle_start(client_ptr)
            buffers = [lib.jack_port_get_buffer(p, frames) for p in port_ptrs]
            for buffer in buffers:
                lib.jack_midi_clear_buffer(buffer)
            for k in range(GROUP):
                lib.jack_midi_event_write(buffers[k], k, NOTE_ON, len(NOTE_ON))
        durations_ns.append(time.perf_counter_ns() - t0)

    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            until = time.perf_counter() + 0.002
            while time.perf_counter() < until:
                sum(range(200))
            time.sleep(0.003)

    client.set_process_callback(process)
    client.activate()
    worker = threading.Thread(target=busy, name="busy", daemon=True)
    worker.start()
    time.sleep(seconds)
    stop.set()
    worker.join()
    client.deactivate()
    client.close()
    d = sorted(durations_ns[500:])
    n = len(d)
    return {"mode": mode, "callbacks": n, "median_us": round(d[n // 2] / 1000, 1),
            "p99_us": round(d[int(n * 0.99)] / 1000, 1), "max_us": round(d[-1] / 1000, 1),
            "over_1ms": sum(1 for x in d if x > 1_000_000), "load_average": round(os.getloadavg()[0], 2)}


def main() -> int:
    """Run the comparison, print one line per round and mode."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sys.setswitchinterval(0.0005)  # the daemon's (ai_band.system.priority.SWITCH_INTERVAL_S)
    print(machine_name())
    with JackServer(realtime=True) as server:
        for _ in range(args.rounds):
            for mode in ("cffi", "pydll"):
                print(measure(mode, server.name, args.seconds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
