"""Probes against real things: a tiny HTTP server (healthy, unhealthy, unreachable), a real Prometheus with always-
firing rules, and consumer lag from a real Tansu broker on free ports."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chaos_events.observe.probes import NO_PROMETHEUS, AlertsProbe, HttpProbe, KafkaLagProbe, ProbeRunner, build_probe
from chaos_events.scenario.model import ProbeKind, ProbeSpec
from chaos_events.record import Record
from tests.helpers import free_port, require_prometheus, stop_group

ROUTES: dict[str, tuple[int, object]] = {
    "/health": (200, {"status": "ok", "dependencies": {"kafka": {"ok": True, "latency_ms": 2}, "store": "ok"}}),
    "/degraded": (503, {"status": "degraded", "dependencies": {"kafka": {"ok": False, "error": "timeout"}, "store": True}}),
    "/plain": (200, "fine"),
    "/api/v1/alerts": (200, {"status": "success", "data": {"alerts": [
        {"labels": {"alertname": "HighErrorRate"}, "state": "firing"},
        {"labels": {"alertname": "HighErrorRate"}, "state": "firing"},
        {"labels": {"alertname": "ConsumerLag"}, "state": "pending"},
    ]}}),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        status, body = ROUTES.get(self.path, (404, {"error": "no such route"}))
        data = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- http ---------------------------------------------------------------------------------------------
def test_http_probe_healthy_reports_status_and_dependencies(http_server):
    sample = HttpProbe("health", 1.0, http_server + "/health").sample(3.0, 1003.0)
    assert (sample.t, sample.wall, sample.probe) == (3.0, 1003.0, "health")
    assert sample.healthy is True and sample.value == 200
    assert sample.detail == {"kafka": True, "store": True}


def test_http_probe_unhealthy_on_an_unexpected_status(http_server):
    sample = HttpProbe("health", 1.0, http_server + "/degraded").sample(1.0, 1001.0)
    assert sample.healthy is False and sample.value == 503
    assert sample.detail == {"kafka": False, "store": True}
    # The expected status is configurable: a probe that expects 503 calls it healthy.
    assert HttpProbe("h", 1.0, http_server + "/degraded", expect_status=(200, 503)).sample(1.0, 1.0).healthy is True


def test_http_probe_with_a_non_json_body_has_no_dependencies(http_server):
    sample = HttpProbe("health", 1.0, http_server + "/plain").sample(1.0, 1.0)
    assert sample.healthy is True and sample.detail == {}


def test_http_probe_unreachable_is_unhealthy_with_a_bounded_error():
    url = f"http://127.0.0.1:{free_port()}/health"
    sample = HttpProbe("health", 1.0, url, timeout_s=1.0).sample(1.0, 1.0)
    assert sample.healthy is False and sample.value is None
    assert sample.detail["error"].startswith(f"GET {url}: ")
    assert "refused" in sample.detail["error"].lower()
    assert len(sample.detail["error"]) <= 200


# -- prometheus alerts ----------------------------------------------------------------------------------
def test_alerts_probe_lists_firing_and_pending_alerts(http_server):
    sample = AlertsProbe("alerts", 2.0, http_server).sample(5.0, 1005.0)
    assert sample.detail == {"firing": ["HighErrorRate"], "pending": ["ConsumerLag"]}
    assert sample.value == 1 and sample.healthy is False


def test_alerts_probe_without_prometheus_cannot_tell():
    sample = build_probe(ProbeSpec("alerts", ProbeKind.PROMETHEUS_ALERTS, {"url": None, "every": 2.0}), {"prometheus_url": ""}).sample(1.0, 1.0)
    assert sample.healthy is None and sample.detail == {"error": NO_PROMETHEUS}


def test_alerts_probe_takes_the_default_prometheus_url_and_reports_an_unreachable_one():
    url = f"http://127.0.0.1:{free_port()}"
    probe = build_probe(ProbeSpec("alerts", ProbeKind.PROMETHEUS_ALERTS, {"url": None, "every": 2.0}), {"prometheus_url": url})
    sample = probe.sample(1.0, 1.0)
    assert sample.healthy is None and sample.detail["error"].startswith(f"GET {url}/api/v1/alerts: ")


PROMETHEUS_RULES = """
groups:
  - name: probe-test
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
      - alert: AlwaysPending
        expr: vector(1)
        for: 1h
"""


def test_alerts_probe_against_a_real_prometheus(tmp_path):
    require_prometheus()
    (tmp_path / "rules.yml").write_text(PROMETHEUS_RULES)
    (tmp_path / "prometheus.yml").write_text("global: {evaluation_interval: 1s}\nrule_files: [rules.yml]\n")
    port = free_port()
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        probe = AlertsProbe("alerts", 1.0, f"http://127.0.0.1:{port}", timeout_s=1.0)
        deadline = time.monotonic() + 30
        sample = probe.sample(0.0, 0.0)
        while sample.detail.get("firing") != ["AlwaysFiring"] and time.monotonic() < deadline:
            time.sleep(0.25)
            sample = probe.sample(0.0, 0.0)
    finally:
        stop_group(proc)
    assert sample.detail == {"firing": ["AlwaysFiring"], "pending": ["AlwaysPending"]}
    assert sample.healthy is False and sample.value == 1


# -- runner ---------------------------------------------------------------------------------------------
def test_probe_runner_samples_each_probe_on_its_period_until_stopped(http_server):
    record = Record("r", "demo", time.time())
    probes = {
        "health": build_probe(ProbeSpec("health", ProbeKind.HTTP, {"url": http_server + "/health", "every": 0.05, "expect_status": [200], "timeout": 1.0}), {}),
        "degraded": build_probe(ProbeSpec("degraded", ProbeKind.HTTP, {"url": http_server + "/degraded", "every": 0.05}), {}),
    }
    t0 = time.monotonic()
    runner = ProbeRunner(probes, record, clock=lambda: time.monotonic() - t0, wall=time.time)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while len(record.probe_samples("degraded")) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        runner.stop()
    count = len(record.probes)
    time.sleep(0.2)
    assert len(record.probes) == count  # stopped means stopped
    assert len(record.probe_samples("health")) >= 3 and len(record.probe_samples("degraded")) >= 3
    assert all(s.healthy for s in record.probe_samples("health"))
    assert not any(s.healthy for s in record.probe_samples("degraded"))
    assert runner.latest["health"] is record.probe_samples("health")[-1]
    times = [s.t for s in record.probe_samples("health")]
    assert times == sorted(times)


def test_probe_runner_records_a_probe_that_raises_as_a_sample_that_cannot_tell():
    class Broken:
        name, kind, every_s = "broken", ProbeKind.HTTP, 10.0

        def sample(self, t, wall):
            raise RuntimeError("bug in probe")

        def close(self):
            pass

    record = Record("r", "demo", 0.0)
    runner = ProbeRunner({"broken": Broken()}, record, clock=lambda: 1.0, wall=lambda: 2.0)
    sample = runner.sample_once(runner.probes["broken"])
    assert sample.healthy is None and sample.detail == {"error": "probe failed: RuntimeError: bug in probe"}
    assert record.probes == [sample]


# -- kafka lag against a real Tansu -------------------------------------------------------------------------
def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(15)


def test_kafka_lag_probe_reads_committed_lag_from_a_real_broker(tansu):
    from confluent_kafka import Consumer, Producer, TopicPartition

    _create_topic(tansu, "events", 2)
    # One record per batch: Tansu's high watermark is the last batch's base offset + 1, exact for single records.
    producer = Producer({"bootstrap.servers": tansu, "linger.ms": 0})
    for i in range(20):
        producer.produce("events", key=f"p.{i}", value=b"x", partition=i % 2)
        producer.flush(10)
    committer = Consumer({"bootstrap.servers": tansu, "group.id": "events-store", "enable.auto.commit": False})
    try:
        committer.commit(offsets=[TopicPartition("events", 0, 4), TopicPartition("events", 1, 10)], asynchronous=False)
    finally:
        committer.close()

    spec = ProbeSpec("lag", ProbeKind.KAFKA_LAG, {"bootstrap": tansu, "group": "events-store", "topic": "events", "every": 1.0})
    probe = build_probe(spec, {})
    try:
        sample = probe.sample(2.0, 1002.0)
    finally:
        probe.close()
    assert sample.healthy is True, sample.detail
    assert sample.value == 6  # partition 0: 10 - 4; partition 1: 10 - 10
    assert sample.detail == {"group": "events-store", "topic": "events", "partitions": {"0": 6, "1": 0}}

    # With max_lag the same reading is judged, and a group that never committed counts from the start.
    strict = KafkaLagProbe("lag", 1.0, tansu, "nobody", "events", max_lag=5)
    try:
        fresh = strict.sample(3.0, 1003.0)
    finally:
        strict.close()
    assert fresh.value == 20 and fresh.healthy is False

    runner = ProbeRunner({"lag": build_probe(spec, {})}, Record("r", "d", 0.0), clock=lambda: 0.0)
    runner.sample_once(runner.probes["lag"])
    runner.stop()
    assert runner.consumer_lag() == {("events-store", "events"): 6.0}


def test_kafka_lag_probe_unreachable_broker_is_unhealthy_with_the_reason():
    bootstrap = f"127.0.0.1:{free_port()}"
    probe = KafkaLagProbe("lag", 1.0, bootstrap, "g", "events", timeout_s=1.0)
    try:
        sample = probe.sample(1.0, 1.0)
    finally:
        probe.close()
    assert sample.healthy is False and sample.value is None
    assert sample.detail["error"].startswith(bootstrap + ": ")
    assert sample.detail["group"] == "g" and sample.detail["topic"] == "events"


def test_kafka_lag_reader_aborting_costs_one_sample_not_the_process(tansu):
    """librdkafka can abort its process mid-request when a broker dies (confluentinc/librdkafka#3663). The probe
    keeps librdkafka in a child: an abort there (SIGABRT, as librdkafka's assert sends) is one failed sample, the
    next sample starts a new reader, and this process lives on."""
    import signal

    _create_topic(tansu, "events", 2)
    probe = KafkaLagProbe("lag", 1.0, tansu, "events-store", "events", timeout_s=2.0)
    try:
        first = probe.sample(1.0, 1.0)
        assert first.healthy is True and first.value == 0.0, first.detail
        child = probe._reader._child
        os.kill(child.pid, signal.SIGABRT)
        child.wait(timeout=10)
        aborted = probe.sample(2.0, 2.0)
        assert aborted.healthy is False and aborted.value is None
        assert "lag reader process died (signal SIGABRT)" in aborted.detail["error"], aborted.detail
        again = probe.sample(3.0, 3.0)
        assert again.healthy is True and again.value == 0.0, again.detail
        assert probe._reader._child.pid != child.pid
    finally:
        reader_child = probe._reader._child if probe._reader else None
        probe.close()
    assert reader_child is None or reader_child.poll() is not None  # close() ended the child it started
