"""Data corruption under load: bad payloads sent to the API, poison messages produced straight to Kafka.

Each test: Baseline -> Chaos -> Observe (the bad data arrived) -> Validate (all of it refused or dead-lettered, the
good traffic unaffected) -> Recover -> Verify (the consumer is the same process, no real data lost).
"""
from __future__ import annotations

from tests.chaos.conftest import admin_stats, assert_healthy_baseline, scenario, wait_for

INGEST = "POST /api/events"


def test_bad_payloads_are_all_rejected(chaos_target, chaos_run):
    chaos_target.wait_healthy()
    accepted_before = admin_stats(chaos_target)["api"]["accepted"]

    # Chaos: bad payloads at 15/s to the ingest endpoint, t=4s..9s, next to the good traffic.
    result = chaos_run(scenario("bad-payloads.yml"), run_time="12s", users=8)

    assert_healthy_baseline(result, endpoints=INGEST)
    # Observe: the bad payloads went out (Locust entries named "[chaos] POST /api/events <kind>"), several kinds.
    bad = result.endpoint_totals("[chaos] ")
    sent = sum(row["count"] for row in bad.values())
    assert sent >= 30 and len(bad) >= 3, bad
    # Validate: every one refused with a 4xx (the sender counts anything else as a failure), good traffic unaffected.
    assert all(row["failures"] == 0 for row in bad.values()), bad
    result.assert_slos()
    assert result.slo("bad-payloads-rejected").value == 0
    # Recover + Verify: no bad payload was accepted: the API's accepted count grew by the good writes only.
    result.assert_reverted()
    kafka = result.ledger("kafka")
    assert kafka is not None and kafka["lost"] == 0
    accepted = admin_stats(chaos_target)["api"]["accepted"] - accepted_before
    good = result.endpoint_totals()[INGEST]
    assert accepted == good["count"] - good["failures"], (accepted, good)


def test_poison_messages_are_dead_lettered(chaos_target, chaos_run):
    platform = chaos_target.require_demo("reads the demo consumer's pid and dead-letter counts")
    chaos_target.wait_healthy()
    before = admin_stats(chaos_target)
    consumer_pid = platform.pid("consumer")

    # Chaos: poison messages at 10/s straight into the events topic, t=4s..9s.
    result = chaos_run(scenario("poison-messages.yml"), run_time="13s", users=8)

    assert_healthy_baseline(result, endpoints=INGEST)
    # Observe: the dead-letter count rises by about what was produced (10/s for 5 s).
    after = wait_for(lambda: (lambda s: s if s["dlq"]["total"] - before["dlq"]["total"] >= 30 else None)(admin_stats(chaos_target)),
                     15, "dead-lettered poison messages in /admin/stats")
    assert after["dlq"]["by_reason"], after["dlq"]
    # Validate: good traffic unaffected, health truthful, every poison message found (by its run's tag) in the
    # dead-letter topic, every acknowledged event in Kafka and in the store.
    result.assert_slos()
    meta = result.report["record"]["meta"]
    assert meta["poison_sent"] >= 30 and meta["dlq_count"] == meta["poison_sent"], meta
    for check in ("kafka", "pipeline"):
        ledger = result.ledger(check)
        assert ledger is not None and ledger["acknowledged"] > 0 and ledger["lost"] == 0, ledger
    # Recover + Verify: the consumer survived the poison (same process, healthy), real events kept flowing.
    result.assert_reverted()
    assert platform.pid("consumer") == consumer_pid
    body = chaos_target.wait_healthy(timeout=10)
    assert body["dependencies"]["consumer"]["ok"] is True
    assert after["events"]["total"] > before["events"]["total"]
