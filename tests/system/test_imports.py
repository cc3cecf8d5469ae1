"""ai_band.system.imports.import_in_background: imports in a daemon thread, errors handed back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

from ai_band.system.imports import import_in_background


def test_imports_off_the_loop_thread_in_a_daemon_thread() -> None:
    seen: list[tuple[str, bool]] = []

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name == "colorsys":
                thread = threading.current_thread()
                seen.append((thread.name, thread.daemon))
            return None

    sys.modules.pop("colorsys", None)
    sys.meta_path.insert(0, Finder())
    try:
        asyncio.run(import_in_background("colorsys"))
    finally:
        sys.meta_path.pop(0)
    assert "colorsys" in sys.modules
    assert seen and seen[0][1] is True and seen[0][0] != threading.main_thread().name


def test_the_first_failing_import_is_raised() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        asyncio.run(import_in_background("json", "no_such_module_here", "csv"))


def test_an_import_under_way_does_not_hold_up_the_exit() -> None:
    # A module whose import takes 30 s: the process must exit at once when its loop ends.
    code = textwrap.dedent("""
        import asyncio, sys, time, types, importlib.abc, importlib.util
        class Slow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            def find_spec(self, name, path=None, target=None):
                return importlib.util.spec_from_loader(name, self) if name == "slow_module" else None
            def create_module(self, spec):
                return None
            def exec_module(self, module):
                time.sleep(30)
        sys.meta_path.insert(0, Slow())
        async def main():
            task = asyncio.ensure_future(__import__("ai_band.system.imports").system.imports.import_in_background("slow_module"))
            await asyncio.sleep(0.2)
            task.cancel()
        asyncio.run(main())
        print("loop ended")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loop ended"
