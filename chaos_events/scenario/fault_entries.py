"""The scenario's `faults:` list for the loader: each entry's type, times, repeat, target and the type's own Params.

Part of the scenario loader (a Walker mixin, see walker.py); the fault types themselves validate their parameters
(chaos_events.faults). Pure: pydantic and the fault registry; must not import gevent, locust, docker or
prometheus_client, nor loader.py.
"""
from __future__ import annotations

from typing import Any, Mapping

from pydantic import Field

from chaos_events.faults import fault_type, known_fault_types
from chaos_events.scenario.fields import Flag, ScenarioModel, Seconds, WholeNumber, shown
from chaos_events.scenario.model import FaultSpec, Repeat, Target
from chaos_events.scenario.overlaps import overlap_problems
from chaos_events.scenario.walker import Walker

FAULT_KEYS = ("at", "for", "fault", "target", "repeat", "params", "steady_state")
MAX_REPEAT_TIMES = 1000
_AT_FOR = {"at": "when the fault starts, e.g. 30s", "for": "how long it lasts, e.g. 20s"}


class RepeatModel(ScenarioModel):
    """`repeat: {every: 60s, times: 3}`: the same fault `times` times in all, one every `every`."""

    every_s: Seconds = Field(alias="every", gt=0, description="time between the starts of two occurrences")
    times: WholeNumber = Field(ge=1, le=MAX_REPEAT_TIMES, description="how many occurrences in all")



class FaultEntries(Walker):
    """The loader's checks of the `faults:` list."""

    def faults(self, value: Any, targets: Mapping[str, Target]) -> list[FaultSpec]:
        items = [] if value is None else self.sequence(
            value, "faults", "a list of faults, like [{at: 30s, for: 20s, fault: pause, target: broker}]") or []
        out = [spec for index, item in enumerate(items) if (spec := self.fault(index, item, targets)) is not None]
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
        name = self.text_key(entries, path, f"faults[{index}]", "fault", f"missing key 'fault'; expected one of: {known}")
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
        name = self.text_key(entries, path, field, "target", f"missing key 'target'; declared targets: {declared}")
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
