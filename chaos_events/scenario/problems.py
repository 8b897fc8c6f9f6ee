"""pydantic's validation errors in the project's words, each with the path of the value it is about.

Pure: pydantic only. The loader places each Issue at a line (the key's line for an unknown key) and prefixes the
field (`faults[2] (latency)`). Wording follows one pattern: `'<key>': <what is wrong>; got <what we received>`, and
for keys: `unknown parameter 'latncy'; expected one of: jitter_ms, latency_ms`.

Example:
    issues = translate(error, LatencyParams, noun="parameter")
    issues[0].message == "unknown parameter 'latncy'; expected one of: jitter_ms, latency_ms, stream, toxicity"
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError

from chaos_events.scenario.fields import CUSTOM_ERROR, shown

_TYPE_WORDS = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "text", "list_type": "a list", "tuple_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "none_required": "nothing (null)",
}


@dataclass(frozen=True)
class Issue:
    """One problem with a value: where (path relative to the validated mapping) and what."""

    loc: tuple
    message: str
    at_key: bool = False


def field_names(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts, as written in YAML (aliases), sorted."""
    return sorted(info.alias or name for name, info in model.model_fields.items())


def _field_info(model: type[BaseModel] | None, key: Any) -> Any:
    if model is None or not isinstance(key, str):
        return None
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _bounds(model: type[BaseModel] | None, key: Any) -> tuple[tuple[str, Any], tuple[str, Any]] | None:
    """(("above", 0), ("at most", 1000)) for a field bounded on both sides, else None."""
    info = _field_info(model, key)
    low = high = None
    for item in getattr(info, "metadata", []) or []:
        if isinstance(item, annotated_types.Ge):
            low = ("at least", item.ge)
        elif isinstance(item, annotated_types.Gt):
            low = ("above", item.gt)
        elif isinstance(item, annotated_types.Le):
            high = ("at most", item.le)
        elif isinstance(item, annotated_types.Lt):
            high = ("below", item.lt)
    if low is None or high is None:
        return None
    return low, high


def _g(number: Any) -> str:
    return f"{number:g}" if isinstance(number, (int, float)) and not isinstance(number, bool) else str(number)


_MISSING = object()


def _dig(given: Any, loc: tuple) -> Any:
    """The value at `loc` inside what was validated, as written (before any conversion), or _MISSING."""
    if given is None:
        return _MISSING
    value = given
    for part in loc:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, (list, tuple)) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            return _MISSING
    return value


def _message(error: dict, model: type[BaseModel] | None, noun: str, extra_keys: tuple[str, ...],
             key_context: str, given: Any) -> tuple[str, bool]:
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    original = _dig(given, loc)
    got = shown(error.get("input") if original is _MISSING else original)
    key = next((part for part in reversed(loc) if isinstance(part, str)), None)
    prefix = "" if key is None else (f"{noun} {key!r}: " if noun == "parameter" else f"{key!r}: ")
    if kind == "missing":
        return f"missing {noun} {key!r}", False
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted({*field_names(model), *extra_keys})) if model else ""
        return f"unknown {noun} {key!r}{key_context}; expected one of: {allowed or f'(no {noun}s)'}", True
    if kind == CUSTOM_ERROR:
        return prefix + str(ctx.get("message", error["msg"])), False
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bounds = _bounds(model, loc[0]) if len(loc) == 1 else None
        if bounds:
            (low_word, low), (high_word, high) = bounds
            if (low_word, high_word) == ("at least", "at most"):
                return f"{prefix}must be between {_g(low)} and {_g(high)}; got {got}", False
            return f"{prefix}must be {low_word} {_g(low)} and {high_word} {_g(high)}; got {got}", False
        words = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most",
                 "less_than": "less than"}[kind]
        bound = next(iter(ctx.values()), "")
        shown_bound = "zero" if kind == "greater_than" and bound == 0 else _g(bound)
        return f"{prefix}must be {words} {shown_bound}; got {got}", False
    if kind in ("literal_error", "enum"):
        expected = ", ".join(sorted(re.findall(r"'([^']*)'", str(ctx.get("expected", "")))))
        return f"{prefix}unknown value {got}; expected one of: {expected}", False
    if kind in ("too_short",):
        return f"{prefix}must list at least {ctx.get('min_length', 1)}", False
    if kind in _TYPE_WORDS:
        return f"{prefix}expected {_TYPE_WORDS[kind]}; got {got}", False
    if kind == "value_error":
        text = str(error["msg"]).removeprefix("Value error, ")
        return (prefix if len(loc) else "") + text, False
    return f"{prefix}{error['msg']}; got {got}", False


def translate(exc: ValidationError, model: type[BaseModel] | None, noun: str = "key",
              extra_keys: tuple[str, ...] = (), key_context: str = "", given: Any = None) -> list[Issue]:
    """Every error of one validation: unknown keys first, then wrong values, then missing keys.

    `extra_keys` are keys the caller handled itself (`name`, `metric`) that an 'unknown key' message should still
    list as allowed; `key_context` follows the key in that message (` for metric alerts_fired`); `given` is what was
    validated, so a message quotes a value as written (`'0s'`), not as converted.
    """
    issues = []
    for error in exc.errors(include_url=False):
        message, at_key = _message(error, model, noun, extra_keys, key_context, given)
        issues.append(Issue(tuple(error["loc"]), message, at_key))
    order = {"extra_forbidden": 0, "missing": 2}
    kinds = [e["type"] for e in exc.errors(include_url=False)]
    return [issue for _, _, issue in sorted(zip((order.get(k, 1) for k in kinds), range(len(issues)), issues))]
