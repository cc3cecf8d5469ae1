"""Import boundaries of the package layout (issue 14, item 2).

The data model sits below everything that uses it: playback, jobs, rendering
and config work on :mod:`ai_band.model` and never load the generator when
they are imported (the jobs manager imports it inside the worker function
that generates); ``import ai_band.generate`` alone loads no part generator.
Each import runs in a fresh interpreter, so a module loaded by an earlier
test cannot hide a violation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Packages that must not import ``ai_band.generate`` at module import time.
GENERATOR_FREE = ("playback", "jobs", "render", "config")


def _modules(package: str) -> list[str]:
    folder = ROOT / "ai_band" / package
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _loaded_after_import(module: str) -> list[str]:
    """The ``ai_band.*`` modules loaded by ``import module`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(n for n in sys.modules if n == 'ai_band' or n.startswith('ai_band.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", [m for package in GENERATOR_FREE for m in _modules(package)])
def test_module_does_not_load_the_generator(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert module in loaded
    assert [name for name in loaded if name.startswith("ai_band.generate")] == []


def test_every_guarded_package_has_modules() -> None:
    for package in GENERATOR_FREE:
        assert f"ai_band.{package}" in _modules(package)


def test_generate_package_alone_loads_no_part_generator() -> None:
    loaded = _loaded_after_import("ai_band.generate")
    assert [name for name in loaded if name.startswith("ai_band.generate.")] == []


def test_pipeline_loads_every_part_generator() -> None:
    """The check above is not vacuous: the pipeline does load the parts."""
    from ai_band.model import PART_NAMES

    loaded = _loaded_after_import("ai_band.generate.pipeline")
    assert {f"ai_band.generate.parts.{name}" for name in PART_NAMES} <= set(loaded)


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("ai_band.model", {"ai_band", "ai_band.model"}),
        ("ai_band.request", {"ai_band", "ai_band.model", "ai_band.errors", "ai_band.request"}),
    ],
)
def test_core_types_stand_alone(module: str, allowed: set[str]) -> None:
    """The data model imports nothing of the package; the request only the model and the errors."""
    assert set(_loaded_after_import(module)) <= allowed
