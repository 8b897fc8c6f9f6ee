"""Resource exhaustion under load: CPU burn, memory pressure and disk fill on this machine (one run, one after
another), and an exhausted request pool in the API.

Each test: Baseline -> Chaos -> Observe (the pressure is really there) -> Validate -> Recover -> Verify (the burner
and hog processes are gone, the fill file is deleted, the API answers again).
"""
from __future__ import annotations

import os
from pathlib import Path

from chaos_events.pytest_plugin import http_json
from tests.chaos.conftest import (admin_stats, assert_healthy_baseline, process_state, rss_bytes, scenario)

MIB = 2**20
INGEST = "POST /api/events"


def test_cpu_memory_and_disk_pressure(chaos_target, chaos_run):
    platform = chaos_target.require_demo("fills the demo's run directory")
    chaos_target.wait_healthy()
    seen_pids: list[int] = []

    def observe(event):
        # Observe: the fault's own processes and files, read from the harness's revert journal.
        entry = next(e for fid, e in chaos_run.active_faults().items() if fid == event.fault_id)
        state = entry["state"]
        if event.fault_type == "cpu_burn":
            pids = [c["pid"] for c in state["children"]]
            seen_pids.extend(pids)
            return {pid: process_state(pid) for pid in pids}
        if event.fault_type == "memory_pressure":
            pids = [c["pid"] for c in state["children"]]
            seen_pids.extend(pids)
            return sum(rss_bytes(pid) for pid in pids)
        if event.fault_type == "disk_fill":
            path = Path(state["path"])
            return str(path), (path.stat().st_size if path.exists() else None)
        return None

    # Chaos: cpu_burn t=4..8s, memory_pressure 256 MiB t=9..13s, disk_fill 64 MiB of the run dir t=4..13s.
    result = chaos_run(scenario("host-pressure.yml"), run_time="17s", users=8, observe=observe, observe_after_s=1.0)

    assert_healthy_baseline(result)
    # Observe: a running burner, 256 MiB resident, a 64 MiB file in the run dir.
    burners = result.observed("cpu_burn")
    assert burners and all(s in ("R", "S") for s in burners.values()), burners
    assert result.observed("memory_pressure") >= 200 * MIB
    fill_path, fill_size = result.observed("disk_fill")
    assert Path(fill_path).parent == platform.run_dir and fill_size == 64 * MIB, (fill_path, fill_size)
    # Validate: errors and p95 stay within bounds under pressure; nothing lost.
    result.assert_slos()
    # Recover + Verify: burner and hog processes ended, the fill file deleted, the journal empty, health good.
    result.assert_reverted()
    assert seen_pids and all(process_state(pid) in (None, "Z") for pid in seen_pids), {p: process_state(p) for p in seen_pids}
    assert not os.path.exists(fill_path)
    assert not list(platform.run_dir.glob(".chaos-disk-fill-*"))
    assert chaos_run.active_faults() == {}
    chaos_target.wait_healthy(timeout=10)


def test_pool_exhaustion_answers_503_then_recovers(chaos_target, chaos_run):
    platform = chaos_target.require_demo("exhausts the demo API's in-flight slots on its direct port")
    chaos_target.wait_healthy()
    busy_before = admin_stats(chaos_target)["api"]["busy"]

    holders: list[int] = []

    def observe(event):
        # Observe: a fresh request gets the API's own "busy" 503 (80 held requests > 64 in-flight slots).
        holders.extend(c["pid"] for c in chaos_run.active_faults()[event.fault_id]["state"]["children"])
        return http_json("POST", platform.api_direct_url + "/api/events", {"id": "probe"}, timeout=5)

    # Chaos: 80 slow requests hold the API's slots, t=4s..9s; recovery window to 14 s, then a 6 s tail (room for a
    # late start on a loaded machine: a tail of no seconds would leave its SLO unverifiable).
    result = chaos_run(scenario("pool-exhaustion.yml"), run_time="20s", users=10, observe=observe, observe_after_s=1.5)

    assert_healthy_baseline(result, endpoints=INGEST)
    status, body = result.observed("pool_exhaustion")
    assert status == 503 and "busy" in str(body), (status, body)
    fault = result.phase("fault", INGEST)
    assert fault.error_rate and fault.error_rate > 0.5, f"ingest mostly succeeded with the pool exhausted: {fault}"
    # Validate: refused fast (no unbounded queue), recovery within 10 s, no errors after, nothing lost.
    result.assert_slos()
    # Recover + Verify: the holder process is gone, the API counted the refusals and serves again.
    result.assert_reverted()
    assert holders and all(process_state(pid) in (None, "Z") for pid in holders), {p: process_state(p) for p in holders}
    chaos_target.wait_healthy(timeout=10)
    assert admin_stats(chaos_target)["api"]["busy"] > busy_before
    assert result.phase("tail", INGEST).error_rate == 0
