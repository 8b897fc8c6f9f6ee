"""Every PromQL expression of the game-day kit, extracted from the Grafana dashboard and the alert rules.

The static kit tests (tests/unit/test_dashboards.py, tests/integration/test_alert_rules.py) validate them, and an
end-to-end test can run each `PromQLExpr.promql` against a real Prometheus that scrapes a real run:

    from tests.promql_exprs import extract_promql_exprs, render_local_prometheus_config
    for e in extract_promql_exprs():
        query(prometheus_url, e.promql)        # e.source says where it came from when it fails

Grafana variables ($endpoint, $__rate_interval, ...) are replaced by concrete values in `promql`; `raw` keeps the
text as written. Imports only the standard library and PyYAML: no prometheus_client, no locust.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS_DIR = ROOT / "dashboards"
DASHBOARD = DASHBOARDS_DIR / "grafana" / "dashboards" / "gameday.json"
DATASOURCES = DASHBOARDS_DIR / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = DASHBOARDS_DIR / "grafana" / "provisioning" / "dashboards" / "provider.yml"
PROMETHEUS_CONFIG = DASHBOARDS_DIR / "prometheus" / "prometheus.yml"
LOCAL_PROMETHEUS_CONFIG = DASHBOARDS_DIR / "prometheus" / "prometheus-local.yml"
ALERTS = DASHBOARDS_DIR / "prometheus" / "alerts.yml"
ALERTS_TEST = DASHBOARDS_DIR / "prometheus" / "alerts_test.yml"

SCRAPE_JOB = "chaos-events"

# The harness's exported metric names (ARCHITECTURE section 5, plus the probe gauges), and `up`, which Prometheus
# itself adds per scrape target. A dashboard or rule that uses any other name shows nothing.
EXPORTED_METRICS = frozenset({
    "locust_requests_total",
    "locust_request_duration_seconds_bucket",
    "locust_request_duration_seconds_sum",
    "locust_request_duration_seconds_count",
    "locust_users",
    "locust_workers",
    "chaos_fault_active",
    "chaos_phase",
    "chaos_fault_injections_total",
    "chaos_fault_reverts_total",
    "chaos_detection_seconds",
    "chaos_recovery_seconds",
    "chaos_slo_ok",
    "chaos_ledger_writes_total",
    "kafka_consumergroup_lag",
    "chaos_run_info",
    "chaos_probe_healthy",
    "chaos_probe_value",
})
KNOWN_METRICS = EXPORTED_METRICS | {"up"}

# Values for Grafana's variables when an expression is run outside Grafana. 15 s suits a 1-2 s scrape interval:
# a rate needs at least two samples in its window.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "endpoint": ".*",
    "__rate_interval": "15s",
    "__interval": "2s",
    "__range": "15m",
}

_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S)


@dataclass(frozen=True)
class PromQLExpr:
    """One expression of the kit. `promql` is runnable; `raw` is as written; `source` names file and place.

    Example: PromQLExpr(source="gameday.json panel 8 'Throughput per endpoint' target A", kind="panel",
    raw='sum by (method, name) (rate(locust_requests_total{name=~"$endpoint"}[$__rate_interval]))',
    promql='sum by (method, name) (rate(locust_requests_total{name=~".*"}[15s]))')
    """

    source: str
    kind: str  # "panel", "annotation", "variable" (dashboard) or "alert", "record" (rules file)
    raw: str
    promql: str


def expand_grafana_variables(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace $name, ${name} and [[name]] by their values; an unknown variable is an error, not left in place."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def value(match: re.Match) -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise ValueError(f"unknown Grafana variable ${name} in {expr!r}; expected one of: {', '.join(sorted(values))}")
        return values[name]

    return _GRAFANA_VARIABLE.sub(value, expr)


def _walk_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _walk_panels(panel.get("panels") or [])  # panels inside a (collapsed) row


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def dashboard_exprs(path: Path = DASHBOARD, variables: Mapping[str, str] | None = None) -> list[PromQLExpr]:
    """Panel targets, annotation queries and template-variable queries of one Grafana dashboard."""
    dashboard = load_dashboard(path)
    name = Path(path).name
    found: list[PromQLExpr] = []

    def add(source: str, kind: str, raw: str) -> None:
        found.append(PromQLExpr(source, kind, raw, expand_grafana_variables(raw, variables)))

    for panel in _walk_panels(dashboard.get("panels", [])):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                add(f"{name} panel {panel.get('id')} {panel.get('title')!r} target {target.get('refId')}", "panel",
                    target["expr"])
    for annotation in dashboard.get("annotations", {}).get("list", []):
        expr = annotation.get("expr") or (annotation.get("target") or {}).get("expr")
        if expr:
            add(f"{name} annotation {annotation.get('name')!r}", "annotation", expr)
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else (query or "")
        match = _LABEL_VALUES.match(text)
        if match and match.group("selector"):
            # label_values(SELECTOR, LABEL) is Grafana's, not PromQL; its selector is PromQL.
            add(f"{name} variable ${variable.get('name')}", "variable", match.group("selector"))
        elif text and variable.get("type") == "query" and not match:
            add(f"{name} variable ${variable.get('name')}", "variable", text)
    return found


def rule_exprs(path: Path = ALERTS) -> list[PromQLExpr]:
    """The `expr` of every alerting and recording rule in one Prometheus rules file."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    found = []
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            kind = "alert" if "alert" in rule else "record"
            expr = str(rule["expr"]).strip()
            found.append(PromQLExpr(f"{Path(path).name} {kind} {rule.get(kind)}", kind, expr, expr))
    return found


def extract_promql_exprs(dashboards: tuple[Path, ...] = (DASHBOARD,), rules: tuple[Path, ...] = (ALERTS,),
                         variables: Mapping[str, str] | None = None) -> list[PromQLExpr]:
    """Every PromQL expression of the kit: dashboard panels, annotations and variables, then the rules."""
    exprs: list[PromQLExpr] = []
    for path in dashboards:
        exprs.extend(dashboard_exprs(path, variables))
    for path in rules:
        exprs.extend(rule_exprs(path))
    return exprs


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
             "offset", "inf", "nan"}


def metric_names(promql: str) -> set[str]:
    """Metric names a PromQL expression selects (a small lexer: enough for the kit's expressions, not all PromQL)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', promql)  # string literals
    names: set[str] = set()
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\boffset\s+\S+", " ", text)
    for match in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, is_call = match.group(1), match.group(2)
        if is_call or word.lower() in _KEYWORDS:
            continue  # a function or aggregation, or a keyword
        names.add(word)
    return names


def as_recording_rules(exprs: list[PromQLExpr]) -> dict[str, Any]:
    """A rules file with one recording rule per expression, so `promtool check rules` parses each one."""
    return {"groups": [{"name": "kit-exprs", "rules": [
        {"record": f"kit:expr_{i}", "expr": e.promql} for i, e in enumerate(exprs)]}]}


def provisioned_datasource_uid(path: Path = DATASOURCES) -> str:
    """The uid of the single Prometheus datasource Grafana is provisioned with."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    uids = [d["uid"] for d in doc.get("datasources", []) if d.get("type") == "prometheus"]
    if len(uids) != 1:
        raise ValueError(f"{path}: expected exactly one prometheus datasource, found {len(uids)}")
    return uids[0]


def render_local_prometheus_config(exporter_target: str, alerts_file: Path = ALERTS) -> str:
    """prometheus-local.yml with its placeholders filled: scrape `exporter_target` (host:port), load `alerts_file`."""
    if not re.fullmatch(r"127\.0\.0\.1:\d+|localhost:\d+|\[::1\]:\d+", exporter_target):
        raise ValueError(f"exporter_target must be a loopback host:port, got {exporter_target!r}")
    values = {"${EXPORTER_TARGET}": exporter_target, "${ALERTS_FILE}": str(Path(alerts_file).resolve())}
    lines = []
    for line in LOCAL_PROMETHEUS_CONFIG.read_text(encoding="utf-8").splitlines():
        if not line.lstrip().startswith("#"):  # the comments describe the placeholders; leave them readable
            for placeholder, value in values.items():
                line = line.replace(placeholder, value)
            if "${" in line:
                raise ValueError(f"{LOCAL_PROMETHEUS_CONFIG}: unknown placeholder in {line.strip()!r}; "
                                 f"expected one of: {', '.join(values)}")
        lines.append(line)
    return "\n".join(lines) + "\n"
