"""The embedded game day's local Prometheus, for real: started on a free port with the project's rules, it scrapes
an exporter (a small HTTP server standing in for the harness's) and serves its alerts; stopped, its process and its
data directory are gone. The whole `make demo` path (Locust, verdict) is in test_prometheus_e2e.py's spirit and
too long for here; `python -m chaos_events.demo gameday` prints the Prometheus line when it runs one.
"""
from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request

import pytest

from chaos_events.backends import process as processes
from chaos_events.demo import prometheus
from tests.helpers import require_prometheus

pytestmark = pytest.mark.prometheus


class _Exporter(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"# TYPE locust_users gauge\nlocust_users 3\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def exporter():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_for_gameday_starts_prometheus_that_scrapes_the_exporter_and_stops_it(exporter, tmp_path):
    require_prometheus()
    said = []
    local = prometheus.for_gameday(["--chaos-metrics-port", str(exporter)], tmp_path, say=said.append)
    try:
        assert local.locust_args == ["--chaos-prometheus-url", local.url]  # the port was given: not added again
        assert local.url.startswith("http://127.0.0.1:") and said and local.url in said[0]
        rules = _get(f"{local.url}/api/v1/rules")["data"]["groups"]
        assert "KafkaConsumerLagHigh" in {r["name"] for g in rules for r in g["rules"]}
        deadline = time.monotonic() + 30
        while True:
            result = _get(f"{local.url}/api/v1/query?query=locust_users")["data"]["result"]
            if result or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert result and result[0]["value"][1] == "3", result
        assert _get(f"{local.url}/api/v1/alerts")["status"] == "success"  # what the prometheus_alerts probe reads
    finally:
        local.stop()
    assert not processes.is_alive(local.proc.pid)
    assert not local.data_dir.exists()
    assert (tmp_path / "prometheus.log").exists()


def test_for_gameday_gives_the_exporter_a_free_port_when_asked(tmp_path):
    require_prometheus()
    local = prometheus.for_gameday([], tmp_path, free_ports=True, say=lambda line: None)
    try:
        assert local.locust_args[:2] == ["--chaos-prometheus-url", local.url]
        assert local.locust_args[2] == "--chaos-metrics-port" and int(local.locust_args[3]) == local.exporter_port != 9646
    finally:
        local.stop()
