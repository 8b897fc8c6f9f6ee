"""Per-request bookkeeping: per-second counts and latency histograms per endpoint, plus running totals.

The plugin calls `on_request` for every request Locust reports, so it is the hot path: one clock read, a few dict
lookups, no allocation beyond a new second or a new endpoint. The same bucketing as Locust (`record.bucket_ms`) keeps
the master's totals equal to Locust's own, exactly.

Three roles, one class, no mode switch:
- local runner: requests go straight into `record.windows`;
- worker: `record.windows` is only a buffer; `take_wire_delta()` ships it and empties it, so a report's size grows with
  seconds x endpoints in the report interval, never with the number of requests;
- master: `merge_wire(rows)` folds workers' deltas into the record.
Running totals per endpoint (`totals()`) let the exporter's scrape cost O(endpoints), not O(seconds x endpoints).

Must not import locust, gevent or prometheus_client.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from chaos_events.record import EndpointWindow, Record, WindowKey, windows_from_wire, windows_to_wire

__all__ = ["Recorder"]


class Recorder:
    """Invariant: for every endpoint, `totals()[key]` equals the sum over every window ever recorded or merged here.

    Example:
        rec = Recorder(Record("r1", "demo", 1000.0), wall=lambda: 1003.2)
        rec.on_request("GET", "/health", 12.4, failed=False)
        rec.totals()[("GET", "/health")].count == 1
    """

    def __init__(self, record: Record, wall: Callable[[], float] = time.time):
        self.record = record
        self._wall = wall
        self._totals: dict[WindowKey, EndpointWindow] = {}
        # The per-second dict of the current second, cached: most requests land in the same second as the last one.
        self._second = -1
        self._per_second: dict[WindowKey, EndpointWindow] = {}
        # Wall time of the last request counted here (not merged): where a local run's load really stopped.
        self.last_wall: float | None = None

    # -- hot path ---------------------------------------------------------------------------------
    def on_request(self, request_type: str, name: str, response_time_ms: float | None, failed: bool) -> None:
        """Count one request. `response_time_ms` None (Locust's async requests) counts it without a latency."""
        now = self._wall()
        self.last_wall = now
        second = int(now)
        if second != self._second:
            self._select_second(second)
        key = (request_type, name)
        window = self._per_second.get(key)
        if window is None:
            window = self._per_second[key] = EndpointWindow()
        total = self._totals.get(key)
        if total is None:
            total = self._totals[key] = EndpointWindow()
        window.count += 1
        total.count += 1
        if failed:
            window.failures += 1
            total.failures += 1
        ms = response_time_ms
        if ms is None:
            return
        # Inlined record.bucket_ms (Locust's rounding): a function call here costs a noticeable share of the budget.
        if ms < 100:
            bucket = int(round(ms))
        elif ms < 1000:
            bucket = int(round(ms, -1))
        elif ms < 10000:
            bucket = int(round(ms, -2))
        else:
            bucket = int(round(ms, -3))
        hist = window.latency_ms
        hist[bucket] = hist.get(bucket, 0) + 1
        hist = total.latency_ms
        hist[bucket] = hist.get(bucket, 0) + 1

    def _select_second(self, second: int) -> None:
        windows = self.record.windows
        per_second = windows.get(second)
        if per_second is None:
            per_second = windows[second] = {}
        self._second = second
        self._per_second = per_second

    # -- distributed mode ---------------------------------------------------------------------------
    def take_wire_delta(self) -> list[list[Any]]:
        """Worker: everything recorded since the last call, in `record.windows_to_wire` form; then forget it."""
        rows = windows_to_wire(self.record.windows)
        self.record.windows.clear()
        self._second = -1
        self._per_second = {}
        return rows

    def merge_wire(self, rows: list[list[Any]]) -> None:
        """Master: fold one worker's delta into the record and the running totals."""
        delta = windows_from_wire(rows)
        self.record.merge_windows(delta)
        totals = self._totals
        for per_second in delta.values():
            for key, window in per_second.items():
                total = totals.get(key)
                if total is None:
                    total = totals[key] = EndpointWindow()
                total.merge(window)

    # -- readers ------------------------------------------------------------------------------------
    def totals(self) -> dict[WindowKey, EndpointWindow]:
        """Cumulative counts per endpoint since this recorder started (live objects: read, don't modify)."""
        return self._totals
