"""KafkaUser batches (`produce_events`, `produce_batch`): one call per task, and still one Locust request event and
one ledger entry per message, failures included. Real headless Locust runs against a real Tansu broker and a real
three-broker Apache Kafka cluster (RF 3, min.insync.replicas 2; needs Java and the jars of `python -m
chaos_events.demo fetch-kafka`), or against no broker at all, for the failures. Every count comes from Locust's own
--json-file stats, its --csv failures and the harness's chaos-report.json (whose lost-writes audit reads the topic
back). Nothing is timed. Every broker started here is stopped by its pid, also when a test fails.
"""
from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest

from chaos_events.demo.broker import ensure_topics
from tests.helpers import free_port, require_kafka, run_locust

USERS, BATCHES, PER_BATCH = 2, 6, 50

LOCUSTFILE = textwrap.dedent(f"""
    import chaos_events  # noqa: F401
    from chaos_events.locust_plugin.users import KafkaMessage, KafkaUser
    from locust import constant, task
    from locust.exception import StopUser

    class Batcher(KafkaUser):
        wait_time = constant(0.05)

        def on_start(self):
            self.batches = 0

        @task
        def send(self):
            if self.batches == {BATCHES}:
                raise StopUser()
            self.batches += 1
            if self.batches % 2:  # events (JSON, ledger ids from their "id"), then raw messages with explicit ids
                self.produce_events({{"id": f"{{self.producer_id}}.{{self.next_seq()}}", "type": "t.batch"}}
                                    for _ in range({PER_BATCH}))
            else:
                self.produce_batch([self.raw(self.next_seq()) for _ in range({PER_BATCH})])

        def raw(self, seq):  # the ledger id in the key, as the lost-writes audit reads it back
            return KafkaMessage(b"raw", key=f"{{self.producer_id}}.{{seq}}", producer_id=self.producer_id, seq=seq)
""")

SCENARIO = ("name: kafka-batches\ntargets:\n  box: {host: local}\n"
            "faults:\n  - {at: 1s, for: 1s, fault: cpu_burn, target: box, cores: 1, load: 0.1}\n"
            "slos:\n  - {name: no-loss, metric: lost_writes, max: 0}\n  - {name: no-dupes, metric: duplicates, max: 0}\n")


def _run(tmp_path: Path, bootstrap: str, env: dict | None = None):
    (tmp_path / "lf.py").write_text(LOCUSTFILE)
    (tmp_path / "s.yml").write_text(SCENARIO)
    reports = tmp_path / "reports"
    run = run_locust(["-f", str(tmp_path / "lf.py"), "--headless", "-u", str(USERS), "-r", str(USERS), "--run-time", "8s",
                      "--kafka-bootstrap", bootstrap, "--kafka-topic", "batches", "--chaos-plan", str(tmp_path / "s.yml"),
                      "--chaos-report-dir", str(reports), "--chaos-journal", str(tmp_path / "j.json"),
                      "--chaos-metrics-port", "0", "--json-file", str(tmp_path / "stats"), "--csv", str(tmp_path / "csv")],
                     timeout=120, env=env)
    assert "Traceback" not in run.output, run.output[-3000:]
    stats = {(s["method"], s["name"]): s for s in json.loads((tmp_path / "stats.json").read_text())}
    with open(tmp_path / "csv_failures.csv", newline="") as f:
        failures = {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(f)}
    report = json.loads((reports / "chaos-report.json").read_text())
    return run, stats, failures, {r["name"]: r for r in report["verdict"]["results"]}


@pytest.fixture(params=["tansu", "apache"])
def broker(request, tmp_path_factory):
    """The bootstrap of a broker with the topic "batches": a Tansu of the test's own, or three Apache Kafka brokers."""
    if request.param == "tansu":
        bootstrap = request.getfixturevalue("tansu")
        ensure_topics(int(bootstrap.rsplit(":", 1)[1]), ["batches"])
        yield bootstrap
        return
    require_kafka()
    from chaos_events.demo.kafka_cluster import KafkaCluster

    cluster = KafkaCluster.create(tmp_path_factory.mktemp("kafka"), topics={"batches": {}})
    cluster.start()  # stops what it started when it fails
    try:
        yield cluster.direct_bootstrap
    finally:
        cluster.stop()


@pytest.mark.slow
def test_every_message_of_a_batch_is_reported_and_acknowledged(tmp_path, broker):
    run, stats, failures, results = _run(tmp_path, broker)

    assert run.returncode == 0, run.output[-3000:]
    sent = USERS * BATCHES * PER_BATCH
    produced = stats[("KAFKA", "produce batches")]
    assert (produced["num_requests"], produced["num_failures"], failures) == (sent, 0, {}), (produced, failures)
    # Each message's own latency (the broker's, per delivery) is in Locust's stats, not one figure per batch.
    assert sum(produced["num_reqs_per_sec"].values()) == sent and sum(produced["response_times"].values()) == sent
    ledger = results["no-loss"]["details"]["ledger"][0]
    assert (ledger["acknowledged"], ledger["found"]) == (sent, sent), ledger  # one ack per message, all read back
    assert results["no-loss"]["status"] == "pass" and results["no-dupes"]["status"] == "pass", results


@pytest.mark.slow
def test_each_failed_message_of_a_batch_is_its_own_failure(tmp_path):
    """No broker, and a queue of 20 messages: of each batch of 50, 30 fail at once (queue full) and the 20 queued time
    out after 1 s; all of them, one failure event each, and none in the ledger."""
    config = {"queue.buffering.max.messages": 20, "message.timeout.ms": 1000}
    run, stats, failures, results = _run(tmp_path, f"127.0.0.1:{free_port()}",
                                         env={"CHAOS_KAFKA_PRODUCER_CONFIG": json.dumps(config)})

    sent = USERS * BATCHES * PER_BATCH
    produced = stats[("KAFKA", "produce batches")]
    assert (produced["num_requests"], produced["num_failures"]) == (sent, sent), produced
    full = failures.pop("KafkaDeliveryError('producer queue full (broker not keeping up)')")
    assert full >= sent - USERS * BATCHES * 20 and sum(failures.values()) == sent - full, (full, failures)
    assert all("Message timed out" in error for error in failures), failures
    # Nothing acknowledged, so nothing went to the ledger: the audit has no writes to look for.
    assert results["no-loss"]["message"] == "no ledger results recorded (no acknowledged writes were tracked)", results


OPEN_LOCUSTFILE = textwrap.dedent("""
    import chaos_events  # noqa: F401
    from chaos_events.locust_plugin.arrivals import OpenModelUser, constant_rate
    from chaos_events.locust_plugin.users import KafkaUser
    from locust import task

    class Batcher(OpenModelUser, KafkaUser):
        arrivals = constant_rate(10)
        max_concurrency = 8

        @task
        def send(self):
            self.produce_events({"id": f"{self.producer_id}.{self.next_seq()}", "type": "t.open"} for _ in range(10))
""")


@pytest.mark.slow
def test_an_open_model_arrival_that_produces_a_batch_frees_its_slot_once_every_message_is_reported(tmp_path, tansu):
    """Each message holds the arrival once and each report settles once: were one hold left over, the 8 slots would stay
    taken after 8 arrivals and every later arrival would be dropped (a failure of the same name). A few drops while the
    idempotent producer gets its id from the broker, first, are the open model's honest report, not a leak."""
    ensure_topics(int(tansu.rsplit(":", 1)[1]), ["batches"])
    (tmp_path / "lf.py").write_text(OPEN_LOCUSTFILE)
    run = run_locust(["-f", str(tmp_path / "lf.py"), "--headless", "--run-time", "7s", "--kafka-bootstrap", tansu,
                      "--kafka-topic", "batches", "--chaos-metrics-port", "0", "--json-file", str(tmp_path / "stats")],
                     timeout=120)
    assert run.returncode in (0, 1) and "Traceback" not in run.output, run.output[-3000:]  # 1: some arrivals dropped
    produced = {(s["method"], s["name"]): s for s in json.loads((tmp_path / "stats.json").read_text())}[("KAFKA", "produce batches")]
    delivered, dropped = produced["num_requests"] - produced["num_failures"], produced["num_failures"]
    assert delivered % 10 == 0 and delivered >= 10 * 30, produced  # whole batches, from far more than 8 arrivals
    assert dropped * 2 < delivered // 10, produced  # fewer drops than half the completed arrivals, not all after 8
