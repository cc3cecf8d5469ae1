"""Start-up as systemd sees it: READY=1 over a real NOTIFY_SOCKET, OSC answering, zeroconf in the background.

The daemon runs as its own process (``python -m ai_band run``); the notify
socket is a real ``AF_UNIX`` datagram socket (bench.daemon_start.NotifySocket);
zeroconf stays on 127.0.0.1.  The 0.5 s bound is the benchmark's
(``python -m bench.daemon_start``); here only the order is checked.
"""

from __future__ import annotations

import socket

from zeroconf import IPVersion, ServiceBrowser, Zeroconf

from bench.daemon_start import StartTiming, start_daemon_timed
from test_zeroconf import Listener, wait_for


def log_index(timing: StartTiming, text: str) -> int:
    return next(i for i, (_, line) in enumerate(timing.log) if text in line)


def test_ready_is_sent_before_zeroconf_registers_which_still_advertises_and_says_goodbye(jack_server, tmp_path):
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    listener = Listener()
    browser = ServiceBrowser(zc, "_osc._udp.local.", listener)
    expected = f"start-test on {socket.gethostname().split('.')[0]}._osc._udp.local."
    seen: dict = {}

    def while_running(timing: StartTiming) -> None:
        seen["advertised"] = wait_for(lambda: expected in listener.added, 10)
        info = zc.get_service_info("_osc._udp.local.", expected, timeout=3000)
        seen["port"] = info.port if info is not None else None

    try:
        timing = start_daemon_timed(jack_server, tmp_path, "127.0.0.1", extra_args=("--name", "start-test"),
                                    between=while_running)
        log = "\n".join(line for _, line in timing.log)
        assert timing.notify_messages[0].splitlines() == ["READY=1", f"STATUS=listening on udp port {timing.osc_port}"]
        assert "STOPPING=1" in timing.notify_messages[1:]
        assert timing.ping_s >= timing.ready_s
        # Zeroconf registered after READY (probing alone takes 0.75 s), and READY did not wait for it.
        assert timing.zeroconf_s is not None and timing.zeroconf_s > timing.ready_s, log
        assert log_index(timing, "ready: ports") < log_index(timing, "zeroconf: advertising"), log
        assert seen == {"advertised": True, "port": timing.osc_port}, (seen, listener.added, log)
        assert timing.exit_code == 0, log
        assert "zeroconf: goodbye sent" in log, log
        assert wait_for(lambda: expected in listener.removed, 5), "no goodbye seen"
    finally:
        browser.cancel()
        zc.close()


def test_a_stop_while_zeroconf_registers_is_clean(jack_server, tmp_path):
    # SIGTERM right after the first pong: the registration is still probing.
    timing = start_daemon_timed(jack_server, tmp_path, "127.0.0.1", zeroconf_wait_s=0)
    log = "\n".join(line for _, line in timing.log)
    assert timing.zeroconf_s is None, log
    assert timing.exit_code == 0, log
    assert "Traceback" not in log and "ai-band stopped" in log, log


def test_a_zeroconf_failure_is_logged_and_not_fatal(jack_server, tmp_path):
    # 192.0.2.1 (TEST-NET-1) is no interface of this machine: zeroconf cannot bind to it.
    def while_running(timing: StartTiming) -> None:
        wait_for(lambda: any("zeroconf: could not advertise" in line for _, line in timing.log), 5)

    timing = start_daemon_timed(jack_server, tmp_path, "192.0.2.1", zeroconf_wait_s=0, between=while_running)
    log = "\n".join(line for _, line in timing.log)
    assert timing.notify_messages[0].startswith("READY=1")
    assert "zeroconf: could not advertise the OSC service" in log, log
    assert timing.exit_code == 0, log
