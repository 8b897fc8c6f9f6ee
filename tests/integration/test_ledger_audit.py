"""Ledger audits against real parts: a Tansu broker on free ports for the Kafka read-back, and a tiny HTTP server
implementing the demo API's batch lookup for the pipeline read-back."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from chaos_events.observe.ledger import Ledger, audit_kafka, audit_pipeline
from chaos_events.scenario.run_rules import ReadBack
from tests.helpers import free_port


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(15)


def _produce(bootstrap: str, topic: str, messages: list[dict]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    delivered: list[object] = []
    for m in messages:
        producer.produce(topic, value=b"{}", key=m.get("key"), headers=m.get("headers"),
                         on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(15) == 0
    assert delivered == [None] * len(messages)


def test_audit_kafka_counts_lost_and_duplicated_writes(tansu):
    _create_topic(tansu, "events", 3)
    n = 60
    # Headers as the Kafka user sends them; batched (idempotent producer), so Tansu's odd high watermark is exercised.
    messages = [{"key": f"w1-u1.{i}", "headers": [("chaos-producer", b"w1-u1"), ("chaos-seq", str(i).encode())]}
                for i in range(n)]
    messages.append(messages[17])  # the same write delivered twice
    # API writes carry only the key "producer.seq" (the demo API's event id).
    messages += [{"key": f"api-u2.{i}".encode()} for i in range(10)]
    messages.append({"key": b"not-a-chaos-id"})
    _produce(tansu, "events", messages)

    ledger = Ledger()
    for i in range(n + 5):  # five acknowledged writes that never reached the topic
        ledger.ack("kafka", "w1-u1", i)
    for i in range(10):
        ledger.ack("api", "api-u2", i)

    result = audit_kafka(ledger, tansu, "events", deadline_s=20.0, channel="kafka")
    assert result.verifiable, result.detail
    assert (result.check, result.acknowledged, result.checked) == ("kafka", n + 5, n + 5)
    assert (result.found, result.lost, result.duplicates) == (n, 5, 1)
    assert "lost e.g. w1-u1.60, w1-u1.61, w1-u1.62, w1-u1.63, w1-u1.64" in result.detail
    assert "1 without a chaos id" in result.detail
    assert f"read {n + 1 + 10 + 1} messages" in result.detail

    every_channel = audit_kafka(ledger, tansu, "events", deadline_s=20.0, channel=None)
    assert (every_channel.acknowledged, every_channel.found, every_channel.lost, every_channel.duplicates) == (n + 15, n + 10, 5, 1)

    api_only = audit_kafka(ledger, tansu, "events", deadline_s=20.0, channel="api")
    assert (api_only.acknowledged, api_only.found, api_only.lost, api_only.duplicates) == (10, 10, 0, 0)

    # No time to read: nothing is claimed lost, and the result says it could not tell.
    rushed = audit_kafka(ledger, tansu, "events", deadline_s=0.0, channel="kafka")
    assert rushed.verifiable is False and rushed.lost == 0
    assert "not read to their end within 0s" in rushed.detail or rushed.detail.startswith("could not reach Kafka")


def test_audit_kafka_missing_topic_means_every_write_is_lost(tansu):
    ledger = Ledger()
    for i in range(7):
        ledger.ack("kafka", "p", i)
    result = audit_kafka(ledger, tansu, "gone", deadline_s=10.0)
    assert result.verifiable and (result.lost, result.found) == (7, 0)
    assert result.detail == f"topic 'gone' does not exist on {tansu}; every acknowledged write is lost"


def test_audit_kafka_unreachable_broker_is_not_verifiable():
    bootstrap = f"127.0.0.1:{free_port()}"
    ledger = Ledger()
    ledger.ack("kafka", "p", 1)
    result = audit_kafka(ledger, bootstrap, "events", deadline_s=2.0)
    assert result.verifiable is False and result.acknowledged == 1 and result.lost == 0
    assert result.detail.startswith(f"could not reach Kafka at {bootstrap}: ")


# -- pipeline ------------------------------------------------------------------------------------------
class _Store:
    """The demo store's lookup: ids present now, plus ids that arrive after a few lookups (a lagging consumer)."""

    def __init__(self, present: set[str], late: set[str] = frozenset(), late_after: int = 0, fail_first: int = 0):
        self.present, self.late, self.late_after = set(present), set(late), late_after
        self.fail_first = fail_first
        self.calls = 0
        self.batch_sizes: list[int] = []
        self.lock = threading.Lock()

    def lookup(self, ids: list[str]) -> tuple[int, dict]:
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                return 503, {"detail": "store unavailable"}
            if self.calls > self.late_after:
                self.present |= self.late
            self.batch_sizes.append(len(ids))
            return 200, {"found": [i for i in ids if i in self.present]}


def read_back(base_url: str, **options) -> ReadBack:
    """The demo API's batch lookup, as a scenario's `ledger.read_back` names it."""
    return ReadBack(url=base_url + "/api/events/lookup", **options)


@pytest.fixture
def lookup_server():
    servers = []

    def start(store: _Store) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (the {id} template: 200 when the store has it, else 404)
                ident = self.path.rsplit("/", 1)[-1]
                self.send_response(200 if self.path.startswith("/api/events/") and ident in store.present else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):  # noqa: N802
                if self.path != "/api/events/lookup":
                    status, body = 404, {"detail": "not found"}
                else:
                    status, body = store.lookup(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["ids"])
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield start
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(5)


def _ledger(n: int) -> Ledger:
    ledger = Ledger()
    for i in range(n):
        ledger.ack("api", "w1-u1", i)
    for i in range(n // 2):
        ledger.ack("kafka", "w1-u2", i)
    return ledger


def test_audit_pipeline_finds_lost_writes_in_batches(lookup_server):
    ledger = _ledger(1200)
    present = {f"w1-u1.{i}" for i in range(1200) if i % 100 != 3} | {f"w1-u2.{i}" for i in range(600)}
    store = _Store(present)
    url = lookup_server(store)
    result = audit_pipeline(ledger, read_back(url, batch=500), deadline_s=1.5, channel="api")
    assert (result.check, result.acknowledged, result.checked) == ("pipeline", 1200, 1200)
    assert (result.found, result.lost, result.verifiable) == (1188, 12, True)
    assert result.detail.startswith("checked 1200 of 1200 acknowledged writes; lost e.g. w1-u1.3, w1-u1.103")
    assert max(store.batch_sizes) == 500

    everything = audit_pipeline(ledger, read_back(url), deadline_s=0.5)
    assert (everything.acknowledged, everything.checked, everything.lost) == (1800, 1800, 12)


def test_audit_pipeline_waits_for_the_consumer_to_catch_up(lookup_server):
    ledger = _ledger(100)
    ids = {f"w1-u1.{i}" for i in range(100)} | {f"w1-u2.{i}" for i in range(50)}
    late = {i for i in ids if i.endswith("7")}
    store = _Store(ids - late, late=late, late_after=3, fail_first=1)  # first call fails: the API is still busy
    result = audit_pipeline(ledger, read_back(lookup_server(store), batch=40), deadline_s=20.0)
    assert (result.checked, result.found, result.lost, result.verifiable) == (150, 150, 0, True)
    assert store.calls > 4


def test_audit_pipeline_samples_a_deterministic_fraction(lookup_server):
    ledger = _ledger(2000)
    store = _Store({f"w1-u1.{i}" for i in range(2000)} | {f"w1-u2.{i}" for i in range(1000)})
    url = lookup_server(store)
    first = audit_pipeline(ledger, read_back(url, sample=0.1), deadline_s=5.0)
    second = audit_pipeline(ledger, read_back(url, sample=0.1), deadline_s=5.0)
    assert 150 < first.checked < 450 and first.checked == second.checked
    assert (first.acknowledged, first.lost, first.found) == (3000, 0, first.checked)
    assert "(sample 0.1)" in first.detail


def test_audit_pipeline_unreachable_api_is_not_verifiable():
    url = f"http://127.0.0.1:{free_port()}"
    ledger = _ledger(10)
    result = audit_pipeline(ledger, read_back(url), deadline_s=1.0)
    assert result.verifiable is False and result.checked == 0 and result.lost == 0
    assert result.detail.startswith("could not check every write before the deadline (1s): POST " + url + "/api/events/lookup failed: ")


def test_audit_pipeline_reads_back_through_a_url_template(lookup_server):
    ledger = _ledger(30)
    store = _Store({f"w1-u1.{i}" for i in range(30) if i != 7} | {f"w1-u2.{i}" for i in range(15)})
    url = lookup_server(store)
    result = audit_pipeline(ledger, ReadBack(url=url + "/api/events/{id}"), deadline_s=1.0)
    assert (result.checked, result.lost) == (45, 1) and "w1-u1.7" in result.detail


def test_a_read_back_with_a_bad_sample_is_refused():
    with pytest.raises(ValidationError):
        ReadBack(url="http://127.0.0.1:1/x", sample=0)

