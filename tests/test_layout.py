"""Import boundaries of the package layout (issue 14, item 2).

The data model sits below everything that uses it: playback, jobs, rendering
and config work on :mod:`ai_band.model` and never load the generator when
they are imported (the jobs manager imports it inside the worker function
that generates); ``import ai_band.generate`` alone loads no part generator, and
the pipeline loads only the generators of the parts a job plays (and the
prompt interpreter only for a prompt), so ``ai-band generate`` starts fast.
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


def _loaded_after(code: str) -> list[str]:
    """The ``ai_band.*`` modules loaded after running ``code`` in a fresh interpreter."""
    code += "\nimport json, sys\n"
    code += "print(json.dumps(sorted(n for n in sys.modules if n == 'ai_band' or n.startswith('ai_band.'))))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _loaded_after_import(module: str) -> list[str]:
    """The ``ai_band.*`` modules loaded by ``import module`` in a fresh interpreter."""
    return _loaded_after(f"import importlib\nimportlib.import_module({module!r})")


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


def _generated(raw: dict) -> str:
    return (
        "from ai_band.generate.pipeline import generate\n"
        "from ai_band.request import parse_request\n"
        f"generate(parse_request({raw!r}))"
    )


def _generators(loaded: list[str]) -> set[str]:
    return {name.rpartition(".")[2] for name in loaded if name.startswith("ai_band.generate.parts.")}


def test_pipeline_loads_no_part_generator_nor_the_prompt_interpreter() -> None:
    loaded = _loaded_after_import("ai_band.generate.pipeline")
    assert _generators(loaded) == set()
    assert "ai_band.generate.prompt" not in loaded


def test_a_job_loads_the_generators_of_its_parts_only() -> None:
    """The checks above are not vacuous: generating loads each part's generator, and only those."""
    loaded = _loaded_after(_generated({"chords": "C G", "parts": "drums,bass", "seed": 1}))
    assert _generators(loaded) == {"drums", "bass"}
    assert "ai_band.generate.prompt" not in loaded


def test_the_prompt_interpreter_loads_for_a_prompt() -> None:
    loaded = _loaded_after(_generated({"prompt": "slow jazz ballad", "parts": "bass", "seed": 1}))
    assert "ai_band.generate.prompt" in loaded
    assert _generators(loaded) == {"bass"}


def test_every_part_has_a_generator() -> None:
    """Each part of PARTS resolves to ``parts/<name>.py``'s ``generate_<name>`` (loaded on first use)."""
    from ai_band.generate.pipeline import GENERATORS
    from ai_band.model import PART_NAMES

    assert tuple(GENERATORS) == PART_NAMES and len(GENERATORS) == len(PART_NAMES)
    for name in PART_NAMES:
        assert name in GENERATORS
        assert GENERATORS[name].__module__ == f"ai_band.generate.parts.{name}"
        assert GENERATORS[name].__name__ == f"generate_{name}"
    assert "lute" not in GENERATORS
    with pytest.raises(KeyError):
        GENERATORS["lute"]


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
