"""Per-phase request rates on an untouched target must match the baseline's (issue #14, item 7; bench/phase_edges.py).

The synthetic run below is what bench/phase_edges.py measures, made exact: the master's t=0 falls mid-second, the
users ramp up over the first second (the rate grows linearly to full strength), the load then runs at a constant
rate, a fault occupies [6, 12) with recovery [12, 18), and the run (and the load) stops at t=18, mid-second
(or the load a little before). The
requests go through the real Recorder with a fake clock, so the windows are what a run would record.

Before the fix the baseline read 0.905 of the true rate and recovery 0.960: fault +10.5%, recovery +6.1% "change"
on a target nothing touched (the bench measured +2..+30% on a busy machine).
"""
from __future__ import annotations

import math

import pytest

from chaos_events.observe.recorder import Recorder
from chaos_events.record import FaultEvent, FaultEventKind, Record
from chaos_events.scenario.model import Phase, SloMetric
from chaos_events.verdict import rates, stats
from chaos_events.verdict.figures import phase_figures
from chaos_events.verdict.phases import derive_phases
from tests.unit.test_slo import judge, make_plan, slo

RATE = 200.0          # requests per second at full strength
RAMP_S = 1.0          # linear ramp-up from 0 to RATE
FAULT_AT, FAULT_FOR, END = 6.0, 6.0, 18.0


def request_times(start_t: float, ramp_s: float, end_t: float, rate: float) -> list[float]:
    """Run times of the requests: cumulative count N(t) = rate*t^2/(2*ramp) in the ramp, then linear; request k
    goes out when N(t) = k + 0.5."""
    times, k = [], 0
    ramp_n = rate * ramp_s / 2.0
    while True:
        n = k + 0.5
        t = math.sqrt(2.0 * n * ramp_s / rate) if n < ramp_n else ramp_s + (n - ramp_n) / rate
        if start_t + t >= end_t:
            return times
        times.append(start_t + t)
        k += 1


def synthetic_run(start_wall: float, ramp_s: float = RAMP_S, ramp_recorded: bool = True,
                  load_stop_t: float = END) -> tuple[Record, list]:
    record = Record(run_id="r", scenario="edges", start_wall=start_wall)
    clock = {"wall": start_wall}
    recorder = Recorder(record, wall=lambda: clock["wall"])
    for t in request_times(0.0, ramp_s, load_stop_t, RATE):
        clock["wall"] = start_wall + t
        recorder.on_request("GET", "/", 2.0, failed=False)
    for t, kind in ((FAULT_AT, FaultEventKind.INJECTED), (FAULT_AT + FAULT_FOR, FaultEventKind.REVERTED)):
        record.add_event(FaultEvent(t, start_wall + t, kind, "f0#1", "pause", "sleeper"))
    record.end_t = END
    if ramp_recorded:
        record.meta["ramp_end_t"] = ramp_s  # what the wiring records at Locust's spawning_complete
    if load_stop_t < END:
        record.meta["load_stop_t"] = load_stop_t  # ... and at test_stopping, when the load stopped before the run's end
    plan = make_plan(faults=[(FAULT_AT, FAULT_FOR, "pause", "sleeper")], recovery_window_s=FAULT_FOR)
    return record, plan


@pytest.mark.parametrize("offset", [0.0, 0.1, 0.4, 0.5, 0.73, 0.99])
def test_an_untouched_target_has_the_same_rate_in_every_phase(offset):
    record, plan = synthetic_run(1_700_000_000.0 + offset)
    phases = derive_phases(record, plan)
    assert [(p.phase, p.start_t, p.end_t) for p in phases] == [
        (Phase.BASELINE, 0.0, 6.0), (Phase.FAULT, 6.0, 12.0), (Phase.RECOVERY, 12.0, 18.0)]
    figures = phase_figures(record, phases)
    for phase in ("baseline", "fault", "recovery"):
        assert figures[phase].stats.rps == pytest.approx(RATE, rel=2e-3), (offset, phase, figures[phase].stats)
    for phase in ("fault", "recovery"):
        assert abs(figures[phase].rps_change) < 2e-3, (offset, phase, figures[phase].rps_change)


def test_without_the_ramp_end_the_edges_are_still_exact_and_only_the_ramp_shows():
    # A record from before the wiring recorded spawning_complete: the partial seconds no longer bias the rate; the
    # ramp itself (half a second's requests missing over the 6 s baseline) is all that is left.
    record, plan = synthetic_run(1_700_000_000.4, ramp_recorded=False)
    phases = derive_phases(record, plan)
    baseline = stats.rps_over(record, phases, phases[:1], stats.EndpointFilter())
    assert baseline / RATE == pytest.approx((FAULT_AT - RAMP_S / 2) / FAULT_AT, rel=2e-3)
    for span in phases[1:]:
        assert stats.rps_over(record, phases, [span], stats.EndpointFilter()) == pytest.approx(RATE, rel=2e-3)


def test_a_phase_wholly_inside_a_long_ramp_is_rated_on_the_ramp():
    record, plan = synthetic_run(1_700_000_000.25, ramp_s=8.0)  # the fault starts at 6 s, before the ramp ends
    phases = derive_phases(record, plan)
    baseline = stats.rps_over(record, phases, phases[:1], stats.EndpointFilter())
    # requests in [0, 6) of a linear 8 s ramp: RATE * 6^2 / (2 * 8) over 6 s
    assert baseline == pytest.approx(RATE * 36 / 16 / 6, rel=1e-2)


def test_the_load_extent_is_clamped_to_the_run_and_the_ramp_ends_on_a_window_boundary():
    record, _plan = synthetic_run(1_700_000_000.6)
    counts = {s: a.count for s, a in stats.per_second(record, stats.EndpointFilter()).items()}
    assert record.t_of(min(counts)) == pytest.approx(-0.6) and record.t_of(max(counts)) + 1 == pytest.approx(18.4)
    assert rates.load_extent(record, counts) == pytest.approx((0.0, 18.0))
    assert rates.steady_from(record) == pytest.approx(1.4)   # ramp ends at 1.0, inside the window [0.4, 1.4)
    record.meta["ramp_end_t"] = 1.4                           # exactly on a boundary: that boundary
    assert rates.steady_from(record) == pytest.approx(1.4)
    assert rates.load_extent(record, {}) is None


@pytest.mark.parametrize("offset", [0.0, 0.3, 0.6, 0.9])
def test_load_that_stops_before_the_run_ends_is_not_spread_over_the_idle_end(offset):
    # Locust's test_stopping at 17.85, the run's end (test_stop) at 18.0: without the load's stop the recovery read
    # up to 2.5% low (0.15 s of idle in a 6 s phase).
    record, plan = synthetic_run(1_700_000_000.0 + offset, load_stop_t=17.85)
    phases = derive_phases(record, plan)
    assert phases[-1].end_t == END
    for span in phases:
        assert stats.rps_over(record, phases, [span], stats.EndpointFilter()) == pytest.approx(RATE, rel=2e-3), span
    del record.meta["load_stop_t"]
    assert stats.rps_over(record, phases, phases[-1:], stats.EndpointFilter()) < RATE * (1 - 0.015)


def test_throughput_drop_on_an_untouched_target_is_zero():
    record, plan = synthetic_run(1_700_000_000.4)
    result = judge(slo(SloMetric.THROUGHPUT_DROP, max=0.015, during="fault"), record, plan)
    assert result.value == pytest.approx(0.0, abs=2e-3), result.message


def test_the_recorder_keeps_the_last_request_time_for_the_load_stop():
    # The wiring marks the load's stop at test_stopping as min(now, the last request counted here): Locust's stop()
    # blocks the hub for tens of ms before it fires test_stopping, and no request goes out meanwhile.
    record, _plan = synthetic_run(1_700_000_000.4)
    clock = {"wall": 1_700_000_000.4 + 3.25}
    recorder = Recorder(Record("r", "x", start_wall=1_700_000_000.4), wall=lambda: clock["wall"])
    assert recorder.last_wall is None
    recorder.on_request("GET", "/", 1.0, failed=False)
    clock["wall"] += 0.5
    recorder.on_request("GET", "/", 1.0, failed=False)
    assert recorder.last_wall - recorder.record.start_wall == pytest.approx(3.75)
    recorder.merge_wire(Recorder(record).take_wire_delta())  # merged deltas (a master's) do not move it
    assert recorder.last_wall - recorder.record.start_wall == pytest.approx(3.75)
