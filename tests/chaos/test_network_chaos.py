"""Network failures under load, through the demo's TCP fault proxy: latency on the API link, a partition of the
Kafka link, connection resets on the API link.

Each test: Baseline -> Chaos -> Observe -> Validate -> Recover -> Verify (the proxy route has no toxic left).
"""
from __future__ import annotations

from tests.chaos.conftest import assert_healthy_baseline, route_toxics, scenario, wait_for

INGEST = "POST /api/events"
LATENCY_MS = 300


def test_api_latency_raises_p95_then_recovers(chaos_target, chaos_run):
    platform = chaos_target.require_demo("adds a toxic to the demo proxy's api route")
    chaos_target.wait_healthy()

    def observe(event):
        # Observe: the toxic sits on the route while the fault is active.
        return [t["type"] for t in route_toxics(platform, "api")]

    # Chaos: +300 ms on every response through the API route, t=4s..8s.
    result = chaos_run(scenario("api-latency.yml"), run_time="14s", users=10, observe=observe, observe_after_s=1.0)

    base = assert_healthy_baseline(result, endpoints=INGEST)
    assert result.observed("latency") == ["latency"]
    # Observe: ingest latency rises by about the added latency while it lasts (the median by at least 80% of it,
    # the p95 past it; the baseline's p95 still carries the connection warm-up, so the median is the fair yardstick) ...
    fault = result.phase("fault", INGEST)
    assert fault.p50_ms - base.p50_ms >= 0.8 * LATENCY_MS, f"baseline p50 {base.p50_ms} ms, fault p50 {fault.p50_ms} ms"
    assert fault.p95_ms >= 0.9 * LATENCY_MS, f"fault p95 {fault.p95_ms} ms"
    # ... and comes back once it is removed.
    recovery = result.phase("recovery", INGEST)
    assert recovery.p50_ms < base.p50_ms + LATENCY_MS / 4, f"baseline p50 {base.p50_ms} ms, recovery p50 {recovery.p50_ms} ms"
    # Requests sent before the revert still finish slow inside the first recovery second (a request counts when it
    # completes, as in Locust's own stats), so the p95 is compared from one second after the revert on.
    revert_t = result.reverted("latency")[0].t
    settled = result.between(revert_t + 1.0, 14.0, INGEST)
    assert settled.requests > 0 and settled.p95_ms < fault.p95_ms, \
        f"p95 {settled.p95_ms} ms from 1 s after the revert ({settled.requests} requests), fault p95 {fault.p95_ms} ms"
    # Validate: p95 stays bounded, recovery within 10 s, no ingest errors.
    result.assert_slos()
    # Recover + Verify: no toxic left on the route.
    result.assert_reverted()
    assert route_toxics(platform, "api") == []


def test_kafka_partition_gives_fast_503s_and_loses_no_acked_writes(chaos_target, chaos_run):
    platform = chaos_target.require_demo("partitions the demo proxy's kafka route")
    chaos_target.wait_healthy()

    def observe(event):
        # Observe: with Kafka cut off, /health turns 503 and names kafka as the broken dependency.
        return wait_for(lambda: (lambda s, b: (s, b) if s == 503 else None)(*chaos_target.health()), 6,
                        "/health 503 while the Kafka link is partitioned")

    # Chaos: nothing passes the Kafka route, t=4s..10s.
    result = chaos_run(scenario("kafka-partition.yml"), run_time="18s", users=10, observe=observe, observe_after_s=0.5)

    assert_healthy_baseline(result, endpoints=INGEST)
    status, body = result.observed("partition")
    assert status == 503 and body["dependencies"]["kafka"]["ok"] is False, body
    # Observe: ingest answers errors (503) while cut off, fast rather than hanging (SLO errors-are-fast).
    fault = result.phase("fault", INGEST)
    assert fault.error_rate and fault.error_rate > 0.3, f"ingest kept succeeding during the partition: {fault}"
    # Validate: fast errors, detection, recovery within 15 s, and no acknowledged write lost.
    result.assert_slos()
    kafka = result.ledger("kafka")
    assert kafka is not None and kafka["acknowledged"] > 0 and kafka["lost"] == 0, kafka
    # Recover + Verify: the partition toxic is gone, health is back, ingest succeeds again after the recovery window.
    result.assert_reverted()
    assert route_toxics(platform, "kafka") == []
    chaos_target.wait_healthy(timeout=10)
    assert result.phase("tail", INGEST).error_rate == 0


def test_api_reset_peer_fails_http_clients_only(chaos_target, chaos_run):
    platform = chaos_target.require_demo("adds a reset_peer toxic to the demo proxy's api route")
    chaos_target.wait_healthy()

    # Chaos: every connection through the API route is reset, t=5s..9s.
    result = chaos_run(scenario("api-reset-peer.yml"), run_time="15s", users=10)

    assert_healthy_baseline(result)
    # Observe: HTTP clients fail while connections are reset; Kafka producers (another route) do not (blast radius).
    fault = result.phase("fault", INGEST)
    assert fault.error_rate and fault.error_rate > 0.5, f"HTTP clients barely noticed the resets: {fault}"
    assert result.phase("fault", "KAFKA produce events").error_rate == 0
    # Validate: producers unaffected, recovery within 10 s, no errors in the tail.
    result.assert_slos()
    # Recover + Verify: no toxic left; HTTP works again.
    result.assert_reverted()
    assert route_toxics(platform, "api") == []
    chaos_target.wait_healthy(timeout=10)
