"""Shared pytest fixtures. Everything stays on loopback and on private JACK servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from daemon.devtools.jackserver import JackServer

# ---------------------------------------------------------------------------
# devtools fixtures: a private JACK server (dummy driver) per test module.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jack_server() -> Iterator[JackServer]:
    """A fresh ``jackd`` with a unique name, with ``JACK_DEFAULT_SERVER`` set for the module.

    python-rtmidi has no server-name parameter, so the environment variable is
    what points its JACK ports at this server. Subprocesses get ``jack_server.env()``.
    Raises (fails the test) with an install hint if ``jackd`` is missing.
    """
    with JackServer() as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("JACK_DEFAULT_SERVER", server.name)
        yield server


# ---------------------------------------------------------------------------
# daemon fixtures (lead): add below.
# ---------------------------------------------------------------------------
