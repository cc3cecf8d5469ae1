"""What the commands share: logging set-up, argument types, asking a running daemon over OSC.

Kept light: nothing here imports numpy, the generator, mido or jack, and
python-osc only when a daemon is asked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
#: How long ``status`` and ``jobs`` wait for the daemon's answer, seconds.
DEFAULT_TIMEOUT_S = 2.0


def setup_logging(level: str) -> None:
    """Log to stderr; without timestamps under journald (it adds its own)."""
    import logging

    fmt = "%(levelname)-7s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=getattr(logging, level.upper()), format=fmt, stream=sys.stderr, force=True)


def port_number(text: str) -> int:
    """argparse type: a UDP port 1..65535.

    Raises:
        argparse.ArgumentTypeError: not a whole number in 1..65535.
    """
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 1..65535, got {port}")
    return port


def positive_seconds(text: str) -> float:
    """argparse type: a duration in seconds, > 0 and at most an hour.

    Raises:
        argparse.ArgumentTypeError: not a number in that range.
    """
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds such as 2.0, got {text!r}") from None
    if not 0.0 < seconds <= 3600.0:
        raise argparse.ArgumentTypeError(f"must be in 0..3600 s (exclusive of 0), got {text}")
    return seconds


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``: read and validated in full before the command does anything."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML config file, read and checked before anything else (default: the built-in "
                             "defaults, config/ai-band.toml; AI_BAND_<SECTION>_<KEY> variables override either)")


def load(args: argparse.Namespace, overrides: dict[str, dict[str, object]] | None = None):
    """The validated config of ``args.config`` (or the defaults), environment variables and ``overrides``.

    Raises:
        ConfigError: every problem found, together.
    """
    from ai_band.config import load_config

    return load_config(args.config, overrides)


def config_given(args: argparse.Namespace) -> bool:
    """Whether anything overrides the shipped defaults: a ``--config`` file or an ``AI_BAND_*`` variable.

    When nothing does, there is nothing to validate (the defaults are checked
    where the schema is built), so a command that needs no setting of its own
    can skip :func:`load` and the schema's import (~20 ms in a new process).
    """
    from ai_band.config.shipped import ENV_PREFIX

    return args.config is not None or any(name.startswith(ENV_PREFIX) for name in os.environ)


def add_daemon_args(parser: argparse.ArgumentParser) -> None:
    """``--host``, ``--port``, ``--timeout``, ``--json`` and ``--config`` of the commands that ask a daemon."""
    parser.add_argument("--host", default="127.0.0.1", help="the daemon's address or host name")
    parser.add_argument("--port", type=port_number,
                        help="the daemon's OSC UDP port (default: the config's [osc] port, ${osc.port})")
    parser.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help="how long to wait for the answer")
    parser.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    add_config_arg(parser)


def ask_daemon(args: argparse.Namespace, address: str) -> object:
    """Send ``address`` (no arguments) to the daemon of ``args`` and return its JSON answer.

    Raises:
        as :func:`tell_daemon`; NoAnswerError also when the answer is not JSON.
    """
    from ai_band.errors import NoAnswerError

    params = tell_daemon(args, address, (), address)
    try:
        return json.loads(params[0])
    except (IndexError, TypeError, json.JSONDecodeError):
        raise NoAnswerError(f"{args.host} answered {address} with no JSON") from None


def tell_daemon(args: argparse.Namespace, address: str, params: Sequence[object], answer: str) -> list:
    """Send ``address`` with ``params`` to the daemon of ``args``; return the arguments of its ``answer``.

    ``answer`` is the reply's address: ``/band/ack`` for a command (whose
    first argument must then be ``address``), or the request's own address
    for ``/band/status`` and the like.

    The daemon answers ``<address> s:json`` to a registered sender
    (docs/osc-api.md): the ``/band/hello`` handshake runs first, with
    ``AI_BAND_OSC_TOKEN`` if set (:func:`ai_band.host.handshake`).

    Raises:
        ConfigError: the config (for the default port) is invalid.
        UsageError: the host name does not resolve.
        NoAnswerError: nothing answered within ``args.timeout`` seconds, or nothing listens there.
        BandError: the daemon answered ``/band/error`` (its code and message).
    """
    import socket
    import time

    from pythonosc.osc_message import OscMessage, ParseError
    from pythonosc.osc_message_builder import OscMessageBuilder

    from ai_band.errors import BandError, NoAnswerError, UsageError

    config = load(args)  # checked in full even when --port makes it unneeded
    port = args.port if args.port is not None else config.osc.port
    where = f"{args.host}:{port}"
    try:
        family, kind, proto, _, target = socket.getaddrinfo(args.host, port, type=socket.SOCK_DGRAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"--host {args.host!r}: cannot resolve: {getattr(exc, 'strerror', None) or exc}") from None
    no_answer = f"no answer from {where} within {args.timeout:g} s"
    from ai_band.host import handshake

    with socket.socket(family, kind, proto) as sock:
        sock.connect(target)  # only the daemon's datagrams arrive; a closed port is reported at once

        def receive(wanted, timeout_s):  # for the handshake: the next matching message
            end = time.monotonic() + timeout_s
            while (left := end - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    message = OscMessage(sock.recv(65535))
                except (TimeoutError, ParseError):
                    continue
                if wanted(message.address, list(message.params)):
                    return message.address, list(message.params)
            raise TimeoutError

        name = f"ai-band-cli:{sock.getsockname()[1]}"
        try:
            handshake(sock.send, receive, name, sock.getsockname()[1],
                      os.environ.get("AI_BAND_OSC_TOKEN", ""), args.timeout)
        except TimeoutError:
            raise NoAnswerError(no_answer) from None
        except ConnectionRefusedError:
            raise NoAnswerError(f"no answer from {where}: nothing listens there (connection refused)") from None
        request = OscMessageBuilder(address)
        for param in params:
            request.add_arg(param)
        sock.send(request.build().dgram)
        deadline = time.monotonic() + args.timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except TimeoutError:
                break
            except ConnectionRefusedError:
                raise NoAnswerError(f"no answer from {where}: nothing listens there (connection refused)") from None
            try:
                message = OscMessage(data)
            except ParseError:
                continue
            if message.address == "/band/error":
                ref, code, text = (list(message.params) + ["", "", ""])[:3]
                error = BandError(str(text))
                error.code = str(code)
                raise error
            reply = list(message.params)
            if message.address == answer and reply and (answer != "/band/ack" or reply[0] == address):
                try:
                    return reply
                finally:  # leave the daemon's client table as found
                    bye = OscMessageBuilder("/band/bye")
                    bye.add_arg(name)
                    sock.send(bye.build().dgram)
    raise NoAnswerError(no_answer)


def print_json(value: object) -> None:
    """Print ``value`` as indented JSON on stdout."""
    print(json.dumps(value, indent=2, sort_keys=False))
