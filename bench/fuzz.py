#!/usr/bin/env python3
"""OSC fuzz benchmark: a million fuzzed datagrams against the real daemon over UDP on 127.0.0.1.

What it does (issue 15, item 2):
  * starts a private JACK server (dummy driver) and the daemon as its own
    process (``ai-band run``, JACK MIDI API), as a user runs it;
  * sends ``--count`` datagrams from one plain UDP socket, made by
    :class:`Mutator` (seeded, reproducible): every message of the OSC API
    (docs/osc-api.md) with valid and extreme values, the same with its type
    tag string or bytes mutated, bundles (immediate, past, near and far
    future, nested, with bad element sizes), random bytes, and liblo's
    malformed-message cases (:func:`malformed_cases`);
  * paces itself on the daemon's answers: after every batch a second client
    sends ``/band/ping s:token i:seq`` and at most two small batches (one
    large) are ever unanswered, so the socket's receive buffer should not
    overflow; the drops the
    kernel counted for the daemon's socket (``/proc/net/udp``) are read all
    the same, so "every datagram counted" is checked, not assumed;
  * reads ``/band/status`` before and after (a third client: ``hello``,
    ``status``, ``bye``; the datagrams of one such round are measured by two
    rounds back to back, so a handshake that needs more datagrams is
    accounted for).

Figures: datagrams sent and rate, ``counters.packets`` against the datagrams
that reached the socket, ``counters.internal_errors``, tracebacks in the log,
pings answered, job folders created against ``/band/generate`` acks seen by
the fuzzer, the daemon's RSS and log size, whether it is alive and exits 0.

``/band/generate`` is fuzzed at a low weight and, when its arguments are
valid, only for 1-2 bar MIDI-only jobs (``render`` "mid", ``bars`` 1..2) so the
run stays short; a generate that parses is a legitimate job, so jobs are
compared with the acks, and malformed ones must create none.
``/band/hello`` is never byte-mutated and names only the fuzzer's own port
(or out-of-range ports): a mutated reply port would make the daemon send its
replies to some other program on this machine.

Usage: python -m bench.fuzz [--count 1000000] [--seed 1] [--batch 48] [--json bench/results/fuzz.json]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from bench.machine import machine_name
from ai_band.host import OscClient
from ai_band.testing.daemonproc import DaemonProcess
from ai_band.testing.jackserver import JackServer, JackServerError

# ----------------------------------------------------------------- encoding
# Written apart from the project's encoder (ai_band.osc.protocol, python-osc):
# the fuzzer must be able to say anything, including what those refuse to build.


#: Pings at most every this many seconds: 150/s, below the daemon's default per-client rate (200/s).
PING_INTERVAL_MIN_S = 1 / 150


def osc_string(text: str | bytes) -> bytes:
    """OSC-string: the bytes, a NUL, padded with NULs to a multiple of 4."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return raw + b"\x00" * (4 - len(raw) % 4)


def osc_blob(data: bytes, declared: int | None = None) -> bytes:
    """OSC-blob: int32 size (``declared`` or the real one), the bytes, NUL-padded to 4."""
    size = len(data) if declared is None else declared
    return struct.pack(">i", size) + data + b"\x00" * (-len(data) % 4)


def encode_arg(tag: str, value: object) -> bytes:
    """The argument bytes of one value under ``tag`` (any of ``i f s b h t d r m c S``; ``T F N [ ]`` have none)."""
    if tag in "TFN[]":
        return b""
    if tag in "ircm":
        if isinstance(value, (bytes, bytearray)):
            return bytes(value[:4]).ljust(4, b"\x00")
        return struct.pack(">I", int(value) & 0xFFFFFFFF)
    if tag == "f":
        return struct.pack(">f", float(value)) if abs(float(value)) < 3.4e38 or value != value else struct.pack(">f", float("inf"))
    if tag in "hdt":
        if tag == "d":
            return struct.pack(">d", float(value))
        return struct.pack(">Q", int(value) & 0xFFFFFFFFFFFFFFFF)
    if tag in "sS":
        return osc_string(value if isinstance(value, (str, bytes)) else str(value))
    if tag == "b":
        return osc_blob(value if isinstance(value, bytes) else str(value).encode())
    return b""


def osc_message(address: str | bytes, args: list[tuple[str, object]], tags: str | bytes | None = None) -> bytes:
    """One OSC message; ``tags`` overrides the type tag string built from ``args`` (without the comma)."""
    tag_bytes = "".join(t for t, _ in args).encode() if tags is None else (tags.encode() if isinstance(tags, str) else tags)
    return osc_string(address) + osc_string(b"," + tag_bytes) + b"".join(encode_arg(t, v) for t, v in args)


def osc_timetag(when_s: float | None) -> bytes:
    """NTP time tag of a Unix time in seconds; ``None`` is "immediately" (1)."""
    if when_s is None:
        return struct.pack(">Q", 1)
    seconds = when_s + 2208988800.0
    return struct.pack(">II", int(seconds) & 0xFFFFFFFF, int((seconds % 1.0) * 2**32) & 0xFFFFFFFF)


def osc_bundle(elements: list[bytes], timetag: bytes = struct.pack(">Q", 1)) -> bytes:
    """``#bundle``, the time tag, then each element with its int32 size."""
    return b"#bundle\x00" + timetag + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def malformed_cases() -> list[tuple[str, bytes]]:
    """liblo's malformed-message cases (its ``testlo.c``) and the issue's crash packet, as ``(name, datagram)``."""
    ping = osc_message("/band/ping", [("i", 42)])
    return [
        ("empty packet", b""),
        ("unterminated path", b"/band/ping"),
        ("unterminated path, 4-aligned", b"/ban"),
        ("path bad padding", b"/band/ping\x00\x01,i\x00\x00" + struct.pack(">i", 1)),
        ("path not padded", b"/band/ping\x00,i\x00\x00" + struct.pack(">i", 1)),
        ("missing type tags", osc_string("/band/ping") + struct.pack(">i", 1)),
        ("type tags without comma", osc_string("/band/ping") + osc_string("i") + struct.pack(">i", 1)),
        ("unterminated type tags", osc_string("/band/ping") + b",iii"),
        ("type tags bad padding", osc_string("/band/ping") + b",i\x00\x01" + struct.pack(">i", 1)),
        ("too little argument data (i)", osc_string("/band/ping") + osc_string(",i") + b"\x00\x00"),
        ("too little argument data (d)", osc_string("/band/ping") + osc_string(",d") + b"\x00\x00\x00\x00"),
        ("no argument data (s)", osc_string("/band/ping") + osc_string(",s")),
        ("unterminated string argument", osc_string("/band/ping") + osc_string(",s") + b"abcd"),
        ("too much argument data", ping + b"\x00\x00\x00\x07" * 3),
        ("blob longer than the message", osc_string("/band/ping") + osc_string(",b") + struct.pack(">i", 1000) + b"abcd"),
        ("blob of negative size", osc_string("/band/ping") + osc_string(",b") + struct.pack(">i", -4) + b"abcd"),
        ("known crash packet", b"/\x00\x00\x00,bs\x00,\x00\x0f\x42\x3f"),
        ("bundle without time tag", b"#bundle\x00"),
        ("bundle element longer than bundle", b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", 4096) + ping),
        ("bundle element size not a multiple of 4", b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", len(ping) - 1) + ping),
        ("bundle element of negative size", b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", -16) + ping),
        ("bundle element size cut off", b"#bundle\x00" + struct.pack(">Q", 1) + b"\x00\x00"),
        ("not OSC at all", b"GET / HTTP/1.1\r\n\r\n"),
        ("only NULs", b"\x00" * 16),
    ]


def refused_generates() -> list[tuple[str, bytes]]:
    """``/band/generate`` datagrams the daemon must refuse whole (no job), as ``(name, datagram)``."""
    return [
        ("unknown type tag, no arguments", osc_message("/band/generate", [], tags="x")),
        ("type tag S (not OSC 1.0)", osc_message("/band/generate", [("s", "bars")], tags="sS")),
        ("type tag I", osc_message("/band/generate", [], tags="I")),
        ("type tag string without comma", osc_string("/band/generate") + b"x\x00\x00\x00"),
        ("type tag c", osc_message("/band/generate", [("s", "bars"), ("i", 1)], tags="sc")),
        ("argument data missing", osc_message("/band/generate", [("s", "bars")], tags="si")),
    ]


# ----------------------------------------------------------------- mutator

#: Integers at the edges of OSC's and Python's types.
EDGE_INTS = [0, 1, -1, 2, 127, 128, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**32 - 1, 2**63 - 1, -2**63]
#: Floats at the edges (finite and not): the daemon must refuse or clamp every one.
EDGE_FLOATS = [0.0, -0.0, 1.0, -1.0, 1e-45, 1e-300, 3.4e38, 1e300, -1e300, float("inf"), float("-inf"), float("nan"), 0.5, 120.0]
#: Type tags: OSC 1.0, its extensions, and garbage.
TAG_ALPHABET = "ifsbhtdrmTFNIcS[]x,\x00\xff?"
#: Strings: empty, long, not UTF-8, control characters, JSON-ish.
EDGE_STRINGS: list[str | bytes] = [
    "", "x", "a" * 129, "a" * 5000, "\u00e9\u4e2d\U0001f3b8", b"\xff\xfe\xc3", "\x01\x02\x7f", "%s%n%d", "../../etc/passwd",
    "null", "[]", "{}", "1e999", "NaN", "-0", "9" * 5000, "drums", "bass,keys", "C Am F G", "| C | % |",
]
#: JSON bodies for ``/band/generate s:json``: deep, huge numbers, wrong types, and small valid ones.
_DEEP = "[" * 10000 + "]" * 10000
GENERATE_JSON = [
    '{"seed": 1' + "0" * 40 + "}", '{"seed": ' + "9" * 5000 + "}", '{"bpm": 1e400}', '{"bars": -1}', _DEEP,
    '{"chords": ' + _DEEP + "}", '{"parts": {"a": 1}}', "[1,2,3]", '"x"', "{", '{"bars": 1.5}', '{"id": null}',
    '{"bars": 1, "render": "mid", "chords": "C"}', '{"bars": 2, "render": "mid", "style": "jazz", "seed": 3}',
    '{"bars": 1, "render": "mid", "chords": "Xq7"}', '{"bars": 1, "render": "mid", "style": "nope"}',
]

#: Addresses whose valid form changes what the band plays; left out with ``harmless=True``.
PLAYBACK_ADDRESSES = ("/band/transport", "/band/play", "/band/stop", "/band/mute", "/band/panic",
                      "/band/preview", "/band/preview/stop", "/band/generate", "/band/cancel")


class Mutator:
    """Makes fuzzed datagrams for the daemon's OSC API; deterministic for a seed.

    Args:
        seed: seed of its ``random.Random``.
        own_port: the UDP port the datagrams are sent from: the only valid
            ``reply_port`` a ``/band/hello`` may name (see the module docstring).
        harmless: leave out messages whose valid form changes playback
            (:data:`PLAYBACK_ADDRESSES`, e.g. a valid ``/band/stop``): what a
            token keeps away (issue 15 item 3), not what a parser must survive.
            Their malformed forms (random bytes, bad tags) still come.
        clock: wall-clock seconds (Unix time) that bundle time tags are dated from.
    """

    def __init__(self, seed: int, own_port: int, harmless: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.own_port = own_port
        self.harmless = harmless
        self.malformed = [d for _, d in malformed_cases()]
        templates: list[tuple[float, Callable[[], tuple[str, list[tuple[str, object]]]]]] = [
            (6, self._ping), (2, self._hello), (2, self._bye), (6, self._transport), (0.02, self._generate_pairs),
            (0.02, self._generate_json), (1, self._job_id("/band/play")), (1, self._job_id("/band/cancel")),
            (1, self._job_id("/band/preview")), (1, self._none("/band/stop")), (1, self._mute),
            (1, self._none("/band/panic")), (1, self._none("/band/styles")), (1, self._none("/band/status")),
            (1, self._none("/band/preview/stop")), (1, self._unknown),
        ]
        if harmless:
            templates = [(w, t) for w, t in templates if self._address_of(t) not in PLAYBACK_ADDRESSES]
        self._templates = [t for _, t in templates]
        self._weights = [w for w, _ in templates]
        #: Malformed-only forms of the generate and playback messages: always offered.
        self._refused_generate = [d for _, d in refused_generates()]

    def _address_of(self, template: Callable) -> str:
        return template()[0]

    # -- valid messages, with edge values --------------------------------------
    def _int(self, good: list[int]) -> tuple[str, object]:
        rng = self.rng
        if rng.random() < 0.7:
            return "i", rng.choice(good)
        value = rng.choice(EDGE_INTS)
        return ("i" if -2**31 <= value < 2**31 and rng.random() < 0.5 else "h"), value

    def _float(self, good: list[float]) -> tuple[str, object]:
        rng = self.rng
        if rng.random() < 0.7:
            return rng.choice("ffd"), rng.choice(good)
        return rng.choice("fd"), rng.choice(EDGE_FLOATS)

    def _str(self, good: list[str]) -> tuple[str, object]:
        rng = self.rng
        return "s", (rng.choice(good) if rng.random() < 0.7 else rng.choice(EDGE_STRINGS))

    def _any(self) -> tuple[str, object]:
        rng = self.rng
        kind = rng.random()
        if kind < 0.3:
            return self._int([rng.randint(-1000, 1000)])
        if kind < 0.55:
            return self._float([rng.uniform(-1e3, 1e3)])
        if kind < 0.8:
            return self._str(["x"])
        if kind < 0.9:
            return "b", rng.randbytes(rng.choice([0, 1, 3, 4, 100, 4000]))
        return rng.choice("TFN"), None

    def _ping(self):
        rng = self.rng
        count = rng.choice([127, 128, 129]) if rng.random() < 0.02 else rng.choice([0, 1, 1, 2, 2, 3, 4, 8])
        return "/band/ping", [self._any() for _ in range(count)]

    def _hello(self):
        port = self.own_port if self.rng.random() < 0.6 else self.rng.choice([0, -1, 65536, 2**31 - 1, -2**31])
        return "/band/hello", [self._str(["fuzz"]), ("i", port)][: self.rng.choice([2, 2, 2, 1, 0])]

    def _bye(self):
        return "/band/bye", [self._str(["fuzz", "nobody"])]

    def _transport(self):
        return "/band/transport", [self._int([0, 1]), self._float([120.0, 90.0, 0.5, 1000.0]),
                                   self._float([0.0, 16.0, 1e8]), self._float([0.0, 16.0, -4.0]),
                                   self._int([4, 3, 0, 65]), self._int([4, 8, 3, 0])]

    def _generate_pairs(self):
        rng = self.rng
        keys = ["chords", "style", "bpm", "key", "ts", "parts", "seed", "humanize", "swing", "prompt",
                "energy", "complexity", "structure", "sections", "programs", "channels", "nonsense"]
        args: list[tuple[str, object]] = [("s", "id"), ("s", f"fz{rng.randrange(10**6)}"),
                                          ("s", "bars"), ("i", rng.choice([1, 2])), ("s", "render"), ("s", "mid")]
        for key in rng.sample(keys, rng.randint(0, 4)):
            args += [("s", key), rng.choice([self._any(), self._str(["C Am", "jazz", "4/4", "bass", "1"])])]
        return "/band/generate", args

    def _generate_json(self):
        return "/band/generate", [("s", self.rng.choice(GENERATE_JSON))]

    def _job_id(self, address: str):
        return lambda: (address, [self._str(["20261121-141502-3fa2", "x"])][: self.rng.choice([1, 1, 0])])

    def _none(self, address: str):
        return lambda: (address, [self._any() for _ in range(self.rng.choice([0, 0, 0, 1]))])

    def _mute(self):
        return "/band/mute", [self._str(["bass", "drums", "kazoo"]), self._int([0, 1, 2])]

    def _unknown(self):
        return self.rng.choice(["/band", "/band/", "/band/pingx", "/", "//", "/band/*", "/band/p?ng", "/x" * 300]), []

    # -- mutations -------------------------------------------------------------
    def _message(self) -> bytes:
        rng = self.rng
        address, args = rng.choices(self._templates, self._weights)[0]()
        if address == "/band/hello":
            return osc_message(address, args)  # never mutated: see the module docstring
        roll = rng.random()
        if roll < 0.4:
            return osc_message(address, args)
        if roll < 0.7:  # type tag string mutated, argument bytes unchanged
            tags = list("".join(t for t, _ in args))
            for _ in range(rng.randint(1, 3)):
                op = rng.random()
                if op < 0.4 and tags:
                    tags[rng.randrange(len(tags))] = rng.choice(TAG_ALPHABET)
                elif op < 0.7:
                    tags.insert(rng.randint(0, len(tags)), rng.choice(TAG_ALPHABET))
                elif tags:
                    del tags[rng.randrange(len(tags))]
            if rng.random() < 0.02:
                tags = list(rng.choice(["x", "T", "I", "S"]) * rng.choice([200, 5000, 65000]))
            return osc_message(address, args, tags="".join(tags).encode("latin-1"))
        return self._bytes(osc_message(address, args))

    def _bytes(self, data: bytes) -> bytes:
        """Byte-level mutation: flips, inserts, deletions, truncation, junk appended."""
        rng = self.rng
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if op < 0.35 and buf:
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            elif op < 0.55:
                buf[rng.randint(0, len(buf)):rng.randint(0, len(buf))] = rng.randbytes(rng.choice([1, 2, 4, 8]))
            elif op < 0.7 and buf:
                start = rng.randrange(len(buf))
                del buf[start:start + rng.choice([1, 3, 4, 16])]
            elif op < 0.85:
                del buf[rng.randint(0, len(buf)):]
            else:
                buf += rng.randbytes(rng.choice([1, 4, 13, 64]))
        return bytes(buf)

    def _bundle(self, depth: int = 0) -> bytes:
        rng = self.rng
        elements = []
        # Wide at the top, one nested bundle at most per level: up to 10 deep, never a tree that explodes.
        nested = depth < 10 and rng.random() < (0.3 if depth == 0 else 0.8)
        width = (rng.choice([64, 65]) if rng.random() < 0.05 else rng.choice([1, 2, 3, 8])) if depth == 0 else rng.choice([1, 2])
        for _ in range(width):
            elements.append(self._message())
        if nested:
            elements.insert(rng.randint(0, len(elements)), self._bundle(depth + 1))
        elements = [e for e in elements if len(e) % 4 == 0 or rng.random() < 0.1] or [osc_message("/band/ping", [])]
        now = self.clock()
        when = rng.choice([None, None, None, 0.0, 1e9, now - 10, now + 0.2, now + 2.0, now + 11.0, now + 3600,
                           2.0**32 - 2208988800.0])
        tag = struct.pack(">Q", rng.choice([0, 2**64 - 1])) if rng.random() < 0.05 else osc_timetag(when)
        data = osc_bundle(elements, tag)
        if rng.random() < 0.2 and b"/band/hello" not in data:
            data = self._bytes(data)
        return data

    def datagram(self) -> bytes:
        """The next fuzzed datagram (at most 65,507 bytes)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.70:
            data = self._message()
        elif roll < 0.85:
            data = self._bundle()
        elif roll < 0.92:
            data = rng.choice(self.malformed)
        elif roll < 0.96:
            data = rng.choice(self._refused_generate)
        else:
            data = rng.randbytes(rng.choice([0, 1, 4, 7, 16, 100, 1000, 60000]))
        return data[:65507]


# ----------------------------------------------------------------- measuring


def udp_drops(port: int) -> int | None:
    """Datagrams the kernel dropped for the IPv4 UDP socket bound to ``port`` (``/proc/net/udp``, last column)."""
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[-1])
    return None


def rss_kb(pid: int) -> int | None:
    """VmRSS of a process in KiB (``/proc/<pid>/status``), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a process has used (``/proc/<pid>/stat``), or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_bytes(daemon: DaemonProcess) -> int:
    """Bytes the daemon has logged so far (its stderr, one newline per line)."""
    return sum(len(line.encode("utf-8", "replace")) + 1 for line in list(daemon.lines))


def read_status(client: OscClient, timeout_s: float = 5.0) -> dict:
    """One ``/band/status`` round: ``hello`` (where status needs a registration), the request, ``bye``.

    Raises:
        TimeoutError: no status reply within ``timeout_s``.
    """
    client.drain()
    try:
        client.hello("fuzz-status", timeout=timeout_s)
    except TimeoutError:
        pass  # an older daemon, or the table is full: status may still answer
    client.send("/band/status")
    _, args = client.receive("/band/status", timeout=timeout_s)
    client.send("/band/bye", "fuzz-status")
    client.receive("/band/ack", timeout=timeout_s)
    return json.loads(args[0])


class ReplyCounter:
    """Drains the fuzzer's socket in a thread, counting the daemon's replies by kind (bytes only, no parsing)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.replies = 0
        self.generate_acks = 0
        self.internal_errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fuzz-replies", daemon=True)

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.replies += 1
            if data.startswith(b"/band/ack\x00") and b"/band/generate\x00" in data[:64]:
                self.generate_acks += 1
            elif data.startswith(b"/band/error\x00") and b"\x00internal\x00" in data:
                self.internal_errors += 1

    def __enter__(self) -> "ReplyCounter":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)


def internal_error_kinds(log_text: str) -> dict[str, int]:
    """``{"<address>: <exception line>": count}`` of the tracebacks the daemon logged (rate-limited, so a sample)."""
    kinds: dict[str, int] = {}
    lines = log_text.splitlines()
    for i, line in enumerate(lines):
        if "handler for " in line and " failed" in line:
            address = line.split("handler for ", 1)[1].split(" failed", 1)[0]
            for later in lines[i + 1:i + 200]:
                if later and not later.startswith((" ", "Traceback")):
                    key = f"{address}: {later[:160]}"
                    kinds[key] = kinds.get(key, 0) + 1
                    break
    return kinds


def wait_jobs_settled(client: OscClient, timeout_s: float = 120.0) -> int:
    """Wait until no job in ``/band/status`` is queued or running; return how many still were at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        busy = sum(1 for job in read_status(client)["jobs"] if job["state"] in ("queued", "generating", "rendering"))
        if busy == 0 or time.monotonic() > deadline:
            return busy
        time.sleep(0.5)


def job_folders(output_dir: Path) -> int:
    """Job folders in the daemon's output directory."""
    return sum(1 for p in output_dir.iterdir() if p.is_dir()) if output_dir.exists() else 0


#: How many of the slowest-answered batches are kept and replayed one datagram at a time.
SLOW_BATCHES = 5


def replay_slowest(fuzz: socket.socket, pinger: OscClient, target: tuple[str, int], token: str,
                   slow_batches: list[tuple[float, list[bytes]]], keep: int = 5) -> list[dict]:
    """Send each datagram of the slowest batches again, alone, each followed by a ping; the ``keep`` slowest.

    Returns:
        ``[{"ms": answer time of the ping after it, "bytes": length, "head": repr of its first 64 bytes}]``,
        slowest first.  The machine's own stalls show here too: a datagram is
        only suspect when its time repeats.
    """
    timed = []
    for _, datagrams in slow_batches:
        for data in datagrams:
            pinger.drain()
            t0 = time.monotonic()
            fuzz.sendto(data, target)
            pinger.send("/band/ping", token, -1)
            try:
                while pinger.receive("/band/pong", timeout=5.0)[1] != [token, -1]:
                    pass
            except TimeoutError:
                pass
            timed.append({"ms": round((time.monotonic() - t0) * 1000, 2), "bytes": len(data), "head": repr(data[:64])})
    return sorted(timed, key=lambda d: -d["ms"])[:keep]


#: What the kernel charges a socket's receive buffer per datagram beyond its payload (skb overhead), bytes, roughly.
DATAGRAM_OVERHEAD_BYTES = 768


def fuzz_daemon(daemon: DaemonProcess, count: int, seed: int = 1, batch: int = 48, batch_bytes: int = 16_000,
                in_flight_bytes: int = 60_000,
                pong_timeout_s: float = 2.0, settle_jobs_s: float = 120.0,
                progress: Callable[[int, float], None] | None = None) -> dict:
    """Send ``count`` fuzzed datagrams to a running daemon; return the figures (see the module docstring).

    Args:
        daemon: the started daemon (its ``port``, ``proc`` and ``output_dir``).
        count: fuzzed datagrams to send, liblo's cases first.
        seed: the mutator's seed.
        batch: datagrams between two pings; ``batch_bytes``: or fewer, once their bytes reach this.
        in_flight_bytes: a second batch is sent before the first is answered only while both hold
            less than this (the daemon's socket buffer is 212,992 bytes by default, and a datagram
            can be 65,507).
        pong_timeout_s: how long a ping's answer is waited for before it counts as unanswered.
        settle_jobs_s: how long to wait for the jobs the fuzz started to end before job folders are counted.
        progress: called ``progress(sent, elapsed_s)`` about every 10 s.
    """
    target = ("127.0.0.1", daemon.port)
    fuzz = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fuzz.bind(("127.0.0.1", 0))
    fuzz.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    mutator = Mutator(seed, fuzz.getsockname()[1])
    token = f"fuzz-{os.getpid()}"
    with OscClient(target) as pinger, OscClient(target) as statuser, ReplyCounter(fuzz) as replies:
        pinger.hello("fuzz-pinger")  # registered before the count starts: its hello and echo are not fuzz
        first = read_status(statuser)
        second = read_status(statuser)
        status_round = second["counters"].get("packets", 0) - first["counters"].get("packets", 0)
        drops_before = udp_drops(daemon.port) or 0
        jobs_before = job_folders(daemon.output_dir)
        rss_start = rss_kb(daemon.proc.pid)
        cpu_start = cpu_s(daemon.proc.pid)
        log_start = log_bytes(daemon)
        cases = [d for _, d in malformed_cases()]
        sent = pings = pongs = 0
        pong_waits: list[float] = []
        unanswered: list[int] = []
        early: set[int] = set()  # pongs read while an earlier, lost one was waited for
        outstanding: list[tuple[int, float, int, list[bytes]]] = []  # (ping seq, sent at, bytes, the batch)
        other_replies: collections.Counter[str] = collections.Counter()  # what the pinger got besides its pongs
        slow_batches: list[tuple[float, list[bytes]]] = []  # the slowest answered batches, slowest first
        t0 = time.monotonic()
        last_ping_s = 0.0
        next_progress = t0 + 10.0

        def wait_pong(seq: int, sent_s: float, _bytes: int = 0, sent_batch: list[bytes] | None = None) -> None:
            nonlocal pongs
            if seq in early:
                early.discard(seq)
                pongs += 1
                return
            deadline = time.monotonic() + pong_timeout_s
            while True:
                try:
                    address, args = pinger.receive(timeout=max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    unanswered.append(seq)
                    return
                if not (address == "/band/pong" and args[:1] == [token]):
                    other_replies[f"{address} {str(args)[:80]}"] += 1
                if address == "/band/pong" and args[:1] == [token] and len(args) == 2:
                    if args[1] == seq:
                        pongs += 1
                        waited_s = time.monotonic() - sent_s
                        pong_waits.append(waited_s)
                        if sent_batch and (len(slow_batches) < SLOW_BATCHES or waited_s > slow_batches[-1][0]):
                            slow_batches.append((waited_s, sent_batch))
                            slow_batches.sort(key=lambda b: -b[0])
                            del slow_batches[SLOW_BATCHES:]
                        return
                    if args[1] > seq:  # ours was lost: a later one arrived first
                        early.add(args[1])
                        unanswered.append(seq)
                        return

        while sent < count:
            size = 0
            n = 0
            this_batch: list[bytes] = []
            while n < batch and size < batch_bytes and sent < count:
                data = cases[sent] if sent < len(cases) else mutator.datagram()
                this_batch.append(data)
                fuzz.sendto(data, target)
                sent += 1
                n += 1
                size += len(data) + DATAGRAM_OVERHEAD_BYTES
            # The pinger is a registered client like any other: past [osc] rate_messages_per_s
            # (200/s by default) its own pings would be refused as rate_limited.
            wait_s = last_ping_s + PING_INTERVAL_MIN_S - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            last_ping_s = time.monotonic()
            pings += 1
            pinger.send("/band/ping", token, pings)
            outstanding.append((pings, time.monotonic(), size, this_batch))
            # What may wait in the daemon's socket while the next batch goes out: one batch,
            # two when they are small (the kernel charges each datagram's buffer, not its bytes).
            while len(outstanding) > 2 or (len(outstanding) == 2 and sum(o[2] for o in outstanding) > in_flight_bytes):
                wait_pong(*outstanding.pop(0))
            if daemon.proc.poll() is not None:
                break
            now = time.monotonic()
            if progress is not None and now >= next_progress:
                progress(sent, now - t0)
                next_progress = now + 10.0
        for item in outstanding:
            wait_pong(*item)
        elapsed_s = time.monotonic() - t0
        alive = daemon.proc.poll() is None
        cpu_used = (cpu_s(daemon.proc.pid) or 0.0) - (cpu_start or 0.0)
        time.sleep(0.5)  # replies still under way reach the counter
        drops = (udp_drops(daemon.port) or 0) - drops_before if alive else None
        last = read_status(statuser) if alive else None
        jobs_unsettled = wait_jobs_settled(statuser, settle_jobs_s) if alive else None
        slowest = replay_slowest(fuzz, pinger, target, token, slow_batches) if alive else []
        rss_end = rss_kb(daemon.proc.pid)
    fuzz.close()
    counters = last["counters"] if last else {}
    reached = sent + pings - (drops or 0)
    packets_delta = counters.get("packets", 0) - second["counters"].get("packets", 0) - status_round
    log_text = daemon.log_text()
    return {
        "machine": machine_name(),
        "seed": seed,
        "datagrams_sent": sent,
        "pings_sent": pings,
        "elapsed_s": round(elapsed_s, 1),
        "rate_per_s": round(sent / elapsed_s) if elapsed_s else None,
        "kernel_drops": drops,
        "daemon_cpu_s": round(cpu_used, 1),
        "daemon_cpu_us_per_datagram": round(cpu_used / (sent + pings) * 1e6, 1) if sent else None,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "daemon_alive": alive,
        "counters_packets_delta": packets_delta,
        "datagrams_reaching_socket": reached,
        "every_datagram_counted": packets_delta == reached,
        "status_round_datagrams": status_round,
        "counters_internal_errors": counters.get("internal_errors", 0),
        "internal_errors_seen_by_fuzzer": replies.internal_errors,
        "tracebacks_in_log": log_text.count("Traceback"),
        "pongs": pongs,
        "pings_unanswered": len(unanswered),
        "pinger_other_replies": dict(other_replies.most_common(5)),
        "pong_wait_ms_median_max": ([round(sorted(pong_waits)[len(pong_waits) // 2] * 1000, 2),
                                     round(max(pong_waits) * 1000, 2)] if pong_waits else None),
        "internal_error_kinds": internal_error_kinds(log_text),
        "slowest_batches_ms": [round(w * 1000, 1) for w, _ in slow_batches],
        "slowest_datagrams_replayed": slowest,
        "job_folders_created": job_folders(daemon.output_dir) - jobs_before,
        "jobs_unfinished_at_count": jobs_unsettled,
        "generate_acks_seen": replies.generate_acks,
        # Jobs the daemon accepted (its own count): acks to an unregistered sender may be cut or rate-limited.
        "jobs_accepted": (last.get("jobs_total", 0) - second.get("jobs_total", 0)) if last else None,
        "replies_seen": replies.replies,
        "rss_mb_start_end": [round((rss_start or 0) / 1024, 1), round((rss_end or 0) / 1024, 1)],
        "log_bytes": log_bytes(daemon) - log_start,
        "counters": {k: v for k, v in counters.items() if not k.startswith("rejected:")},
    }


@contextlib.contextmanager
def private_jack(realtime: bool = False, wait_s: float = 300.0) -> Iterator[JackServer]:
    """A private JACK server for the ``with`` block, retried while the machine has too many running.

    Raises:
        JackServerError: it still did not start after ``wait_s`` seconds.
    """
    deadline = time.monotonic() + wait_s
    while True:
        server = JackServer(realtime=realtime)
        try:
            server.start()
            break
        except JackServerError as exc:
            if "Too many servers" not in str(exc) or time.monotonic() > deadline:
                raise
            print("waiting for a free JACK server slot", file=sys.stderr)
            time.sleep(5.0)
    try:
        yield server
    finally:
        server.stop()


def run(count: int, seed: int, batch: int, jack_realtime: bool = False) -> dict:
    """Start JACK and the daemon, fuzz it, stop it; return the figures with ``checks`` and ``pass``."""
    with tempfile.TemporaryDirectory() as out, private_jack(jack_realtime) as jack:
        with DaemonProcess(Path(out) / "jobs", env=jack.env()) as daemon:
            figures = fuzz_daemon(daemon, count, seed, batch,
                                  progress=lambda n, s: print(f"  {n} sent in {s:.0f} s", file=sys.stderr))
            code, stop_s = daemon.terminate()
    figures.update({"daemon_exit_code": code, "daemon_stop_s": round(stop_s, 2)})
    figures["checks"] = {
        "no_crash": figures["daemon_alive"] and code == 0,
        "no_internal_errors": figures["counters_internal_errors"] == 0 and figures["tracebacks_in_log"] == 0,
        "every_datagram_counted": figures["every_datagram_counted"],
        "pings_answered": figures["pings_unanswered"] == 0,
        "jobs_only_from_accepted_generates": figures["job_folders_created"] == figures["jobs_accepted"],
    }
    figures["pass"] = all(figures["checks"].values())
    return figures


def main() -> int:
    """Run the fuzzer, print the figures, optionally save them as JSON; exit 1 if a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="fuzzed datagrams to send")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=48, help="datagrams between two pings")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the daemon and JACK server are stopped, never orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures = run(args.count, args.seed, args.batch)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        if key == "checks":
            value = ", ".join(f"{name} {'ok' if ok else 'FAILED'}" for name, ok in value.items())
        print(f"{key:<{width}}  {value}")
    return 0 if figures["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
