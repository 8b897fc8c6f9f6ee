"""Data faults against the real demo platform (Tansu broker, API, consumer): bad payloads are refused with 4xx and
counted as rejected; poison messages are dead-lettered while the consumer keeps storing good events.

Each fault goes inject -> revert -> revert. The platform is started and stopped by the shared fixture (by pid).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import gevent
import pytest

from chaos_events.errors import PlanError
from chaos_events.scenario.loader import parse_plan

from chaos_events.backends.bad_traffic import BadPayloadAccepted, BadTrafficSender
from chaos_events.load.corrupt import API_KINDS, POISON_KINDS
from chaos_events.faults.base import FaultContext, build_params, fault_type
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import ROOT

# Every kind must be refused with 4xx. invalid-utf8 also has its own test below: one of its variants (an encoded
# surrogate, ED A0 80) once got a 500 from the demo API, a bug this harness found.
REFUSED_KINDS = tuple(API_KINDS)


def _fault(name: str, target: Target, **raw):
    params, problems = build_params(fault_type(name), raw)
    assert problems == []
    return fault_type(name)(params, target)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _wait_for(predicate, timeout_s: float, sleep=time.sleep, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < deadline:
        sleep(every_s)
        value = predicate()
    return value


class Fired:
    """What the plugin would hand to Locust's request event: recorded here so the test can read it."""

    def __init__(self):
        self.requests: list[dict] = []

    def __call__(self, **kwargs):
        self.requests.append(kwargs)


def test_bad_payloads_are_refused_and_counted_as_rejected(demo_platform):
    fired = Fired()
    sender = BadTrafficSender(fired, seed=11)

    def route(kind: str, data: dict) -> None:
        # The plugin's routing of the fault's broadcasts, done in-process: one worker, this sender.
        if kind == "chaos_bad_traffic":
            sender.start(data["fault_id"], data["url"], data["rate_per_s"], data["kinds"])
        elif kind == "chaos_bad_traffic_stop":
            sender.stop(data["fault_id"])

    fault = _fault("bad_payloads", Target("api", TargetKind.ENDPOINT, {"url": demo_platform.api_url}),
                   rate_per_s=40, kinds=list(REFUSED_KINDS))
    ctx = FaultContext(broadcast=route, occurrence_id="bad-1")
    try:
        fault.inject(ctx)
        assert sender.active() == ["bad-1"]
        wanted = 3 * len(REFUSED_KINDS)
        assert _wait_for(lambda: sum(sender.counts().values()) >= wanted, timeout_s=20, sleep=gevent.sleep)
        fault.revert(ctx)
        assert sender.active() == []
        done = sum(sender.counts().values())
        gevent.sleep(0.3)
        assert sum(sender.counts().values()) == done  # stopped means stopped
        fault.revert(ctx)
    finally:
        sender.stop_all()

    counts = sender.counts("bad-1")
    assert counts["rejected_4xx"] >= wanted
    assert counts == {"rejected_4xx": counts["rejected_4xx"], "accepted": 0, "server_error": 0, "errors": 0}, (sender.counts_by_kind(), sender.status_counts())
    assert set(sender.counts_by_kind()) == set(REFUSED_KINDS)
    statuses = sender.status_counts()
    assert 422 in statuses and all(400 <= code < 500 for code in statuses), statuses
    assert len(fired.requests) == sum(counts.values())
    assert {r["name"] for r in fired.requests} == {f"[chaos] POST /api/events {k}" for k in REFUSED_KINDS}
    assert all(r["request_type"] == "POST" and r["exception"] is None and r["response_time_ms"] > 0
               and r["response_length"] > 0 for r in fired.requests)


def test_every_invalid_utf8_variant_is_refused_with_4xx(demo_platform):
    # Every variant of the kind, in turn (the seed cycles through them within a few dozen requests).
    sender = BadTrafficSender(Fired(), seed=5)
    try:
        sender.start("utf8-1", demo_platform.api_url + "/api/events", 50, ["invalid-utf8"])
        assert _wait_for(lambda: sum(sender.counts().values()) >= 30, timeout_s=15, sleep=gevent.sleep)
    finally:
        sender.stop_all()
    statuses = sender.status_counts()
    assert all(400 <= code < 500 for code in statuses), (
        f"the API must refuse bodies that are not UTF-8 with 4xx; got statuses {statuses} "
        "(a 500 means a raw encoded surrogate, bytes ED A0 80, got past json.loads(bytes), which decodes with "
        "'surrogatepass', and broke model_dump_json later)")


ACCEPT_ALL_SERVER = """
import http.server, sys
class Accept(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(202); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Accept)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def test_an_accepted_bad_payload_is_reported_as_a_failure():
    # A platform that accepts anything (202): the sender must report every bad payload it took as a failure.
    server = subprocess.Popen([sys.executable, "-c", ACCEPT_ALL_SERVER], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    fired = Fired()
    sender = BadTrafficSender(fired, seed=3)
    try:
        port = int(server.stdout.readline())
        sender.start("bom-1", f"http://127.0.0.1:{port}/api/events", 20, ["bom"])
        assert _wait_for(lambda: len(fired.requests) >= 2, timeout_s=15, sleep=gevent.sleep)
    finally:
        sender.stop_all()
        server.kill()
        server.wait(timeout=10)
    assert sender.counts()["accepted"] == len(fired.requests) and sender.status_counts() == {202: len(fired.requests)}
    assert all(isinstance(r["exception"], BadPayloadAccepted) and str(r["exception"]) == "accepted bad payload (202)"
               for r in fired.requests)


def test_poison_messages_are_dead_lettered_and_the_consumer_stays_alive(demo_platform):
    api = demo_platform.api_direct_url
    _, before = _get(api + "/admin/stats")
    fault = _fault("poison_messages", Target("events", TargetKind.KAFKA, {"bootstrap": demo_platform.kafka_bootstrap,
                                                                           "topic": demo_platform.topic}), rate_per_s=40)
    ctx = FaultContext(occurrence_id="poison-1")
    try:
        fault.inject(ctx)
        assert _wait_for(lambda: fault.delivered() >= 2 * len(POISON_KINDS), timeout_s=20)
        fault.revert(ctx)
        fault.revert(ctx)
    finally:
        fault.revert(ctx)

    state = fault.state
    assert state["stopped"] and state["delivered"] >= 2 * len(POISON_KINDS)
    assert state["sent"] == state["delivered"] and state["failed"] == 0 and state["queue_full"] == 0
    assert fault.counts() == {k: state[k] for k in ("sent", "delivered", "failed", "queue_full")}

    # Every delivered poison message lands in the dead-letter count (the consumer commits after the DLQ write).
    expected_dlq = before["dlq"]["total"] + state["delivered"]
    assert _wait_for(lambda: _get(api + "/admin/stats")[1]["dlq"]["total"] >= expected_dlq, timeout_s=20)
    _, after = _get(api + "/admin/stats")
    assert after["dlq"]["total"] >= expected_dlq  # at-least-once: a retried batch may dead-letter twice
    assert set(after["dlq"]["by_reason"]) <= {"bad-utf8", "not-json", "schema-mismatch"}

    # ...and the consumer is alive and still storing good events.
    status, body = _get(api + "/health")
    assert status == 200 and body["dependencies"]["consumer"]["ok"]
    good = json.dumps({"id": "after-poison-1", "type": "page.viewed", "source": "web", "timestamp": "2026-01-01T00:00:00Z",
                       "payload": {"page": "/"}}).encode()
    request = urllib.request.Request(api + "/api/events", data=good, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
    assert _wait_for(lambda: _get(api + "/api/events/after-poison-1")[0] == 200, timeout_s=20)


def test_poison_producer_works_under_gevent_patching(demo_platform):
    # Inside Locust the threading module is patched: the producer loop becomes a greenlet. It must still deliver,
    # and a greenlet beside it must keep running (it would not if the loop blocked in poll/flush).
    script = f"""
from gevent import monkey; monkey.patch_all()
import gevent, json, time
from chaos_events.backends import poison
ticks = [0]
def ticker():
    while True:
        ticks[0] += 1
        gevent.sleep(0.01)
gevent.spawn(ticker)
poison.start_poison("g1", {demo_platform.kafka_bootstrap!r}, {demo_platform.topic!r}, 50, ["invalid-json", "invalid-utf8"])
deadline = time.monotonic() + 15
while (poison.poison_counts("g1")["delivered"] < 10) and time.monotonic() < deadline:
    gevent.sleep(0.05)
ticks_while_producing = ticks[0]
final = poison.stop_poison("g1")
print(json.dumps({{"ticks": ticks_while_producing, **final}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["delivered"] >= 10 and result["failed"] == 0 and result["ticks"] > 0


def test_poison_messages_without_a_topic_is_refused_before_the_run():
    with pytest.raises(PlanError) as info:
        parse_plan("name: t\ntargets:\n  events: {kafka: {bootstrap: '127.0.0.1:9092'}}\nfaults:\n"
                   "  - {at: 1s, for: 1s, fault: poison_messages, target: events, rate_per_s: 1}\n", "x.yml", environ={})
    assert str(info.value) == "x.yml:3 targets.events (kafka): missing key 'topic'"
