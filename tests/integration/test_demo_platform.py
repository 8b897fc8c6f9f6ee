"""The demo platform end to end: real Tansu, proxy, API and consumer processes, loaded by the real locustfile.

Uses the session-wide `demo_platform` fixture (read-mostly tests); every id a test writes is its own.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from chaos_events.load.payloads import EventGenerator
from chaos_events.demo.supervisor import Platform, pid_alive
from tests.helpers import ROOT, run_locust

LOCUSTFILE = str(ROOT / "locustfiles" / "platform.py")


def http(method: str, url: str, body=None, timeout: float = 10) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_found(platform: Platform, ids: list[str], timeout: float = 20) -> set[str]:
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while time.monotonic() < deadline:
        status, body = http("POST", f"{platform.api_url}/api/events/lookup", {"ids": ids})
        assert status == 200, body
        found = set(body["found"])
        if found == set(ids):
            break
        time.sleep(0.2)
    return found


def read_stats(prefix: Path) -> dict[tuple[str, str], dict]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def read_topic(platform: Platform, topic: str, wanted: int, keep, timeout: float = 20) -> dict:
    """Read `topic` from the beginning (assigned partitions, no group join) until `keep` has collected `wanted` items."""
    consumer = Consumer({"bootstrap.servers": platform.kafka_bootstrap, "group.id": f"audit-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    found: dict = {}
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        while len(found) < wanted and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                keep(msg, found)
    finally:
        consumer.close()
    return found


def stats_total(platform: Platform) -> int:
    status, body = http("GET", f"{platform.api_url}/admin/stats")
    assert status == 200, body
    return body["events"]["total"]


def test_health_reports_every_dependency(demo_platform):
    status, body = http("GET", f"{demo_platform.api_url}/health")
    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["dependencies"]) == {"kafka", "store", "consumer"}
    assert all(dep["ok"] is True for dep in body["dependencies"].values())
    assert body["dependencies"]["consumer"]["last_seen_s"] <= 3
    assert http("GET", f"{demo_platform.api_direct_url}/health")[0] == 200


def test_invalid_payload_gets_422_with_field_errors(demo_platform):
    status, body = http("POST", f"{demo_platform.api_url}/api/events",
                        {"id": "bad id with spaces", "type": "Order Created", "timestamp": "yesterday", "payload": [], "extra": 1})
    assert status == 422
    fields = {tuple(err["loc"][1:]) for err in body["detail"]}
    assert fields == {("id",), ("type",), ("source",), ("timestamp",), ("payload",), ("extra",)}
    status, body = http("GET", f"{demo_platform.api_url}/api/explorer?limit=0")
    assert status == 422 and body["detail"][0]["loc"] == ["query", "limit"]


def test_ingest_is_readable_and_carries_ledger_key_and_headers(demo_platform):
    producer_id = f"t-{uuid.uuid4().hex[:8]}"
    gen = EventGenerator(producer_id, seed=1)
    events = [gen.next() for _ in range(5)]
    for event in events:
        status, body = http("POST", f"{demo_platform.api_url}/api/events", event)
        assert (status, body) == (202, {"id": event["id"]})
    ids = [e["id"] for e in events]
    assert wait_found(demo_platform, ids) == set(ids)
    status, stored = http("GET", f"{demo_platform.api_url}/api/events/{ids[0]}")
    assert status == 200 and stored["payload"] == events[0]["payload"] and stored["type"] == events[0]["type"]
    status, body = http("GET", f"{demo_platform.api_url}/api/events/{producer_id}.999")
    assert status == 404 and "not found" in body["detail"]
    status, body = http("GET", f"{demo_platform.api_url}/api/explorer?type={events[0]['type']}&limit=500")
    assert status == 200 and all(e["type"] == events[0]["type"] for e in body["events"])

    # The message in Kafka: key = event id, headers chaos-producer / chaos-seq (the ledger's audit reads them).
    def keep(msg, found):
        key = (msg.key() or b"").decode()
        if key in ids:
            found[key] = dict(msg.headers() or [])

    seen = read_topic(demo_platform, demo_platform.topic, len(ids), keep)
    assert set(seen) == set(ids)
    assert seen[ids[2]] == {"chaos-producer": producer_id.encode(), "chaos-seq": b"3"}


def test_events_produced_to_kafka_reach_the_store_and_poison_goes_to_the_dlq(demo_platform):
    _, before = http("GET", f"{demo_platform.api_url}/admin/stats")
    gen = EventGenerator(f"k-{uuid.uuid4().hex[:8]}", seed=2)
    events = [gen.next() for _ in range(20)]
    producer = Producer({"bootstrap.servers": demo_platform.kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    poison = {"not-json": b"{not json", "bad-utf8": b"\xff\xfe\x00", "schema-mismatch": json.dumps({"id": "x.1", "type": 5}).encode()}
    for value in poison.values():
        producer.produce(demo_platform.topic, value=value)
    for event in events:
        producer.produce(demo_platform.topic, key=event["id"], value=json.dumps(event).encode())
    assert producer.flush(10) == 0
    ids = [e["id"] for e in events]
    assert wait_found(demo_platform, ids) == set(ids), "valid events after poison ones must still be stored"
    _, after = http("GET", f"{demo_platform.api_url}/admin/stats")
    for reason in poison:
        assert after["dlq"]["by_reason"].get(reason, 0) >= before["dlq"]["by_reason"].get(reason, 0) + 1, after["dlq"]

    def keep(msg, found):
        if msg.value() in poison.values():
            found[msg.value()] = dict(msg.headers())["chaos-dlq-reason"].decode()

    reasons = read_topic(demo_platform, demo_platform.dlq_topic, len(poison), keep)
    assert reasons == {value: reason for reason, value in poison.items()}


def test_locust_load_with_both_users(demo_platform, tmp_path):
    total_before = stats_total(demo_platform)
    prefix = tmp_path / "load"
    run = run_locust(["-f", LOCUSTFILE, "--headless", "-u", "8", "-r", "8", "--run-time", "8s",
                      "--host", demo_platform.api_url, "--kafka-bootstrap", demo_platform.kafka_bootstrap,
                      "--csv", str(prefix), "--only-summary", "--chaos-metrics-port", "0"], timeout=90, env=demo_platform.env())
    assert run.returncode == 0, run.output[-4000:]
    stats = read_stats(prefix)
    for key in [("POST", "/api/events"), ("GET", "/api/explorer"), ("KAFKA", "produce events")]:
        assert int(stats[key]["Request Count"]) > 0, (key, stats.keys())
    assert int(stats[("", "Aggregated")]["Failure Count"]) == 0, run.output[-4000:]
    # Reading own writes back happened and succeeded (the user fails a request when an acked id is missing).
    read_back = sum(int(stats[k]["Request Count"]) for k in [("GET", "/api/events/[id]"), ("POST", "/api/events/lookup")] if k in stats)
    assert read_back > 0
    # Every acknowledged write, through the API or straight to Kafka, reaches the store: nothing lost.
    acked = int(stats[("POST", "/api/events")]["Request Count"]) + int(stats[("KAFKA", "produce events")]["Request Count"])
    deadline = time.monotonic() + 20
    while stats_total(demo_platform) < total_before + acked and time.monotonic() < deadline:
        time.sleep(0.3)
    assert stats_total(demo_platform) >= total_before + acked


def test_bad_kafka_topic_option_exits_2_with_a_clear_message(demo_platform):
    run = run_locust(["-f", LOCUSTFILE, "--headless", "-u", "1", "-r", "1", "--run-time", "5s", "--host", demo_platform.api_url,
                      "--kafka-topic", "", "--only-summary", "--chaos-metrics-port", "0"], timeout=60)
    assert run.returncode == 2, run.output[-3000:]
    # The plugin reports it (prefix "chaos-events: ") before the run starts; users.py's own check is the fallback.
    assert "invalid option --kafka-topic: expected a Kafka topic name (1-249 characters of A-Z a-z 0-9 . _ -), got ''" in run.stderr
    assert "Traceback" not in run.output


def test_up_status_down_from_the_command_line(tmp_path):
    run_dir = tmp_path / "cli"

    def demo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "chaos_events.demo", *args, "--run-dir", str(run_dir)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    up = demo("up", "--free-ports")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        platform = Platform.load(run_dir)
        pids = {name: s["pid"] for name, s in platform.status().items()}
        assert all(pids.values()), pids
        assert demo("status").returncode == 0
        assert http("GET", f"{platform.api_url}/health")[0] == 200
        # start-part restarts one part in place, with the recorded ports, and waits until it is ready.
        restart = subprocess.run(platform.restart_commands["consumer"], capture_output=True, text=True, timeout=60, cwd="/")
        assert restart.returncode == 0, restart.stdout + restart.stderr
        assert platform.pid("consumer") not in (None, pids["consumer"])
        assert not pid_alive(pids["consumer"])
    finally:
        down = demo("down")
    assert down.returncode == 0, down.stderr
    assert all(not pid_alive(pid) for pid in pids.values()), "down must leave no process behind"
    assert not list(run_dir.glob("*.pid"))
    assert demo("status").returncode == 1
