"""Service failures under load: the API process restarts, the broker freezes, the consumer stops and starts.

Each test: Baseline (healthy before the fault) -> Chaos (the scenario injects) -> Observe (the effect while it is
active) -> Validate (the scenario's SLOs) -> Recover (the revert) -> Verify (the target is whole again, nothing lost).
"""
from __future__ import annotations

from tests.chaos.conftest import (admin_stats, assert_healthy_baseline, process_state, scenario, wait_for)


def test_fastapi_restart(chaos_target, chaos_run):
    platform = chaos_target.require_demo("restarts the demo API process by its pidfile")
    chaos_target.wait_healthy()
    old_pid = platform.pid("api")

    # Chaos: restart the API process at t=4s (SIGTERM, then its restart command).
    result = chaos_run(scenario("api-restart.yml"), run_time="15s", users=10)

    # Baseline: healthy before the restart.
    assert_healthy_baseline(result)
    # Observe: a short error burst around the restart (connections refused while the API was down).
    fault = result.phase("fault")
    assert fault.failures > 0, f"the restart caused no client errors at all:\n{result.verdict_table()}"
    # Validate: errors were seen, then recovery within 10 s and no errors afterwards; no acknowledged write lost.
    result.assert_slos()
    assert result.slo("recovers-within-10s").passed and result.slo("no-lost-writes").passed
    # Recover + Verify: a new API process runs and answers healthy; the revert was clean.
    result.assert_reverted()
    new_pid = platform.pid("api")
    assert new_pid is not None and new_pid != old_pid, f"API pid before {old_pid}, after {new_pid}"
    chaos_target.wait_healthy(timeout=10)
    assert result.phase("recovery", "POST /api/events").error_rate <= 0.01


def test_broker_pause(chaos_target, chaos_run):
    platform = chaos_target.require_demo("freezes the demo broker by its pidfile")
    chaos_target.wait_healthy()
    broker_pid = platform.pid("broker")

    def observe(event):
        # Observe: while the broker is frozen its process is stopped and /health says 503 with kafka down.
        assert process_state(broker_pid) == "T", f"broker pid {broker_pid} is not stopped: {process_state(broker_pid)}"
        return wait_for(lambda: (lambda s, b: (s, b) if s == 503 else None)(*chaos_target.health()), 6,
                        "/health 503 while the broker is paused")

    # Chaos: SIGSTOP the broker at t=4s for 6s.
    result = chaos_run(scenario("broker-pause.yml"), run_time="18s", users=10, observe=observe, observe_after_s=0.5)

    assert_healthy_baseline(result)
    status, body = result.observed("pause")
    assert status == 503 and body["dependencies"]["kafka"]["ok"] is False, body
    ingest_fault = result.phase("fault", "POST /api/events")
    assert ingest_fault.error_rate and ingest_fault.error_rate > 0.2, (
        f"ingest kept succeeding with the broker frozen: {ingest_fault}")
    # Validate: detection by /health, recovery within 15 s, no acknowledged write lost.
    result.assert_slos()
    assert result.slo("no-lost-writes").value == 0
    # Recover + Verify: the same broker process runs again (not stopped), and the platform is healthy.
    result.assert_reverted()
    assert platform.pid("broker") == broker_pid
    assert process_state(broker_pid) in ("R", "S"), process_state(broker_pid)
    chaos_target.wait_healthy(timeout=10)


def test_consumer_stop_start_lag_builds_then_drains(chaos_target, chaos_run):
    platform = chaos_target.require_demo("stops the demo consumer by its pidfile")
    chaos_target.wait_healthy()
    old_pid = platform.pid("consumer")
    before = admin_stats(chaos_target)["events"]["total"]

    def observe(event):
        # Observe: the consumer is gone and /health reports it (503, consumer not ok).
        assert platform.pid("consumer") is None, "the consumer still runs during the stop fault"
        return wait_for(lambda: (lambda s, b: (s, b) if s == 503 else None)(*chaos_target.health()), 6,
                        "/health 503 while the consumer is stopped")

    # Chaos: stop the consumer at t=4s for 6s; the revert starts it again.
    result = chaos_run(scenario("consumer-stop.yml"), run_time="18s", users=10, observe=observe, observe_after_s=0.5)

    assert_healthy_baseline(result, endpoints="POST /api/events")
    status, body = result.observed("stop")
    assert status == 503 and body["dependencies"]["consumer"]["ok"] is False, body
    # Observe: lag builds while the consumer is down, and drains after it is back.
    faults = result.injected("stop")[0], result.reverted("stop")[0]
    lag = [(s["t"], s["value"]) for s in result.probe_samples("lag") if s["value"] is not None]
    during = [v for t, v in lag if faults[0].t + 2 <= t <= faults[1].t]
    after = [v for t, v in lag if t > faults[1].t]
    assert during and max(during) > 10, f"consumer lag did not build while it was stopped: {lag}"
    assert after and min(after) < max(during) / 4, f"consumer lag did not drain after the restart: {lag}"
    # Validate: ingest unaffected, detection by /health, every acknowledged event reached the store.
    result.assert_slos()
    pipeline = result.ledger("pipeline")
    assert pipeline is not None and pipeline["acknowledged"] > 0 and pipeline["lost"] == 0, pipeline
    # Recover + Verify: a new consumer process runs, health is back, the store grew by at least the acked writes.
    result.assert_reverted()
    new_pid = platform.pid("consumer")
    assert new_pid is not None and new_pid != old_pid
    chaos_target.wait_healthy(timeout=10)
    assert admin_stats(chaos_target)["events"]["total"] - before >= pipeline["acknowledged"]
