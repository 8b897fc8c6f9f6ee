"""What a fault is: a registered type with a typed parameter model, an inject, and an idempotent revert.

Must not import locust, gevent, docker or prometheus_client. Fault modules reach the world only through
`chaos_events.backends` and the FaultContext they are given.

Contract of every fault (tested for each registered type in tests/unit/test_fault_contract.py):
- `Params` is a frozen model (FaultParams): it validates every parameter itself, with units in the field names
  (`latency_ms`, `timeout_s`); unknown parameters are errors, never ignored;
- `revert` is idempotent: safe twice, safe before `inject`, safe after an `inject` that failed halfway;
- `revert` works from `self.state`, which `inject` fills *before* each side effect and saves with `ctx.save_state()`,
  so the journal can rebuild the fault in another process after a SIGKILL (`Fault.from_journal`).
Two class-level checks run before any load: `check_plan` (pure, when the scenario is loaded: does this target suit
these parameters?) and `preflight` (looks at this machine now: caps, free disk, a reachable proxy).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from chaos_events.scenario.fields import ScenarioModel
from chaos_events.scenario.model import Target, TargetKind
from chaos_events.scenario.targets import TARGET_MODELS


class FaultParams(ScenarioModel):
    """Base of every fault's parameter model. A fault without parameters uses it as is."""


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
    """Base class. Subclasses set `type_name`, `Params` (a FaultParams model), `target_kinds` and `summary`.

    Invariant: `state` is JSON-serialisable and holds everything `revert` needs.
    Example:
        fault = fault_type("pause")(PauseParams(), target); fault.inject(ctx); ...; fault.revert(ctx); fault.revert(ctx)
    """

    type_name: ClassVar[str] = ""
    Params: ClassVar[type[FaultParams]] = FaultParams
    target_kinds: ClassVar[frozenset[TargetKind]] = frozenset()
    summary: ClassVar[str] = ""

    def __init__(self, params: Any, target: Target, state: dict | None = None):
        self.params = params if params is not None else self.Params()   # None: every parameter at its default
        self.target = target
        self.state: dict = dict(state or {})

    # -- to be provided by each fault -------------------------------------------------------------
    def inject(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    def revert(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    def verify_reverted(self, ctx: FaultContext) -> None:
        """Raise RevertError when the target is still degraded after `revert`. Default: nothing to check."""

    def observations(self) -> dict:
        """What this occurrence found out and the record should keep with its events (JSON values), e.g. the
        broker a role resolved to. Default: nothing."""
        return {}

    @classmethod
    def check_plan(cls, params: Any, target: Target) -> list[str]:
        """Pure checks of parameters against the target, when the scenario is loaded. Messages; empty when fine."""
        return []

    @classmethod
    def preflight(cls, params: Any, target: Target) -> list[str]:
        """Checks that look at this machine now (caps, free space, reachability), just before the run."""
        return []

    # -- shared ----------------------------------------------------------------------------------
    def own_id(self, ctx: FaultContext) -> str:
        """The engine's occurrence id, or one of our own, kept in state so a journal revert finds the same one."""
        if not self.state.get("id"):
            self.state["id"] = ctx.occurrence_id or f"{self.type_name}-{uuid.uuid4().hex[:12]}"
        return self.state["id"]

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.model_dump().items()) if self.params is not None else ""
        return f"{self.type_name} {self.target.name}" + (f" ({shown})" if shown else "")

    def journal_entry(self) -> dict:
        return {
            "type": self.type_name,
            "params": self.params.model_dump(mode="json", by_alias=True),
            "target": {"name": self.target.name, "kind": self.target.kind.value,
                       "spec": self.target.spec.model_dump(mode="json", by_alias=True, exclude_none=True)},
            "state": self.state,
        }

    @staticmethod
    def from_journal(entry: dict) -> "Fault":
        cls = fault_type(entry["type"])
        params = cls.Params.model_validate(entry.get("params") or {})
        data = entry["target"]
        kind = TargetKind(data["kind"])
        target = Target(data["name"], kind, TARGET_MODELS[kind].model_validate(data.get("spec") or {}))
        return cls(params, target, state=entry.get("state") or {})


def build_params(cls: type[Fault], raw: dict) -> tuple[Any, list[str]]:
    """`cls.Params` from raw values, for programs that build faults without a scenario file: (params or None,
    every problem in the loader's words, e.g. "unknown parameter 'latncy'; expected one of: ...")."""
    from pydantic import ValidationError

    from chaos_events.scenario.problems import translate

    try:
        return cls.Params.model_validate(dict(raw)), []
    except ValidationError as exc:
        return None, [issue.message for issue in translate(exc, cls.Params, noun="parameter", given=dict(raw))]


# -- registry ------------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Fault]] = {}


def register(cls: type[Fault]) -> type[Fault]:
    """Class decorator. A duplicate name is an error, never a silent overwrite."""
    if not cls.type_name:
        raise TypeError(f"{cls.__name__} has no type_name")
    if cls.type_name in _REGISTRY and _REGISTRY[cls.type_name] is not cls:
        raise TypeError(f"fault type {cls.type_name!r} is already registered by {_REGISTRY[cls.type_name].__qualname__}")
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, FaultParams)):
        raise TypeError(f"{cls.__name__}.Params must be a FaultParams model")
    _REGISTRY[cls.type_name] = cls
    return cls


def known_fault_types() -> list[str]:
    return sorted(_REGISTRY)


def fault_type(name: str) -> type[Fault]:
    """The registered class; an unknown name raises KeyError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown fault {name!r}; expected one of: {', '.join(sorted(_REGISTRY))}") from None
