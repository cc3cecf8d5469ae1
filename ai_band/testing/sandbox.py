"""Run a command under the kernel-enforced limits a systemd unit file asks for, without systemd.

The test machine has no systemd as PID 1, so ``tests/test_unit_file.py`` runs
the real daemon under what this module installs from the unit's own
``[Service]`` settings, read from the file:

* ``SystemCallFilter=`` (an allow list, then ``~`` removals; groups expanded
  by ``systemd-analyze syscall-filter``, as systemd expands them) with
  ``SystemCallErrorNumber=``: a seccomp filter, refused calls fail with that errno;
* ``MemoryDenyWriteExecute=yes``: systemd's seccomp rules (mmap writable and
  executable; mprotect and pkey_mprotect adding PROT_EXEC; shmat with SHM_EXEC);
* ``RestrictAddressFamilies=``: socket(2) with any other family fails (EAFNOSUPPORT);
* ``NoNewPrivileges=``, ``UMask=``; ``LimitNICE=`` and ``LimitRTPRIO=`` where the
  hard limits may be raised (that needs CAP_SYS_RESOURCE; else a note on stderr).

Not emulated (mount namespaces, device cgroup, IP filters, the user): the
settings scored by ``systemd-analyze security`` but enforced by systemd itself.

Usage: ``python -m ai_band.testing.sandbox UNIT_FILE -- COMMAND [ARGS...]`` (execs COMMAND).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE = 0x2
PROT_EXEC = 0x4
SHM_EXEC = 0o100000


def scmp_act_errno(code: int) -> int:
    """libseccomp's ``SCMP_ACT_ERRNO(code)``."""
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def service_settings(unit: Path) -> dict[str, list[str]]:
    """The ``[Service]`` section of ``unit``: key -> every value assigned, in order (comments skipped)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscall_groups() -> dict[str, list[str]]:
    """``systemd-analyze syscall-filter``: group name (``@...``) -> its members (names and groups)."""
    text = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not raw.startswith((" ", "\t")) and line.startswith("@"):
            current = groups.setdefault(line, [])
        elif current is not None:
            current.append(line)
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    """Syscall names, groups expanded recursively."""
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            out |= expand(groups[name], groups)
        else:
            out.add(name)
    return out


def allowed_syscalls(values: list[str], groups: dict[str, list[str]]) -> set[str] | None:
    """The allow list that ``SystemCallFilter=`` lines make (None: no allow list).

    As systemd: the first line decides allow (no ``~``) or deny; each later line
    adds to it, or with ``~`` removes from it.
    """
    allowed: set[str] | None = None
    for value in values:
        deny = value.startswith("~")
        names = expand(value.lstrip("~").split(), groups)
        if allowed is None:
            if deny:
                return None  # a deny list: not used by our unit
            allowed = set(names)
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


def _seccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def _rule(lib: ctypes.CDLL, ctx: int, action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        return  # not a call of this architecture
    array = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(*c) for c in cmps])
    rc = lib.seccomp_rule_add_array(ctypes.c_void_p(ctx), action, nr, len(cmps), array)
    if rc < 0:
        raise OSError(-rc, f"seccomp_rule_add_array({name}): {os.strerror(-rc)}")


def _load(lib: ctypes.CDLL, ctx: int) -> None:
    rc = lib.seccomp_load(ctypes.c_void_p(ctx))
    lib.seccomp_release(ctypes.c_void_p(ctx))
    if rc < 0:
        raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")


def apply(unit: Path) -> None:
    """Install ``unit``'s limits on this process (inherited by what it execs).

    Raises:
        OSError: libseccomp refused a rule or the filter.
    """
    s = service_settings(unit)
    last = {key: values[-1] for key, values in s.items()}
    if "UMask" in last:
        os.umask(int(last["UMask"], 8))
    limits = []
    if "LimitNICE" in last:
        value = last["LimitNICE"]  # systemd: with a sign a nice level (RLIMIT_NICE = 20 - level), else the rlimit
        rlimit = 20 - int(value) if value.startswith(("+", "-")) else int(value)
        limits.append(("LimitNICE", resource.RLIMIT_NICE, rlimit))
    if "LimitRTPRIO" in last:
        limits.append(("LimitRTPRIO", resource.RLIMIT_RTPRIO, int(last["LimitRTPRIO"])))
    for key, which, limit in limits:
        try:
            resource.setrlimit(which, (limit, limit))
        except (ValueError, OSError) as exc:  # raising a hard limit needs CAP_SYS_RESOURCE
            print(f"sandbox: {key}={last[key]} not applied: {exc}", file=sys.stderr)
    lib = _seccomp()
    groups = syscall_groups()
    err = getattr(errno, last.get("SystemCallErrorNumber", "EPERM"))
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if last.get("MemoryDenyWriteExecute") == "yes":
        wx = PROT_WRITE | PROT_EXEC
        _rule(lib, ctx, scmp_act_errno(errno.EPERM), "mmap", (2, SCMP_CMP_MASKED_EQ, wx, wx))
        _rule(lib, ctx, scmp_act_errno(errno.EPERM), "mprotect", (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        _rule(lib, ctx, scmp_act_errno(errno.EPERM), "pkey_mprotect", (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        _rule(lib, ctx, scmp_act_errno(errno.EPERM), "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
    if "RestrictAddressFamilies" in last:
        keep = sorted(int(getattr(socket, name)) for name in last["RestrictAddressFamilies"].split())
        refuse = scmp_act_errno(errno.EAFNOSUPPORT)
        for family in range(keep[-1]):
            if family not in keep:
                _rule(lib, ctx, refuse, "socket", (0, SCMP_CMP_EQ, family, 0))
        _rule(lib, ctx, refuse, "socket", (0, SCMP_CMP_GT, keep[-1], 0))
    _load(lib, ctx)  # libseccomp sets no_new_privs first (NoNewPrivileges= in effect too)
    allowed = allowed_syscalls(s.get("SystemCallFilter", []), groups)
    if allowed is not None:
        ctx = lib.seccomp_init(scmp_act_errno(err))
        for name in sorted(allowed):
            _rule(lib, ctx, SCMP_ACT_ALLOW, name)
        _load(lib, ctx)  # last: it refuses seccomp(2) itself


def main(argv: list[str]) -> None:
    """``UNIT_FILE -- COMMAND [ARGS...]``: apply the unit's limits, then exec COMMAND."""
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m ai_band.testing.sandbox UNIT_FILE -- COMMAND [ARGS...]")
    apply(Path(argv[0]))
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
