"""A scenario file becomes a typed, validated Plan; every problem names file, line and field.

Pure module: standard library and PyYAML only. No gevent, locust, docker or prometheus_client.
The loader (`load_plan`, `parse_plan`) collects every problem before raising one PlanError; the only I/O it does
is reading the file and, with `check_targets=True`, looking at pidfiles, pids, PATH and directories.

Scenario text may use `${VAR}` and `${VAR:-default}` (default when VAR is unset or empty); `$$` is a literal `$`.
Interpolation happens inside YAML scalar values after parsing (like docker compose), so a value can never change
the file's structure, line numbers stay exact, and comments are not interpolated. A plain scalar is re-typed after
substitution (`${N:-3}` is the number 3), and so is a quoted one that is a single reference: inside a flow mapping
`{cores: ${N}}` is not valid YAML, so write `{cores: "${N:-1}"}`. Text fields take a typed value as written.

Example:
    plan = load_plan("scenarios/broker-pause.yml")
    plan.faults[0].at_s == 30.0 and plan.targets["broker"].kind is TargetKind.PROCESS
"""
from __future__ import annotations

import enum
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from chaos_events.errors import PlanError, Problem
from chaos_events.scenario.safety import host_allowed, split_allowed
from chaos_events.scenario.units import parse_duration


class TargetKind(enum.Enum):
    PROCESS = "process"        # a local process: pidfile, pid, or a command the harness starts
    CONTAINER = "container"    # a Docker container: by name or label
    PROXY = "proxy"            # a named route in the harness's TCP fault proxy
    DIRECTORY = "directory"    # a directory to fill (disk faults)
    ENDPOINT = "endpoint"      # a TCP address or HTTP URL (pool exhaustion, bad payloads to the API)
    HOST = "host"              # this machine (CPU burn, memory pressure)
    KAFKA = "kafka"            # a Kafka topic (poison messages)


@dataclass(frozen=True)
class Target:
    """One allow-listed thing a fault may touch. `spec` holds the kind's own keys, already validated.

    Invariant: a fault only ever receives a Target that the scenario named.
    Example: Target("broker", TargetKind.PROCESS, {"pidfile": ".run/kafka.pid", "restart": None}, line=3)
    Spec keys per kind (a `|` means exactly one of them is present; every other listed key is always present):
      process:   pidfile | pid (int) | command (list of str); restart (list of str or None); cwd (str or None)
                 A `command`/`restart` whose first word is `python` or `python3` gets the harness's own interpreter
                 (sys.executable), so a scenario works from a virtualenv that is not activated.
      container: name | label ("key=value" or "key")
      proxy:     proxy (route name), control (URL of the proxy's control API, or None: the run's default)
      directory: path
      endpoint:  host, port (int), url (url is None for a bare "host:port")
      host:      (none; `{host: local}` is this machine)
      kafka:     bootstrap ("host:port[,host:port]"), topic
    """

    name: str
    kind: TargetKind
    spec: Mapping[str, Any]
    line: int | None = None

    def describe(self) -> str:
        return f"{self.name} ({self.kind.value})"


@dataclass(frozen=True)
class Repeat:
    """Inject the same fault `times` times in all, one every `every_s` seconds from `at`."""

    every_s: float
    times: int


@dataclass(frozen=True)
class FaultSpec:
    """One fault on the timeline, before expansion of `repeat`.

    Example: FaultSpec(index=0, type="pause", target="broker", at_s=30.0, for_s=20.0, params={}, line=9)
    `params` holds the fault type's raw parameters; the fault registry turns them into its frozen dataclass.
    """

    index: int
    type: str
    target: str
    at_s: float
    for_s: float
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    repeat: Repeat | None = None
    line: int | None = None

    def occurrences(self) -> list[tuple[float, float]]:
        """(start, end) run times of every occurrence, repeat included."""
        count = self.repeat.times if self.repeat else 1
        every = self.repeat.every_s if self.repeat else 0.0
        return [(self.at_s + i * every, self.at_s + i * every + self.for_s) for i in range(count)]


class ProbeKind(enum.Enum):
    HTTP = "http"                            # health endpoint: status plus per-dependency state in the body
    KAFKA_LAG = "kafka_lag"                  # consumer-group lag through the admin API
    PROMETHEUS_ALERTS = "prometheus_alerts"  # /api/v1/alerts of a user-configured Prometheus


@dataclass(frozen=True)
class ProbeSpec:
    """Something sampled on a period during the whole run. Example: ProbeSpec("health", ProbeKind.HTTP, 1.0, {"url": ...}).

    Params per kind (every key always present):
      http:              url, expect_status (tuple of int, default (200,)), timeout_s (float, default 2.0)
      kafka_lag:         bootstrap, group, topic
      prometheus_alerts: url (None: use --chaos-prometheus-url)
    """

    name: str
    kind: ProbeKind
    every_s: float
    params: Mapping[str, Any]
    line: int | None = None


class SloMetric(enum.Enum):
    ERROR_RATE = "error_rate"
    LATENCY = "latency"                  # a percentile, absolute (max) or as ratio to baseline (max_ratio)
    THROUGHPUT_DROP = "throughput_drop"  # 1 - rps(phase)/rps(baseline)
    DETECTION_TIME = "detection_time"
    RECOVERY_TIME = "recovery_time"
    LOST_WRITES = "lost_writes"
    DUPLICATES = "duplicates"
    ALERTS_FIRED = "alerts_fired"
    HEALTH_TRUTHFUL = "health_truthful"
    BLAST_RADIUS = "blast_radius"
    DATA_REJECTED = "data_rejected"      # bad payloads were refused with 4xx and dead-lettered


class Phase(enum.Enum):
    BASELINE = "baseline"
    FAULT = "fault"
    RECOVERY = "recovery"
    TAIL = "tail"          # steady state after the last recovery window
    ALL = "all"


@dataclass(frozen=True)
class SloSpec:
    """One recovery objective. `params` holds the metric's own keys (max, min, during, endpoints, via, ...), validated.

    Example: SloSpec("recovery", SloMetric.RECOVERY_TIME, {"max": 30.0, "endpoints": ()}, line=14)
    Params per metric (every key always present; durations are float seconds, ratios floats in 0..1,
    `during` a Phase, `endpoints` a tuple of "METHOD name" or "name" strings where () means every endpoint):
      error_rate:      during (default FAULT), max, endpoints
      latency:         percentile (50..99.9, default 95.0), during (default FAULT), endpoints,
                       max (seconds) and/or max_ratio (to baseline): at least one is set, an absent one is None
      throughput_drop: during (default FAULT), max, endpoints
      detection_time:  via (a declared probe name, or "errors": the error rate leaving the baseline band), max,
                       targets (only faults on these targets count; default: every fault)
      recovery_time:   max, endpoints, method ("band" | "mann_whitney", default "band"), targets (as detection_time)
      lost_writes:     max (int, default 0), check ("kafka" | "pipeline" | "all", default "all")
      duplicates:      max (int, default 0)
      alerts_fired:    alerts (tuple of alert names), within (seconds), silent_failure (bool, default False),
                       probe (a declared prometheus_alerts probe, or None: every such probe)
      health_truthful: probe (a declared http probe), endpoints, error_threshold (default 0.5),
                       max (int: seconds the probe may contradict the clients, default 0)
      blast_radius:    endpoints (the endpoints that must stay unaffected; at least one), during (default FAULT),
                       max (int: how many of them may leave their baseline band, default 0), max_ratio (or None)
      data_rejected:   max_accepted (int, default 0)
    """

    name: str
    metric: SloMetric
    params: Mapping[str, Any]
    line: int | None = None


@dataclass(frozen=True)
class Settings:
    """Scenario-wide knobs with safe defaults."""

    recovery_window_s: float = 30.0     # how long after a fault ends counts as its recovery phase
    sustain_s: float = 5.0              # recovered means within the baseline band for this long
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    catch_up_s: float = 30.0            # ledger verification deadline at the end


@dataclass(frozen=True)
class Plan:
    """A validated scenario. Invariant: every fault names a declared target and a registered fault type.

    Example: load_plan("scenarios/gameday.yml").name == "gameday"
    """

    name: str
    source: str
    targets: Mapping[str, Target]
    probes: Mapping[str, ProbeSpec]
    faults: tuple[FaultSpec, ...]
    slos: tuple[SloSpec, ...]
    settings: Settings = Settings()
    description: str = ""
    extra_allowed: tuple[str, ...] = ()   # --chaos-allow: extra hosts and container names for this run

    def fault_windows(self) -> list[tuple[float, float, FaultSpec]]:
        """Every occurrence as (start, end, spec), sorted by start."""
        windows = [(start, end, spec) for spec in self.faults for start, end in spec.occurrences()]
        return sorted(windows, key=lambda w: (w[0], w[2].index))


# -- the loader: YAML nodes -> the types above, collecting every problem on the way ----------------------------
TOP_KEYS = ("name", "description", "targets", "probes", "faults", "slos", "settings")
FAULT_KEYS = ("at", "for", "fault", "target", "repeat", "params")
SETTINGS_KEYS = {"recovery_window": "recovery_window_s", "sustain": "sustain_s", "allowed_hosts": "allowed_hosts",
                 "catch_up": "catch_up_s"}
MAX_REPEAT_TIMES = 1000
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_PYTHON_NAMES = ("python", "python3")
# `$$` (a literal dollar), `${NAME}`, `${NAME:-default}`, or a malformed `${...` that we report.
_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|(\{[^}]*\}?))")


class _Bad:
    """Marks a value whose problem is already reported, so nothing downstream reports it again."""

    def __repr__(self) -> str:
        return "<bad>"


BAD: Any = _Bad()


def load_plan(path: str, extra_allowed: tuple[str, ...] | str = (), check_targets: bool = True,
              environ: Mapping[str, str] | None = None) -> Plan:
    """Read and validate a scenario file. Raises PlanError listing every problem.

    `check_targets=False` skips every check that looks at this machine now: that targets exist (pidfiles, pids,
    PATH, directories) and each fault class's own `check` (caps, free space). It is for validating a scenario
    before the platform is up; a run always uses the default, True.
    """
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
    except OSError as exc:
        raise PlanError([Problem(source, None, "", f"cannot read the scenario file: {exc.strerror or exc}")]) from None
    return parse_plan(text, source, extra_allowed, check_targets=check_targets, environ=environ)


def parse_plan(text: str, source: str, extra_allowed: tuple[str, ...] | str = (), check_targets: bool = True,
               environ: Mapping[str, str] | None = None) -> Plan:
    """Validate scenario text; `source` names it in messages. `environ` defaults to os.environ."""
    loader = _Loader(source, os.environ if environ is None else environ, check_targets, split_allowed(extra_allowed))
    plan = loader.load(text)
    if loader.problems or plan is None:
        problems = sorted(loader.problems, key=lambda p: p.line or 0)
        raise PlanError(problems or [Problem(source, None, "", "invalid scenario")])
    return plan


def _line(node: Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None and node.start_mark is not None else None


def _describe(node: Node | None) -> str:
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


def _join(names: Any) -> str:
    return ", ".join(sorted(names))


def _g(seconds: float) -> str:
    return f"{seconds:g}s"


class _Loader:
    """One validation pass. Holds the problems found so far; every check appends and carries on."""

    def __init__(self, source: str, environ: Mapping[str, str], check_targets: bool, extra_allowed: tuple[str, ...]):
        self.source = source
        self.environ = environ
        self.check_targets = check_targets
        self.extra_allowed = extra_allowed
        self.problems: list[Problem] = []
        self._resolver = Resolver()
        self._tainted: set[int] = set()           # scalars whose interpolation failed: already reported
        self.declared_targets: set[str] = set()   # every name under `targets`, valid or not
        self.down_targets: list[tuple[str, Any, str]] = []   # startable process targets that are not running now
        self.declared_probes: set[str] = set()

    def problem(self, where: Node | int | None, field: str, message: str) -> None:
        line = where if isinstance(where, int) or where is None else _line(where)
        self.problems.append(Problem(self.source, line, field, message))

    # -- YAML, interpolation ---------------------------------------------------------------------
    def load(self, text: str) -> Plan | None:
        if not isinstance(text, str):
            self.problem(None, "", f"expected scenario text; got {type(text).__name__}")
            return None
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
            self.problem(mark.line + 1 if mark is not None else None, "", f"invalid YAML: {what}{column}{context}")
            return None
        except yaml.YAMLError as exc:
            self.problem(None, "", f"invalid YAML: {exc}")
            return None
        except RecursionError:
            self.problem(None, "", "invalid YAML: nested too deeply")
            return None
        if root is None:
            self.problem(None, "", f"scenario is empty; expected a mapping with keys: {', '.join(TOP_KEYS)}")
            return None
        self.interpolate(root)
        return self.plan(root)

    def interpolate(self, root: Node) -> None:
        """Substitute ${VAR} in every scalar once (aliases share nodes), re-typing plain scalars."""
        seen: set[int] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, ScalarNode):
                if "$" in node.value:
                    self._substitute_node(node)
            elif isinstance(node, SequenceNode):
                stack.extend(node.value)
            elif isinstance(node, MappingNode):
                for key, value in node.value:
                    stack.extend((key, value))

    def _substitute_node(self, node: ScalarNode) -> None:
        old = node.value

        def replace(match: re.Match) -> str:
            dollar, name, default, malformed = match.groups()
            if dollar:
                return "$"
            if malformed is not None:
                self.problem(node, "", f"malformed variable reference {match.group(0)!r}; expected ${{NAME}} or ${{NAME:-default}}")
                self._tainted.add(id(node))
                return ""
            value = self.environ.get(name)
            if default is not None and not value:
                return default
            if value is None:
                self.problem(node, "", f"environment variable {name!r} is not set and has no default; set it or write ${{{name}:-default}}")
                self._tainted.add(id(node))
                return ""
            return value

        new = _VARIABLE.sub(replace, old)
        if new == old:
            return
        implicit = node.style is None and node.tag == self._resolver.resolve(ScalarNode, old, (True, False))
        # In a flow mapping `{cores: ${N}}` must be quoted, so a quoted value that is one reference is typed too.
        whole = node.tag == _STR_TAG and _VARIABLE.fullmatch(old) is not None and not old.startswith("$$")
        node.value = new
        if implicit or whole:  # `${N:-3}` becomes the number 3, as if written plainly; an explicit tag is kept
            node.tag = self._resolver.resolve(ScalarNode, new, (True, False))

    # -- node helpers ------------------------------------------------------------------------------
    def pairs(self, node: Node, field: str, expected: str) -> list[tuple[str, Node, Node]] | None:
        """The entries of a mapping as (key text, key node, value node); `<<` merges applied; duplicates reported."""
        if not isinstance(node, MappingNode):
            self.problem(node, field, f"expected {expected}; got {_describe(node)}")
            return None
        out: list[tuple[str, Node, Node]] = []
        first_line: dict[str, int | None] = {}
        merged: list[tuple[str, Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                merged.extend(self._merged(value_node, field, depth=0))
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, field, f"keys must be plain text; got {_describe(key_node)}")
                continue
            key = key_node.value
            if key in first_line:
                self.problem(key_node, field, f"duplicate key {key!r} (first at line {first_line[key]})")
                continue
            first_line[key] = _line(key_node)
            out.append((key, key_node, value_node))
        # Merged entries fill in what the mapping does not set itself; the first merge source wins.
        for key, key_node, value_node in merged:
            if key not in first_line:
                first_line[key] = _line(key_node)
                out.append((key, key_node, value_node))
        return out

    def _merged(self, node: Node, field: str, depth: int) -> list[tuple[str, Node, Node]]:
        if depth > 20:
            self.problem(node, field, "'<<' merges nest too deeply")
            return []
        sources = node.value if isinstance(node, SequenceNode) else [node]
        out: list[tuple[str, Node, Node]] = []
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problem(source, field, f"'<<' expects a mapping or a list of mappings; got {_describe(source)}")
                continue
            for key_node, value_node in source.value:
                if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                    out.extend(self._merged(value_node, field, depth + 1))
                elif isinstance(key_node, ScalarNode):
                    out.append((key_node.value, key_node, value_node))
        return out

    def keyed(self, node: Node, field: str, expected: str, allowed: Any, required: tuple[str, ...] = ()) -> dict[str, Node] | None:
        """A mapping with known keys: unknown keys and missing required keys are reported."""
        entries = self.pairs(node, field, expected)
        if entries is None:
            return None
        out: dict[str, Node] = {}
        for key, key_node, value_node in entries:
            if key not in allowed:
                self.problem(key_node, field, f"unknown key {key!r}; expected one of: {_join(allowed)}")
                continue
            out[key] = value_node
        for key in required:
            if key not in out:
                self.problem(node, field, f"missing key {key!r}")
        return out

    def construct(self, node: Node, field: str, key: str) -> Any:
        """The plain Python value of a node (lists and mappings included), or BAD after reporting why not."""
        if id(node) in self._tainted:
            return BAD
        try:
            # A fresh constructor each time: a failed construction leaves state behind in the old one.
            return SafeConstructor().construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.problem(node, field, f"{key!r}: invalid value: {reason}")
            return BAD

    def text(self, node: Node, field: str, key: str, allow_empty: bool = False) -> Any:
        if id(node) in self._tainted:
            return BAD
        if not isinstance(node, ScalarNode) or node.tag in (_NULL_TAG, _BOOL_TAG) or node.tag == _MERGE_TAG:
            self.problem(node, field, f"{key!r}: expected text; got {_describe(node)}")
            return BAD
        value = node.value.strip()
        if not value and not allow_empty:
            self.problem(node, field, f"{key!r}: must not be empty")
            return BAD
        return value

    def duration(self, node: Node, field: str, key: str, positive: bool = False) -> Any:
        value = self.construct(node, field, key) if isinstance(node, ScalarNode) else node
        if value is BAD:
            return BAD
        if isinstance(value, Node):
            self.problem(node, field, f"{key!r}: expected a duration like 30s; got {_describe(node)}")
            return BAD
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.problem(node, field, f"{key!r}: {exc}")
            return BAD
        if positive and seconds <= 0:
            self.problem(node, field, f"{key!r}: must be more than zero; got {value!r}")
            return BAD
        return seconds

    def number(self, node: Node, field: str, key: str, low: float | None = None, high: float | None = None,
               integer: bool = False, percent: bool = False) -> Any:
        if not isinstance(node, ScalarNode):
            self.problem(node, field, f"{key!r}: expected a number; got {_describe(node)}")
            return BAD
        value = self.construct(node, field, key)
        if value is BAD:
            return BAD
        if percent and isinstance(value, str) and value.strip().endswith("%"):
            try:
                value = float(value.strip()[:-1]) / 100.0
            except ValueError:
                pass
        kind = "a whole number" if integer else ("a number or a percentage like 10%" if percent else "a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
            self.problem(node, field, f"{key!r}: expected {kind}; got {_describe(node)}")
            return BAD
        if integer and not float(value).is_integer():
            self.problem(node, field, f"{key!r}: expected {kind}; got {_describe(node)}")
            return BAD
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else (f"at least {low:g}" if low is not None else f"at most {high:g}")
            self.problem(node, field, f"{key!r}: must be {bounds}; got {_describe(node)}")
            return BAD
        return int(value) if integer else float(value)

    def boolean(self, node: Node, field: str, key: str) -> Any:
        value = self.construct(node, field, key) if isinstance(node, ScalarNode) else BAD
        if not isinstance(value, bool):
            if value is not BAD or not isinstance(node, ScalarNode):
                self.problem(node, field, f"{key!r}: expected true or false; got {_describe(node)}")
            return BAD
        return value

    def text_list(self, node: Node, field: str, key: str, allow_empty: bool = True) -> Any:
        """Text or a list of text -> tuple."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        out: list[str] = []
        for item in items:
            value = self.text(item, field, key)
            if value is BAD:
                return BAD
            out.append(value)
        if not out and not allow_empty:
            self.problem(node, field, f"{key!r}: must list at least one")
            return BAD
        return tuple(out)

    def choice(self, node: Node, field: str, key: str, choices: Any) -> Any:
        value = self.text(node, field, key)
        if value is BAD:
            return BAD
        if value not in choices:
            self.problem(node, field, f"{key!r}: unknown value {value!r}; expected one of: {_join(choices)}")
            return BAD
        return value

    def argv(self, node: Node, field: str, key: str) -> Any:
        """A command: a list of words, or one string split like a shell would."""
        if isinstance(node, ScalarNode):
            text = self.text(node, field, key)
            if text is BAD:
                return BAD
            try:
                words = shlex.split(text)
            except ValueError as exc:
                self.problem(node, field, f"{key!r}: cannot split the command: {exc}")
                return BAD
        else:
            words = self.text_list(node, field, key)
            if words is BAD:
                return BAD
            words = list(words)
        if not words:
            self.problem(node, field, f"{key!r}: must not be empty")
            return BAD
        if words[0] in _PYTHON_NAMES:
            words[0] = sys.executable
        return words

    # -- the plan ----------------------------------------------------------------------------------
    def plan(self, root: Node) -> Plan | None:
        top = self.keyed(root, "", f"a mapping at the top level with keys: {', '.join(TOP_KEYS)}", TOP_KEYS, required=("name",))
        if top is None:
            return None
        name = self.text(top["name"], "", "name") if "name" in top else BAD
        description = self.text(top["description"], "", "description", allow_empty=True) if "description" in top else ""
        settings = self.settings(top.get("settings"))
        targets = self.targets(top.get("targets"), settings)
        probes = self.probes(top.get("probes"))
        faults = self.faults(top.get("faults"), targets)
        self.report_down_targets(faults)
        slos = self.slos(top.get("slos"), probes)
        if self.problems or name is BAD or description is BAD or settings is BAD:
            return None
        return Plan(name=name, source=self.source, targets=targets, probes=probes, faults=tuple(faults),
                    slos=tuple(slos), settings=settings, description=description, extra_allowed=self.extra_allowed)

    def report_down_targets(self, faults: list[FaultSpec]) -> None:
        """A startable target that is down is a problem unless every fault on it is `start`."""
        for where_field, where, message in self.down_targets:
            name = where_field.removeprefix("targets.").split(" ", 1)[0]
            if any(f.target == name and f.type != "start" for f in faults):
                self.problem(where, where_field, message)

    def settings(self, node: Node | None) -> Any:
        if node is None:
            return Settings()
        values = self.keyed(node, "settings", "a mapping", SETTINGS_KEYS)
        if values is None:
            return BAD
        out: dict[str, Any] = {}
        for key, value_node in values.items():
            if key == "allowed_hosts":
                out[SETTINGS_KEYS[key]] = self.text_list(value_node, "settings", key)
            else:
                out[SETTINGS_KEYS[key]] = self.duration(value_node, "settings", key, positive=(key == "recovery_window"))
        return BAD if BAD in out.values() else Settings(**out)

    def allowed_hosts(self, settings: Any) -> tuple[str, ...]:
        base = settings.allowed_hosts if isinstance(settings, Settings) else Settings().allowed_hosts
        return tuple(base) + self.extra_allowed

    def one_kind(self, node: Node, field: str, what: str, kinds: list[str]) -> tuple[str, Node] | None:
        """A mapping with exactly one known `what` kind, like {process: {...}} -> ("process", its node)."""
        entries = self.pairs(node, field, f"a mapping with one {what} kind: {', '.join(kinds)}")
        if entries is None:
            return None
        if len(entries) != 1:
            given = ", ".join(k for k, _, _ in entries) or "none"
            self.problem(node, field, f"expected exactly one {what} kind: {', '.join(kinds)}; got: {given}")
            return None
        kind_text, kind_key, spec_node = entries[0]
        if kind_text not in kinds:
            self.problem(kind_key, field, f"unknown {what} kind {kind_text!r}; expected one of: {', '.join(kinds)}")
            return None
        return kind_text, spec_node

    # -- targets -----------------------------------------------------------------------------------
    def targets(self, node: Node | None, settings: Any) -> dict[str, Target]:
        if node is None:
            return {}
        entries = self.pairs(node, "targets", "a mapping of target names to targets, like {broker: {process: {pidfile: .run/broker.pid}}}")
        out: dict[str, Target] = {}
        kinds = [k.value for k in TargetKind]
        self.declared_targets = {name for name, _, _ in entries or []}
        for name, key_node, value_node in entries or []:
            field = f"targets.{name}"
            chosen = self.one_kind(value_node, field, "target", kinds)
            if chosen is None:
                continue
            kind_text, spec_node = chosen
            kind = TargetKind(kind_text)
            field = f"targets.{name} ({kind_text})"
            spec = getattr(self, f"target_{kind_text}")(spec_node, field, settings)
            if spec is BAD:
                continue
            out[name] = Target(name, kind, spec, line=_line(key_node))
        return out

    def target_process(self, node: Node, field: str, settings: Any) -> Any:
        values = self.keyed(node, field, "a mapping with pidfile, pid or command (and optional restart, cwd)",
                            ("pidfile", "pid", "command", "restart", "cwd"))
        if values is None:
            return BAD
        chosen = [k for k in ("pidfile", "pid", "command") if k in values]
        if len(chosen) != 1:
            got = ", ".join(chosen) if chosen else "none"
            self.problem(node, field, f"expected exactly one of: pidfile, pid, command; got: {got}")
            return BAD
        which = chosen[0]
        spec: dict[str, Any] = {}
        ok = True
        if which == "pidfile":
            spec["pidfile"] = self.text(values["pidfile"], field, "pidfile")
        elif which == "pid":
            spec["pid"] = self.number(values["pid"], field, "pid", low=1, integer=True)
            if spec["pid"] == 1:
                self.problem(values["pid"], field, "'pid': refusing to target process 1 (init)")
                spec["pid"] = BAD
        else:
            spec["command"] = self.argv(values["command"], field, "command")
        spec["restart"] = self.argv(values["restart"], field, "restart") if "restart" in values else None
        spec["cwd"] = self.text(values["cwd"], field, "cwd") if "cwd" in values else None
        if any(v is BAD for v in spec.values()):
            return BAD
        if self.check_targets:
            ok = self.check_process(node, values, field, spec)
        return spec if ok else BAD

    def check_process(self, node: Node, values: Mapping[str, Node], field: str, spec: dict[str, Any]) -> bool:
        """The target must exist now: a live pid, a readable pidfile naming a live pid, commands on PATH.

        A target that can be started (it has `restart` or `command`) may be down now if only `start` faults use it:
        that is what they are for. Whether that holds is known after the faults are read (`down_targets`).
        """
        ok = True
        startable = bool(spec.get("restart") or spec.get("command"))
        if "pidfile" in spec:
            path = spec["pidfile"]
            where = values["pidfile"]
            try:
                with open(path, encoding="utf-8") as handle:
                    content = handle.read().strip()
            except FileNotFoundError:
                message = f"pidfile {path!r} does not exist (is the process running?)"
                if not startable:
                    self.problem(where, field, message)
                    return False
                self.down_targets.append((field, where, message))
                content = None
            except (OSError, UnicodeDecodeError) as exc:
                self.problem(where, field, f"pidfile {path!r} cannot be read: {getattr(exc, 'strerror', None) or exc}")
                return False
            if content is not None and (not content.isdigit() or int(content) < 1):
                self.problem(where, field, f"pidfile {path!r} does not hold a process id; got {content[:40]!r}")
                return False
            pid = int(content) if content is not None else None
            if pid == 1:
                self.problem(where, field, f"pidfile {path!r} names process 1 (init); refusing to target it")
                return False
            if pid is not None and not _pid_alive(pid):
                message = f"process {pid} from pidfile {path!r} is not running"
                if startable:
                    self.down_targets.append((field, where, message))
                else:
                    self.problem(where, field, message)
                    ok = False
        if "pid" in spec and not _pid_alive(spec["pid"]):
            self.problem(values["pid"], field, f"process {spec['pid']} is not running")
            ok = False
        for key in ("command", "restart"):
            words = spec.get(key)
            if words and not _executable(words[0], spec.get("cwd")):
                self.problem(values[key], field, f"{key!r}: command {words[0]!r} not found on PATH")
                ok = False
        if spec.get("cwd") and not os.path.isdir(spec["cwd"]):
            self.problem(values["cwd"], field, f"'cwd': directory {spec['cwd']!r} does not exist")
            ok = False
        return ok

    def target_container(self, node: Node, field: str, settings: Any) -> Any:
        if isinstance(node, ScalarNode):
            name = self.text(node, field, "container")
            return BAD if name is BAD else {"name": name}
        values = self.keyed(node, field, "a container name or a mapping with name or label", ("name", "label"))
        if values is None:
            return BAD
        if len(values) != 1:
            got = ", ".join(values) if values else "none"
            self.problem(node, field, f"expected exactly one of: label, name; got: {got}")
            return BAD
        key, value_node = next(iter(values.items()))
        value = self.text(value_node, field, key)
        return BAD if value is BAD else {key: value}

    def target_proxy(self, node: Node, field: str, settings: Any) -> Any:
        if isinstance(node, ScalarNode):
            route = self.text(node, field, "proxy")
            return BAD if route is BAD else {"proxy": route, "control": None}
        values = self.keyed(node, field, "a route name or a mapping with name, control and server",
                            ("name", "control", "server"), required=("name",))
        if values is None:
            return BAD
        route = self.text(values["name"], field, "name") if "name" in values else BAD
        control = None
        if "control" in values:
            control = self.url(values["control"], field, "control", settings)
        # server: which proxy answers at `control`: the harness's own (default) or a real Toxiproxy. Kept only when
        # given, so the spec of a harness route stays {"proxy", "control"}; readers default it to "harness".
        server = self.choice(values["server"], field, "server", ("harness", "toxiproxy")) if "server" in values else None
        if BAD in (route, control, server):
            return BAD
        return {"proxy": route, "control": control, **({"server": server} if server else {})}

    def target_directory(self, node: Node, field: str, settings: Any) -> Any:
        path = self.text(node, field, "directory")
        if path is BAD:
            return BAD
        if self.check_targets and not os.path.isdir(path):
            self.problem(node, field, f"directory {path!r} does not exist")
            return BAD
        return {"path": path}

    def target_endpoint(self, node: Node, field: str, settings: Any) -> Any:
        text = self.text(node, field, "endpoint")
        if text is BAD:
            return BAD
        if "://" in text:
            url = self.url(node, field, "endpoint", settings)
            if url is BAD:
                return BAD
            parts = urlsplit(url)
            return {"host": parts.hostname, "port": parts.port or (443 if parts.scheme == "https" else 80), "url": url}
        address = self.address(node, field, "endpoint", text, settings)
        return BAD if address is BAD else {"host": address[0], "port": address[1], "url": None}

    def target_host(self, node: Node, field: str, settings: Any) -> Any:
        value = self.text(node, field, "host")
        if value is BAD:
            return BAD
        if value != "local":
            self.problem(node, field, f"'host': only 'local' (this machine) is supported; got {value!r}")
            return BAD
        return {}

    def target_kafka(self, node: Node, field: str, settings: Any) -> Any:
        values = self.keyed(node, field, "a mapping with bootstrap and topic", ("bootstrap", "topic"), required=("bootstrap", "topic"))
        if values is None or len(values) != 2:
            return BAD
        bootstrap = self.bootstrap(values["bootstrap"], field, "bootstrap", settings)
        topic = self.text(values["topic"], field, "topic")
        return BAD if BAD in (bootstrap, topic) else {"bootstrap": bootstrap, "topic": topic}

    def url(self, node: Node, field: str, key: str, settings: Any, check_host: bool = True) -> Any:
        text = self.text(node, field, key)
        if text is BAD:
            return BAD
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (raises ValueError for a bad port)
        except ValueError:
            self.problem(node, field, f"{key!r}: expected a URL like http://127.0.0.1:8000; got {text!r}")
            return BAD
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(node, field, f"{key!r}: expected a URL like http://127.0.0.1:8000; got {text!r}")
            return BAD
        if check_host and not self.host_ok(node, field, key, parts.hostname, settings):
            return BAD
        return text

    def address(self, node: Node, field: str, key: str, text: str, settings: Any) -> Any:
        host, sep, port = text.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            self.problem(node, field, f"{key!r}: expected host:port or an http:// URL; got {text!r}")
            return BAD
        if not self.host_ok(node, field, key, host, settings):
            return BAD
        return host, int(port)

    def bootstrap(self, node: Node, field: str, key: str, settings: Any) -> Any:
        text = self.text(node, field, key)
        if text is BAD:
            return BAD
        for server in text.split(","):
            if self.address(node, field, key, server.strip(), settings) is BAD:
                return BAD
        return text

    def host_ok(self, node: Node, field: str, key: str, host: str, settings: Any) -> bool:
        allowed = self.allowed_hosts(settings)
        if host_allowed(host, allowed):
            return True
        self.problem(node, field, f"{key!r}: host {host!r} is not allowed; allowed hosts: {', '.join(allowed)} "
                                  f"(add it to settings.allowed_hosts or to --chaos-allow)")
        return False

    # -- probes ------------------------------------------------------------------------------------
    def probes(self, node: Node | None) -> dict[str, ProbeSpec]:
        if node is None:
            return {}
        entries = self.pairs(node, "probes", "a mapping of probe names to probes, like {health: {http: {url: ..., every: 1s}}}")
        kinds = [k.value for k in ProbeKind]
        out: dict[str, ProbeSpec] = {}
        self.declared_probes = {name for name, _, _ in entries or []}
        for name, key_node, value_node in entries or []:
            field = f"probes.{name}"
            chosen = self.one_kind(value_node, field, "probe", kinds)
            if chosen is None:
                continue
            kind_text, spec_node = chosen
            field = f"probes.{name} ({kind_text})"
            probe = getattr(self, f"probe_{kind_text}")(spec_node, field)
            if probe is BAD:
                continue
            every, params = probe
            out[name] = ProbeSpec(name, ProbeKind(kind_text), every, params, line=_line(key_node))
        return out

    def probe_http(self, node: Node, field: str) -> Any:
        values = self.keyed(node, field, "a mapping with url and every", ("url", "every", "expect_status", "timeout"), required=("url", "every"))
        if values is None:
            return BAD
        url = self.url(values["url"], field, "url", None, check_host=False) if "url" in values else BAD
        every = self.duration(values["every"], field, "every", positive=True) if "every" in values else BAD
        status: Any = (200,)
        if "expect_status" in values:
            items = values["expect_status"].value if isinstance(values["expect_status"], SequenceNode) else [values["expect_status"]]
            codes = [self.number(item, field, "expect_status", low=100, high=599, integer=True) for item in items]
            status = BAD if BAD in codes or not codes else tuple(codes)
            if not codes:
                self.problem(values["expect_status"], field, "'expect_status': must list at least one status")
        timeout = self.duration(values["timeout"], field, "timeout", positive=True) if "timeout" in values else 2.0
        if BAD in (url, every, status, timeout):
            return BAD
        return every, {"url": url, "expect_status": status, "timeout_s": timeout}

    def probe_kafka_lag(self, node: Node, field: str) -> Any:
        keys = ("bootstrap", "group", "topic", "every")
        values = self.keyed(node, field, "a mapping with bootstrap, group, topic and every", keys, required=keys)
        if values is None or len(values) != len(keys):
            return BAD
        # A probe only reads, so its hosts are not held to the fault allow-list.
        bootstrap = self.text(values["bootstrap"], field, "bootstrap")
        group = self.text(values["group"], field, "group")
        topic = self.text(values["topic"], field, "topic")
        every = self.duration(values["every"], field, "every", positive=True)
        if BAD in (bootstrap, group, topic, every):
            return BAD
        return every, {"bootstrap": bootstrap, "group": group, "topic": topic}

    def probe_prometheus_alerts(self, node: Node, field: str) -> Any:
        values = self.keyed(node, field, "a mapping with every (and optional url)", ("url", "every"), required=("every",))
        if values is None:
            return BAD
        url = self.url(values["url"], field, "url", None, check_host=False) if "url" in values else None
        every = self.duration(values["every"], field, "every", positive=True) if "every" in values else BAD
        if BAD in (url, every):
            return BAD
        return every, {"url": url}

    # -- faults ------------------------------------------------------------------------------------
    def faults(self, node: Node | None, targets: Mapping[str, Target]) -> list[FaultSpec]:
        from chaos_events.faults.base import build_params, fault_type, known_fault_types  # lazy: faults.base imports this module

        if node is None:
            return []
        if not isinstance(node, SequenceNode):
            self.problem(node, "faults", f"expected a list of faults, like [{{at: 30s, for: 20s, fault: pause, target: broker}}]; got {_describe(node)}")
            return []
        known = known_fault_types()
        known_text = ", ".join(known) or "(no fault types registered)"
        out: list[FaultSpec] = []
        built: dict[int, Any] = {}
        for index, item in enumerate(node.value):
            entries = self.pairs(item, f"faults[{index}]", "a mapping like {at: 30s, for: 20s, fault: pause, target: broker}")
            if entries is None:
                continue
            values = {key: (key_node, value_node) for key, key_node, value_node in entries}
            type_node = values.get("fault", (None, None))[1]
            type_name = type_node.value if isinstance(type_node, ScalarNode) else None
            field = f"faults[{index}] ({type_name})" if type_name else f"faults[{index}]"
            cls = None
            if type_node is None:
                self.problem(item, field, f"missing key 'fault'; expected one of: {known_text}")
            elif self.text(type_node, field, "fault") is not BAD:
                if type_name in known:
                    cls = fault_type(type_name)
                else:
                    self.problem(type_node, field, f"unknown fault {type_name!r}; expected one of: {known_text}")
            at = for_ = BAD
            for key, label in (("at", "when the fault starts, e.g. 30s"), ("for", "how long it lasts, e.g. 20s")):
                if key not in values:
                    self.problem(item, field, f"missing key {key!r} ({label})")
                    continue
                value = self.duration(values[key][1], field, key, positive=(key == "for"))
                if key == "at":
                    at = value
                else:
                    for_ = value
            repeat = self.repeat(values["repeat"][1], field, for_) if "repeat" in values else None
            target = self.fault_target(values.get("target"), item, field, targets, cls)
            params_raw: dict[str, Any] = {}
            params_ok = True
            param_entries = [e for e in entries if e[0] not in FAULT_KEYS]
            if "params" in values:  # parameters may also sit in a nested `params:` mapping
                nested = self.pairs(values["params"][1], field, "a mapping of the fault's parameters")
                params_ok = nested is not None
                inline = {key for key, _, _ in param_entries}
                for entry in nested or []:
                    if entry[0] in inline:
                        self.problem(entry[1], field, f"parameter {entry[0]!r} is given twice (inline and under 'params')")
                        params_ok = False
                    else:
                        param_entries.append(entry)
            for key, key_node, value_node in param_entries:
                value = self.construct(value_node, field, key)
                if value is BAD:
                    params_ok = False
                else:
                    params_raw[key] = value
            params = None
            if cls is not None and params_ok:
                params, messages = build_params(cls, params_raw)
                for message in messages:
                    self.problem(self._param_node(param_entries, message, item), field, message)
                # A fault's own check looks at this machine now (free disk, memory, cores, PATH), so it belongs
                # with the target checks: offline validation before the platform is up skips it.
                if params is not None and target is not None and target is not BAD and self.check_targets:
                    for message in self.fault_check(cls, params, target):
                        self.problem(item, field, message)
            if BAD in (at, for_, repeat, target) or cls is None or params is None:
                continue
            built[index] = params
            out.append(FaultSpec(index=index, type=type_name, target=target.name, at_s=at, for_s=for_,
                                 params=params_raw, repeat=repeat, line=_line(item)))
        self.overlaps(out, built, targets, node)
        return out

    @staticmethod
    def _param_node(entries: list[tuple[str, Node, Node]], message: str, item: Node) -> Node:
        """Point a build_params message at the parameter's own line when it names one."""
        for key, key_node, _ in entries:
            if f"{key!r}" in message:
                return key_node
        return item

    @staticmethod
    def fault_check(cls: Any, params: Any, target: Target) -> list[str]:
        try:
            return [str(m) for m in (cls.check(params, target) or [])]
        except Exception as exc:  # a fault's own check must not turn bad input into a traceback
            return [f"check failed: {type(exc).__name__}: {exc}"]

    def fault_target(self, entry: tuple[Node, Node] | None, item: Node, field: str, targets: Mapping[str, Target], cls: Any) -> Any:
        if entry is None:
            self.problem(item, field, f"missing key 'target'; declared targets: {_join(self.declared_targets) or '(none)'}")
            return BAD
        node = entry[1]
        name = self.text(node, field, "target")
        if name is BAD:
            return BAD
        target = targets.get(name)
        if target is None:
            if name not in self.declared_targets:  # a declared but invalid target is reported where it is declared
                self.problem(node, field, f"unknown target {name!r}; declared targets: {_join(self.declared_targets) or '(none)'}")
            return BAD
        if cls is not None and cls.target_kinds and target.kind not in cls.target_kinds:
            allowed = _join(k.value for k in cls.target_kinds)
            self.problem(node, field, f"target {name!r} is a {target.kind.value} target; {cls.type_name} needs one of: {allowed}")
            return BAD
        return target

    def repeat(self, node: Node, field: str, for_: Any) -> Any:
        values = self.keyed(node, field, "a mapping with every and times, like {every: 60s, times: 3}", ("every", "times"), required=("every", "times"))
        if values is None or len(values) != 2:
            return BAD
        every = self.duration(values["every"], field, "every", positive=True)
        times = self.number(values["times"], field, "times", low=1, high=MAX_REPEAT_TIMES, integer=True)
        if BAD in (every, times):
            return BAD
        if for_ is not BAD and times > 1 and every < for_:
            self.problem(values["every"], field, f"'repeat': every ({_g(every)}) must be at least 'for' ({_g(for_)}), or the occurrences overlap")
            return BAD
        return Repeat(every_s=every, times=times)

    def overlaps(self, specs: list[FaultSpec], params: Mapping[int, Any], targets: Mapping[str, Target], node: Node) -> None:
        """Two faults on one target at once conflict, except proxy toxics of different types on different streams."""
        for i, first in enumerate(specs):
            for second in specs[i + 1:]:
                if first.target != second.target or _compatible(first, second, params, targets):
                    continue
                window = _first_overlap(first.occurrences(), second.occurrences())
                if window is None:
                    continue
                self.problem(second.line, f"faults[{second.index}] ({second.type})",
                             f"overlaps faults[{first.index}] ({first.type}) on target {first.target!r} from "
                             f"t={_g(window[0])} to t={_g(window[1])}; two faults on one target at once conflict "
                             f"(only proxy toxics of different types on different streams may overlap)")

    # -- SLOs --------------------------------------------------------------------------------------
    def slos(self, node: Node | None, probes: Mapping[str, ProbeSpec]) -> list[SloSpec]:
        if node is None:
            return []
        if not isinstance(node, SequenceNode):
            self.problem(node, "slos", f"expected a list of SLOs, like [{{name: recovery, metric: recovery_time, max: 30s}}]; got {_describe(node)}")
            return []
        metrics = [m.value for m in SloMetric]
        out: list[SloSpec] = []
        first_line: dict[str, int | None] = {}
        for index, item in enumerate(node.value):
            entries = self.pairs(item, f"slos[{index}]", "a mapping like {name: recovery, metric: recovery_time, max: 30s}")
            if entries is None:
                continue
            values = {key: value_node for key, _, value_node in entries}
            name_node = values.get("name")
            name = self.text(name_node, f"slos[{index}]", "name") if name_node is not None else BAD
            field = f"slos[{index}] ({name})" if name is not BAD else f"slos[{index}]"
            if name_node is None:
                self.problem(item, field, "missing key 'name'")
            elif name is not BAD:
                if name in first_line:
                    self.problem(name_node, field, f"duplicate SLO name {name!r} (first at line {first_line[name]})")
                    name = BAD
                else:
                    first_line[name] = _line(name_node)
            metric_node = values.get("metric")
            if metric_node is None:
                self.problem(item, field, f"missing key 'metric'; expected one of: {', '.join(metrics)}")
                continue
            metric = self.text(metric_node, field, "metric")
            if metric is BAD:
                continue
            if metric not in metrics:
                self.problem(metric_node, field, f"unknown metric {metric!r}; expected one of: {', '.join(metrics)}")
                continue
            rules = _SLO_RULES[metric]
            allowed = ("name", "metric", *rules)
            params: dict[str, Any] = {}
            ok = True
            for key, key_node, value_node in entries:
                if key in ("name", "metric"):
                    continue
                if key not in rules:
                    self.problem(key_node, field, f"unknown key {key!r} for metric {metric}; expected one of: {_join(allowed)}")
                    ok = False
                    continue
                value = self.slo_value(rules[key][0], value_node, field, key, probes)
                if value is BAD:
                    ok = False
                params[key] = value
            for key, (kind, default) in rules.items():
                if key in params:
                    continue
                if default is _REQUIRED:
                    if metric != "latency" or key not in ("max", "max_ratio"):
                        self.problem(item, field, f"missing key {key!r}")
                        ok = False
                else:
                    params[key] = default
            if metric == "latency" and ok and not any(k in params for k in ("max", "max_ratio")):
                self.problem(item, field, "missing key 'max' or 'max_ratio' (an absolute limit, a ratio to the baseline, or both)")
                ok = False
            if metric == "latency":
                for key in ("max", "max_ratio"):
                    params.setdefault(key, None)
                for key in ("max", "max_ratio"):
                    params.setdefault(key, None)
            if ok and name is not BAD:
                out.append(SloSpec(name, SloMetric(metric), params, line=_line(item)))
        return out

    def slo_value(self, kind: str, node: Node, field: str, key: str, probes: Mapping[str, ProbeSpec]) -> Any:
        if kind == "phase":
            value = self.choice(node, field, key, [p.value for p in Phase])
            return BAD if value is BAD else Phase(value)
        if kind == "ratio":
            return self.number(node, field, key, low=0, high=1, percent=True)
        if kind == "positive":
            value = self.number(node, field, key, low=0)
            if value is not BAD and value <= 0:
                self.problem(node, field, f"{key!r}: must be more than zero; got {_describe(node)}")
                return BAD
            return value
        if kind == "percentile":
            return self.number(node, field, key, low=50, high=99.9)
        if kind == "count":
            return self.number(node, field, key, low=0, integer=True)
        if kind == "duration":
            return self.duration(node, field, key)
        if kind == "endpoints":
            return self.text_list(node, field, key)
        if kind == "endpoints_required":
            return self.text_list(node, field, key, allow_empty=False)
        if kind == "names":
            return self.text_list(node, field, key, allow_empty=False)
        if kind == "targets":
            names = self.text_list(node, field, key, allow_empty=False)
            unknown = [] if names is BAD else [n for n in names if n not in self.declared_targets]
            if unknown:
                self.problem(node, field, f"{key!r}: unknown target {unknown[0]!r}; declared targets: "
                                          f"{_join(self.declared_targets) or '(none)'}")
                return BAD
            return names
        if kind == "bool":
            return self.boolean(node, field, key)
        if kind == "check":
            return self.choice(node, field, key, ("kafka", "pipeline", "all"))
        if kind == "method":
            return self.choice(node, field, key, ("band", "mann_whitney"))
        if kind == "via":
            value = self.text(node, field, key)
            if value is not BAD and value != "errors" and value not in probes:
                if value not in self.declared_probes:
                    self.problem(node, field, f"{key!r}: unknown probe {value!r}; expected 'errors' or a declared probe: {_join(self.declared_probes) or '(none)'}")
                return BAD
            return value
        if kind in ("http_probe", "alerts_probe"):
            wanted = ProbeKind.HTTP if kind == "http_probe" else ProbeKind.PROMETHEUS_ALERTS
            value = self.text(node, field, key)
            if value is BAD:
                return BAD
            if value not in probes:
                if value not in self.declared_probes:
                    self.problem(node, field, f"{key!r}: unknown probe {value!r}; declared probes: {_join(self.declared_probes) or '(none)'}")
                return BAD
            if probes[value].kind is not wanted:
                self.problem(node, field, f"{key!r}: probe {value!r} is a {probes[value].kind.value} probe; expected {'an' if wanted is ProbeKind.HTTP else 'a'} {wanted.value} probe")
                return BAD
            return value
        if kind == "zero":
            return self.number(node, field, key, low=0, integer=True)
        raise AssertionError(kind)


_REQUIRED: Any = object()
# metric -> key -> (kind of value, default or _REQUIRED). See SloSpec's docstring for the meaning of each key.
_SLO_RULES: dict[str, dict[str, tuple[str, Any]]] = {
    "error_rate": {"during": ("phase", Phase.FAULT), "max": ("ratio", _REQUIRED), "endpoints": ("endpoints", ())},
    "latency": {"percentile": ("percentile", 95.0), "during": ("phase", Phase.FAULT), "max": ("duration", _REQUIRED),
                "max_ratio": ("positive", _REQUIRED), "endpoints": ("endpoints", ())},
    "throughput_drop": {"during": ("phase", Phase.FAULT), "max": ("ratio", _REQUIRED), "endpoints": ("endpoints", ())},
    "detection_time": {"via": ("via", _REQUIRED), "max": ("duration", _REQUIRED), "targets": ("targets", ())},
    "recovery_time": {"max": ("duration", _REQUIRED), "endpoints": ("endpoints", ()), "method": ("method", "band"),
                      "targets": ("targets", ())},
    "lost_writes": {"max": ("count", 0), "check": ("check", "all")},
    "duplicates": {"max": ("count", 0)},
    "alerts_fired": {"alerts": ("names", _REQUIRED), "within": ("duration", _REQUIRED), "silent_failure": ("bool", False),
                     "probe": ("alerts_probe", None)},
    "health_truthful": {"probe": ("http_probe", _REQUIRED), "endpoints": ("endpoints", ()), "error_threshold": ("ratio", 0.5),
                        "max": ("count", 0)},
    "blast_radius": {"endpoints": ("endpoints_required", _REQUIRED), "during": ("phase", Phase.FAULT), "max": ("count", 0),
                     "max_ratio": ("positive", None)},
    "data_rejected": {"max_accepted": ("zero", 0)},
}


def _compatible(first: FaultSpec, second: FaultSpec, params: Mapping[int, Any], targets: Mapping[str, Target]) -> bool:
    """Proxy toxics of different types on different streams may share a route at once."""
    target = targets.get(first.target)
    if target is None or target.kind is not TargetKind.PROXY or first.type == second.type:
        return False
    streams = [getattr(params.get(spec.index), "stream", None) for spec in (first, second)]
    if None in streams:
        return False
    directions = [{"downstream", "upstream"} if s == "both" else {s} for s in streams]
    return not directions[0] & directions[1]


def _first_overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> tuple[float, float] | None:
    """The earliest window where an occurrence of `a` and one of `b` are both active (both lists sorted)."""
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            return start, end
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only, nothing is delivered
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def _executable(word: str, cwd: str | None) -> bool:
    if os.sep in word:
        path = word if os.path.isabs(word) or not cwd else os.path.join(cwd, word)
        return os.path.isfile(path) and os.access(path, os.X_OK)
    return shutil.which(word) is not None
