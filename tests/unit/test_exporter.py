"""Exporter: every family of ARCHITECTURE section 5, built at scrape time from the record and the state, parsed back
with prometheus_client's own parser."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chaos_events.observe.exporter import DEFAULT_LATENCY_BUCKETS_S, HELP, Exporter, cumulative_buckets, latency_buckets
from chaos_events.observe.recorder import Recorder
from chaos_events.record import Record

FAMILIES = {
    # parsed family name -> type (the parser strips _total from counters and _info from info metrics)
    "locust_requests": "counter",
    "locust_request_duration_seconds": "histogram",
    "locust_users": "gauge",
    "locust_workers": "gauge",
    "chaos_fault_active": "gauge",
    "chaos_phase": "gauge",
    "chaos_fault_injections": "counter",
    "chaos_fault_reverts": "counter",
    "chaos_detection_seconds": "gauge",
    "chaos_recovery_seconds": "gauge",
    "chaos_slo_ok": "gauge",
    "chaos_ledger_writes": "counter",
    "kafka_consumergroup_lag": "gauge",
    "chaos_run_info": "gauge",
    "chaos_probe_healthy": "gauge",
    "chaos_probe_value": "gauge",
}


def _state(**overrides):
    state = {
        "phase": "fault",
        "active_faults": [("pause", "broker")],
        "planned_faults": [("latency", "api"), ("pause", "broker")],
        "users": 25,
        "workers": 2,
        "injections": 3,
        "reverts_ok": 2,
        "reverts_failed": 1,
        "detection_s": 4.5,
        "recovery_s": None,
        "slo_ok": {"errors-while-paused": True, "recovery": False, "alerts": None},
        "ledger": {"acknowledged": 120, "verified": 100, "lost": 20},
        "consumer_lag": {("events-store", "events"): 42},
        "probes": {"health": (False, 503), "lag": (True, 42), "alerts": (None, None)},
        "run_id": "abc123",
        "scenario": "broker-pause",
    }
    state.update(overrides)
    return state


def _recorded() -> tuple[Record, Recorder]:
    now = [1001.0]
    record = Record("abc123", "broker-pause", 1000.0)
    recorder = Recorder(record, wall=lambda: now[0])
    for ms, failed in [(3, False), (12, False), (250, False), (300, True), (1200, False), (70000, True)]:
        recorder.on_request("GET", "/health", ms, failed)
    now[0] = 1002.0
    recorder.on_request("POST", "/api/events", 40, False)
    return record, recorder


def _scrape(exporter: Exporter) -> dict:
    text = generate_latest(exporter.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(family, name=None) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples if name is None or s.name == name}


def test_every_family_is_exported_with_help_and_type():
    record, recorder = _recorded()
    exporter = Exporter(record, _state, registry=CollectorRegistry(), totals=recorder.totals)
    families = _scrape(exporter)
    assert {name: f.type for name, f in families.items()} == FAMILIES
    for name, family in families.items():
        assert family.documentation, name
    assert len(HELP) == len(FAMILIES)


def test_request_counters_and_histogram_match_the_record():
    record, recorder = _recorded()
    exporter = Exporter(record, _state, registry=CollectorRegistry(), slo_thresholds_s=(0.3, 2.0), totals=recorder.totals)
    families = _scrape(exporter)
    requests = _samples(families["locust_requests"])
    key = lambda outcome: ("locust_requests_total", (("method", "GET"), ("name", "/health"), ("outcome", outcome)))
    assert requests[key("success")] == 4 and requests[key("failure")] == 2

    hist = families["locust_request_duration_seconds"]
    buckets = {s.labels["le"]: s.value for s in hist.samples
               if s.name.endswith("_bucket") and s.labels["name"] == "/health"}
    # SLO thresholds 0.3 s and 2 s are bucket bounds; the counts are cumulative over Locust's ms buckets.
    assert buckets["0.005"] == 1 and buckets["0.025"] == 2 and buckets["0.25"] == 3
    assert buckets["0.3"] == 4 and buckets["2.0"] == 5 and buckets["60.0"] == 5 and buckets["+Inf"] == 6
    counts = {s.labels["name"]: s.value for s in hist.samples if s.name.endswith("_count")}
    sums = {s.labels["name"]: s.value for s in hist.samples if s.name.endswith("_sum")}
    assert counts == {"/health": 6, "/api/events": 1}
    assert abs(sums["/health"] - (3 + 12 + 250 + 300 + 1200 + 70000) / 1000) < 1e-9


def test_histogram_buckets_reach_the_client_timeout_and_include_slo_thresholds():
    buckets = latency_buckets(None, (0.3, 0.05, 120.0, 0, float("inf")))
    assert buckets[0] == 0.005 and 60.0 in buckets and 120.0 in buckets
    assert 0.3 in buckets and buckets.count(0.05) == 1
    assert list(buckets) == sorted(set(buckets))
    assert set(DEFAULT_LATENCY_BUCKETS_S) <= set(buckets)
    assert 0 not in buckets and float("inf") not in buckets


def test_cumulative_buckets_count_every_ms_bucket_at_or_below_each_bound():
    out, total_s = cumulative_buckets({5: 2, 6: 1, 100: 3, 110: 1}, (0.005, 0.1, 0.105))
    assert out == [("0.005", 2.0), ("0.1", 6.0), ("0.105", 6.0), ("+Inf", 7.0)]
    assert abs(total_s - (10 + 6 + 300 + 110) / 1000) < 1e-12


def test_fault_phase_and_verdict_families_follow_the_state():
    record, recorder = _recorded()
    exporter = Exporter(record, _state, registry=CollectorRegistry(), totals=recorder.totals)
    families = _scrape(exporter)
    assert _samples(families["chaos_fault_active"]) == {
        ("chaos_fault_active", (("fault", "latency"), ("target", "api"))): 0.0,
        ("chaos_fault_active", (("fault", "pause"), ("target", "broker"))): 1.0,
    }
    assert {s.labels["phase"]: s.value for s in families["chaos_phase"].samples} == {
        "baseline": 0, "fault": 1, "recovery": 0, "tail": 0}
    assert families["locust_users"].samples[0].value == 25
    assert families["locust_workers"].samples[0].value == 2
    assert families["chaos_fault_injections"].samples[0].value == 3
    assert {s.labels["result"]: s.value for s in families["chaos_fault_reverts"].samples} == {"ok": 2, "failed": 1}
    assert families["chaos_detection_seconds"].samples[0].value == 4.5
    assert families["chaos_recovery_seconds"].samples == []  # unknown: absent, not NaN
    assert {s.labels["slo"]: s.value for s in families["chaos_slo_ok"].samples} == {"errors-while-paused": 1, "recovery": 0}
    assert {s.labels["state"]: s.value for s in families["chaos_ledger_writes"].samples} == {
        "acknowledged": 120, "verified": 100, "lost": 20}
    assert _samples(families["kafka_consumergroup_lag"]) == {
        ("kafka_consumergroup_lag", (("consumergroup", "events-store"), ("topic", "events"))): 42}
    assert _samples(families["chaos_run_info"]) == {
        ("chaos_run_info", (("run_id", "abc123"), ("scenario", "broker-pause"))): 1.0}


def test_planned_faults_have_a_series_before_and_after_injection():
    record, recorder = _recorded()
    state = {"value": _state(active_faults=[], phase="baseline")}
    exporter = Exporter(record, lambda: state["value"], registry=CollectorRegistry(), totals=recorder.totals)
    before = _samples(_scrape(exporter)["chaos_fault_active"])
    assert set(before.values()) == {0.0} and len(before) == 2
    state["value"] = _state(active_faults=[], phase="tail")
    after = _samples(_scrape(exporter)["chaos_fault_active"])
    assert after == before


def test_an_empty_state_before_the_run_still_scrapes():
    record = Record("idle", "", 1000.0)
    exporter = Exporter(lambda: record, lambda: {}, registry=CollectorRegistry())
    families = _scrape(exporter)
    assert set(families) == set(FAMILIES)
    assert families["locust_requests"].samples == []
    assert all(s.value == 0 for s in families["chaos_phase"].samples)
    assert _samples(families["chaos_run_info"]) == {("chaos_run_info", (("run_id", "idle"), ("scenario", ""))): 1.0}


def test_without_running_totals_the_record_is_summed_and_a_swapped_record_is_followed():
    first, _ = _recorded()
    current = {"record": first}
    exporter = Exporter(lambda: current["record"], lambda: {}, registry=CollectorRegistry())
    requests = _samples(_scrape(exporter)["locust_requests"])
    assert sum(requests.values()) == 7
    current["record"] = Record("next", "", 2000.0)
    assert _samples(_scrape(exporter)["locust_requests"]) == {}


def test_close_unregisters_and_is_idempotent():
    registry = CollectorRegistry()
    record, recorder = _recorded()
    exporter = Exporter(record, _state, registry=registry, totals=recorder.totals)
    assert b"locust_users" in generate_latest(registry)
    exporter.close()
    exporter.close()
    assert generate_latest(registry) == b""
    # A second exporter on the same registry after close: no duplicate-registration error.
    Exporter(record, _state, registry=registry).close()


def test_probe_gauges_show_health_and_value_and_skip_unknown():
    record, recorder = _recorded()
    families = _scrape(Exporter(record, _state, registry=CollectorRegistry(), totals=recorder.totals))
    assert _samples(families["chaos_probe_healthy"]) == {
        ("chaos_probe_healthy", (("probe", "health"),)): 0.0,
        ("chaos_probe_healthy", (("probe", "lag"),)): 1.0,
    }
    assert _samples(families["chaos_probe_value"]) == {
        ("chaos_probe_value", (("probe", "health"),)): 503.0,
        ("chaos_probe_value", (("probe", "lag"),)): 42.0,
    }


def test_fast_text_has_exactly_the_samples_of_prometheus_client():
    # The hand-rendered request families must agree with prometheus_client's own rendering, sample for sample.
    record, recorder = _recorded()
    recorder.on_request("GET", 'odd "name"\\with\nnewline', 7, False)
    exporter = Exporter(record, _state, registry=CollectorRegistry(), slo_thresholds_s=(0.3,), totals=recorder.totals)

    def samples(text: str) -> dict:
        return {(f.name, s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}

    fast = samples(exporter.text().decode())
    reference = samples(generate_latest(exporter.registry).decode())
    assert fast == reference
    assert any(key[1] == "locust_request_duration_seconds_bucket" and ("le", "0.3") in key[2] for key in fast)


def test_served_metrics_negotiate_openmetrics(tmp_path):
    import urllib.request

    from tests.helpers import free_port

    record, recorder = _recorded()
    exporter = Exporter(record, _state, registry=CollectorRegistry(), totals=recorder.totals)
    port = free_port()
    exporter.serve("127.0.0.1", port)
    try:
        plain = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b'locust_requests_total{method="GET",name="/health",outcome="failure"} 2' in plain.read()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                         headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        om = urllib.request.urlopen(request, timeout=5)
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert om.read().rstrip().endswith(b"# EOF")
    finally:
        exporter.close()
