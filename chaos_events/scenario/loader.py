"""A scenario file becomes a typed, validated Plan; every problem names file, line and field, all at once.

Pure, but for reading the file: standard library, PyYAML (through document.py) and pydantic. Each concept validates
itself with its own model (target kinds: targets.py, probe kinds: probe_kinds.py, faults: each fault type's
`Params`, SLOs: each metric's `Params`); this module walks the document, hands each part to its model, places every
error at its line, and checks what crosses parts: a fault's target exists and suits it, an SLO names declared
probes and targets, hosts are allowed, two faults do not fight over one target. Whether targets exist on this
machine is the pre-run check's job (preflight.py), not this one's.

Example:
    plan = load_plan("scenarios/service-broker-pause.yml")
    plan.faults[0].params            # the pause fault's own Params model, already built
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from chaos_events.errors import PlanError, Problem
from chaos_events.faults import fault_type, known_fault_types
from chaos_events.scenario.document import Document, read_document
from pydantic import Field

from chaos_events.scenario.fields import AnyText, Flag, ScenarioModel, Seconds, Text, WholeNumber, markers_of, shown
from chaos_events.scenario.fields import adapter  # TypeAdapters built once
from chaos_events.scenario.model import (
    FaultSpec, Plan, ProbeKind, ProbeSpec, Repeat, Settings, SloMetric, SloSpec, Target, TargetKind,
)
from chaos_events.scenario.overlaps import overlap_problems
from chaos_events.scenario.probe_kinds import PROBE_MODELS
from chaos_events.scenario.run_rules import HALT_KINDS, HaltCondition, LedgerConfig, OnHalt, SteadyState
from chaos_events.scenario.problems import translate
from chaos_events.scenario.safety import host_allowed, split_allowed
from chaos_events.scenario.targets import SCALAR_KINDS, TARGET_MODELS, target_hosts
from chaos_events.verdict.metrics import RefersTo, metric_def
from chaos_events.verdict.slo import evaluate as _register_metrics  # noqa: F401  (imports every metric family)

TOP_KEYS = ("name", "description", "targets", "probes", "faults", "slos", "settings", "steady_state", "halt_when",
            "on_halt", "ledger")
FAULT_KEYS = ("at", "for", "fault", "target", "repeat", "params", "steady_state")
SLO_KEYS = ("name", "metric", "optional")
MAX_REPEAT_TIMES = 1000
_TARGET_KINDS = ", ".join(k.value for k in TargetKind)
_PROBE_KINDS = ", ".join(k.value for k in ProbeKind)
_METRICS = ", ".join(m.value for m in SloMetric)
_ABSENT = object()   # a section the scenario does not have (None means: it has one, with problems)
_AT_FOR = {"at": "when the fault starts, e.g. 30s", "for": "how long it lasts, e.g. 20s"}


def load_plan(path: str | os.PathLike, extra_allowed: tuple[str, ...] | str = (),
              environ: Mapping[str, str] | None = None) -> Plan:
    """Read and validate a scenario file. Raises PlanError listing every problem."""
    source = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise PlanError([Problem(source, None, "", "scenario file not found")]) from None
    except IsADirectoryError:
        raise PlanError([Problem(source, None, "", "is a directory; expected a scenario file (YAML)")]) from None
    except UnicodeDecodeError as exc:
        raise PlanError([Problem(source, None, "", f"is not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    except (OSError, ValueError) as exc:
        raise PlanError([Problem(source, None, "", f"cannot read the scenario file: {getattr(exc, 'strerror', None) or exc}")]) from None
    return parse_plan(text, source, extra_allowed, environ=environ)


def parse_plan(text: str, source: str, extra_allowed: tuple[str, ...] | str = (),
               environ: Mapping[str, str] | None = None) -> Plan:
    """Validate scenario text; `source` names it in messages. `environ` defaults to os.environ."""
    doc = read_document(text, source, os.environ if environ is None else environ)
    loader = _Loader(doc, split_allowed(extra_allowed))
    plan = loader.plan()
    problems = sorted(doc.problems, key=lambda p: p.line or 0)
    if problems or plan is None:
        raise PlanError(problems or [Problem(source, None, "", "invalid scenario")])
    return plan


class RepeatModel(ScenarioModel):
    """`repeat: {every: 60s, times: 3}`: the same fault `times` times in all, one every `every`."""

    every_s: Seconds = Field(alias="every", gt=0, description="time between the starts of two occurrences")
    times: WholeNumber = Field(ge=1, le=MAX_REPEAT_TIMES, description="how many occurrences in all")


class _Loader:
    """One validation pass over a Document. Problems go to the document; every check carries on."""

    def __init__(self, doc: Document, extra_allowed: tuple[str, ...]):
        self.doc = doc
        self.extra_allowed = extra_allowed
        self.declared_targets: set[str] = set()
        self.declared_probes: set[str] = set()
        self.failed = False

    # -- helpers -----------------------------------------------------------------------------------
    def problem(self, path: tuple, field: str, message: str, at_key: bool = False) -> None:
        self.failed = True
        line = self.doc.key_line(path) if at_key else self.doc.line(path)
        self.doc.problem(line, field, message)

    def build(self, model: type[BaseModel], value: Any, path: tuple, field: str, noun: str = "key",
              extra_keys: tuple[str, ...] = (), key_context: str = "", scalar_label: str = "",
              origins: Mapping[str, tuple] | None = None) -> Any:
        """`model` validated from `value`; None after placing every error (those already reported are skipped)."""
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            for issue in translate(exc, model, noun, extra_keys, key_context, given=value):
                head = issue.loc[0] if issue.loc else None
                where = (*origins[head], *issue.loc[1:]) if origins and head in origins else (*path, *issue.loc)
                if self.doc.was_reported(where) or (not issue.loc and self.doc.reported_below(path)):
                    continue
                message = f"{scalar_label!r}: {issue.message}" if scalar_label and not issue.loc else issue.message
                self.problem(where, field, message, issue.at_key)
            return None

    def value(self, kind: Any, value: Any, path: tuple, field: str, key: str) -> Any:
        """One value of an Annotated field type (Seconds, Text, ...), or None after placing the error."""
        try:
            return adapter(kind).validate_python(value)
        except ValidationError as exc:
            issue = translate(exc, None, given=value)[0]
            self.problem(path, field, f"{key!r}: {issue.message}")
            return None

    def mapping(self, value: Any, path: tuple, field: str, expected: str) -> dict | None:
        if isinstance(value, dict):
            return value
        if not self.doc.was_reported(path):
            self.problem(path, field, f"expected {expected}; got {shown(value)}")
        return None

    def host_ok(self, path: tuple, field: str, key: str, host: str, settings: Settings) -> bool:
        allowed = tuple(settings.allowed_hosts) + self.extra_allowed
        if host_allowed(host, allowed):
            return True
        self.problem(path, field, f"{key!r}: host {host!r} is not allowed; allowed hosts: {', '.join(allowed)} "
                                  f"(add it to settings.allowed_hosts or to --chaos-allow)")
        return False

    # -- the plan ----------------------------------------------------------------------------------
    def plan(self) -> Plan | None:
        root = self.doc.value
        if root is None:
            if not self.doc.problems:
                self.doc.problem(None, "", f"scenario is empty; expected a mapping with keys: {', '.join(TOP_KEYS)}")
            return None
        top = self.mapping(root, (), "", f"a mapping at the top level with keys: {', '.join(TOP_KEYS)}")
        if top is None:
            return None
        for key in top:
            if key not in TOP_KEYS:
                self.problem((key,), "", f"unknown key {key!r}; expected one of: {', '.join(sorted(TOP_KEYS))}", at_key=True)
        name = self.value(Text, top["name"], ("name",), "", "name") if "name" in top else None
        if "name" not in top and not self.doc.was_reported(("name",)):
            self.problem((), "", "missing key 'name'")
        description = self.value(AnyText, top.get("description", ""), ("description",), "", "description")
        settings = self.settings(top.get("settings"))
        targets = self.targets(top.get("targets"), settings or Settings())
        probes = self.probes(top.get("probes"))
        faults = self.faults(top.get("faults"), targets)
        rules = self.run_rules(top, probes)
        if rules["steady_state"] is _ABSENT:
            for spec in faults:
                if spec.steady_state:
                    self.problem(("faults", spec.index, "steady_state"), f"faults[{spec.index}] ({spec.type})",
                                 "'steady_state': needs a `steady_state:` section at the top of the scenario "
                                 "(what the steady state is: probes, max_error_rate, max_p95)")
        slos = self.slos(top.get("slos"), probes, rules["ledger"])
        if self.failed or self.doc.problems or name is None or settings is None or None in rules.values():
            return None
        if rules["steady_state"] is _ABSENT:
            rules["steady_state"] = None
        return Plan(name=name, source=self.doc.source, targets=targets, probes=probes, faults=tuple(faults),
                    slos=tuple(slos), settings=settings, description=description or "", extra_allowed=self.extra_allowed,
                    **rules)

    # -- how the run is held: steady state, stop conditions, the ledger's read-back -----------------
    def run_rules(self, top: dict, probes: Mapping[str, ProbeSpec]) -> dict[str, Any]:
        """steady_state, halts, on_halt and ledger for the Plan; a value is None after a problem."""
        rules: dict[str, Any] = {"steady_state": _ABSENT, "ledger": LedgerConfig()}
        if top.get("steady_state") is not None:
            rules["steady_state"] = self.part(SteadyState, top["steady_state"], "steady_state",
                                              "{probes: [health], max_error_rate: 1%, window: 10s}")
            if rules["steady_state"] is not None:
                self.probe_refs(rules["steady_state"].probes, ("steady_state", "probes"), "steady_state", "probes", probes)
        if top.get("ledger") is not None:
            rules["ledger"] = self.part(LedgerConfig, top["ledger"], "ledger", "{read_back: {url: ...}}")
        rules["halts"] = self.halts(top.get("halt_when"), probes)
        rules["on_halt"] = self.value(OnHalt, top.get("on_halt", "stop_load"), ("on_halt",), "", "on_halt")
        return rules

    def part(self, model: type[BaseModel], value: Any, key: str, example: str) -> Any:
        """A top-level section built by its model; None after a problem."""
        values = self.mapping(value, (key,), key, f"a mapping like {example}")
        return None if values is None else self.build(model, values, (key,), key)

    def probe_refs(self, names: tuple[str, ...], path: tuple, field: str, key: str, probes: Mapping[str, ProbeSpec],
                   kind: ProbeKind | None = None) -> None:
        for name in names:
            marker = RefersTo("probe", kinds=(kind,) if kind else ())
            message = _reference_problem(marker, key, name, self.declared_probes, self.declared_targets, probes)
            if message:
                self.problem(path, field, message)

    def halts(self, value: Any, probes: Mapping[str, ProbeSpec]) -> tuple[HaltCondition, ...] | None:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem(("halt_when",), "halt_when", "expected a list of stop conditions, like "
                                                      f"[{{error_rate: {{max: 50%, for: 10s}}}}]; got {shown(value)}")
            return None
        out, ok = [], True
        for index, item in enumerate(value):
            path, field = ("halt_when", index), f"halt_when[{index}]"
            chosen = self.kinds_of(item, path, field, "stop condition", ", ".join(HALT_KINDS))
            if chosen is None:
                ok = False
                continue
            kind, spec = chosen
            params = self.build(HALT_KINDS[kind], spec, (*path, kind), f"{field} ({kind})")
            if params is None:
                ok = False
                continue
            if kind == "probe_failing":
                self.probe_refs((params.probe,), (*path, kind, "probe"), f"{field} ({kind})", "probe", probes)
            if kind == "alert_firing" and params.probe:
                self.probe_refs((params.probe,), (*path, kind, "probe"), f"{field} ({kind})", "probe", probes,
                                ProbeKind.PROMETHEUS_ALERTS)
            out.append(HaltCondition(index, kind, params, line=self.doc.line(path)))
        return tuple(out) if ok else None

    def settings(self, value: Any) -> Settings | None:
        if value is None:
            return Settings()
        values = self.mapping(value, ("settings",), "settings", "a mapping")
        return None if values is None else self.build(Settings, values, ("settings",), "settings")

    def kinds_of(self, value: Any, path: tuple, field: str, what: str, kinds: str) -> tuple[str, Any] | None:
        """A mapping with exactly one `what` kind, like {process: {...}} -> ("process", its value)."""
        entries = self.mapping(value, path, field, f"a mapping with one {what} kind: {kinds}")
        if entries is None:
            return None
        if len(entries) != 1:
            if not self.doc.reported_below(path):
                self.problem(path, field, f"expected exactly one {what} kind: {kinds}; got: {', '.join(entries) or 'none'}")
            return None
        kind, spec = next(iter(entries.items()))
        if kind not in kinds.split(", "):
            self.problem((*path, kind), field, f"unknown {what} kind {kind!r}; expected one of: {kinds}", at_key=True)
            return None
        return kind, spec

    # -- targets and probes ------------------------------------------------------------------------
    def targets(self, value: Any, settings: Settings) -> dict[str, Target]:
        if value is None:
            return {}
        entries = self.mapping(value, ("targets",), "targets", "a mapping of target names to targets, like "
                                                               "{broker: {process: {pidfile: .run/broker.pid}}}") or {}
        self.declared_targets = set(entries)
        out: dict[str, Target] = {}
        for name, entry in entries.items():
            path = ("targets", name)
            chosen = self.kinds_of(entry, path, f"targets.{name}", "target", _TARGET_KINDS)
            if chosen is None:
                continue
            kind = TargetKind(chosen[0])
            field = f"targets.{name} ({kind.value})"
            spec = self.build(TARGET_MODELS[kind], chosen[1], (*path, kind.value), field,
                              scalar_label=kind.value if kind in SCALAR_KINDS else "")
            if spec is None:
                continue
            if all(self.host_ok((*path, kind.value), field, key, host, settings) for key, host in target_hosts(kind, spec)):
                where = (*path, kind.value)
                key_lines = {key: self.doc.line((*where, key)) for key in (chosen[1] if isinstance(chosen[1], dict) else {})}
                out[name] = Target(name, kind, spec, line=self.doc.key_line(path), key_lines=key_lines)
        return out

    def probes(self, value: Any) -> dict[str, ProbeSpec]:
        if value is None:
            return {}
        entries = self.mapping(value, ("probes",), "probes", "a mapping of probe names to probes, like "
                                                             "{health: {http: {url: ..., every: 1s}}}") or {}
        self.declared_probes = set(entries)
        out: dict[str, ProbeSpec] = {}
        for name, entry in entries.items():
            path = ("probes", name)
            chosen = self.kinds_of(entry, path, f"probes.{name}", "probe", _PROBE_KINDS)
            if chosen is None:
                continue
            kind = ProbeKind(chosen[0])
            params = self.build(PROBE_MODELS[kind], chosen[1], (*path, kind.value), f"probes.{name} ({kind.value})")
            if params is not None:
                out[name] = ProbeSpec(name, kind, params, line=self.doc.key_line(path))
        return out

    # -- faults ------------------------------------------------------------------------------------
    def faults(self, value: Any, targets: Mapping[str, Target]) -> list[FaultSpec]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(("faults",), "faults", "expected a list of faults, like [{at: 30s, for: 20s, fault: pause, "
                                                f"target: broker}}]; got {shown(value)}")
            return []
        out = [spec for index, item in enumerate(value) if (spec := self.fault(index, item, targets)) is not None]
        for path_index, field, message in overlap_problems(out, targets):
            self.problem(("faults", path_index), field, message)
        return out

    def fault(self, index: int, item: Any, targets: Mapping[str, Target]) -> FaultSpec | None:
        path = ("faults", index)
        entries = self.mapping(item, path, f"faults[{index}]", "a mapping like {at: 30s, for: 20s, fault: pause, target: broker}")
        if entries is None:
            return None
        cls, field = self.fault_class(entries, path, index)
        times = {key: self.fault_time(entries, path, field, key) for key in ("at", "for")}
        repeat = self.repeat(entries.get("repeat"), (*path, "repeat"), field, times["for"])
        target = self.fault_target(entries, path, field, targets, cls)
        steady = self.value(Flag, entries.get("steady_state", False), (*path, "steady_state"), field, "steady_state")
        params = self.fault_params(entries, path, field, cls)
        if cls is not None and params is not None and target is not None:
            for message in cls.check_plan(params, target):
                self.problem(path, field, message)
        if None in (cls, params, target, times["at"], times["for"], steady) or repeat is False:
            return None
        return FaultSpec(index=index, type=cls.type_name, target=target.name, at_s=times["at"], for_s=times["for"],
                         params=params, repeat=repeat or None, line=self.doc.line(path), steady_state=steady)

    def fault_class(self, entries: dict, path: tuple, index: int) -> tuple[Any, str]:
        known = ", ".join(known_fault_types())
        if "fault" not in entries:
            self.problem(path, f"faults[{index}]", f"missing key 'fault'; expected one of: {known}")
            return None, f"faults[{index}]"
        name = self.value(Text, entries["fault"], (*path, "fault"), f"faults[{index}]", "fault")
        field = f"faults[{index}] ({name})" if name else f"faults[{index}]"
        if name is None:
            return None, field
        if name not in known_fault_types():
            self.problem((*path, "fault"), field, f"unknown fault {name!r}; expected one of: {known}")
            return None, field
        return fault_type(name), field

    def fault_time(self, entries: dict, path: tuple, field: str, key: str) -> float | None:
        if key not in entries:
            if not self.doc.was_reported((*path, key)):
                self.problem(path, field, f"missing key {key!r} ({_AT_FOR[key]})")
            return None
        seconds = self.value(Seconds, entries[key], (*path, key), field, key)
        if seconds is not None and key == "for" and seconds <= 0:
            self.problem((*path, key), field, f"'for': must be more than zero; got {shown(entries[key])}")
            return None
        return seconds

    def repeat(self, value: Any, path: tuple, field: str, for_s: float | None) -> Repeat | None | bool:
        """None when absent; False after a problem."""
        if value is None:
            return None
        entries = self.mapping(value, path, field, "a mapping with every and times, like {every: 60s, times: 3}")
        if entries is None:
            return False
        built = self.build(RepeatModel, entries, path, field)
        if built is None:
            return False
        if for_s is not None and built.times > 1 and built.every_s < for_s:
            self.problem((*path, "every"), field, f"'repeat': every ({built.every_s:g}s) must be at least 'for' "
                                                  f"({for_s:g}s), or the occurrences overlap")
            return False
        return Repeat(every_s=built.every_s, times=built.times)

    def fault_target(self, entries: dict, path: tuple, field: str, targets: Mapping[str, Target], cls: Any) -> Target | None:
        declared = ", ".join(sorted(self.declared_targets)) or "(none)"
        if "target" not in entries:
            self.problem(path, field, f"missing key 'target'; declared targets: {declared}")
            return None
        name = self.value(Text, entries["target"], (*path, "target"), field, "target")
        if name is None:
            return None
        target = targets.get(name)
        if target is None:
            if name not in self.declared_targets:  # a declared but invalid target is reported where it is declared
                self.problem((*path, "target"), field, f"unknown target {name!r}; declared targets: {declared}")
            return None
        if cls is not None and cls.target_kinds and target.kind not in cls.target_kinds:
            allowed = ", ".join(sorted(k.value for k in cls.target_kinds))
            self.problem((*path, "target"), field, f"target {name!r} is a {target.kind.value} target; "
                                                   f"{cls.type_name} needs one of: {allowed}")
            return None
        return target

    def fault_params(self, entries: dict, path: tuple, field: str, cls: Any) -> Any:
        """The fault's Params, from keys written inline and under `params:` (the same key in both is an error)."""
        values = {key: value for key, value in entries.items() if key not in FAULT_KEYS}
        origins = {key: (*path, key) for key in values}
        nested = entries.get("params")
        if nested is not None:
            nested = self.mapping(nested, (*path, "params"), field, "a mapping of the fault's parameters")
            if nested is None:
                return None
            for key, value in nested.items():
                if key in values:
                    self.problem((*path, "params", key), field, f"parameter {key!r} is given twice (inline and under 'params')")
                    return None
                values[key] = value
                origins[key] = (*path, "params", key)
        if cls is None or any(self.doc.was_reported(o) for o in origins.values()):
            return None
        return self.build(cls.Params, values, path, field, noun="parameter", origins=origins)

    # -- SLOs --------------------------------------------------------------------------------------
    def slos(self, value: Any, probes: Mapping[str, ProbeSpec], ledger: Any) -> list[SloSpec]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(("slos",), "slos", "expected a list of SLOs, like [{name: recovery, metric: recovery_time, "
                                            f"max: 30s}}]; got {shown(value)}")
            return []
        first_line: dict[str, int | None] = {}
        out = []
        for index, item in enumerate(value):
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
        if "metric" not in entries:
            self.problem(path, field, f"missing key 'metric'; expected one of: {_METRICS}")
            return None
        text = self.value(Text, entries["metric"], (*path, "metric"), field, "metric")
        if text is None:
            return None
        try:
            return SloMetric(text)
        except ValueError:
            self.problem((*path, "metric"), field, f"unknown metric {text!r}; expected one of: {_METRICS}")
            return None

    def references(self, params: Any, path: tuple, field: str, probes: Mapping[str, ProbeSpec]) -> None:
        """Parameters marked RefersTo must name declared probes (of the right kind) or targets."""
        for name, info in type(params).model_fields.items():
            marker = next((m for m in markers_of(info) if isinstance(m, RefersTo)), None)
            value = getattr(params, name)
            if marker is None or value in (None, ()):
                continue
            key = info.alias or name
            for item in (value if isinstance(value, tuple) else (value,)):
                message = _reference_problem(marker, key, item, self.declared_probes, self.declared_targets, probes)
                if message:
                    self.problem((*path, key), field, message)
                    break


def _reference_problem(marker: RefersTo, key: str, item: str, declared_probes: set[str], declared_targets: set[str],
                       probes: Mapping[str, ProbeSpec]) -> str | None:
    if item in marker.also:
        return None
    if marker.what == "target":
        if item in declared_targets:
            return None
        return f"{key!r}: unknown target {item!r}; declared targets: {', '.join(sorted(declared_targets)) or '(none)'}"
    if item not in declared_probes:
        listed = ", ".join(sorted(declared_probes)) or "(none)"
        if marker.also:
            return f"{key!r}: unknown probe {item!r}; expected {' or '.join(map(repr, marker.also))} or a declared probe: {listed}"
        return f"{key!r}: unknown probe {item!r}; declared probes: {listed}"
    probe = probes.get(item)
    if probe is not None and marker.kinds and probe.kind not in marker.kinds:
        wanted = " or ".join(k.value for k in marker.kinds)
        article = "an" if marker.kinds[0] is ProbeKind.HTTP else "a"   # "an http probe": said "aitch"
        return f"{key!r}: probe {item!r} is a {probe.kind.value} probe; expected {article} {wanted} probe"
    return None
