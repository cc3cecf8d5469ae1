"""A second Ableton Link peer in a process of its own, on a loopback-only network, for tests and bench.

Link finds peers by UDP multicast on *every* running IPv4 interface
(``ableton/platforms/posix/ScanIpIfAddrs.hpp``: loopback included, and no
option to bind one).  Tests must send traffic to loopback only, so the peers
live in a private network namespace that has nothing but ``lo``
(:class:`LoopbackNetns`, ``unshare --net``; needs root or CAP_SYS_ADMIN):
the peer process is started in it with ``nsenter --net``, and the side under
test joins it from one thread with ``setns(2)`` (:meth:`LoopbackNetns.enter`):
sockets belong to the namespace of the thread that creates them, and Link's
threads, started from that thread, inherit it.  JACK talks over Unix sockets
in the file system, which every network namespace shares.

The peer (``python -m ai_band.testing.link_peer BPM QUANTUM``) reads one JSON
command a line on stdin and answers one JSON line on stdout:

* ``{"op": "state"}`` -> ``{"peers", "tempo", "playing", "time_s", "beat"}``:
  ``beat`` is the peer's beat at CLOCK_MONOTONIC ``time_s`` (midpoint of the
  shortest of 32 read windows), so the peer's grid is
  ``time_s + (k - beat) * 60 / tempo`` for beat k;
* ``{"op": "tempo", "bpm": X}``, ``{"op": "play"}``, ``{"op": "stop"}``: commit to
  the session, then answer the state as ``state`` does;
* ``{"op": "quit"}``: leave the session and exit.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

#: ``setns(2)`` flag for a network namespace.
CLONE_NEWNET = 0x40000000


class NetnsUnavailable(RuntimeError):
    """A private network namespace cannot be made here (no ``unshare``/``nsenter``, no privilege)."""


class LoopbackNetns:
    """A network namespace with only ``lo`` up, held by a sleeping process; removed on :meth:`close`.

    Raises:
        NetnsUnavailable: from the constructor, when the namespace cannot be made.
    """

    def __init__(self) -> None:
        for tool in ("unshare", "nsenter", "ip"):
            if shutil.which(tool) is None:
                raise NetnsUnavailable(f"{tool} not found (util-linux, iproute2)")
        self._holder = subprocess.Popen(
            ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep 86400"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self._holder.stdout.readline() if self._holder.stdout else ""
        if line.strip() != "up":
            err = self._holder.stderr.read() if self._holder.stderr else ""
            self._holder.kill()
            self._holder.wait()
            raise NetnsUnavailable(f"unshare --net failed (root or CAP_SYS_ADMIN needed): {err.strip()}")
        self.path = f"/proc/{self._holder.pid}/ns/net"

    def enter(self) -> None:
        """Move the *calling thread* into the namespace (threads it starts later inherit it).

        Raises:
            NetnsUnavailable: ``setns`` failed.
        """
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise NetnsUnavailable(f"setns({self.path}) failed: {os.strerror(err)}")
        finally:
            os.close(fd)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def close(self) -> None:
        """End the holder process (the namespace goes when nothing uses it any more); idempotent."""
        if self._holder.poll() is None:
            self._holder.kill()
        self._holder.wait()
        for stream in (self._holder.stdout, self._holder.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> LoopbackNetns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LinkPeer:
    """The peer process (see the module doc), started in ``netns``.

    Args:
        netns: the :class:`LoopbackNetns` to run in.
        bpm: the peer's initial tempo (the session's, when it founds it).
        quantum: its quantum in beats.
        python: the interpreter (default: this one).
    """

    def __init__(self, netns: LoopbackNetns, bpm: float = 120.0, quantum: float = 4.0,
                 python: str = sys.executable) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            netns.command([python, "-m", "ai_band.testing.link_peer", repr(float(bpm)), repr(float(quantum))]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1,
        )
        self.pid = self.proc.pid
        ready = self._answer()
        if ready.get("ready") is not True:
            raise RuntimeError(f"link peer did not start: {ready}")

    def _answer(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"link peer exited (code {self.proc.poll()})")
        return json.loads(line)

    def ask(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one command; return the peer's answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def state(self) -> dict[str, Any]:
        """``{"peers", "tempo", "playing", "time_s", "beat"}`` (see the module doc)."""
        return self.ask("state")

    def wait_peers(self, count: int, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait until the peer sees ``count`` other peers; return its state.

        Raises:
            TimeoutError: not within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.state()
            if state["peers"] == count:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"link peer sees {state['peers']} peers, not {count}")
            time.sleep(0.05)

    def close(self) -> None:
        """Leave the session and end the process; idempotent."""
        if self.proc.poll() is None:
            try:
                self.ask("quit")
            except (OSError, RuntimeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> LinkPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the peer process --------------------------------------------------------------
def _state(link: Any) -> dict[str, Any]:
    best = (float("inf"), 0.0, 0.0)
    for _ in range(32):
        t1 = time.monotonic()
        beat = link.beat
        t2 = time.monotonic()
        if t2 - t1 < best[0]:
            best = (t2 - t1, (t1 + t2) / 2.0 - 0.5e-6, beat)
    return {"peers": link.num_peers, "tempo": link.tempo, "playing": link.playing,
            "time_s": best[1], "beat": best[2], "window_s": best[0]}


async def _serve(bpm: float, quantum: float) -> None:
    from aalink import Link

    loop = asyncio.get_running_loop()
    link = Link(bpm)
    link.quantum = quantum
    link.start_stop_sync_enabled = True
    await asyncio.sleep(0.5)  # the tempo trap (ai_band.sync.link): never enable right after creating
    link.enabled = True
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        op = cmd.get("op")
        if op == "quit":
            link.enabled = False
            print(json.dumps({"bye": True}), flush=True)
            break
        if op == "tempo":
            link.tempo = float(cmd["bpm"])
        elif op == "play":
            link.playing = True
        elif op == "stop":
            link.playing = False
        print(json.dumps(_state(link)), flush=True)


if __name__ == "__main__":
    asyncio.run(_serve(float(sys.argv[1]), float(sys.argv[2])))
