"""The scenario's `slos:` list for the loader: each SLO's name (unique), metric, `optional` and the metric's own Params.

Part of the scenario loader (a Walker mixin, see walker.py); each SLO metric family validates its parameters
(chaos_events.verdict.metrics). Pure: pydantic and the verdict's metric registry; must not import gevent, locust,
docker or prometheus_client, nor loader.py.
"""
from __future__ import annotations

from typing import Any, Mapping

from chaos_events.scenario.fields import Flag, Text
from chaos_events.scenario.model import ProbeSpec, SloMetric, SloSpec
from chaos_events.scenario.walker import Walker
from chaos_events.verdict.metrics import metric_def
from chaos_events.verdict.slo import evaluate as _register_metrics  # noqa: F401  (imports every metric family)

SLO_KEYS = ("name", "metric", "optional")
_METRICS = ", ".join(m.value for m in SloMetric)


class SloEntries(Walker):
    """The loader's checks of the `slos:` list."""

    def slos(self, value: Any, probes: Mapping[str, ProbeSpec], ledger: Any) -> list[SloSpec]:
        items = [] if value is None else self.sequence(
            value, "slos", "a list of SLOs, like [{name: recovery, metric: recovery_time, max: 30s}]") or []
        first_line: dict[str, int | None] = {}
        out = []
        for index, item in enumerate(items):
            spec = self.slo(index, item, probes, first_line, ledger)
            if spec is not None:
                out.append(spec)
        return out

    def slo(self, index: int, item: Any, probes: Mapping[str, ProbeSpec], first_line: dict, ledger: Any) -> SloSpec | None:
        path = ("slos", index)
        entries = self.mapping(item, path, f"slos[{index}]", "a mapping like {name: recovery, metric: recovery_time, max: 30s}")
        if entries is None:
            return None
        name = self.value(Text, entries["name"], (*path, "name"), f"slos[{index}]", "name") if "name" in entries else None
        field = f"slos[{index}] ({name})" if name else f"slos[{index}]"
        if "name" not in entries:
            self.problem(path, field, "missing key 'name'")
        elif name is not None:
            if name in first_line:
                self.problem((*path, "name"), field, f"duplicate SLO name {name!r} (first at line {first_line[name]})")
                name = None
            else:
                first_line[name] = self.doc.line((*path, "name"))
        metric = self.slo_metric(entries, path, field)
        optional = self.value(Flag, entries.get("optional", False), (*path, "optional"), field, "optional")
        if metric is None:
            return None
        params = self.build(metric_def(metric).Params, {k: v for k, v in entries.items() if k not in SLO_KEYS}, path,
                            field, extra_keys=SLO_KEYS, key_context=f" for metric {metric.value}")
        if params is not None:
            self.references(params, path, field, probes)
            if getattr(params, "check", None) in ("pipeline", "all") and ledger is not None and ledger.read_back is None:
                self.problem((*path, "check"), field, f"'check': {params.check} needs the pipeline read-back: add "
                                                      "`ledger: {read_back: {url: ...}}` at the top of the scenario "
                                                      "(where acknowledged writes are read back), or use check: kafka")
        if None in (name, params, optional):
            return None
        return SloSpec(name, metric, params, line=self.doc.line(path), optional=optional)

    def slo_metric(self, entries: dict, path: tuple, field: str) -> SloMetric | None:
        text = self.text_key(entries, path, field, "metric", f"missing key 'metric'; expected one of: {_METRICS}")
        if text is None:
            return None
        try:
            return SloMetric(text)
        except ValueError:
            self.problem((*path, "metric"), field, f"unknown metric {text!r}; expected one of: {_METRICS}")
            return None
