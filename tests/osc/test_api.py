"""Every OSC address of API v1 against the real daemon over UDP on 127.0.0.1."""

import json
from pathlib import Path

import mido
import pytest

from conftest import generate_args, wait_job


def test_hello_registers_and_welcomes(osc, band):
    args = osc.hello("pytest")
    assert args[0] == "ai-band" and args[1]
    osc.send("/band/status")
    _, (text,) = osc.receive("/band/status")
    clients = json.loads(text)["clients"]
    mine = [c for c in clients if c["name"] == "pytest"]
    assert len(mine) == 1 and mine[0]["host"] == "127.0.0.1" and mine[0]["port"] == osc.port
    assert mine[0]["access"] == "control"  # no token configured
    osc.send("/band/bye", "pytest")
    osc.send("/band/status")
    _, (text,) = osc.receive("/band/status")
    assert all(c["name"] != "pytest" for c in json.loads(text)["clients"])


def test_a_registered_client_gets_no_replies_to_other_senders(band):
    from ai_band.host import OscClient

    with OscClient(("127.0.0.1", band.port)) as listener, OscClient(("127.0.0.1", band.port)) as other:
        listener.hello("listener")
        other.send("/band/ping", "from-other")
        assert other.receive("/band/pong")[1] == ["from-other"]
        with pytest.raises(TimeoutError):
            listener.receive("/band/pong", timeout=0.3)


def test_ping_echoes_arguments_with_juce_types(osc):
    osc.send("/band/ping", 42, 1.5, "hello", b"\x01\x02")
    assert osc.receive("/band/pong")[1] == [42, 1.5, "hello", b"\x01\x02"]
    # int64 and float64 come back as JUCE-safe values.
    osc.send("/band/ping", ("h", 2**40), ("d", 0.25), ("h", 7))
    assert osc.receive("/band/pong")[1] == [str(2**40), 0.25, 7]


def test_styles_lists_all_six(osc):
    osc.send("/band/styles")
    names = osc.receive("/band/styles")[1]
    assert {"classical", "jazz", "rock", "blues", "electronic", "ambient"} <= set(names)


def test_status_reports_everything(osc, band):
    osc.send("/band/status")
    status = json.loads(osc.receive("/band/status")[1][0])
    for key in ("version", "uptime_s", "clients", "transport", "jobs", "ports", "counters", "playback"):
        assert key in status
    assert status["osc_port"] == band.port
    from ai_band.request import KNOWN_PARTS

    # One JACK client, one port per part: ai-band:drums, ai-band:bass, ...
    expected = {part: f"ai-band:{part}" for part in KNOWN_PARTS}
    assert status["ports"] == expected
    # Scheduler lateness figures: counts of groups sent more than 0.5/1/2/5 ms after their deadline.
    assert set(status["playback"]["late_over_ms"]) == {"0.5", "1", "2", "5"}
    assert all(isinstance(n, int) and n >= 0 for n in status["playback"]["late_over_ms"].values())


def test_generate_key_values_writes_files(osc):
    osc.send("/band/generate", *generate_args(id="kv-1", chords="| Cmaj7 | Am7 | Dm7 G7 |", style="jazz", bpm=("d", 132.0), seed=("h", 5)))
    job_id, files = wait_job(osc, "kv-1")
    assert set(files) == {"drums", "bass", "keys", "full", "job"}
    for part, path in files.items():
        if part == "job":
            continue
        assert Path(path).name == f"{part}.mid" and Path(path).parent.name == job_id
        mid = mido.MidiFile(path)
        tempos = [m.tempo for t in mid.tracks for m in t if m.type == "set_tempo"]
        assert tempos and round(mido.tempo2bpm(tempos[0])) == 132
    assert len(mido.MidiFile(files["full"]).tracks) >= 4
    assert not list(Path(files["full"]).parent.glob("*.tmp"))


def test_generate_json_form_and_numbers_as_strings(osc):
    osc.send("/band/generate", json.dumps({"id": "json-1", "chords": "C Am F G", "style": "rock", "bpm": "128", "bars": 2, "parts": "bass"}))
    job_id, files = wait_job(osc, "json-1")
    assert set(files) == {"bass", "full", "job"}


def test_job_states_in_order(osc):
    osc.send("/band/generate", *generate_args(id="order-1", chords="C G"))
    states = []
    while not states or states[-1] not in ("done", "failed"):
        address, args = osc.receive("/band/job")
        if args[3] == "order-1":
            states.append(args[1])
            assert isinstance(args[2], float)
    assert states == ["queued", "generating", "done"]


@pytest.mark.parametrize(
    "fields, code, needle",
    [
        ({"chords": "C Hm7 F"}, "unknown_chord", "Hm7"),
        ({"chords": "| C | F | Xyz |"}, "unknown_chord", "bar 3"),
        ({"style": "polka-core"}, "unknown_style", "style"),
        ({"bpm": 1000}, "out_of_range", "bpm"),
        ({"bpm": "fast"}, "bad_value", "bpm"),
        ({"swing": 1.5}, "out_of_range", "swing"),
        ({"ts": "4/5"}, "out_of_range", "ts"),
        ({"parts": "drums,tuba"}, "unknown_part", "tuba"),
        ({"tempo": 120}, "unknown_key", "did you mean"),
        ({"bars": 0}, "out_of_range", "bars"),
    ],
)
def test_generate_errors_name_the_field(osc, fields, code, needle):
    osc.send("/band/generate", *generate_args(id="bad-1", **fields))
    ref, got_code, message = osc.receive("/band/error")[1]
    assert (ref, got_code) == ("bad-1", code)
    assert needle in message


def test_generate_malformed_arguments(osc):
    osc.send("/band/generate", "chords")  # odd count, not JSON
    assert osc.receive("/band/error")[1][1] == "bad_args"
    osc.send("/band/generate", 5, "C")  # key not a string
    assert osc.receive("/band/error")[1][1] == "bad_args"
    osc.send("/band/generate", "{not json")
    assert osc.receive("/band/error")[1][1] in ("bad_args", "bad_value")
    osc.send("/band/generate", "chords", b"\x00")  # blob value
    assert osc.receive("/band/error")[1][1] == "bad_args"


@pytest.mark.parametrize(
    "address, args, code",
    [
        ("/band/play", ["no-such-job"], "unknown_job"),
        ("/band/play", [], "bad_args"),
        ("/band/cancel", ["no-such-job"], "unknown_job"),
        ("/band/mute", ["tuba", 1], "unknown_part"),
        ("/band/mute", ["bass", 3], "out_of_range"),
        ("/band/mute", ["bass"], "bad_args"),
        ("/band/hello", ["x", 0], "out_of_range"),
        ("/band/hello", [1, 9000], "bad_args"),
        ("/band/transport", [1, 120.0, 0.0, 0.0, 4, 3], "out_of_range"),
        ("/band/transport", [1, 120.0, 0.0], "bad_args"),
        ("/band/stop", [1], "bad_args"),
        ("/band/nope", [], "unknown_address"),
        ("/", [], "unknown_address"),
    ],
)
def test_address_errors(osc, address, args, code):
    osc.send(address, *args)
    ref, got_code, message = osc.receive("/band/error")[1]
    assert got_code == code, message
    assert ref


def test_stop_panic_mute_are_accepted(osc):
    for address, args in (("/band/stop", []), ("/band/panic", []), ("/band/mute", ["bass", 1]), ("/band/mute", ["bass", 0])):
        osc.send(address, *args)
    osc.send("/band/ping", "after")
    assert osc.receive("/band/pong")[1] == ["after"]
    assert not [m for m in osc.drain() if m[0] == "/band/error"]


def test_nested_and_future_bundles(osc):
    import time

    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    def msg(text):
        builder = OscMessageBuilder("/band/ping")
        builder.add_arg(text)
        return builder.build()

    inner = OscBundleBuilder(IMMEDIATELY)
    inner.add_content(msg("b2"))
    outer = OscBundleBuilder(IMMEDIATELY)
    outer.add_content(msg("b1"))
    outer.add_content(inner.build())
    osc.send_raw(outer.build().dgram)
    got = {osc.receive("/band/pong")[1][0] for _ in range(2)}
    assert got == {"b1", "b2"}
    t0 = time.monotonic()
    osc.send_bundle([("/band/ping", ["later"])], timetag=time.time() + 0.3)
    # The loop is not blocked while the bundle waits: an immediate ping overtakes it.
    osc.send("/band/ping", "now")
    assert osc.receive("/band/pong")[1] == ["now"]
    assert time.monotonic() - t0 < 0.2
    assert osc.receive("/band/pong", timeout=2)[1] == ["later"]
    assert time.monotonic() - t0 >= 0.28


def test_generation_does_not_block_the_event_loop(osc):
    import time

    osc.send("/band/generate", *generate_args(id="big-1", chords="| Cmaj7 | Am7 | Dm7 G7 | Em7 A7 |", style="jazz", bars=512))
    osc.receive("/band/job")  # queued
    t0 = time.monotonic()
    osc.send("/band/ping", "during")
    seen = []
    while True:
        address, args = osc.receive(timeout=20)
        seen.append((address, args[1] if address == "/band/job" else args))
        if address == "/band/pong":
            pong_ms = (time.monotonic() - t0) * 1000
            break
    assert pong_ms < 100, pong_ms
    job_id, files = wait_job(osc, "big-1")
    assert ("/band/job", "done") not in seen  # the pong overtook the 512-bar job


def test_song_request_with_prompt_structure_sections_and_overrides(osc):
    import json as _json

    import pretty_midi

    request = {
        "id": "song-1",
        "prompt": "upbeat 128 bpm house with a rolling bassline",
        "structure": "intro verse chorus verse chorus outro",
        "sections": _json.dumps({"verse": "| Am | F | C | G |", "chorus": "| F | G | Am | Am |"}),
        "chords": "| Am | Am |",
        "duration": 60,
        "parts": "drums,bass,keys,pad,melody,arp,guitar,strings",
        "programs": "melody=73,guitar=25",
        "channels": "melody=5",
        "seed": 3,
    }
    osc.send("/band/generate", *generate_args(**request))
    job_id, files = wait_job(osc, "song-1")
    assert set(files) == {"drums", "bass", "keys", "pad", "melody", "arp", "guitar", "strings", "full", "job"}
    meta = _json.loads(Path(files["job"]).read_text())
    resolved = meta["request"]
    assert resolved["style"] == "house" and resolved["bpm"] == 128.0  # from the prompt
    assert resolved["bars"] == 32  # 60 s at 128 bpm in 4/4
    assert [s["name"] for s in meta["sections"]] == ["intro", "verse", "chorus", "verse", "chorus", "outro"]
    assert sum(s["bars"] for s in meta["sections"]) == 32
    verse = next(s for s in meta["sections"] if s["name"] == "verse")
    assert [c["symbol"] for c in meta["chords_per_bar"][verse["first_bar"]]] == ["Am"]
    parts = {p["name"]: p for p in meta["parts"]}
    assert parts["melody"]["program"] == 73 and parts["melody"]["channel"] == 5
    assert parts["guitar"]["program"] == 25 and parts["drums"]["channel"] == 10
    pm = pretty_midi.PrettyMIDI(files["full"])
    last_bar_s = 31 * 4 * 60 / 128  # 32 bars of 4/4 at 128 bpm = 60 s; the ending sounds in the last bar
    assert last_bar_s <= pm.get_end_time() <= 60.0 + 2.0
    assert round(pm.get_tempo_changes()[1][0]) == 128
    programs = {i.name: i.program for i in pm.instruments}
    assert programs["melody"] == 73


def test_roman_numerals_need_and_use_the_key(osc):
    osc.send("/band/generate", *generate_args(id="rn-1", chords="I vi ii V7"))
    ref, code, message = osc.receive("/band/error")[1]
    assert (ref, code) == ("rn-1", "unknown_chord") and "key" in message
    osc.send("/band/generate", *generate_args(id="rn-2", chords="| I | vi | ii | V7 |", key="Bb", parts="bass", humanize=0))
    job_id, files = wait_job(osc, "rn-2")
    import json as _json

    meta = _json.loads(Path(files["job"]).read_text())
    assert [bar[0]["symbol"] for bar in meta["chords_per_bar"]][:4] == ["I", "vi", "ii", "V7"] or \
        [bar[0]["symbol"] for bar in meta["chords_per_bar"]][:4] == ["Bb", "Gm", "Cm", "F7"]
    notes = sorted(pretty_midi_notes(files["bass"]), key=lambda n: n.start)
    # Bass on each chord's first beat: Bb, G, C, F.
    firsts = [n.pitch % 12 for n in notes if abs(n.start - round(n.start / 2.0) * 2.0) < 1e-3][:4]
    assert firsts == [10, 7, 0, 5]


def pretty_midi_notes(path):
    import pretty_midi

    return [n for inst in pretty_midi.PrettyMIDI(path).instruments for n in inst.notes]
