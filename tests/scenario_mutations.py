"""Hostile scenario files built from the real grammar: each real `scenarios/*.yml` with exactly one thing changed.

A case starts from one real file, parsed to Python data, and changes one field: a wrong type, a huge or negative
number, Unicode digits, a YAML tag, an alias, deep nesting, NUL bytes, lone surrogates, a renamed or deleted key.
The result is emitted as YAML text again; what yaml.dump cannot express (duplicate keys, tags, aliases, undefined
aliases, binary garbage) is spliced into the emitted or the original text instead.

Used by the loader fuzz (tests/unit/test_plan_fuzz.py) and the entry-point parity test (test_entry_parity.py).
"""
from __future__ import annotations

import copy
import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.yml"))
assert SCENARIO_FILES, "no scenarios/*.yml to start from"
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class Base:
    name: str
    text: str
    data: Any
    paths: tuple          # every path to a value, except the root
    mapping_paths: tuple  # every path to a mapping, the root included


def _paths(node: Any, prefix: tuple = ()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _base(path: Path) -> Base:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    every = list(_paths(data))
    mappings = tuple(p for p in every if isinstance(_get(data, p), dict))
    return Base(path.name, text, data, tuple(every[1:]), mappings)


def _get(data: Any, path: tuple) -> Any:
    for step in path:
        data = data[step]
    return data


BASES = tuple(_base(p) for p in SCENARIO_FILES)


def _nested(depth: int, leaf: Any = "x", mapping: bool = False) -> Any:
    for _ in range(depth):
        leaf = {"k": leaf} if mapping else [leaf]
    return leaf


# Values yaml.dump can write: each replaces one field's value.
HOSTILE_VALUES = [
    None, True, False, 0, -1, -5, -10**6, 2**63, 2**64, 10**400, -10**400, float("inf"), float("-inf"), float("nan"),
    1e308, -1e308, -0.0, 0.5, "", " ", "\t", "①", "²", "٣", "٣٣", "٣s", "①s", "²MB", "٣%", "١٠٠ms", "1e400",
    "-1e400", "1e400s", "9" * 400, "-" + "9" * 400, "9" * 400 + "s", "-5s", "0s", "-0", "NaN", "inf", "1_000",
    "0x1F", "10%%", "-10%", "\x00", "a\x00b", "\ud800", "x\udfffy", "\U0010ffff", "x" * 5000, "${UNSET_VAR_FUZZ}",
    "${", "$${X}", "${BAD-NAME}", [], {}, [None], {"": None}, {1: 2}, ["a", "b"], _nested(60), _nested(60, mapping=True),
    b"\x00\xff\xfe", datetime.date(2001, 1, 1), datetime.datetime(2001, 1, 1, 12, 0), "127.0.0.1:99999",
    "127.0.0.1:①", "http://127.0.0.1:99999/", "http://[::1:80/", "256.256.256.256", "/", "..", "pause; rm -rf /",
]

# YAML text for one value, spliced in where yaml.dump cannot go: tags, aliases, anchors, raw escapes.
_SMALL_BOMB = "[&a [x, x, x], &b [*a, *a, *a], &c [*b, *b, *b], &d [*c, *c, *c]]"
BIG_BOMB = ("[&a [x,x,x,x,x,x,x,x,x,x], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], "
            "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]")
SNIPPETS = [
    "!!bool maybe", "!!bool yes", "!!bool 1", "!!int ①", "!!int ²", "!!int ٣", "!!int 1e3", "!!int 0x", "!!float ٣",
    "!!float 1e400", "!!float -1e400", "!!float nan", "!!float x", "!!null x", "!!str", "!!timestamp 2001-13-45",
    "!!timestamp x", "!!binary aGVsbG8=", "!!binary 'not base64!'", "!!python/object:os.system ls",
    "!!python/object/apply:os.system [echo hi]", "!!python/name:os.system", "!!python/tuple [1, 2]", "!!set {a, b}",
    "!!omap [a: 1, b: 2]", "!!pairs [a: 1]", "!!map [1, 2]", "!!seq {a: 1}", "!foo bar", "!<tag:x> y", "!! x",
    "!!merge x", "*nope", "&a x", "&a [*a]", "&a {k: *a}", _SMALL_BOMB, "1e400", "-1e400", "1.0e+400", "-1.0e+400",
    "-.inf", ".nan", "0o17", "0b101", "1_000", "1:30", "10" + "0" * 400, "-" + "9" * 400, "'" + "x" * 3000 + "'",
    '"\\0"', '"\\x00"', '"a\\0b"', '"\\ud800"', '"\\udfff\\ud800"', '"\\U0010FFFF"', '"\\N"', '"\\e"',
    "'unterminated", '"unterminated', "[1, 2", "{a: 1", "{a: 1, a: 2}", "{<<: *nope}", "{<<: [1, 2]}",
    "{<<: {at: 1s}}", "{? [a, b] : c}", "[" * 60 + "]" * 60, "[" * 600 + "]" * 600, "{a: " * 60 + "x" + "}" * 60,
    "${UNSET_VAR_FUZZ}", "${X", "$${X}", "${X:-${Y}}", '"${X:-1e400}"', "key: value", "- x", "|", ">", "%", "@x",
    "`x`", "?", ":", "-", "---", "...", "&", "*", "!", "#", "\t", "~", "①", "²", "٣", "٣s", "-5s", "null", "[]", "{}",
]
_PLACEHOLDER = "__FUZZ_VALUE__"
_DUP_KEY = "__FUZZ_DUPKEY__"
KINDS = ("value", "delete", "rename", "splice", "duplicate", "line", "garbage")
_KEY_LINE = re.compile(r"^(\s*(?:- )?)([A-Za-z_][\w-]*):(\s|$)")


def _emit(data: Any, flow: bool | None, unicode: bool) -> str:
    options = dict(default_flow_style=flow, allow_unicode=unicode, sort_keys=False, width=10**6)
    try:
        return yaml.dump(data, Dumper=_Dumper, **options)
    except UnicodeEncodeError:  # libyaml cannot write a lone surrogate; the pure-Python dumper escapes it
        return yaml.dump(data, Dumper=yaml.SafeDumper, **options)


def _set(data: Any, path: tuple, value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def _delete(data: Any, path: tuple) -> None:
    del _get(data, path[:-1])[path[-1]]


def _rename(data: Any, path: tuple, new_key: Any) -> None:
    """Rename the key at `path` (or, for a list item, replace the item by a one-key mapping)."""
    parent = _get(data, path[:-1])
    if isinstance(parent, dict):
        parent_items = list(parent.items())
        parent.clear()
        for key, value in parent_items:
            parent[new_key if key == path[-1] else key] = value
    else:
        parent[path[-1]] = {new_key: parent[path[-1]]}


_NEW_KEYS = [1, None, True, 1.5, "", " ", "①", "\x00", "\ud800", "name", "target", "fault", "at", "for", "<<",
             "targets", "latency_ms", "latncy_ms", "Name", "x" * 300, "${X}", "a.b", "-", "?"]


@st.composite
def mutated_files(draw: Any) -> tuple[str, str, str]:
    """(base file name, mutation kind, YAML text) with exactly one change to a real scenario."""
    base = draw(st.sampled_from(BASES))
    kind = draw(st.sampled_from(KINDS))
    data = copy.deepcopy(base.data)
    if kind == "line":  # one value on one line of the original text, comments and ${VAR}s kept
        return base.name, kind, _splice_line(base.text, draw)
    if kind == "garbage":  # raw characters or bytes inserted anywhere in the original text
        at = draw(st.integers(0, len(base.text)))
        junk = draw(st.one_of(st.text(min_size=1, max_size=20), st.binary(min_size=1, max_size=20).map(
            lambda b: b.decode("latin-1")), st.sampled_from(["\x00", "\ud800", "\t", "\ufeff", "\r", "\x85", "\u2028"])))
        return base.name, kind, base.text[:at] + junk + base.text[at:]
    if kind == "duplicate":
        return base.name, kind, _duplicate_key(base, data, draw)
    path = draw(st.sampled_from(base.paths))
    flow = draw(st.sampled_from([None, False, True]))
    unicode = draw(st.booleans())
    if kind == "value":
        value = draw(st.one_of(st.sampled_from(HOSTILE_VALUES), st.integers(), st.floats(), st.text(max_size=30),
                               st.sampled_from(base.paths).map(lambda p: copy.deepcopy(_get(base.data, p)))))
        _set(data, path, value)
    elif kind == "delete":
        _delete(data, path)
    elif kind == "rename":
        _rename(data, path, draw(st.sampled_from(_NEW_KEYS)))
    else:  # splice: the value written as raw YAML
        _set(data, path, _PLACEHOLDER)
        snippet = draw(st.sampled_from(SNIPPETS))
        return base.name, kind, _emit(data, False, True).replace(_PLACEHOLDER, snippet, 1)
    return base.name, kind, _emit(data, flow, unicode)


def _splice_line(text: str, draw: Any) -> str:
    lines = text.split("\n")
    keyed = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
    index = draw(st.sampled_from(keyed))
    match = _KEY_LINE.match(lines[index])
    snippet = draw(st.sampled_from(SNIPPETS))
    lines[index] = f"{match.group(1)}{match.group(2)}: {snippet}"
    return "\n".join(lines)


def _duplicate_key(base: Base, data: Any, draw: Any) -> str:
    """A mapping gets a second entry for one of its keys (yaml.dump cannot write that)."""
    path = draw(st.sampled_from(base.mapping_paths))
    mapping = _get(data, path)
    key = draw(st.sampled_from(sorted(mapping) or ["name"]))
    mapping[_DUP_KEY] = _PLACEHOLDER
    snippet = draw(st.sampled_from(["x", "1", "[]", "{}", "null", "-5s", "!!bool maybe", "*nope"]))
    return _emit(data, False, True).replace(f"{_DUP_KEY}: {_PLACEHOLDER}", f"{key}: {snippet}", 1)
