"""The wheel as a user installs it: its contents, and a fresh venv beside ``python-daemon``.

The package is ``ai_band`` because the widely used ``python-daemon`` distribution
installs a top-level package ``daemon`` (Debian: ``python3-daemon``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel of this checkout (pip, build isolation) and return its path."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=300)
    (path,) = out.glob("ai_band-*.whl")
    return path


def test_wheel_ships_the_package_and_default_config_but_no_test_or_bench_tools(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "ai_band/__init__.py" in names and "ai_band/cli/__init__.py" in names
    assert "ai_band/config/default.toml" in names
    assert "ai_band/host.py" in names  # `ai-band host` is shipped
    shipped_tools = [n for n in names if n.startswith(("ai_band/testing/", "tests/", "bench/"))]
    assert shipped_tools == []
    assert not any(n.startswith("daemon/") for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text
    entry_points = zipfile.ZipFile(wheel).read(metadata.replace("METADATA", "entry_points.txt")).decode()
    assert "ai-band = ai_band.cli:main" in entry_points


def test_default_config_in_the_wheel_is_the_documented_one(wheel: Path) -> None:
    shipped = tomllib.loads(zipfile.ZipFile(wheel).read("ai_band/config/default.toml").decode())
    documented = tomllib.loads((ROOT / "config" / "ai-band.toml").read_text())
    assert shipped == documented


def test_installs_beside_python_daemon_and_both_import(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # Only what the venv installed: a PYTHONPATH to a checkout would make pip see ai-band as installed.
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # Our dependencies are not needed to import the package root; python-daemon's are small.
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300,
                   env=clean_env)
    subprocess.run([python, "-m", "pip", "install", "-q", "python-daemon"], check=True, timeout=300, env=clean_env)
    probe = ("import ai_band, daemon; from daemon import DaemonContext; "
             "print(ai_band.__version__, ai_band.__file__, daemon.__file__)")
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            env=clean_env)
    assert result.returncode == 0, result.stderr
    version, ours, theirs = result.stdout.split()
    import ai_band

    assert version == ai_band.__version__ and f"Version: {version}" in zipfile.ZipFile(wheel).read(
        next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "site-packages/ai_band/" in ours and "site-packages/daemon/" in theirs
    # Removing python-daemon leaves ai_band whole (no shared files).
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "python-daemon"], check=True, timeout=120, env=clean_env)
    again = subprocess.run([python, "-c", "import ai_band.config, ai_band.errors"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=60, env=clean_env)
    assert again.returncode == 0, again.stderr
