"""OSCQuery: checked as a client written against the proposal's field names would read it.

The client side here uses only the proposal (github.com/Vidvox/OSCQueryProposal):
``FULL_PATH`` on every node, ``CONTENTS`` on containers, ``TYPE`` a type tag
string, ``RANGE`` one item per type tag (``MIN``/``MAX``/``VALS`` or null),
``ACCESS`` a 0..3 mask, ``?HOST_INFO`` with ``NAME``, ``OSC_PORT``,
``OSC_TRANSPORT``, ``EXTENSIONS`` -- and compares the tree with the OSC API as
the daemon enforces it: the argument tables, the addresses docs/osc-api.md
lists, and the refusals the daemon actually sends for values outside a RANGE.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ai_band.host import OscClient
from ai_band.http.oscquery import build_tree
from ai_band.osc.api import SPECS
from httpband import HttpBand, http_band  # noqa: F401 - the fixture

DOCS = Path(__file__).resolve().parents[2] / "docs" / "osc-api.md"
OSC_TYPE_TAGS = set("ifsbhtdScrmTFNI[]")


def walk(node: dict, path: str = "/") -> dict[str, dict]:
    """path -> node for every node, checking the proposal's structural rules on the way."""
    assert node["FULL_PATH"] == path
    assert node.get("ACCESS", 3) in (0, 1, 2, 3)
    if "TYPE" in node:
        assert set(node["TYPE"]) <= OSC_TYPE_TAGS, node["TYPE"]
        if "RANGE" in node:
            assert len(node["RANGE"]) == len(node["TYPE"]), node
            for item in node["RANGE"]:
                assert item is None or set(item) <= {"MIN", "MAX", "VALS"}, item
    found = {path: node}
    for name, child in node.get("CONTENTS", {}).items():
        found.update(walk(child, path.rstrip("/") + "/" + name))
    return found


def methods_of(tree: dict) -> dict[str, dict]:
    """The OSC methods: nodes that accept messages (ACCESS has the write bit, or no CONTENTS)."""
    return {p: n for p, n in walk(tree).items() if n.get("ACCESS", 3) & 2 or "CONTENTS" not in n}


def documented_addresses() -> set[str]:
    """Every address docs/osc-api.md lists under "Plugin to daemon"."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Plugin to daemon", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^### `(/band/[a-z/]+)", section, flags=re.M))


def test_every_osc_address_is_a_method_with_its_argument_types() -> None:
    methods = methods_of(build_tree(SPECS))
    for address, spec in SPECS.items():
        node = methods[address]
        expected = "".join(arg.kind for arg in spec)
        assert node.get("TYPE", "") == expected, address
        assert node["ACCESS"] == 2
        assert node["DESCRIPTION"]
        for arg, item in zip(spec, node.get("RANGE", [])):
            if arg.kind in "if" and arg.lo is not None and item is not None and "MIN" in item:
                assert item["MIN"] == arg.lo and item["MAX"] == arg.hi, (address, arg)


def test_tree_lists_exactly_the_documented_addresses() -> None:
    methods = set(methods_of(build_tree(SPECS)))
    assert methods == documented_addresses()


def test_mute_part_values_are_the_ports() -> None:
    tree = build_tree(SPECS, parts=("drums", "bass"))
    mute = walk(tree)["/band/mute"]
    assert mute["TYPE"] == "si"
    assert mute["RANGE"] == [{"VALS": ["drums", "bass"]}, {"MIN": 0, "MAX": 1}]


def test_served_tree_host_info_and_attributes(http_band: HttpBand) -> None:
    root = http_band.get("/").json()
    assert set(methods_of(root)) == documented_addresses()
    parts = http_band.get("/api/status").json()["ports"]
    assert walk(root)["/band/mute"]["RANGE"][0] == {"VALS": list(parts)}

    info = http_band.get("/?HOST_INFO").json()
    assert info["NAME"] == "ai-band"
    assert info["OSC_PORT"] == http_band.daemon.port
    assert info["OSC_TRANSPORT"] == "UDP"
    assert all(isinstance(v, bool) for v in info["EXTENSIONS"].values())
    assert info["EXTENSIONS"]["ACCESS"] and info["EXTENSIONS"]["RANGE"] and info["EXTENSIONS"]["DESCRIPTION"]
    assert http_band.get("/band/transport?HOST_INFO").json() == info  # the path is irrelevant

    sub = http_band.get("/band/preview").json()
    assert sub["FULL_PATH"] == "/band/preview" and "stop" in sub["CONTENTS"]
    assert http_band.get("/band/mute?TYPE").json() == {"TYPE": "si"}
    assert http_band.get("/band?TYPE").json() == {}  # a container has no TYPE
    assert http_band.get("/band/mute?VALUE").status == 204  # not readable (ACCESS 2)
    assert http_band.get("/band/nope").status == 404


def _values(spec_types: str, ranges: list, index: int, step: float) -> list:
    """Arguments at their minimum, except ``index`` at its maximum plus ``step``."""
    values: list = []
    for i, (tag, item) in enumerate(zip(spec_types, ranges)):
        if tag == "s":
            values.append(item["VALS"][0] if item and "VALS" in item else "x")
        elif i == index:
            values.append(int(item["MAX"] + step) if tag == "i" else float(item["MAX"] + step))
        else:
            low = item.get("MIN", item.get("VALS", [0])[0]) if item else 0
            values.append(int(low) if tag == "i" else float(low))
    return values


def test_every_published_max_is_what_the_daemon_enforces(http_band: HttpBand) -> None:
    """Each ranged argument at its published MAX is taken; one above it is refused as out_of_range.

    ``/band/hello`` is only sent past its MAX (at its MAX it would register a client).
    """
    methods = methods_of(http_band.get("/").json())
    cases = [(address, i) for address, node in methods.items() if "RANGE" in node
             for i, (tag, item) in enumerate(zip(node["TYPE"], node["RANGE"]))
             if tag in "if" and item and "MAX" in item]
    assert len(cases) >= 6
    with OscClient(("127.0.0.1", http_band.daemon.port)) as osc:
        for address, index in cases:
            node = methods[address]
            osc.send(address, *_values(node["TYPE"], node["RANGE"], index, 1))
            _, (ref, code, message) = osc.receive("/band/error", timeout=5)
            assert code == "out_of_range", (address, index, message)
            if address == "/band/hello":
                continue
            osc.send(address, *_values(node["TYPE"], node["RANGE"], index, 0))
            osc.send("/band/ping", "sync")  # answered after the message before it was handled
            osc.receive("/band/pong", timeout=5)
            # wrong_source: /band/tempo and /band/start need the own clock; the value itself was taken.
            errors = [m for m in osc.drain() if m[0] == "/band/error" and m[1][1] != "wrong_source"]
            assert errors == [], (address, index)
        osc.send("/band/mute", walk(http_band.get("/").json())["/band/mute"]["RANGE"][0]["VALS"][0], 0)
        osc.send("/band/offset", "all", 0.0)


@pytest.mark.parametrize("attribute", ["FULL_PATH", "DESCRIPTION", "ACCESS", "RANGE"])
def test_single_attribute_queries(http_band: HttpBand, attribute: str) -> None:
    whole = http_band.get("/band/transport").json()
    assert http_band.get(f"/band/transport?{attribute}").json() == {attribute: whole[attribute]}
