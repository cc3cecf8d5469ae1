"""Command line: ``ai-band run | generate | styles | status | jobs``; one module per command.

Each command module has ``add_parser(sub)`` and imports what its command
needs only when the command runs, so ``ai-band --help`` stays fast (no numpy,
generator, mido, jack or config schema).  ``--config`` files are read and
validated in full before a command does anything (``ai-band run`` documents
every key in ``config/ai-band.toml``); environment variables
``AI_BAND_<SECTION>_<KEY>`` override the file and flags override both.

Exit codes: 0 ok; 2 bad usage, configuration or request (one line
``ai-band: error: ...`` naming the fault and what is allowed); 1 a failure at
run time (a file that cannot be written, a daemon that does not answer); 130
interrupted.  No input ends in a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ai_band import __version__
from ai_band.cli import generate, host, jobs, run, status, styles, sync

#: The subcommands, in the order ``--help`` lists them; each module has ``add_parser(sub)``.
COMMANDS = (
    run,
    generate,
    host,
    styles,
    status,
    jobs,
    sync,
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with errors as one line ``ai-band: error: ...`` (exit 2), subcommands alike."""

    def error(self, message: str) -> None:
        """Print the one-line error and exit 2 (argparse's contract: never returns)."""
        fail(f"{message} (see {self.prog} --help)")
        self.exit(2)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` for every option that has one; options without write theirs in their help.

    ``${section.key}`` in a help text becomes that key's shipped default
    (:func:`ai_band.config.shipped.default`), read only when help is shown.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text and "${" in text:
            import re

            from ai_band.config.shipped import default

            text = re.sub(r"\$\{(\w+)\.(\w+)\}", lambda m: str(default(m[1], m[2])).replace("%", "%%"), text)
        if action.default is None or action.default is False or "(default" in (text or ""):
            return text
        return super()._get_help_string(argparse.Action(action.option_strings, action.dest,
                                                        default=action.default, help=text))


def build_parser(command: str | None = None) -> ArgumentParser:
    """The argument parser with one subcommand per module in :data:`COMMANDS`.

    Args:
        command: build only this subcommand's arguments (the others are
            registered by name, so the command line parses the same way);
            None builds every one, as ``--help`` needs.  Building all of them
            takes ~10 ms in a new process, one ~1 ms.
    """
    parser = ArgumentParser(prog="ai-band", description="A band that plays along with your DAW.",
                            formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"ai-band {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        name = module.__name__.rsplit(".", 1)[1]
        if command is None or command == name:
            module.add_parser(sub)
        else:
            sub.add_parser(name)  # never parsed with: the command line names `command`
    for subparser in sub.choices.values():
        subparser.formatter_class = HelpFormatter
    return parser


def fail(message: str) -> None:
    """Print ``ai-band: error: <message>`` as one line on stderr."""
    # Whitespace folded, other control characters escaped: a value typed by the user
    # (a carriage return, an escape sequence) cannot split the line or drive the terminal.
    text = " ".join(str(message).split())
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    print("ai-band: error: " + text, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ai-band`` console script; returns the exit code (never raises)."""
    from ai_band.errors import BandError, ConfigError, ProtocolError, RequestError, UsageError

    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        # The command is the first word when no option comes before it (`ai-band -h generate`
        # lists every command, so it builds them all).
        names = {module.__name__.rsplit(".", 1)[1] for module in COMMANDS}
        args = build_parser(argv[0] if argv and argv[0] in names else None).parse_args(argv)
        return args.func(args)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except (ConfigError, RequestError, ProtocolError, UsageError) as exc:
        fail(str(exc))
        return 2
    except BandError as exc:
        fail(str(exc))
        return 1
    except BrokenPipeError:  # stdout closed early (`ai-band styles | head -1`): quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else f"{type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug; still one line, never a traceback
        fail(f"internal error, please report it: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
