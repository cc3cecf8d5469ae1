"""Importing heavy modules off the event loop without holding up a stop.

The daemon imports its generator (~0.2 s), aiohttp (~0.4 s) and zeroconf's
asyncio module after it is ready, in a thread, so that start-up and the first
requests do not wait. Through ``asyncio.to_thread`` that thread belongs to the
loop's default executor, which ``asyncio.run`` joins at exit: a SIGTERM right
after start-up then waited for the imports (0.25 s here, seconds on a loaded
machine) after "ai-band stopped". A daemon thread is not joined: the
interpreter abandons it at exit.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from contextlib import suppress

__all__ = ["import_in_background"]


async def import_in_background(*names: str) -> None:
    """Import the modules ``names`` in order, in a daemon thread; return when they are imported.

    Raises:
        ImportError: (or what the module raises) from the first import that fails.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            for name in names:
                importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            error = exc
        with suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name=f"import {names[0] if names else ''}", daemon=True).start()
    await done
