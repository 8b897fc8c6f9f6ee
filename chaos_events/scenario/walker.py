"""The walk under the scenario loader: places problems at their line, builds parts with their models, checks references.

One `Walker` holds the Document, what the scenario declares (targets, probes) and whether anything failed; the
loader's parts (loader.py, fault_entries.py, slo_entries.py) extend it. Pure, as the loader: standard library and
pydantic (through the models); must not import gevent, locust, docker or prometheus_client, nor loader.py.
"""
from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from chaos_events.scenario.document import Document
from chaos_events.scenario.fields import Text, adapter, markers_of, shown  # adapter: TypeAdapters built once
from chaos_events.scenario.model import ProbeKind, ProbeSpec, Settings
from chaos_events.scenario.problems import translate
from chaos_events.scenario.safety import host_allowed
from chaos_events.verdict.metrics import RefersTo


class Walker:
    """One validation pass over a Document. Problems go to the document; every check carries on."""

    def __init__(self, doc: Document, extra_allowed: tuple[str, ...]):
        self.doc = doc
        self.extra_allowed = extra_allowed
        self.declared_targets: set[str] = set()
        self.declared_probes: set[str] = set()
        self.failed = False

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

    def text_key(self, entries: dict, path: tuple, field: str, key: str, missing: str) -> str | None:
        """The text under a required `key`, or None after placing `missing` (absent) or the value's error."""
        if key not in entries:
            self.problem(path, field, missing)
            return None
        return self.value(Text, entries[key], (*path, key), field, key)

    def mapping(self, value: Any, path: tuple, field: str, expected: str) -> dict | None:
        if isinstance(value, dict):
            return value
        if not self.doc.was_reported(path):
            self.problem(path, field, f"expected {expected}; got {shown(value)}")
        return None

    def sequence(self, value: Any, key: str, expected: str) -> list | None:
        """A top-level section that must be a list: `value`, or None after placing "expected ...; got ..." at `key`."""
        if isinstance(value, list):
            return value
        self.problem((key,), key, f"expected {expected}; got {shown(value)}")
        return None

    def host_ok(self, path: tuple, field: str, key: str, host: str, settings: Settings) -> bool:
        allowed = tuple(settings.allowed_hosts) + self.extra_allowed
        if host_allowed(host, allowed):
            return True
        self.problem(path, field, f"{key!r}: host {host!r} is not allowed; allowed hosts: {', '.join(allowed)} "
                                  f"(add it to settings.allowed_hosts or to --chaos-allow)")
        return False

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

    def probe_refs(self, names: tuple[str, ...], path: tuple, field: str, key: str, probes: Mapping[str, ProbeSpec],
                   kind: ProbeKind | None = None) -> None:
        for name in names:
            marker = RefersTo("probe", kinds=(kind,) if kind else ())
            message = reference_problem(marker, key, name, self.declared_probes, self.declared_targets, probes)
            if message:
                self.problem(path, field, message)

    def references(self, params: Any, path: tuple, field: str, probes: Mapping[str, ProbeSpec]) -> None:
        """Parameters marked RefersTo must name declared probes (of the right kind) or targets."""
        for name, info in type(params).model_fields.items():
            marker = next((m for m in markers_of(info) if isinstance(m, RefersTo)), None)
            value = getattr(params, name)
            if marker is None or value in (None, ()):
                continue
            key = info.alias or name
            for item in (value if isinstance(value, tuple) else (value,)):
                message = reference_problem(marker, key, item, self.declared_probes, self.declared_targets, probes)
                if message:
                    self.problem((*path, key), field, message)
                    break


def reference_problem(marker: RefersTo, key: str, item: str, declared_probes: set[str], declared_targets: set[str],
                      probes: Mapping[str, ProbeSpec]) -> str | None:
    """Why `item` (the value of `key`) is not what `marker` asks for, or None when it is."""
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
