"""Static checks of the Grafana kit: the game-day dashboard, its provisioning, and every PromQL expression in it.

PromQL is parsed for real by `promtool check rules` on a generated file with one recording rule per expression;
metric names are checked against the harness's exported names (tests/promql_exprs.py).
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.helpers import require_prometheus
from tests.promql_exprs import (
    DASHBOARD,
    DASHBOARD_PROVIDER,
    DATASOURCES,
    EXPORTED_METRICS,
    KNOWN_METRICS,
    PromQLExpr,
    _walk_panels,
    as_recording_rules,
    dashboard_exprs,
    expand_grafana_variables,
    extract_promql_exprs,
    load_dashboard,
    metric_names,
    provisioned_datasource_uid,
)


@pytest.fixture(scope="module")
def dashboard():
    return load_dashboard()


def _panels(dashboard):
    return list(_walk_panels(dashboard["panels"]))


def _datasource_refs(node, where="dashboard"):
    """Every `datasource` object in the dashboard, with a path saying where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield where, value
            else:
                yield from _datasource_refs(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _datasource_refs(value, f"{where}[{i}]")


def _run_promtool_check(tmp_path, exprs: list[PromQLExpr]) -> subprocess.CompletedProcess:
    rules = tmp_path / "kit-exprs.rules.yml"
    rules.write_text(yaml.safe_dump(as_recording_rules(exprs), sort_keys=False))
    return subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=30)


def test_every_expression_parses_as_promql(tmp_path):
    require_prometheus()
    exprs = extract_promql_exprs()
    result = _run_promtool_check(tmp_path, exprs)
    listing = "\n".join(f"kit:expr_{i}  {e.source}: {e.promql}" for i, e in enumerate(exprs))
    assert result.returncode == 0, f"promtool rejected an expression:\n{result.stdout}{result.stderr}\n{listing}"
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_the_promtool_check_catches_a_broken_expression(tmp_path):
    # Guards the check above: if promtool stopped parsing recording rules, every expression would "pass".
    require_prometheus()
    broken = PromQLExpr("test", "panel", "sum(rate(locust_requests_total[1m])", "sum(rate(locust_requests_total[1m])")
    result = _run_promtool_check(tmp_path, [broken])
    assert result.returncode != 0
    assert '"kit:expr_0": could not parse expression' in result.stdout + result.stderr


def test_extraction_finds_panels_annotations_variables_and_rules():
    exprs = extract_promql_exprs()
    kinds = {e.kind for e in exprs}
    assert kinds == {"panel", "annotation", "variable", "alert"}
    assert any(e.kind == "annotation" and e.raw == "chaos_fault_active == 1" for e in exprs)
    # Grafana variables are expanded in `promql` and kept in `raw`.
    for e in exprs:
        assert "$" not in e.promql, e
    assert any("$endpoint" in e.raw and 'name=~".*"' in e.promql for e in exprs)


def test_every_metric_used_is_exported_by_the_harness():
    unknown = {}
    for e in extract_promql_exprs():
        names = metric_names(e.promql)
        assert names, f"{e.source}: no metric name found in {e.promql!r}"
        if names - KNOWN_METRICS:
            unknown[e.source] = sorted(names - KNOWN_METRICS)
    assert not unknown, f"metric names the harness does not export: {unknown}"


def test_the_dashboard_shows_every_exported_metric():
    used = set().union(*(metric_names(e.promql) for e in dashboard_exprs()))
    # _sum and _count add nothing the buckets do not show on this dashboard.
    expected = EXPORTED_METRICS - {"locust_request_duration_seconds_sum", "locust_request_duration_seconds_count"}
    assert expected - used == set()


@pytest.mark.parametrize("promql, expected", [
    ('sum by (method, name) (rate(locust_requests_total{name=~"a|b", outcome="failure"}[1m]))', {"locust_requests_total"}),
    ("histogram_quantile(0.95, sum by (le) (rate(locust_request_duration_seconds_bucket[5m])))",
     {"locust_request_duration_seconds_bucket"}),
    ("(sum(rate(x_total[15s])) or vector(0)) == 0 and on () sum(locust_users) > 0", {"x_total", "locust_users"}),
    ("up{job=`chaos-events`} == 0 offset 5m", {"up"}),
    ("a / on (x) group_left (y) b * 1e3", {"a", "b"}),
    ("sum without (instance) (kafka_consumergroup_lag) > Inf", {"kafka_consumergroup_lag"}),
])
def test_metric_names_lexer(promql, expected):
    assert metric_names(promql) == expected


def test_grafana_variables_are_expanded_and_unknown_ones_rejected():
    assert expand_grafana_variables('x{name=~"$endpoint"}[$__rate_interval]') == 'x{name=~".*"}[15s]'
    assert expand_grafana_variables('x{name=~"${endpoint:regex}"}', {"endpoint": "/a"}) == 'x{name=~"/a"}'
    assert expand_grafana_variables("x[[[__interval]]]") == "x[2s]"
    with pytest.raises(ValueError, match=r"unknown Grafana variable \$nope"):
        expand_grafana_variables("x{a=\"$nope\"}")


def test_no_duplicate_panel_ids_and_unique_ref_ids(dashboard):
    ids = [p.get("id") for p in _panels(dashboard)]
    assert None not in ids
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    for panel in _panels(dashboard):
        refs = [t.get("refId") for t in panel.get("targets") or []]
        assert len(refs) == len(set(refs)) and None not in refs, f"panel {panel['id']}: refIds {refs}"


def test_panels_fit_the_24_column_grid(dashboard):
    for panel in _panels(dashboard):
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, f"panel {panel['id']}: {grid}"


DS_INPUT = "DS_PROMETHEUS"
DS_REF = {"type": "prometheus", "uid": "${%s}" % DS_INPUT}
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def _datasource_problems(dashboard: dict, resolve) -> list[str]:
    """What is wrong with every datasource reference once `resolve(uid)` says which datasource a uid names."""
    problems = []
    refs = list(_datasource_refs(dashboard))
    if not refs:
        problems.append("the dashboard names no datasource")
    for where, ref in refs:
        if not isinstance(ref, dict) or ref.get("type") != "prometheus":
            problems.append(f"{where}: {ref!r} is not a prometheus datasource reference")
            continue
        resolved = resolve(ref.get("uid"))
        if resolved is None:
            problems.append(f"{where}: uid {ref.get('uid')!r} names no datasource")
    # Every query-carrying panel and target names one explicitly: a default datasource may be another one.
    for panel in _panels(dashboard):
        if panel.get("targets"):
            if "datasource" not in panel:
                problems.append(f"panel {panel['id']} has no datasource")
            for target in panel["targets"]:
                if "datasource" not in target:
                    problems.append(f"panel {panel['id']} target {target.get('refId')} has no datasource")
    return problems


def _provisioned_resolver(dashboard: dict, provisioned: set[str]):
    """How Grafana resolves a uid of a provisioned dashboard (no __inputs processing there): a literal uid must be a
    provisioned datasource; `${NAME}` is the dashboard's datasource variable NAME, whose current value must be one."""
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}

    def resolve(uid):
        match = _PLACEHOLDER.fullmatch(uid or "")
        if match is None:
            return uid if uid in provisioned else None
        variable = variables.get(match.group(1))
        if not variable or variable.get("type") != "datasource" or variable.get("query") != "prometheus":
            return None
        value = (variable.get("current") or {}).get("value")
        return value if value in provisioned else None

    return resolve


def _imported(dashboard: dict, chosen_uid: str) -> dict:
    """What Grafana's import does with the dashboard's __inputs: each `${INPUT}` in any string becomes the datasource
    the user picked. Inputs that are not datasource inputs of the prometheus plugin are not offered."""
    inputs = [i["name"] for i in dashboard.get("__inputs", [])
              if i.get("type") == "datasource" and i.get("pluginId") == "prometheus"]
    text = json.dumps(dashboard)
    for name in inputs:
        text = text.replace("${%s}" % name, chosen_uid)
    return json.loads(text)


def test_provisioned_dashboard_resolves_to_the_provisioned_datasource(dashboard):
    uid = provisioned_datasource_uid()
    assert all(ref == DS_REF for _, ref in _datasource_refs(dashboard)), "every reference goes through ${DS_PROMETHEUS}"
    assert _datasource_problems(dashboard, _provisioned_resolver(dashboard, {uid})) == []
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == DS_INPUT]
    assert variable["current"]["value"] == uid and variable["hide"] == 0  # shown: another Prometheus can be picked


def test_imported_dashboard_asks_for_a_prometheus_and_uses_it(dashboard):
    (ds_input,) = dashboard["__inputs"]
    assert ds_input == {**ds_input, "name": DS_INPUT, "type": "datasource", "pluginId": "prometheus"}
    assert {"type": "datasource", "id": "prometheus"}.items() <= next(
        r for r in dashboard["__requires"] if r["type"] == "datasource").items()
    imported = _imported(dashboard, "their-prometheus")
    assert _datasource_problems(imported, lambda uid: uid if uid == "their-prometheus" else None) == []
    assert "${DS_PROMETHEUS}" not in json.dumps(imported)
    # The import needs no provisioned datasource at all: nothing still names chaos-prometheus.
    assert all(ref["uid"] == "their-prometheus" for _, ref in _datasource_refs(imported))


def test_the_datasource_checks_catch_a_broken_reference(dashboard):
    # Guards the two tests above: a literal uid of another Grafana, an unknown variable, a variable of the wrong
    # kind and a panel without a datasource are each reported.
    uid = provisioned_datasource_uid()
    broken = json.loads(json.dumps(dashboard))
    panels = [p for p in _panels(broken) if p.get("targets")]
    panels[0]["datasource"] = {"type": "prometheus", "uid": "uid-of-someone-elses-grafana"}
    panels[1]["datasource"] = {"type": "prometheus", "uid": "${NO_SUCH_VARIABLE}"}
    del panels[2]["datasource"]
    problems = _datasource_problems(broken, _provisioned_resolver(broken, {uid}))
    assert len(problems) == 3, problems
    wrong_kind = json.loads(json.dumps(dashboard))
    (variable,) = [v for v in wrong_kind["templating"]["list"] if v["name"] == DS_INPUT]
    variable["type"] = "custom"
    assert _datasource_problems(wrong_kind, _provisioned_resolver(wrong_kind, {uid}))
    no_inputs = {k: v for k, v in dashboard.items() if k != "__inputs"}
    assert _datasource_problems(_imported(no_inputs, "their-prometheus"),
                                lambda u: u if u == "their-prometheus" else None)


def test_fault_annotation_comes_from_chaos_fault_active(dashboard):
    (annotation,) = dashboard["annotations"]["list"]
    assert annotation["expr"] == "chaos_fault_active == 1"
    assert annotation["enable"] is True
    assert "{{fault}}" in annotation["titleFormat"] and "{{target}}" in annotation["titleFormat"]
    assert set(annotation["tagKeys"].split(",")) == {"fault", "target"}


def test_endpoint_variable_filters_the_per_endpoint_panels(dashboard):
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "endpoint"]
    assert variable["type"] == "query" and variable["includeAll"] and variable["multi"]
    assert variable["allValue"] == ".*"
    assert "label_values(locust_requests_total, name)" in variable["definition"]
    titles = {p["title"]: p for p in _panels(dashboard)}
    for title in ("Throughput per endpoint", "Error rate per endpoint", "Latency p50 / p95 / p99 per endpoint"):
        for target in titles[title]["targets"]:
            assert 'name=~"$endpoint"' in target["expr"], f"{title} {target['refId']}"


def test_required_views_are_there(dashboard):
    by_metric: dict[str, set[str]] = {}
    for panel in _panels(dashboard):
        for target in panel.get("targets") or []:
            for name in metric_names(expand_grafana_variables(target["expr"])):
                by_metric.setdefault(name, set()).add(panel["type"])
    latency = [t["expr"] for p in _panels(dashboard) for t in p.get("targets") or []
               if "histogram_quantile" in t["expr"]]
    quantiles = sorted(float(re.match(r"histogram_quantile\(([\d.]+)", e).group(1)) for e in latency)
    assert quantiles == [0.5, 0.95, 0.99]
    assert "timeseries" in by_metric["locust_requests_total"]
    assert "timeseries" in by_metric["kafka_consumergroup_lag"]
    assert {"stat", "state-timeline"} <= by_metric["chaos_phase"]
    assert "stat" in by_metric["chaos_slo_ok"]
    assert "stat" in by_metric["chaos_probe_healthy"]


def test_dashboard_identity(dashboard):
    assert dashboard["uid"] == "chaos-events-gameday"
    assert dashboard["schemaVersion"] >= 36  # Grafana 9.x/10+ panel schema (timeseries, state-timeline)
    assert "id" not in dashboard or dashboard["id"] is None  # a provisioned dashboard must not pin a db id


def test_datasource_provisioning_points_at_the_compose_prometheus():
    doc = yaml.safe_load(DATASOURCES.read_text())
    assert doc["apiVersion"] == 1
    (source,) = doc["datasources"]
    assert source["uid"] == "chaos-prometheus" and source["type"] == "prometheus"
    # Compose uses host networking, so Prometheus is on loopback, at the port compose gives it; Grafana expands
    # ${VAR} in provisioning files from its environment, which compose sets for exactly this.
    assert source["url"] == "http://127.0.0.1:${CHAOS_PROMETHEUS_PORT}"
    compose = yaml.safe_load((DASHBOARD.parents[3] / "docker-compose.locust.yml").read_text())
    assert compose["services"]["grafana"]["environment"]["CHAOS_PROMETHEUS_PORT"] == "${CHAOS_PROMETHEUS_PORT:-9090}"
    assert source["access"] == "proxy"


def test_dashboard_provider_loads_the_mounted_folder():
    doc = yaml.safe_load(DASHBOARD_PROVIDER.read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((DASHBOARD.parents[3] / "docker-compose.locust.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    target = provider["options"]["path"]
    assert any(m.startswith("./dashboards/grafana/dashboards:" + target) for m in mounts), (target, mounts)


def test_the_exporter_defines_every_metric_the_kit_uses():
    # The kit's names are the contract (ARCHITECTURE section 5 plus the probe gauges); the exporter defines each
    # family once in HELP. A name missing there means an empty panel and an alert that can never fire.
    from chaos_events.observe.exporter import HELP

    histogram_suffix = re.compile(r"_(bucket|sum|count)$")
    defined = set(HELP)
    missing = sorted({name for name in EXPORTED_METRICS
                      if name not in defined and histogram_suffix.sub("", name) not in defined})
    assert not missing, f"metrics the dashboard and alerts use but chaos_events/observe/exporter.py does not define: {missing}"
