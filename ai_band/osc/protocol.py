"""OSC argument checking and reply encoding.

JUCE's ``OSCSender``/``OSCReceiver`` handle only the OSC 1.0 required types
int32 ``i``, float32 ``f``, string ``s`` and blob ``b``; a JUCE receiver
drops a whole packet with any other type tag, so every reply is built from
those four.  On input we are liberal (Postel): ``h`` (int64) is accepted
where ``i`` is listed, ``d`` (float64) and ``i``/``h`` where ``f`` is.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Sequence

from pythonosc.parsing import osc_types

from ai_band.errors import ProtocolError, RequestError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
#: Largest finite float32 (IEEE 754 binary32); a float64 beyond it cannot be sent as ``f``.
FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Arg:
    """One expected argument of an address.

    Attributes:
        name: field name used in error messages.
        kind: ``"i"`` (int), ``"f"`` (number) or ``"s"`` (string).
        lo: smallest allowed value (numbers), or None.
        hi: largest allowed value (numbers), or None; for strings the max length.
    """

    name: str
    kind: str
    lo: float | None = None
    hi: float | None = None


def _type_name(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "T", False: "F", None: "N"}[value]
    if isinstance(value, int):
        return "i/h"
    if isinstance(value, float):
        return "f/d"
    if isinstance(value, str):
        return "s"
    if isinstance(value, (bytes, bytearray)):
        return "b"
    return type(value).__name__


def check_args(address: str, params: Sequence[Any], spec: Sequence[Arg], min_count: int | None = None) -> dict[str, Any]:
    """Check ``params`` against ``spec`` and return ``{name: value}``.

    Args:
        address: the OSC address, for error messages.
        params: decoded OSC arguments (python-osc gives int, float, str, bytes, bool, None).
        spec: expected arguments in order.
        min_count: how many leading arguments are required (default: all).

    Raises:
        ProtocolError: wrong count or type (code ``bad_args``), naming the argument.
        RequestError: a value out of range (code ``out_of_range``), naming the argument.
    """
    need = len(spec) if min_count is None else min_count
    if not need <= len(params) <= len(spec):
        sig = " ".join(f"{a.kind}:{a.name}" for a in spec)
        raise ProtocolError(f"{address} takes {sig or 'no arguments'}; got {len(params)} argument(s)")
    out: dict[str, Any] = {}
    for arg, value in zip(spec, params):
        if arg.kind == "i":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ProtocolError(f"{arg.name} must be an int (i), got {_type_name(value)}")
        elif arg.kind == "f":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ProtocolError(f"{arg.name} must be a float (f), got {_type_name(value)}")
            value = float(value)
            if not math.isfinite(value):
                raise RequestError(arg.name, f"must be finite, got {value}")
        elif arg.kind == "s":
            if not isinstance(value, str):
                raise ProtocolError(f"{arg.name} must be a string (s), got {_type_name(value)}")
            if arg.hi is not None and len(value) > arg.hi:
                raise RequestError(arg.name, f"longer than {int(arg.hi)} characters")
        if arg.kind in "if":
            if arg.lo is not None and value < arg.lo:
                raise RequestError(arg.name, f"must be >= {arg.lo:g}, got {value:g}")
            if arg.hi is not None and value > arg.hi:
                raise RequestError(arg.name, f"must be <= {arg.hi:g}, got {value:g}")
        out[arg.name] = value
    return out


def encode_message(address: str, args: Sequence[Any]) -> bytes:
    """Build an OSC 1.0 message with only JUCE-safe type tags.

    Args:
        address: OSC address pattern, e.g. ``/band/pong``.
        args: values; int -> ``i`` (must fit int32), float -> ``f``,
            str -> ``s``, bytes -> ``b``; bool -> ``i`` 0/1.

    Raises:
        ProtocolError: an int outside int32, a finite float beyond float32's
            range (use :func:`to_juce_safe` first), or an unsupported type.

    Encoding uses python-osc's type writers; an empty blob (size 0, legal in
    OSC 1.0, refused by python-osc's builder) is written by hand.  The parts
    are joined once (linear in the reply's size, not quadratic).
    """
    tags = [","]
    body: list[bytes] = []
    for value in args:
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            if not INT32_MIN <= value <= INT32_MAX:
                raise ProtocolError(f"int {value} does not fit OSC int32")
            tags.append("i")
            body.append(osc_types.write_int(value))
        elif isinstance(value, float):
            if math.isfinite(value) and abs(value) > FLOAT32_MAX:
                raise ProtocolError(f"float {value!r} does not fit OSC float32")
            tags.append("f")
            body.append(osc_types.write_float(value))
        elif isinstance(value, str):
            tags.append("s")
            body.append(osc_types.write_string(value))
        elif isinstance(value, (bytes, bytearray)):
            tags.append("b")
            body.append(osc_types.write_blob(bytes(value)) if value else struct.pack(">i", 0))
        else:
            raise ProtocolError(f"cannot send {type(value).__name__} over OSC to JUCE")
    return b"".join([osc_types.write_string(address), osc_types.write_string("".join(tags)), *body])


def to_juce_safe(value: Any) -> Any:
    """Convert an incoming argument for echoing (``/band/pong``) to an i/f/s/b value.

    int64 that does not fit int32 becomes its decimal string; float64 becomes
    float32, or its ``repr`` string when beyond float32's range (``1e300``);
    True/False become 1/0; None and other types become strings.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if INT32_MIN <= value <= INT32_MAX else str(value)
    if isinstance(value, float) and math.isfinite(value) and abs(value) > FLOAT32_MAX:
        return repr(value)
    if isinstance(value, (float, str, bytes, bytearray)):
        return value
    return "" if value is None else str(value)
