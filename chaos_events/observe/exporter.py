"""Prometheus /metrics for a run: request counts and latencies, fault state, verdict numbers, ledger counts.

A custom collector builds every metric family at scrape time from the record's running totals and a state dict the
plugin supplies, so there is no second copy of any number (ARCHITECTURE section 1) and the hot path never touches a
prometheus_client object. Names follow ARCHITECTURE section 5; each is defined once below, with its help text.

The only module that imports prometheus_client. Must not import locust or gevent.
"""
from __future__ import annotations

import math
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from chaos_events.record import EndpointWindow, Record, WindowKey

__all__ = ["Exporter", "DEFAULT_LATENCY_BUCKETS_S", "PHASES", "latency_buckets", "cumulative_buckets"]

# From 5 ms up to Locust's default client timeout (60 s); SLO thresholds are merged in at construction.
DEFAULT_LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
# The classic text format that text() renders and every Prometheus 2.x parses.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PHASES: tuple[str, ...] = ("baseline", "fault", "recovery", "tail")
LEDGER_STATES: tuple[str, ...] = ("acknowledged", "verified", "lost")
REVERT_RESULTS: tuple[str, ...] = ("ok", "failed")

# name -> help text. Defined once; the collector looks names up here so a typo fails loudly in tests.
HELP: dict[str, str] = {
    "locust_requests_total": "Requests sent by the load generator, by method, name and outcome (success|failure).",
    "locust_request_duration_seconds": "Response time of requests, bucketed as Locust rounds them.",
    "locust_users": "Simulated users currently running.",
    "locust_workers": "Locust workers connected to the master (0 on a local runner).",
    "chaos_fault_active": "1 while a planned fault is injected on its target, else 0.",
    "chaos_phase": "1 for the run's current phase (baseline, fault, recovery, tail), 0 for the others.",
    "chaos_fault_injections_total": "Faults injected so far.",
    "chaos_fault_reverts_total": "Fault reverts so far, by result (ok|failed).",
    "chaos_detection_seconds": "Time from a fault's start until a probe saw it; absent until known.",
    "chaos_recovery_seconds": "Time from a fault's end until the system was back in its baseline band; absent until known.",
    "chaos_slo_ok": "1 if the SLO holds, 0 if broken; absent while it cannot be judged.",
    "chaos_ledger_writes_total": "Acknowledged writes, and how many of them were verified or lost at read-back.",
    "kafka_consumergroup_lag": "Messages the consumer group has not yet committed on the topic (kafka_exporter's name).",
    "chaos_probe_healthy": "1 if the probe's latest sample saw the target healthy, 0 if not; absent when it cannot tell.",
    "chaos_probe_value": "The probe's latest number: HTTP status for health probes, total lag for lag probes.",
    "chaos_run_info": "Identity of the run: run id and scenario name.",
}


def latency_buckets(latency_buckets_s: Iterable[float] | None = None, slo_thresholds_s: Iterable[float] = ()) -> tuple[float, ...]:
    """The histogram's upper bounds in seconds: the base set plus every positive finite SLO threshold, sorted, unique."""
    base = DEFAULT_LATENCY_BUCKETS_S if latency_buckets_s is None else tuple(latency_buckets_s)
    merged = {float(b) for b in (*base, *slo_thresholds_s) if b > 0 and math.isfinite(b)}
    return tuple(sorted(merged))


def cumulative_buckets(latency_ms: dict[int, int], buckets_s: tuple[float, ...]) -> tuple[list[tuple[str, float]], float]:
    """Convert a ms-bucketed histogram ({bucket_ms: count}) to Prometheus cumulative buckets and a sum in seconds.

    A request lands in every `le` whose value in ms is >= its bucket key; the sum uses the bucket keys (Locust's rounding).
    """
    items = sorted(latency_ms.items())
    out: list[tuple[str, float]] = []
    running = 0
    i = 0
    for le in buckets_s:
        limit_ms = round(le * 1000.0, 6)
        while i < len(items) and items[i][0] <= limit_ms:
            running += items[i][1]
            i += 1
        out.append((floatToGoString(le), float(running)))
    total = sum(n for _, n in items)
    out.append(("+Inf", float(total)))
    return out, sum(b * n for b, n in items) / 1000.0


def _escape(value: str) -> str:
    """Label value escaping of the text format: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Collector:
    """Adapter that prometheus_client calls on every scrape; all work is in Exporter.collect."""

    def __init__(self, exporter: "Exporter", with_requests: bool = True):
        self._exporter = exporter
        self._with_requests = with_requests

    def collect(self) -> Iterator[Metric]:
        return self._exporter.collect(with_requests=self._with_requests)

    def describe(self) -> list[Metric]:
        # Families are built per scrape; returning nothing keeps registration free of a scrape.
        return []


class Exporter:
    """Invariant: every family in HELP appears in every scrape (with or without samples), and no number is stored here.

    Example:
        exp = Exporter(record, state=lambda: {"phase": "baseline", "users": 10}, registry=CollectorRegistry(),
                       slo_thresholds_s=(0.3,), totals=recorder.totals)
        server, thread = exp.serve(port=9646)
        ...
        exp.close()

    `record` is a Record or a callable returning the current one. `totals` returns the running per-endpoint totals
    (Recorder.totals); without it, every scrape sums the record's windows: correct, but O(seconds x endpoints).
    """

    def __init__(
        self,
        record: Record | Callable[[], Record],
        state: Callable[[], dict[str, Any]],
        registry: CollectorRegistry | None = None,
        latency_buckets_s: Iterable[float] | None = None,
        slo_thresholds_s: Iterable[float] = (),
        totals: Callable[[], dict[WindowKey, EndpointWindow]] | None = None,
    ):
        # A callable lets the owner swap in a fresh Record per run (web UI restarts) without a new exporter.
        self._record: Callable[[], Record] = record if callable(record) else (lambda: record)
        self._state = state
        self._totals = totals if totals is not None else (lambda: self._record().totals())
        # A registry of our own by default, so building a second Exporter (a new test run in the web UI) never
        # collides with the first one's series in prometheus_client's global registry.
        self.registry = registry if registry is not None else CollectorRegistry()
        self.buckets_s = latency_buckets(latency_buckets_s, slo_thresholds_s)
        self._collector = _Collector(self)
        self.registry.register(self._collector)
        # The small families for the fast text path; the request families are rendered by hand (see text()).
        self._rest_registry = CollectorRegistry()
        self._rest_registry.register(_Collector(self, with_requests=False))
        self._labels: dict[WindowKey, str] = {}
        self._le_texts = [floatToGoString(le) for le in self.buckets_s]
        self._server: Any = None
        self._thread: Any = None

    # -- scrape -------------------------------------------------------------------------------------
    def collect(self, with_requests: bool = True) -> Iterator[Metric]:
        """Build every metric family from the current totals and state."""
        state = self._state() or {}
        record = self._record()
        if with_requests:
            yield from self._request_families()
        yield self._gauge("locust_users", value=state.get("users", 0))
        yield self._gauge("locust_workers", value=state.get("workers", 0))
        yield from self._fault_families(state)
        yield from self._verdict_families(state)
        yield self._ledger_family(state)
        yield self._lag_family(state)
        yield from self._probe_families(state)
        info = InfoMetricFamily("chaos_run", HELP["chaos_run_info"], labels=("run_id", "scenario"))
        info.add_metric((str(state.get("run_id", record.run_id)), str(state.get("scenario", record.scenario))), {})
        yield info

    def _request_families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("locust_requests_total", HELP["locust_requests_total"], labels=("method", "name", "outcome"))
        duration = HistogramMetricFamily(
            "locust_request_duration_seconds", HELP["locust_request_duration_seconds"], labels=("method", "name")
        )
        # list(): a scrape runs in the server thread while requests keep arriving.
        for (method, name), total in sorted(list(self._totals().items())):
            requests.add_metric((method, name, "success"), total.count - total.failures)
            requests.add_metric((method, name, "failure"), total.failures)
            buckets, sum_s = cumulative_buckets(dict(total.latency_ms), self.buckets_s)
            duration.add_metric((method, name), buckets, sum_s)
        yield requests
        yield duration

    def _fault_families(self, state: dict[str, Any]) -> Iterator[Metric]:
        active_family = GaugeMetricFamily("chaos_fault_active", HELP["chaos_fault_active"], labels=("fault", "target"))
        active = {(str(f), str(t)) for f, t in state.get("active_faults", ())}
        # Every planned fault has a series from the start, so Grafana sees the 0 -> 1 -> 0 edges.
        series = dict.fromkeys((str(f), str(t)) for f, t in state.get("planned_faults", ()))
        series.update(dict.fromkeys(sorted(active)))
        for fault, target in series:
            active_family.add_metric((fault, target), 1.0 if (fault, target) in active else 0.0)
        yield active_family

        phase_family = GaugeMetricFamily("chaos_phase", HELP["chaos_phase"], labels=("phase",))
        current = state.get("phase")
        for phase in PHASES:
            phase_family.add_metric((phase,), 1.0 if phase == current else 0.0)
        yield phase_family

        yield CounterMetricFamily("chaos_fault_injections_total", HELP["chaos_fault_injections_total"], value=state.get("injections", 0))
        reverts = CounterMetricFamily("chaos_fault_reverts_total", HELP["chaos_fault_reverts_total"], labels=("result",))
        reverts.add_metric(("ok",), state.get("reverts_ok", 0))
        reverts.add_metric(("failed",), state.get("reverts_failed", 0))
        yield reverts

    def _verdict_families(self, state: dict[str, Any]) -> Iterator[Metric]:
        for name, key in (("chaos_detection_seconds", "detection_s"), ("chaos_recovery_seconds", "recovery_s")):
            family = GaugeMetricFamily(name, HELP[name])
            value = state.get(key)
            if value is not None:  # unknown: no sample at all, rather than NaN
                family.add_metric((), float(value))
            yield family
        slo_family = GaugeMetricFamily("chaos_slo_ok", HELP["chaos_slo_ok"], labels=("slo",))
        for slo, ok in sorted(state.get("slo_ok", {}).items()):
            if ok is not None:
                slo_family.add_metric((str(slo),), 1.0 if ok else 0.0)
        yield slo_family

    def _ledger_family(self, state: dict[str, Any]) -> Metric:
        family = CounterMetricFamily("chaos_ledger_writes_total", HELP["chaos_ledger_writes_total"], labels=("state",))
        counts = state.get("ledger", {})
        for ledger_state in LEDGER_STATES:
            family.add_metric((ledger_state,), counts.get(ledger_state, 0))
        return family

    def _lag_family(self, state: dict[str, Any]) -> Metric:
        family = GaugeMetricFamily("kafka_consumergroup_lag", HELP["kafka_consumergroup_lag"], labels=("consumergroup", "topic"))
        for (group, topic), lag in sorted(state.get("consumer_lag", {}).items()):
            if lag is not None:
                family.add_metric((str(group), str(topic)), float(lag))
        return family

    def _probe_families(self, state: dict[str, Any]) -> Iterator[Metric]:
        healthy = GaugeMetricFamily("chaos_probe_healthy", HELP["chaos_probe_healthy"], labels=("probe",))
        value = GaugeMetricFamily("chaos_probe_value", HELP["chaos_probe_value"], labels=("probe",))
        for probe, (is_healthy, number) in sorted(state.get("probes", {}).items()):
            if is_healthy is not None:
                healthy.add_metric((str(probe),), 1.0 if is_healthy else 0.0)
            if number is not None:
                value.add_metric((str(probe),), float(number))
        yield healthy
        yield value

    @staticmethod
    def _gauge(name: str, value: float) -> Metric:
        return GaugeMetricFamily(name, HELP[name], value=float(value))

    # -- fast text exposition ----------------------------------------------------------------------
    def text(self) -> bytes:
        """The Prometheus text format (0.0.4) of every family; same samples as generate_latest(self.registry).

        The request families are most of the samples (about 19 per endpoint), and prometheus_client spends ~10 µs on
        each one's labels; rendered here with each endpoint's label text cached, a scrape of 200 endpoints costs a few
        milliseconds of the hub instead of tens.
        """
        return self._request_text().encode("utf-8") + generate_latest(self._rest_registry)

    def _request_text(self) -> str:
        requests = [f"# HELP locust_requests_total {HELP['locust_requests_total']}", "# TYPE locust_requests_total counter"]
        durations = [f"# HELP locust_request_duration_seconds {HELP['locust_request_duration_seconds']}",
                     "# TYPE locust_request_duration_seconds histogram"]
        le_texts = self._le_texts
        for key, total in sorted(list(self._totals().items())):
            labels = self._labels.get(key)
            if labels is None:
                labels = self._labels[key] = f'method="{_escape(key[0])}",name="{_escape(key[1])}"'
            requests.append(f'locust_requests_total{{{labels},outcome="success"}} {total.count - total.failures}')
            requests.append(f'locust_requests_total{{{labels},outcome="failure"}} {total.failures}')
            buckets, sum_s = cumulative_buckets(dict(total.latency_ms), self.buckets_s)
            for le, (_, count) in zip(le_texts, buckets):
                durations.append(f'locust_request_duration_seconds_bucket{{{labels},le="{le}"}} {count:.0f}')
            durations.append(f'locust_request_duration_seconds_bucket{{{labels},le="+Inf"}} {buckets[-1][1]:.0f}')
            durations.append(f"locust_request_duration_seconds_count{{{labels}}} {buckets[-1][1]:.0f}")
            durations.append(f"locust_request_duration_seconds_sum{{{labels}}} {floatToGoString(sum_s)}")
        return "\n".join(requests) + "\n" + "\n".join(durations) + "\n"

    # -- HTTP ---------------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict, start_response: Callable) -> list[bytes]:
        """/metrics: the fast text format, or OpenMetrics when the scraper asks for it."""
        if "application/openmetrics-text" in environ.get("HTTP_ACCEPT", ""):
            body, content_type = openmetrics_latest(self.registry), OPENMETRICS_CONTENT_TYPE
        else:
            body, content_type = self.text(), TEXT_CONTENT_TYPE
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def serve(self, host: str = "127.0.0.1", port: int = 9646) -> tuple[Any, Any]:
        """Start /metrics on a daemon thread (a greenlet once gevent has patched threading)."""
        server = make_server(host, port, self.wsgi_app, ThreadingWSGIServer, handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, name="chaos-exporter", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        return server, thread

    def close(self) -> None:
        """Stop the HTTP server (if serving) and leave the registry as it was. Safe to call twice."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        try:
            self.registry.unregister(self._collector)
        except KeyError:
            pass
