"""The ``ai-band`` command line run as a user runs it: ``python -m ai_band ...`` in its own process.

(A plain module, not a conftest.py: the tests import ``conftest`` by name and a second one would shadow it.)
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: Mapping[str, str] | None = None, umask: int | None = None,
            max_file_bytes: int | None = None, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    """Run ``python -m ai_band *args``; ``umask`` and a file-size limit (RLIMIT_FSIZE) apply to the child only.

    With ``max_file_bytes`` a write beyond it fails with EFBIG, as a full disk fails with ENOSPC
    (SIGXFSZ is ignored so the write returns the error instead of killing the process).
    """
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AI_BAND_")}
    child_env.update(env or {})
    child_env["PYTHONPATH"] = str(ROOT) + os.pathsep + child_env.get("PYTHONPATH", "")
    child_env["PYTHONDONTWRITEBYTECODE"] = "1"

    def limits() -> None:
        if umask is not None:
            os.umask(umask)
        if max_file_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run([sys.executable, "-m", "ai_band", *args], capture_output=True, text=True, cwd=ROOT,
                          env=child_env, timeout=timeout_s, preexec_fn=limits)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The single ``ai-band: error: ...`` line of a failed run (asserts there is exactly one stderr line)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ai-band: error: "), lines[0]
    assert "internal error" not in lines[0]
    return lines[0]
