"""What a fault is: a registered type with frozen parameters, an inject, and an idempotent revert.

Must not import locust, gevent, docker or prometheus_client. Fault modules reach the world only through
`chaos_events.backends` and the FaultContext they are given.

Contract of every fault (tested for each registered type in tests/unit/test_fault_contract.py):
- `revert` is idempotent: safe twice, safe before `inject`, safe after an `inject` that failed halfway;
- `revert` works from `self.state`, which `inject` fills *before* each side effect and saves with `ctx.save_state()`,
  so the journal can rebuild the fault in another process after a SIGKILL (`Fault.from_journal`);
- unknown parameters are errors, never ignored.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from chaos_events.scenario.plan import Target, TargetKind
from chaos_events.scenario.units import parse_duration, parse_size_bytes


@dataclass
class FaultContext:
    """What a fault may use while it runs. The engine builds one per fault occurrence.

    `save_state` persists the fault's state to the revert journal (call it before each side effect).
    `broadcast(kind, data)` sends a message to every load worker (data faults act from inside the load).
    `kafka_bootstrap` is the run's Kafka bootstrap servers, for faults that produce to Kafka.
    `occurrence_id` names this occurrence of the fault (stable across inject and revert); "" when the engine gives none.
    `extra_allowed` is the run's --chaos-allow list (container names allowed without the opt-in label).
    `report(key, data)` adds an observation to the run's record (e.g. how many poison messages a fault delivered).
    """

    run_dir: str = ".run"
    save_state: Callable[[], None] = lambda: None
    broadcast: Callable[[str, dict], None] = lambda kind, data: None
    log: Callable[[str], None] = print
    kafka_bootstrap: str | None = None
    occurrence_id: str = ""
    extra_allowed: tuple[str, ...] = ()
    report: Callable[[str, dict], None] = lambda key, data: None


class Fault:
    """Base class. Subclasses set `type_name`, `Params` (a frozen dataclass) and `target_kinds`.

    Invariant: `state` is JSON-serialisable and holds everything `revert` needs.
    Example:
        fault = fault_type("pause")(params, target); fault.inject(ctx); ...; fault.revert(ctx); fault.revert(ctx)
    """

    type_name: ClassVar[str] = ""
    Params: ClassVar[type] = type(None)
    target_kinds: ClassVar[frozenset[TargetKind]] = frozenset()
    summary: ClassVar[str] = ""

    def __init__(self, params: Any, target: Target, state: dict | None = None):
        self.params = params
        self.target = target
        self.state: dict = dict(state or {})

    # -- to be provided by each fault -------------------------------------------------------------
    def inject(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    def revert(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    def verify_reverted(self, ctx: FaultContext) -> None:
        """Raise RevertError when the target is still degraded after `revert`. Default: nothing to check."""

    @classmethod
    def check(cls, params: Any, target: Target) -> list[str]:
        """Extra checks before the run (caps, reachable target). Returns messages; empty when fine."""
        return []

    # -- shared ----------------------------------------------------------------------------------
    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.params).items()) if dataclasses.is_dataclass(self.params) else ""
        return f"{self.type_name} {self.target.name}" + (f" ({shown})" if shown else "")

    def journal_entry(self) -> dict:
        return {
            "type": self.type_name,
            "params": dataclasses.asdict(self.params) if dataclasses.is_dataclass(self.params) else {},
            "target": {"name": self.target.name, "kind": self.target.kind.value, "spec": _plain(self.target.spec)},
            "state": self.state,
        }

    @staticmethod
    def from_journal(entry: dict) -> "Fault":
        cls = fault_type(entry["type"])
        params = cls.Params(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["params"].items()})
        target_data = entry["target"]
        target = Target(target_data["name"], TargetKind(target_data["kind"]), target_data["spec"])
        return cls(params, target, state=entry.get("state") or {})


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- registry ------------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Fault]] = {}


def register(cls: type[Fault]) -> type[Fault]:
    """Class decorator. A duplicate name is an error, never a silent overwrite."""
    if not cls.type_name:
        raise TypeError(f"{cls.__name__} has no type_name")
    if cls.type_name in _REGISTRY and _REGISTRY[cls.type_name] is not cls:
        raise TypeError(f"fault type {cls.type_name!r} is already registered by {_REGISTRY[cls.type_name].__qualname__}")
    if not (dataclasses.is_dataclass(cls.Params) and cls.Params.__dataclass_params__.frozen):
        raise TypeError(f"{cls.__name__}.Params must be a frozen dataclass")
    _REGISTRY[cls.type_name] = cls
    return cls


def known_fault_types() -> list[str]:
    _load_builtin_faults()
    return sorted(_REGISTRY)


def fault_type(name: str) -> type[Fault]:
    """The registered class; an unknown name raises KeyError listing the known ones."""
    _load_builtin_faults()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown fault {name!r}; expected one of: {', '.join(sorted(_REGISTRY))}") from None


def _load_builtin_faults() -> None:
    from chaos_events.faults import data, network, resources, service  # noqa: F401  (registration happens on import)


def build_params(cls: type[Fault], raw: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """Turn raw scenario parameters into `cls.Params`. Returns (params or None, messages).

    Coercion by field name: `*_s` (not `*_per_s`) accepts durations (`30s`), `*_ms` accepts durations as milliseconds,
    `*_bytes` accepts sizes (`64MB`). Unknown and missing parameters are reported, never ignored.
    """
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    expected = ", ".join(sorted(fields)) or "(no parameters)"
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            problems.append(f"unknown parameter {key!r}; expected one of: {expected}")
            continue
        try:
            values[key] = _coerce(key, value, _field_type(cls.Params, key))
        except ValueError as exc:
            problems.append(f"parameter {key!r}: {exc}")
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in raw:
            problems.append(f"missing parameter {name!r}")
    if problems:
        return None, problems
    try:
        params = cls.Params(**values)
    except (TypeError, ValueError) as exc:
        return None, [str(exc)]
    return params, []


def _field_type(params_cls: type, name: str) -> Any:
    return typing.get_type_hints(params_cls)[name]


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    # `rate_per_s` is a rate, not a duration.
    if name.endswith("_s") and not name.endswith("_per_s") and annotation in (float, int):
        return parse_duration(value)
    if name.endswith("_ms") and annotation in (float, int) and isinstance(value, str):
        return parse_duration(value) * 1000.0
    if name.endswith("_bytes") and annotation is int:
        return parse_size_bytes(value)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false; got {value!r}")
        return value
    if annotation in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number; got {value!r}")
        if annotation is int and not float(value).is_integer():
            raise ValueError(f"expected a whole number; got {value!r}")
        return annotation(value)
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"expected text; got {value!r}")
        return str(value)
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(str(v) for v in items)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(name, value, options[0])
    return value


def fault_field(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A params field; a thin alias so fault modules read uniformly."""
    return field(default=default, **kwargs)
