"""The scenario format described from its models: a JSON Schema for editors, and a Markdown reference for people.

Pure: standard library and pydantic. Both read the same registries the loader uses (target kinds, probe kinds,
fault types, SLO metrics, settings), so neither can drift from what the loader accepts: `chaos-events schema` and
`chaos-events reference` print them, and tests check that the shipped copies are current.

Example:
    schema = scenario_schema()          # {"$schema": ..., "properties": {"faults": ...}, ...}
    text = reference_markdown()         # docs/SCENARIOS.md
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

from pydantic import BaseModel, TypeAdapter

from chaos_events.faults import fault_type, known_fault_types
from chaos_events.scenario.fields import markers_of, unit_of
from chaos_events.scenario.loader import FAULT_KEYS, RepeatModel
from chaos_events.scenario.model import Plan, ProbeKind, Settings, TargetKind
from chaos_events.scenario.probe_kinds import PROBE_MODELS
from chaos_events.scenario.run_rules import HALT_KINDS, LedgerConfig, OnHalt, ReadBack, SteadyState
from chaos_events.scenario.kafka_roles import BrokerRole, LeaderRole
from chaos_events.scenario.targets import SCALAR_KINDS, TARGET_MODELS, BrokerService
from chaos_events.verdict.metrics import known_metrics

SCHEMA_ID = "chaos-events.scenario/1"
ON_HALT_DEFAULT = Plan.__dataclass_fields__["on_halt"].default
# Any scalar may be written as `${VAR}` or `${VAR:-default}`: the loader substitutes it before validation.
VARIABLE = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"}
_DURATION = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]}
_SHORTHAND = {TargetKind.CONTAINER: "a container name", TargetKind.PROXY: "a route name",
              TargetKind.DIRECTORY: "a directory path", TargetKind.ENDPOINT: "host:port or an http(s) URL",
              TargetKind.HOST: "`local`"}


def _model_schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """A model's schema by alias, its $defs merged into `defs`, every scalar also allowed as a ${VAR}."""
    schema = copy.deepcopy(model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}"))
    defs.update(schema.pop("$defs", {}))
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return _allow_variables(schema)


def _allow_variables(schema: dict[str, Any]) -> dict[str, Any]:
    for name, prop in list(schema.get("properties", {}).items()):
        if prop.get("type") != "string" and "$ref" not in prop:
            schema["properties"][name] = {"anyOf": [prop, VARIABLE], **_doc(prop)}
    return schema


def _doc(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: prop[k] for k in ("description", "default") if k in prop}


def _one_kind(kind: str, inner: dict[str, Any], scalar: bool) -> dict[str, Any]:
    value = {"anyOf": [inner, {"type": "string"}]} if scalar else inner
    return {"type": "object", "properties": {kind: value}, "required": [kind], "additionalProperties": False}


def _fault_entry(name: str, defs: dict[str, Any]) -> dict[str, Any]:
    cls = fault_type(name)
    params = _model_schema(cls.Params, defs)
    properties = {
        "fault": {"const": name, "description": cls.summary},
        "at": {"anyOf": [_DURATION, VARIABLE], "description": "when the fault starts (run time), e.g. 30s"},
        "for": {"anyOf": [_DURATION, VARIABLE], "description": "how long it lasts, e.g. 20s"},
        "target": {"type": "string", "description": "a declared target of kind: "
                                                    + ", ".join(sorted(k.value for k in cls.target_kinds))},
        "repeat": _model_schema(RepeatModel, defs),
        "steady_state": {"type": "boolean", "description": "check the steady state right before this fault"},
        "params": params,
        **params.get("properties", {}),
    }
    entry = {"type": "object", "properties": properties, "required": ["at", "for", "fault", "target"],
             "additionalProperties": False}
    required = params.get("required", [])
    if required:
        entry["anyOf"] = [{"required": required}, {"required": ["params"]}]
    return entry


def _slo_entry(metric: Any, defs: dict[str, Any]) -> dict[str, Any]:
    params = _model_schema(metric.Params, defs)
    properties = {"name": {"type": "string", "description": "the SLO's name in the reports"},
                  "metric": {"const": metric.metric.value, "description": metric.summary},
                  "optional": {"type": "boolean", "description": "a result that cannot be verified is reported as "
                                                                "skipped instead of failing the run"},
                  **params.get("properties", {})}
    return {"type": "object", "properties": properties, "required": ["name", "metric", *params.get("required", [])],
            "additionalProperties": False}


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a scenario file."""
    defs: dict[str, Any] = {}
    targets = [_one_kind(k.value, _model_schema(TARGET_MODELS[k], defs), k in SCALAR_KINDS or k in _SHORTHAND)
               for k in TargetKind]
    probes = [_one_kind(k.value, _model_schema(PROBE_MODELS[k], defs), False) for k in ProbeKind]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "chaos-events scenario",
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "settings": _model_schema(Settings, defs),
            "targets": {"type": "object", "additionalProperties": {"oneOf": targets},
                        "description": "the allow-list: name -> one target kind"},
            "probes": {"type": "object", "additionalProperties": {"oneOf": probes}},
            "faults": {"type": "array", "items": {"oneOf": [_fault_entry(n, defs) for n in known_fault_types()]}},
            "slos": {"type": "array", "items": {"oneOf": [_slo_entry(m, defs) for m in known_metrics()]}},
            "steady_state": _model_schema(SteadyState, defs),
            "halt_when": {"type": "array", "description": "stop conditions: one kind per entry",
                          "items": {"oneOf": [_one_kind(k, _model_schema(m, defs), False) for k, m in HALT_KINDS.items()]}},
            "on_halt": {**TypeAdapter(OnHalt).json_schema(), "description": "after a halt: stop the load or keep it"},
            "ledger": _model_schema(LedgerConfig, defs),
        },
    }
    if defs:
        schema["$defs"] = defs
    return schema


# -- the reference -------------------------------------------------------------------------------------------
def _type_words(prop: dict[str, Any], unit: str | None) -> str:
    if unit == "seconds":
        return "duration (`30s`, `250ms`, `2m`, or a number of seconds)"
    if unit == "milliseconds":
        return "milliseconds (`200`, or a duration like `1s`)"
    if unit == "bytes":
        return "size (`64MB`, `1GiB`, or a number of bytes)"
    if unit == "ratio":
        return "ratio (`0.05` or `5%`)"
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null" and p is not VARIABLE]
    words = []
    for option in options:
        if "enum" in option:
            words.append("one of: " + ", ".join(f"`{v}`" for v in option["enum"]))
        elif option.get("type") == "array":
            words.append("list")
        elif "$ref" in option or option.get("type") == "object":
            words.append("mapping")
        elif option.get("type"):
            words.append({"integer": "whole number", "number": "number", "boolean": "true or false",
                          "string": "text"}.get(option["type"], option["type"]))
    return " or ".join(dict.fromkeys(words)) or "text"


def _constraints(info: Any) -> str:
    words = []
    for item in info.metadata or []:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if hasattr(item, attr):
                words.append(f"{sign} {getattr(item, attr):g}")
    return ", ".join(words)


def field_rows(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) for each field of a model, as written in YAML."""
    schema = model.model_json_schema(by_alias=True)
    rows = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        prop = schema.get("properties", {}).get(key, {})
        unit = unit_of(markers_of(info))
        kind = _type_words(prop, unit.name if unit else None)
        limits = _constraints(info)
        default = "required" if info.is_required() else f"`{_shown_default(info.default)}`"
        meaning = (info.description or "").replace("|", "\\|")
        rows.append((f"`{key}`", kind + (f" ({limits})" if limits else ""), default, meaning))
    return rows


def _shown_default(value: Any) -> str:
    if hasattr(value, "value"):
        return str(value.value)
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]" if value else "[]"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _table(rows: Iterable[tuple[str, ...]]) -> list[str]:
    rows = list(rows)
    if not rows:
        return ["(no parameters)", ""]
    return ["| key | type | default | meaning |", "|---|---|---|---|", *("| " + " | ".join(r) + " |" for r in rows), ""]


def _section(title: str, doc: str | None, rows: list) -> list[str]:
    text = " ".join((doc or "").split())
    return [f"### {title}", "", *([text, ""] if text else []), *_table(rows)]


def reference_markdown() -> str:
    """docs/SCENARIOS.md: every target kind, probe, fault and SLO metric, with each parameter."""
    out = ["# Scenario reference", "",
           "Generated by `chaos-events reference` from the models the loader validates with; "
           "a test keeps this file current. The JSON Schema (`chaos-events schema`, shipped as "
           "`docs/scenario.schema.json`) describes the same format for editors.", "",
           "Any value may be written as `${VAR}` or `${VAR:-default}` (an environment variable).", "",
           "## Top level", "",
           "`name` (required), `description`, `settings`, `targets`, `probes`, `faults`, `slos`, `steady_state`, "
           f"`halt_when`, `on_halt` ({' or '.join(f'`{v}`' for v in TypeAdapter(OnHalt).json_schema()['enum'])}; "
           f"default `{ON_HALT_DEFAULT}`), `ledger`.", "",
           *_section("settings", Settings.__doc__, field_rows(Settings)),
           *_section("steady_state", SteadyState.__doc__, field_rows(SteadyState)),
           "## Stop conditions (`halt_when`)", "", "A list; each entry is `{KIND: {...}}` with one kind.", "",
           *[line for kind, model in HALT_KINDS.items() for line in _section(f"`{kind}`", model.__doc__, field_rows(model))],
           *_section("ledger", LedgerConfig.__doc__, field_rows(LedgerConfig)),
           *_section("ledger.read_back", ReadBack.__doc__, field_rows(ReadBack)),
           "## Targets", "", "Each target is `NAME: {KIND: ...}`, with exactly one kind. They are the allow-list: "
           "a fault only ever touches a target the scenario names.", ""]
    for kind in TargetKind:
        model = TARGET_MODELS[kind]
        shorthand = f" Shorthand: {_SHORTHAND[kind]}." if kind in _SHORTHAND else ""
        out += _section(f"`{kind.value}`", (model.__doc__ or "") + shorthand, field_rows(model))
    out += [line for model in (BrokerService, BrokerRole, LeaderRole)
            for line in _section(f"`kafka_cluster`: {model.__name__}", model.__doc__, field_rows(model))]
    out += ["## Probes", "", "Each probe is `NAME: {KIND: ...}`; it is sampled during the whole run.", ""]
    for kind in ProbeKind:
        out += _section(f"`{kind.value}`", PROBE_MODELS[kind].__doc__, field_rows(PROBE_MODELS[kind]))
    out += ["## Faults", "", "Every fault has `fault` (its type), `at` and `for` (durations), `target` (a declared "
            "target), optional `repeat` (`{every, times}`) and `steady_state` (check the steady state right before "
            "it), and its own parameters, written inline or under `params:`. Unknown parameters are errors.", "",
            *_table(field_rows(RepeatModel)), f"Keys of a fault entry: {', '.join(f'`{k}`' for k in FAULT_KEYS)}.", ""]
    for name in known_fault_types():
        cls = fault_type(name)
        kinds = ", ".join(sorted(k.value for k in cls.target_kinds))
        out += _section(f"`{name}`", f"{cls.summary}. Targets: {kinds}. {cls.__doc__ or ''}", field_rows(cls.Params))
    out += ["## SLO metrics", "", "Every SLO has `name`, `metric` and optional `optional: true` (a result that cannot "
            "be verified is then shown as skipped instead of failing the run), and the metric's own keys.", ""]
    for metric in known_metrics():
        out += _section(f"`{metric.metric.value}`", metric.summary + ". " + (metric.judge.__doc__ or ""),
                        field_rows(metric.Params))
    return "\n".join(out).rstrip() + "\n"
