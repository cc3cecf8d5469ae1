"""OSC argument checks and JUCE-safe encoding."""

import pytest
from pythonosc.osc_message import OscMessage

from ai_band.errors import ProtocolError, RequestError
from ai_band.osc.api import SPECS
from ai_band.osc.protocol import check_args, encode_message, to_juce_safe


def test_replies_use_only_juce_types():
    dgram = encode_message("/band/x", [1, 2.5, "s", b"blob", True])
    msg = OscMessage(dgram)
    assert msg.params == [1, 2.5, "s", b"blob", 1]
    assert set(dgram.split(b",")[1].split(b"\x00")[0].decode()) <= set("ifsb")


def test_int_too_big_for_int32_is_refused():
    with pytest.raises(ProtocolError):
        encode_message("/x", [2**40])
    assert to_juce_safe(2**40) == str(2**40)
    assert to_juce_safe(None) == ""


@pytest.mark.parametrize(
    "params, exc, field",
    [
        ([1, 120.0, 0.0, 0.0, 4], ProtocolError, "got 5"),
        (["1", 120.0, 0.0, 0.0, 4, 4], ProtocolError, "playing must be an int"),
        ([1, "fast", 0.0, 0.0, 4, 4], ProtocolError, "bpm must be a float"),
        ([1, 5000.0, 0.0, 0.0, 4, 4], RequestError, "bpm"),
        ([1, 120.0, 0.0, 0.0, 0, 4], RequestError, "ts_num"),
        ([2, 120.0, 0.0, 0.0, 4, 4], RequestError, "playing"),
        ([1, float("nan"), 0.0, 0.0, 4, 4], RequestError, "bpm"),
    ],
)
def test_transport_argument_errors_name_the_field(params, exc, field):
    with pytest.raises(exc, match=field):
        check_args("/band/transport", params, SPECS["/band/transport"])


def test_h_and_d_accepted_where_i_and_f_are_listed():
    # python-osc decodes h to int and d to float: the same checks apply.
    out = check_args("/band/transport", [1, 120, 3.5, 0.0, 4, 4], SPECS["/band/transport"])
    assert out["bpm"] == 120.0 and isinstance(out["bpm"], float)
