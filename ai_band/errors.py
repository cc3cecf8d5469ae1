"""Exception hierarchy: one root, one subclass per subsystem.

Every exception carries a short machine-readable ``code`` that the OSC layer
sends back verbatim in ``/band/error s:ref s:code s:message`` (see
docs/osc-api.md for the list of codes).
"""

from __future__ import annotations


class BandError(Exception):
    """Root of every error raised by the ai-band daemon."""

    code = "error"


class ConfigError(BandError):
    """The configuration file or command-line flags are invalid.

    Args:
        errors: every problem found, each a one-line human-readable string;
            validation reports them all at once.
    """

    code = "config"

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid configuration: " + "; ".join(self.errors))


class UsageError(BandError):
    """A command-line argument cannot be used (an unusable output folder, an existing job id)."""

    code = "usage"


class NoAnswerError(BandError):
    """A daemon asked over OSC (``ai-band status``, ``ai-band jobs``) did not answer in time."""

    code = "no_answer"


class ProtocolError(BandError):
    """An OSC message has the wrong number or types of arguments."""

    code = "bad_args"


class RequestError(BandError):
    """A request field has a value that cannot be used.

    Args:
        field: name of the offending request field, e.g. ``"bpm"``.
        message: what is wrong and what is allowed, e.g. ``"must be in 20..400"``.
        code: the ``/band/error`` code; ``"out_of_range"`` by default.
    """

    code = "out_of_range"

    def __init__(self, field: str, message: str, code: str | None = None) -> None:
        self.field = field
        if code is not None:
            self.code = code
        super().__init__(f"{field}: {message}")


class ChordError(RequestError):
    """A chord symbol or progression cannot be parsed.

    Args:
        token: the offending chord symbol as written, e.g. ``"Cmaj13#5b9x"``.
        bar: 1-based bar number where it stands, or 0 when not known.
        message: why it was rejected.
    """

    code = "unknown_chord"

    def __init__(self, token: str, bar: int, message: str = "unknown chord symbol") -> None:
        self.token = token
        self.bar = bar
        where = f" in bar {bar}" if bar else ""
        super().__init__("chords", f"{message}: {token!r}{where}")


class StyleError(RequestError):
    """The requested style does not exist."""

    code = "unknown_style"

    def __init__(self, style: str, known: list[str]) -> None:
        super().__init__("style", f"unknown style {style!r}; known: {', '.join(known)}")


class GenerationError(BandError):
    """Generating the parts failed for a reason other than bad input."""

    code = "generation_failed"


class JobError(BandError):
    """A job id does not name a known job, or the job is in the wrong state."""

    code = "unknown_job"


class JobStateError(JobError):
    """The job exists but its state forbids the request: not done yet (play), playing or armed (delete).

    Args:
        message: what is wrong, naming the job and its state.
        code: the error code; ``"unknown_job"`` by default, as ``/band/play``
            has always answered a job that is not done (docs/osc-api.md).
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class PlaybackError(BandError):
    """Live playback (scheduler or MIDI output) failed."""

    code = "playback"


class MidiPortError(PlaybackError):
    """A virtual MIDI port could not be opened or written."""

    code = "midi_port"


class MidiUnavailableError(MidiPortError):
    """The MIDI system went away (the JACK server stopped); nothing can play until it returns."""

    code = "midi_unavailable"


class RenderError(BandError):
    """Writing an output file failed."""

    code = "render_failed"


class HttpError(BandError):
    """An HTTP request cannot be served, or the HTTP server cannot listen.

    Args:
        message: what is wrong.
        status: the HTTP status to answer, 400..599 (500 when the server cannot start).
        code: the error code in the JSON body; ``"http"`` by default.
    """

    code = "http"

    def __init__(self, message: str, status: int = 500, code: str | None = None) -> None:
        self.status = status
        if code is not None:
            self.code = code
        super().__init__(message)


class SyncError(BandError):
    """A transport source cannot start, or cannot do what was asked (``/band/sync``, ``/band/tempo``).

    Args:
        message: what is wrong.
        code: the error code: ``sync_unavailable`` (the source cannot run
            here: no JACK, no Link binding), ``wrong_source`` (the active
            source does not take that command), ``not_ready`` (the source is
            still joining, e.g. a Link peer in its first second), ``bad_value``
            (an unknown source, a tempo out of range).
    """

    code = "sync_unavailable"

    def __init__(self, message: str, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message)
