"""The OSCQuery tree of the OSC API, built from the tables the OSC handlers check.

OSCQuery (Vidvox's proposal, github.com/Vidvox/OSCQueryProposal) describes an
OSC address space as JSON over HTTP: each node has ``FULL_PATH``; a container
has ``CONTENTS`` (name -> node); a method has ``TYPE`` (its OSC type tag
string) and optionally ``RANGE`` (one ``{"MIN", "MAX"}`` or ``{"VALS"}``
object, or null, per type tag), ``DESCRIPTION`` and ``ACCESS`` (a bit mask:
1 = its value may be read, 2 = it may be set).  ``?HOST_INFO`` answers
``NAME``, ``OSC_PORT``, ``OSC_TRANSPORT`` and ``EXTENSIONS`` (which optional
attributes this server gives).

Everything here comes from :data:`ai_band.osc.api.SPECS` (address -> the
:class:`~ai_band.osc.protocol.Arg` list ``check_args`` enforces), so the tree
cannot drift from what the handlers accept.  The choices this module makes,
documented in docs/http-api.md:

* Every method has ``ACCESS`` 2 (write-only): the daemon takes messages and
  answers with reply messages, it has no readable value (no ``VALUE``).
* A method without arguments (``/band/stop``) has no ``TYPE``, as the
  proposal allows ("may be omitted"); sending it an ``N`` would be refused.
* Strings have a ``null`` range (OSCQuery has no length bound); their maximum
  length is in ``DESCRIPTION``.
* Checks the handlers make beyond the table are added as ``VALS`` from the
  same constants the handlers use: ``/band/transport`` ``ts_den`` from
  :data:`ai_band.model.TS_DENOMINATORS`, ``/band/mute`` ``part`` from the
  ports the daemon opened.
* Addresses whose arguments no fixed table describes: ``/band/generate``
  (key/value pairs, or one JSON string) is published as ``TYPE`` ``"s"``, its
  JSON-object form, with the keys listed in ``DESCRIPTION``;
  ``/band/ping`` (echoes any arguments) has no ``TYPE``.
* ``/band/preview`` is both a method and the container of ``/band/preview/stop``,
  so that node has ``TYPE`` and ``CONTENTS`` both.

This module is pure (no HTTP library): :mod:`ai_band.http.server` serves it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ai_band.model import TS_DENOMINATORS
from ai_band.sync import SOURCES
from ai_band.osc.protocol import Arg

#: OSC transport of the described server (HOST_INFO ``OSC_TRANSPORT``).
OSC_TRANSPORT = "UDP"

#: ``ACCESS`` bit mask values (proposal, "Optional Attributes").
ACCESS_NONE = 0
ACCESS_WRITE = 2

#: Optional attributes this server gives (HOST_INFO ``EXTENSIONS``); the rest are false.
EXTENSIONS: dict[str, bool] = {
    "ACCESS": True,
    "RANGE": True,
    "DESCRIPTION": True,
    "VALUE": False,
    "TAGS": False,
    "EXTENDED_TYPE": False,
    "UNIT": False,
    "CRITICAL": False,
    "CLIPMODE": False,
    "OVERLOADS": False,
    "LISTEN": False,
    "PATH_CHANGED": False,
    "HTML": False,
}

#: Every attribute the proposal names; a ``?ATTR`` query for one of them that
#: this server does not give answers 204, for any other name 400.
KNOWN_ATTRIBUTES = frozenset({
    "FULL_PATH", "CONTENTS", "TYPE", "HOST_INFO", *EXTENSIONS,
})

#: One line per address (docs/osc-api.md has the full text).  An address
#: missing here still appears, described by its signature alone.
DESCRIPTIONS: dict[str, str] = {
    "/band": "ai-band OSC API v1 (docs/osc-api.md)",
    "/band/hello": "Register a client; answered /band/welcome s:name s:version to reply_port",
    "/band/bye": "Unregister every registration of this client name from the sender's IP",
    "/band/ping": "Answered /band/pong with the same arguments (any types)",
    "/band/transport": "Host transport as JUCE's AudioPlayHead reports it; send at 10 Hz or more while playing",
    "/band/generate": "Start a generation job; answered /band/ack, then /band/job and /band/file messages",
    "/band/play": "Arm a done job: it starts on the host's next bar line",
    "/band/cancel": "Cancel a queued or generating job",
    "/band/stop": "Stop the daemon's playback at once (note-offs sent)",
    "/band/mute": "Mute (1) or unmute (0) a part",
    "/band/panic": "Note-offs, All Notes Off and All Sound Off on every port and channel",
    "/band/styles": "Answered /band/styles s:name ...",
    "/band/status": "Answered /band/status s:json",
    "/band/preview": "Play the job's rendered mix through the audio device",
    "/band/preview/stop": "Stop the audio preview",
    "/band/sync": "Follow another transport source: osc, jack, midi-clock, link or internal",
    "/band/tempo": "Set the tempo of the own clock or the Link session (sources internal, link)",
    "/band/start": "Start the own clock or Link transport, from ppq or where it stopped",
    "/band/offset": "Latency offset in ms of one part, or all, negative earlier",
}

#: Addresses the OSC API handles without a fixed argument table in SPECS:
#: address -> (TYPE or None, RANGE or None).  See the module docstring.
FREE_FORM: dict[str, tuple[str | None, list[Any] | None]] = {
    "/band/ping": (None, None),
    "/band/generate": ("s", [None]),
}


def _arg_text(arg: Arg) -> str:
    """``"f:bpm 1..999"`` / ``"s:client <= 128 chars"``: one argument for DESCRIPTION."""
    if arg.kind == "s":
        bound = f" <= {int(arg.hi)} chars" if arg.hi is not None else ""
    elif arg.lo is not None or arg.hi is not None:
        lo = "" if arg.lo is None else f"{arg.lo:g}"
        hi = "" if arg.hi is None else f"{arg.hi:g}"
        bound = f" {lo}..{hi}"
    else:
        bound = ""
    return f"{arg.kind}:{arg.name}{bound}"


def _number(value: float, kind: str) -> int | float:
    return int(value) if kind == "i" else float(value)


def arg_range(arg: Arg, vals: Sequence[Any] | None = None) -> dict[str, Any] | None:
    """The OSCQuery ``RANGE`` item of one argument.

    Args:
        arg: the argument as the handler checks it.
        vals: the only values the handler accepts (a check beyond ``arg``), or None.

    Returns:
        ``{"VALS": [...]}`` when ``vals`` is given, else ``{"MIN": lo, "MAX": hi}``
        with whichever bound exists (ints as JSON integers), or None for a
        string or an unbounded number.
    """
    if vals is not None:
        return {"VALS": list(vals)}
    if arg.kind not in "if":
        return None
    out: dict[str, Any] = {}
    if arg.lo is not None:
        out["MIN"] = _number(arg.lo, arg.kind)
    if arg.hi is not None:
        out["MAX"] = _number(arg.hi, arg.kind)
    return out or None


def _request_keys() -> list[str]:
    """The keys ``/band/generate`` takes: :data:`ai_band.request.FIELDS`, aliased as users write them."""
    from ai_band.request import FIELDS, KEY_ALIASES

    wire = {name: key for key, name in KEY_ALIASES.items()}
    return [wire.get(name, name) for name in FIELDS]


def method_node(address: str, spec: Sequence[Arg] | None,
                vals: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
    """The OSCQuery object of one method (without ``CONTENTS``).

    Args:
        address: the OSC address, e.g. ``/band/mute``.
        spec: its argument table, or None for a :data:`FREE_FORM` address.
        vals: argument name -> accepted values, for checks beyond the table.

    Returns:
        ``{"FULL_PATH", "ACCESS", "DESCRIPTION"[, "TYPE", "RANGE"]}``.
    """
    node: dict[str, Any] = {"FULL_PATH": address, "ACCESS": ACCESS_WRITE}
    text = DESCRIPTIONS.get(address, "")
    if spec is None:
        type_tags, ranges = FREE_FORM[address]
        if address == "/band/generate":
            text += ("; one s argument holding a JSON object (or, not expressible as one TYPE, "
                     "s:key value pairs) with keys " + ", ".join(_request_keys()))
        if type_tags:
            node["TYPE"] = type_tags
            node["RANGE"] = ranges
    else:
        vals = vals or {}
        if spec:
            node["TYPE"] = "".join(arg.kind for arg in spec)
            node["RANGE"] = [arg_range(arg, vals.get(arg.name)) for arg in spec]
        signature = " ".join(_arg_text(arg) for arg in spec) or "no arguments"
        text = f"{text} ({signature})" if text else signature
    node["DESCRIPTION"] = text
    return node


def build_tree(specs: Mapping[str, Sequence[Arg]], parts: Sequence[str] = ()) -> dict[str, Any]:
    """The whole address space as one OSCQuery object rooted at ``/``.

    Args:
        specs: address -> argument table (:data:`ai_band.osc.api.SPECS`).
        parts: the parts the daemon has ports for (``/band/mute`` ``part``
            VALS); empty leaves that argument's range null.

    Returns:
        The root container; intermediate containers have ``ACCESS`` 0 and
        ``CONTENTS``; a node that is both a method and a container has both.
    """
    extra_vals: dict[str, dict[str, Sequence[Any]]] = {
        "/band/transport": {"ts_den": TS_DENOMINATORS},
        "/band/sync": {"source": SOURCES},
    }
    if parts:
        extra_vals["/band/mute"] = {"part": list(parts)}
        extra_vals["/band/offset"] = {"part": ["all", *parts]}
    methods: dict[str, dict[str, Any]] = {}
    for address, spec in specs.items():
        methods[address] = method_node(address, spec, extra_vals.get(address))
    for address in FREE_FORM:
        if address not in specs:
            methods[address] = method_node(address, None)

    root: dict[str, Any] = {"FULL_PATH": "/", "ACCESS": ACCESS_NONE,
                            "DESCRIPTION": "ai-band", "CONTENTS": {}}
    for address in sorted(methods):
        node = root
        path = ""
        for name in address.strip("/").split("/"):
            path += "/" + name
            contents = node.setdefault("CONTENTS", {})
            child = contents.get(name)
            if child is None:
                child = {"FULL_PATH": path, "ACCESS": ACCESS_NONE, "DESCRIPTION": DESCRIPTIONS.get(path, path)}
                contents[name] = child
            node = child
        contents = node.get("CONTENTS")
        node.clear()
        node.update(methods[address])
        if contents:
            node["CONTENTS"] = contents
    return root


def host_info(name: str, osc_port: int, osc_ip: str | None = None) -> dict[str, Any]:
    """The ``?HOST_INFO`` object.

    Args:
        name: the daemon's instance name (``[daemon] name``).
        osc_port: the UDP port OSC listens on.
        osc_ip: the OSC address when it differs from the HTTP server's
            (omitted otherwise: the proposal says the client then uses the
            address it reached this server at).
    """
    info: dict[str, Any] = {"NAME": name, "OSC_PORT": osc_port, "OSC_TRANSPORT": OSC_TRANSPORT,
                            "EXTENSIONS": dict(EXTENSIONS)}
    if osc_ip:
        info["OSC_IP"] = osc_ip
    return info


def find_node(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The node at ``path`` (``/``, ``/band``, ``/band/mute``; a trailing ``/`` is ignored), or None."""
    node = tree
    for name in (p for p in path.split("/") if p):
        node = node.get("CONTENTS", {}).get(name)
        if node is None:
            return None
    return node
