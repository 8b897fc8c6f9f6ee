"""Recorder: per-second windows and running totals equal a hand count and Locust's own stats; wire deltas round-trip
and their size does not grow with the number of requests."""
from __future__ import annotations

import json
import random
import subprocess
import sys

from chaos_events.observe.recorder import Recorder
from chaos_events.record import EndpointWindow, Record, bucket_ms, windows_from_wire, windows_to_wire


class FakeWall:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _requests(n: int, seed: int = 7) -> list[tuple[float, str, str, float, bool]]:
    """n requests as (wall, method, name, ms, failed), spread over 5 seconds and 3 endpoints."""
    rng = random.Random(seed)
    endpoints = [("GET", "/health"), ("POST", "/api/events"), ("GET", "/api/events/[id]")]
    out = []
    for i in range(n):
        method, name = endpoints[i % 3]
        ms = rng.choice([0.4, 3.2, 49.5, 99.6, 101.0, 149.0, 999.4, 1234.5, 9999.0, 12500.0]) * rng.choice([1, 1.01])
        out.append((1000.0 + 5.0 * i / n, method, name, ms, rng.random() < 0.2))
    return out


def _hand_count(requests) -> dict[int, dict[tuple[str, str], EndpointWindow]]:
    windows: dict[int, dict[tuple[str, str], EndpointWindow]] = {}
    for wall, method, name, ms, failed in requests:
        window = windows.setdefault(int(wall), {}).setdefault((method, name), EndpointWindow())
        window.count += 1
        window.failures += int(failed)
        b = bucket_ms(ms)
        window.latency_ms[b] = window.latency_ms.get(b, 0) + 1
    return windows


def _feed(recorder: Recorder, wall: FakeWall, requests) -> None:
    for t, method, name, ms, failed in requests:
        wall.now = t
        recorder.on_request(method, name, ms, failed)


def _sum_windows(windows) -> dict[tuple[str, str], EndpointWindow]:
    out: dict[tuple[str, str], EndpointWindow] = {}
    for per_second in windows.values():
        for key, w in per_second.items():
            out.setdefault(key, EndpointWindow()).merge(w)
    return out


def test_local_recorder_equals_a_hand_count():
    requests = _requests(3000)
    wall = FakeWall()
    record = Record("r1", "demo", 1000.0)
    recorder = Recorder(record, wall=wall)
    _feed(recorder, wall, requests)

    expected = _hand_count(requests)
    assert record.windows == expected
    assert recorder.totals() == _sum_windows(expected)
    assert sum(w.count for w in recorder.totals().values()) == 3000
    assert sum(w.failures for w in recorder.totals().values()) == sum(1 for r in requests if r[4])


LOCUST_STATS = """
import json, sys
from locust.stats import RequestStats
stats = RequestStats()
for t, method, name, ms, failed in json.load(sys.stdin):
    # What Locust's own request listener does with a request event.
    stats.log_request(method, name, ms, 0)
    if failed:
        stats.log_error(method, name, "boom")
out = {f"{m} {n}": [e.num_requests, e.num_failures, {str(k): v for k, v in e.response_times.items()}]
       for (n, m), e in stats.entries.items()}
out["total"] = [stats.total.num_requests, stats.total.num_failures, {}]
print(json.dumps(out))
"""


def test_totals_equal_locusts_own_stats_exactly():
    requests = _requests(2000, seed=3)
    wall = FakeWall()
    recorder = Recorder(Record("r1", "demo", 1000.0), wall=wall)
    _feed(recorder, wall, requests)
    # Locust in a child process: importing it here would monkey-patch the whole test session.
    proc = subprocess.run([sys.executable, "-c", LOCUST_STATS], input=json.dumps(requests), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    locust = json.loads(proc.stdout)

    assert len(recorder.totals()) == len(locust) - 1
    for (method, name), total in recorder.totals().items():
        count, failures, response_times = locust[f"{method} {name}"]
        assert (total.count, total.failures) == (count, failures)
        assert total.latency_ms == {int(k): v for k, v in response_times.items()}
    assert sum(t.count for t in recorder.totals().values()) == locust["total"][0]
    assert sum(t.failures for t in recorder.totals().values()) == locust["total"][1]


def test_worker_deltas_merged_on_the_master_equal_a_local_run():
    requests = _requests(4000, seed=11)
    local_wall, local_record = FakeWall(), Record("r", "demo", 1000.0)
    local = Recorder(local_record, wall=local_wall)
    _feed(local, local_wall, requests)

    master_record = Record("r", "demo", 1000.0)
    master = Recorder(master_record)
    workers = [(Recorder(Record("worker", "", 0.0), wall=FakeWall()),) for _ in range(2)]
    # Two workers share the requests; each reports every 500 requests, as report_to_master would.
    for i, req in enumerate(requests):
        recorder = workers[i % 2][0]
        _feed(recorder, recorder._wall, [req])
        if i % 500 == 499:
            for (w,) in workers:
                master.merge_wire(json.loads(json.dumps(w.take_wire_delta())))  # through a real serialisation
    for (w,) in workers:
        master.merge_wire(w.take_wire_delta())

    assert master_record.windows == local_record.windows
    assert master.totals() == local.totals()
    for (w,) in workers:
        assert w.take_wire_delta() == []  # nothing left once taken
        assert w.record.windows == {}


def test_wire_delta_size_does_not_grow_with_the_number_of_requests():
    def delta_for(n: int) -> list:
        wall = FakeWall()
        recorder = Recorder(Record("worker", "", 0.0), wall=wall)
        # Same seconds, endpoints and latency buckets; only the number of requests differs.
        for i in range(n):
            wall.now = 2000.0 + (i % 3)
            recorder.on_request("GET", f"/e{i % 4}", [5.0, 50.0, 500.0][i % 3 if n else 0] + (i % 2) * 0.2, i % 5 == 0)
        return recorder.take_wire_delta()

    small, large = delta_for(300), delta_for(30_000)
    assert len(small) == len(large) == 12  # 3 seconds x 4 endpoints
    assert sum(len(row[5]) for row in small) == sum(len(row[5]) for row in large)
    # Only the counts' digits may differ: a bounded handful of bytes per row, not per request.
    size_small, size_large = len(json.dumps(small)), len(json.dumps(large))
    assert size_large - size_small <= 12 * 4 * 3
    assert sum(row[3] for row in large) == 30_000


def test_wire_round_trip_preserves_windows():
    wall = FakeWall()
    recorder = Recorder(Record("worker", "", 0.0), wall=wall)
    _feed(recorder, wall, _requests(500, seed=5))
    before = {s: {k: EndpointWindow(w.count, w.failures, dict(w.latency_ms)) for k, w in per.items()}
              for s, per in recorder.record.windows.items()}
    rows = recorder.take_wire_delta()
    assert windows_from_wire(rows) == before
    assert windows_to_wire(windows_from_wire(rows)) == rows


def test_request_without_a_response_time_counts_but_has_no_latency():
    wall = FakeWall(1001.5)
    recorder = Recorder(Record("r", "demo", 1000.0), wall=wall)
    recorder.on_request("GET", "/async", None, failed=True)
    recorder.on_request("GET", "/async", 12.0, failed=False)
    total = recorder.totals()[("GET", "/async")]
    assert (total.count, total.failures, total.latency_ms) == (2, 1, {12: 1})


def test_requests_after_a_delta_was_taken_go_into_the_next_delta():
    wall = FakeWall(1000.2)
    recorder = Recorder(Record("worker", "", 0.0), wall=wall)
    recorder.on_request("GET", "/a", 1.0, False)
    first = recorder.take_wire_delta()
    recorder.on_request("GET", "/a", 2.0, False)  # same second as before the take
    second = recorder.take_wire_delta()
    assert first == [[1000, "GET", "/a", 1, 0, {"1": 1}]]
    assert second == [[1000, "GET", "/a", 1, 0, {"2": 1}]]
