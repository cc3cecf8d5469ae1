"""Zeroconf advertisement on the loopback interface only: found while running, goodbye on exit."""

import socket
import threading
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

from ai_band import __version__
from ai_band.testing.daemonproc import DaemonProcess


class Listener(ServiceListener):
    def __init__(self) -> None:
        self.added: list[str] = []
        self.removed: list[str] = []
        self.changed = threading.Event()

    def add_service(self, zc, type_, name):
        self.added.append(name)
        self.changed.set()

    def remove_service(self, zc, type_, name):
        self.removed.append(name)
        self.changed.set()

    def update_service(self, zc, type_, name):
        pass


def wait_for(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_advertised_on_loopback_and_goodbye_on_sigterm(jack_server, tmp_path):
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    listener = Listener()
    browser = ServiceBrowser(zc, "_osc._udp.local.", listener)
    try:
        daemon = DaemonProcess(tmp_path, env=jack_server.env(), zeroconf_interfaces="127.0.0.1",
                               extra_args=["--name", "zc-test"]).start()
        expected = f"zc-test on {socket.gethostname().split('.')[0]}._osc._udp.local."
        try:
            assert wait_for(lambda: expected in listener.added, 10), (listener.added, daemon.log_text())
            info = zc.get_service_info("_osc._udp.local.", expected, timeout=3000)
            assert info is not None
            assert info.port == daemon.port
            assert info.parsed_addresses() == ["127.0.0.1"]
            props = {k.decode(): v.decode() for k, v in info.properties.items()}
            assert props == {"proto": "ai-band/1", "version": __version__, "osc": "/band"}
        finally:
            code, took = daemon.terminate()
        assert code == 0 and took < 5
        assert wait_for(lambda: expected in listener.removed, 5), "no goodbye seen"
    finally:
        browser.cancel()
        zc.close()


def test_zeroconf_none_disables_advertising(jack_server, tmp_path):
    with DaemonProcess(tmp_path, env=jack_server.env(), zeroconf_interfaces="none") as daemon:
        pass
    assert "zeroconf: disabled" in daemon.log_text()
    assert "ai_band.discovery" not in daemon.log_text()


def test_oscquery_advertised_on_the_http_port(jack_server, tmp_path):
    """With [http] enabled, the same instance is also ``_oscjson._tcp`` on the HTTP port, withdrawn on exit."""
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    listener = Listener()
    browser = ServiceBrowser(zc, "_oscjson._tcp.local.", listener)
    try:
        env = {**jack_server.env(), "AI_BAND_HTTP_PORT": "0"}
        daemon = DaemonProcess(tmp_path, env=env, zeroconf_interfaces="127.0.0.1",
                               extra_args=["--name", "zc-oscq"]).start()
        expected = f"zc-oscq on {socket.gethostname().split('.')[0]}._oscjson._tcp.local."
        try:
            http = daemon.wait_for_log(r"HTTP listening on http://[\d.]+:(\d+)", 20)
            assert http is not None, daemon.log_text()
            assert wait_for(lambda: expected in listener.added, 10), (listener.added, daemon.log_text())
            info = zc.get_service_info("_oscjson._tcp.local.", expected, timeout=3000)
            assert info is not None
            assert info.port == int(http.group(1))
            assert info.parsed_addresses() == ["127.0.0.1"]
            assert daemon.wait_for_log(r"zeroconf: advertising .*_oscjson", 5), daemon.log_text()
        finally:
            code, took = daemon.terminate()
        assert code == 0 and took < 5
        assert wait_for(lambda: expected in listener.removed, 5), "no goodbye seen"
    finally:
        browser.cancel()
        zc.close()
