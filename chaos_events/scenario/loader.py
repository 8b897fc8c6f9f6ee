"""A scenario file becomes a typed, validated Plan; every problem names file, line and field, all at once.

Pure, but for reading the file: standard library, PyYAML (through document.py) and pydantic. Each concept validates
itself with its own model (target kinds: targets.py, probe kinds: probe_kinds.py, faults: each fault type's
`Params`, SLOs: each metric's `Params`); the loader walks the document, hands each part to its model, places every
error at its line, and checks what crosses parts: a fault's target exists and suits it, an SLO names declared
probes and targets, hosts are allowed, two faults do not fight over one target. The walk is split by part: this
module (top level, settings, targets, probes, run rules), fault_entries.py and slo_entries.py, on walker.py's
helpers. Whether targets exist on this machine is the pre-run check's job (preflight.py), not this one's.

Example:
    plan = load_plan("scenarios/service-broker-pause.yml")
    plan.faults[0].params            # the pause fault's own Params model, already built
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from pydantic import BaseModel

from chaos_events.errors import PlanError, Problem
from chaos_events.scenario.document import read_document
from chaos_events.scenario.fault_entries import FAULT_KEYS, MAX_REPEAT_TIMES, FaultEntries, RepeatModel
from chaos_events.scenario.fields import AnyText, Text
from chaos_events.scenario.model import Plan, ProbeKind, ProbeSpec, Settings, Target, TargetKind
from chaos_events.scenario.probe_kinds import PROBE_MODELS
from chaos_events.scenario.run_rules import HALT_KINDS, HaltCondition, LedgerConfig, OnHalt, SteadyState
from chaos_events.scenario.proxy_routes import route_problems
from chaos_events.scenario.safety import split_allowed
from chaos_events.scenario.slo_entries import SLO_KEYS, SloEntries
from chaos_events.scenario.targets import SCALAR_KINDS, TARGET_MODELS, target_hosts

__all__ = ["load_plan", "parse_plan", "FAULT_KEYS", "MAX_REPEAT_TIMES", "SLO_KEYS", "TOP_KEYS", "RepeatModel"]

TOP_KEYS = ("name", "description", "targets", "probes", "faults", "slos", "settings", "steady_state", "halt_when",
            "on_halt", "ledger")
_TARGET_KINDS = ", ".join(k.value for k in TargetKind)
_PROBE_KINDS = ", ".join(k.value for k in ProbeKind)
_ABSENT = object()   # a section the scenario does not have (None means: it has one, with problems)


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


class _Loader(FaultEntries, SloEntries):
    """One validation pass over a Document: the top level, settings, targets, probes and the run rules here; faults
    and SLOs in their own modules. Problems go to the document; every check carries on."""

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


    def halts(self, value: Any, probes: Mapping[str, ProbeSpec]) -> tuple[HaltCondition, ...] | None:
        if value is None:
            return ()
        items = self.sequence(value, "halt_when", "a list of stop conditions, like [{error_rate: {max: 50%, for: 10s}}]")
        if items is None:
            return None
        out, ok = [], True
        for index, item in enumerate(items):
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
        for where, field, message in route_problems(out, tuple(settings.allowed_hosts) + self.extra_allowed):
            self.problem(where, field, message)
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
