"""A scenario's YAML text as plain Python values, with the line of every value: the layer below the typed models.

Pure: standard library and PyYAML. What it does, so that nothing downstream has to:
- parse with PyYAML's safe composer, and report a syntax error with its line and column;
- substitute `${VAR}` and `${VAR:-default}` (`$$` is a literal `$`) inside scalar values after parsing, as docker
  compose does, so a value can never change the file's structure and line numbers stay exact. A plain scalar is
  re-typed after substitution (`${N:-3}` is the number 3), and so is a quoted one that is a single reference
  (inside a flow mapping `{cores: ${N}}` is not valid YAML, so write `{cores: "${N:-1}"}`);
- apply `<<` merge keys, and report duplicate keys, non-text keys and deep nesting, each with its line;
- construct every scalar on its own, safely: whatever a tag or a value does inside PyYAML (`!!bool maybe` raises
  KeyError there) becomes a located problem, never an exception;
- bound what aliases can expand to, so an alias bomb is a problem, not a hang.

Example:
    doc = read_document("name: t\\nfaults:\\n  - {at: 30s}\\n", "x.yml", environ={})
    doc.value == {"name": "t", "faults": [{"at": "30s"}]} and doc.line(("faults", 0, "at")) == 3
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from chaos_events.errors import Problem

Path = tuple  # of str (mapping keys) and int (list indexes)
MAX_DEPTH = 40              # deeper than any scenario needs; deeper still would hit Python's recursion limit
MAX_VALUES = 200_000        # what a document may expand to through aliases
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")   # what YAML counts as the end of a line
# `$$` (a literal dollar), `${NAME}`, `${NAME:-default}`, or a malformed `${...` that we report.
_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|(\{[^}]*\}?))")


@dataclass
class Document:
    """Plain values plus where each came from. Invariant: every path in `value` has a line in `lines`.

    `reported` holds the paths whose problem was already reported (a failed substitution, a bad scalar): they are
    left out of `value`, and no later check reports them again.
    """

    source: str
    value: Any = None
    lines: dict[Path, int] = field(default_factory=dict)
    key_lines: dict[Path, int] = field(default_factory=dict)
    reported: set[Path] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def line(self, path: Path) -> int | None:
        """The line of the value at `path`, else of its nearest ancestor."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def key_line(self, path: Path) -> int | None:
        """The line of the key that holds `path` (for 'unknown key'), else the value's line."""
        return self.key_lines.get(tuple(path)) or self.line(path)

    def was_reported(self, path: Path) -> bool:
        """True when `path` or one of its ancestors already has its problem reported."""
        return any(tuple(path[:len(p)]) == p for p in self.reported)

    def reported_below(self, path: Path) -> bool:
        """True when something inside `path` was reported (and so left out of the values)."""
        return any(p[:len(path)] == tuple(path) for p in self.reported)

    def problem(self, line: int | None, field_name: str, message: str) -> None:
        self.problems.append(Problem(self.source, line, field_name, message))


def describe_node(node: Node | None) -> str:
    """What we received, for 'expected X; got Y'."""
    if node is None:
        return "nothing"
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL_TAG:
        return "null"
    if node.tag == _STR_TAG:
        return repr(node.value)
    return str(node.value)


def node_line(node: Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None and node.start_mark is not None else None


def read_document(text: Any, source: str, environ: Mapping[str, str]) -> Document:
    """Parse, interpolate and convert. `value` is None when the text is not YAML or is empty (see `problems`)."""
    doc = Document(source)
    if not isinstance(text, str):
        doc.problem(None, "", f"expected scenario text; got {type(text).__name__}")
        return doc
    root = _compose(text, doc)
    if root is None:
        return doc
    tainted = _Interpolator(doc, environ).run(root)
    doc.value = _Converter(doc, tainted).convert(root, ())
    return doc


def _compose(text: str, doc: Document) -> Node | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "cannot parse"
        column = f" (column {mark.column + 1})" if mark is not None else ""
        context = ""
        if exc.problem and exc.context:  # e.g. "while parsing a flow mapping", where that started
            where = f" at line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
            context = f"; {exc.context}{where}"
        doc.problem(mark.line + 1 if mark is not None else None, "", f"invalid YAML: {what}{column}{context}")
        return None
    except yaml.reader.ReaderError as exc:  # a control character, a lone surrogate: it has a position, not a mark
        breaks = list(_LINE_BREAK.finditer(text, 0, exc.position))   # counted as PyYAML's marks count them
        line = len(breaks) + 1
        column = exc.position - (breaks[-1].end() if breaks else 0) + 1
        doc.problem(line, "", f"invalid YAML: unacceptable character #x{exc.character:04x} (column {column}): "
                              f"{exc.reason}")
        return None
    except yaml.YAMLError as exc:
        doc.problem(None, "", f"invalid YAML: {exc}")
        return None
    except RecursionError:  # the composer recurses on nesting; the scanner does not, so it finds the line
        doc.problem(_too_deep_line(text), "", f"invalid YAML: nested too deeply (more than {MAX_DEPTH} levels)")
        return None
    return root


_OPENS = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken, yaml.BlockSequenceStartToken,
          yaml.BlockMappingStartToken)
_CLOSES = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)


def _too_deep_line(text: str) -> int | None:
    """The line of the first collection nested more than MAX_DEPTH deep, from the token stream (no recursion)."""
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, _OPENS):
                depth += 1
                if depth > MAX_DEPTH + 1:  # the converter counts the top-level collection as depth 0
                    return token.start_mark.line + 1
            elif isinstance(token, _CLOSES):
                depth -= 1
    except yaml.YAMLError:  # a syntax error after the deep part: the composer never got that far either
        return None
    return None


class _Interpolator:
    """Substitutes ${VAR} in every scalar once (aliases share nodes), re-typing plain scalars."""

    def __init__(self, doc: Document, environ: Mapping[str, str]):
        self.doc = doc
        self.environ = environ
        self.resolver = Resolver()
        self.tainted: set[int] = set()   # node ids whose substitution failed: already reported

    def run(self, root: Node) -> set[int]:
        """Substitute everywhere; returns the ids of the scalars whose substitution failed."""
        seen: set[int] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, ScalarNode):
                if "$" in node.value:
                    self._substitute(node)
            elif isinstance(node, SequenceNode):
                stack.extend(node.value)
            elif isinstance(node, MappingNode):
                for key, value in node.value:
                    stack.extend((key, value))
        return self.tainted

    def _substitute(self, node: ScalarNode) -> None:
        old = node.value

        def replace(match: re.Match) -> str:
            dollar, name, default, malformed = match.groups()
            if dollar:
                return "$"
            if malformed is not None:
                self.doc.problem(node_line(node), "", f"malformed variable reference {match.group(0)!r}; "
                                                      "expected ${NAME} or ${NAME:-default}")
                self.tainted.add(id(node))
                return ""
            value = self.environ.get(name)
            if default is not None and not value:
                return default
            if value is None:
                self.doc.problem(node_line(node), "", f"environment variable {name!r} is not set and has no default; "
                                                      f"set it or write ${{{name}:-default}}")
                self.tainted.add(id(node))
                return ""
            return value

        new = _VARIABLE.sub(replace, old)
        if new == old:
            return
        implicit = node.style is None and node.tag == self.resolver.resolve(ScalarNode, old, (True, False))
        whole = node.tag == _STR_TAG and _VARIABLE.fullmatch(old) is not None and not old.startswith("$$")
        node.value = new
        if implicit or whole:  # `${N:-3}` becomes the number 3, as if written plainly; an explicit tag is kept
            node.tag = self.resolver.resolve(ScalarNode, new, (True, False))


class _Converter:
    """Nodes -> plain values, recording lines. Problems go to the document; bad values are left out."""

    def __init__(self, doc: Document, tainted: set[int]):
        self.doc = doc
        self.tainted = tainted
        self.count = 0
        self.too_big = False

    def convert(self, node: Node, path: Path, depth: int = 0) -> Any:
        self.doc.lines[path] = node_line(node)
        self.count += 1
        if self.count > MAX_VALUES:
            if not self.too_big:
                self.too_big = True
                self.doc.problem(node_line(node), "", f"the scenario expands to more than {MAX_VALUES} values "
                                                      "(through aliases?); write it out or make it smaller")
            return _Omitted
        if depth > MAX_DEPTH:
            self.doc.problem(node_line(node), _field_of(path), f"nested too deeply (more than {MAX_DEPTH} levels)")
            self.doc.reported.add(path)
            return _Omitted
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode):
            return self._sequence(node, path, depth)
        return self._mapping(node, path, depth)

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        if id(node) in self.tainted:
            self.doc.reported.add(path)
            return _Omitted
        if node.tag == _MERGE_TAG:
            return node.value
        try:
            # A fresh constructor each time: a failed construction leaves state behind in the old one.
            value = SafeConstructor().construct_object(node, deep=True)
            if isinstance(value, str) and not _is_unicode(value):
                raise _NotUnicode()
            return value
        except Exception as exc:  # noqa: BLE001  (any tag or value may fail inside PyYAML: KeyError, ValueError...)
            key = path[-1] if path and isinstance(path[-1], str) else None
            prefix = f"{key!r}: " if key else ""
            self.doc.problem(node_line(node), _field_of(path), f"{prefix}{_construction_failure(node, exc)}")
            self.doc.reported.add(path)
            return _Omitted

    def _sequence(self, node: SequenceNode, path: Path, depth: int) -> list:
        out = []
        for index, item in enumerate(node.value):
            value = self.convert(item, (*path, index), depth + 1)
            out.append(None if value is _Omitted else value)
        return out

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict:
        out: dict[str, Any] = {}
        first_line: dict[str, int | None] = {}
        for key, key_node, value_node in self._entries(node, path, depth):
            if key in first_line:
                self.doc.problem(node_line(key_node), _field_of(path),
                                 f"duplicate key {key!r} (first at line {first_line[key]})")
                continue
            first_line[key] = node_line(key_node)
            self.doc.key_lines[(*path, key)] = node_line(key_node)
            value = self.convert(value_node, (*path, key), depth + 1)
            if value is not _Omitted:
                out[key] = value
        return out

    def _entries(self, node: MappingNode, path: Path, depth: int) -> list[tuple[str, Node, Node]]:
        """(key text, key node, value node); entries merged by `<<` fill in what the mapping does not set itself."""
        own: list[tuple[str, Node, Node]] = []
        merged: list[tuple[str, Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                merged.extend(self._merged(value_node, path, depth + 1))
            elif isinstance(key_node, ScalarNode) and _is_unicode(key_node.value):
                own.append((key_node.value, key_node, value_node))
            else:
                what = describe_node(key_node) + ("" if not isinstance(key_node, ScalarNode) else " (a lone surrogate)")
                self.doc.problem(node_line(key_node), _field_of(path), f"keys must be plain text; got {what}")
        names = {key for key, _, _ in own}
        extra = []
        for entry in merged:  # the first merge source wins
            if entry[0] not in names:
                names.add(entry[0])
                extra.append(entry)
        return own + extra

    def _merged(self, node: Node, path: Path, depth: int) -> list[tuple[str, Node, Node]]:
        if depth > MAX_DEPTH:
            self.doc.problem(node_line(node), _field_of(path), "'<<' merges nest too deeply")
            return []
        sources = node.value if isinstance(node, SequenceNode) else [node]
        out: list[tuple[str, Node, Node]] = []
        for source in sources:
            if not isinstance(source, MappingNode):
                self.doc.problem(node_line(source), _field_of(path),
                                 f"'<<' expects a mapping or a list of mappings; got {describe_node(source)}")
                continue
            for key_node, value_node in source.value:
                if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                    out.extend(self._merged(value_node, path, depth + 1))
                elif isinstance(key_node, ScalarNode) and _is_unicode(key_node.value):
                    out.append((key_node.value, key_node, value_node))
        return out


class _NotUnicode(ValueError):
    """Text with a lone surrogate: it cannot be printed or written as UTF-8."""


def _is_unicode(text: str) -> bool:
    """False for text that holds a lone surrogate (`"\\ud800"` in YAML): it cannot be printed or written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _construction_failure(node: ScalarNode, exc: Exception) -> str:
    """Why PyYAML could not build a scalar, in words: `!!bool maybe` -> expected true or false; got 'maybe'."""
    tag = node.tag.rsplit(":", 1)[-1]
    if isinstance(exc, _NotUnicode):
        return f"expected Unicode text; got {node.value!r} (a lone surrogate, as from an escape like \\ud800)"
    if tag == "bool":
        return f"expected true or false; got {node.value!r}"
    if tag in ("int", "float"):
        return f"expected a number for tag !!{tag}; got {node.value!r}"
    reason = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
    return f"invalid value {node.value!r} (tag {node.tag}): {reason}"


class _OmittedType:
    """A value whose problem is already reported: left out of the plain values."""

    def __repr__(self) -> str:
        return "<omitted>"


_Omitted = _OmittedType()


def _field_of(path: Path) -> str:
    """The field label of a path's container, as the loader names it: `faults[2]`, `targets.broker`, `settings`."""
    if not path:
        return ""
    head = path[0]
    if head in ("faults", "slos") and len(path) > 1 and isinstance(path[1], int):
        return f"{head}[{path[1]}]"
    if head in ("targets", "probes") and len(path) > 1:
        return f"{head}.{path[1]}"
    return str(head)
