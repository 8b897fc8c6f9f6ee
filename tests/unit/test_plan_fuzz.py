"""Fuzzing the scenario loader: whatever text or structure it gets, parse_plan returns a Plan or raises PlanError.

Any other exception would reach the user as a traceback, which the house style forbids for bad input. The main
property starts from every real `scenarios/*.yml` and changes exactly one thing (tests/scenario_mutations.py); its
every problem must also name the line (`fuzz.yml:12 ...`), and a plan that passes must be printable.

Hypothesis profiles, with a fixed seed (derandomize): "ci" (the default, 10,000 cases in all) and "deep"
(`CHAOS_FUZZ_PROFILE=deep`, ten times as many).
"""
from __future__ import annotations

import copy
import os
import re

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chaos_events.cli import dry_run_lines, summary
from chaos_events.errors import PlanError, Problem
from chaos_events.scenario.model import Plan
from chaos_events.scenario.loader import parse_plan
from tests.scenario_mutations import BASES, BIG_BOMB, mutated_files

settings.register_profile("ci", max_examples=8000, derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
settings.register_profile("deep", settings.get_profile("ci"), max_examples=80_000)
PROFILE_NAME = os.environ.get("CHAOS_FUZZ_PROFILE") or "ci"
PROFILE = settings.get_profile(PROFILE_NAME)
# The deep profile's main property runs for about ten minutes: past pytest-timeout's default (pyproject: 300 s).
pytestmark = [pytest.mark.timeout(3600)] if PROFILE_NAME == "deep" else []
MUTATIONS = settings(PROFILE)                                            # 8,000 (ci) of the 10,000
FUZZ = settings(PROFILE, max_examples=PROFILE.max_examples // 16)        # 500 (ci) for each of the other four
_LOCATED = re.compile(r"^fuzz\.yml:[1-9][0-9]*[ :]")

# Pieces of scenario-like YAML, glued at random: keys, indentation, flow syntax, anchors, tags, variables.
TOKENS = [
    "name: ", "targets:", "faults:", "slos:", "probes:", "settings:", "description: ", "\n", "\n  ", "\n    ", "- ",
    "{", "}", "[", "]", ", ", ": ", "at: ", "for: ", "fault: ", "target: ", "repeat: ", "every: ", "times: ",
    "pause", "latency", "cpu_burn", "broker", "host", "30s", "-5s", "1e400", "0", "-1", "1.5", "99.99", "true", "~",
    "null", "'", '"', "&a ", "*a", "<<: ", "!!str ", "!!int ", "!!python/object:os.system ", "!foo ", "? ", "|\n  ",
    "${X}", "${X:-3}", "${", "$$", "{process: {pid: ", "{host: local}", "{proxy: kafka}", "{directory: /tmp}",
    "{endpoint: ", "127.0.0.1:8000", "http://127.0.0.1:8000", "metric: ", "error_rate", "latency", "during: ",
    "fault", "max: ", "via: ", "health", "params: ", "2001-13-45", "0x1F", ".inf", ".nan", "\t", "#", "---\n", "...",
]


def assert_only_plan_error(text: str) -> None:
    try:
        plan = parse_plan(text, "fuzz.yml", environ={"X": "1"})
    except PlanError as exc:
        assert exc.problems, "a PlanError must carry at least one problem"
        assert all(isinstance(p, Problem) and str(p).startswith("fuzz.yml") for p in exc.problems)
        return
    assert isinstance(plan, Plan)


@FUZZ
@given(st.text(max_size=300))
def test_random_text_raises_only_plan_error(text):
    assert_only_plan_error(text)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_yaml_ish_token_soup_raises_only_plan_error(tokens):
    assert_only_plan_error("".join(tokens))


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**20, max_value=10**20), st.floats(allow_nan=True),
    st.text(max_size=20), st.sampled_from(["30s", "-1s", "pause", "broker", "local", "kafka", "error_rate", "fault",
                                           "127.0.0.1:8000", "http://127.0.0.1:9/x", "${X}", "${Y:-2s}"]),
)
keys = st.one_of(st.text(max_size=10), st.sampled_from(
    ["name", "targets", "faults", "slos", "probes", "settings", "at", "for", "fault", "target", "repeat", "every",
     "times", "process", "pid", "pidfile", "command", "restart", "proxy", "host", "http", "url", "metric", "max",
     "during", "via", "endpoints", "params", "latency_ms", "cores", "stream", "kafka", "bootstrap", "topic"]))
structures = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)), max_leaves=30)


@FUZZ
@given(structures)
def test_random_structures_raise_only_plan_error(data):
    assert_only_plan_error(yaml.safe_dump(data))


VALID = {
    "name": "fuzz",
    "targets": {"host": {"host": "local"}, "link": {"proxy": "kafka"}, "p": {"process": {"pid": 12345}},
                "api": {"endpoint": "http://127.0.0.1:8000"}},
    "probes": {"health": {"http": {"url": "http://127.0.0.1:8000/health", "every": "1s"}}},
    "faults": [{"at": "10s", "for": "5s", "fault": "latency", "target": "link", "latency_ms": 100},
               {"at": "30s", "for": "5s", "fault": "pause", "target": "p", "repeat": {"every": "10s", "times": 2}}],
    "slos": [{"name": "e", "metric": "error_rate", "max": 0.1, "during": "fault"},
             {"name": "d", "metric": "detection_time", "via": "health", "max": "30s"}],
    "settings": {"recovery_window": "20s"},
}


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


PATHS = list(_paths(VALID))[1:]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(scalars, structures), st.booleans()), min_size=1, max_size=4))
def test_mutated_valid_plan_raises_only_plan_error(mutations):
    data = copy.deepcopy(VALID)
    for path, value, delete in mutations:
        parent = data
        try:
            for step in path[:-1]:
                parent = parent[step]
            if delete:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    assert_only_plan_error(yaml.safe_dump(data))


def test_the_unmutated_fuzz_base_is_valid():
    plan = parse_plan(yaml.safe_dump(VALID), "fuzz.yml", environ={})
    assert [f.type for f in plan.faults] == ["latency", "pause"]


def test_deep_nesting_is_a_plan_error_not_a_recursion_error():
    assert_only_plan_error("name: " + "[" * 5000 + "]" * 5000)


def test_self_referencing_alias_is_a_plan_error():
    assert_only_plan_error("name: t\nfaults: &f\n  - *f\nslos: &s {a: *s}\n")


def _plan_error(text: str) -> list[str]:
    try:
        parse_plan(text, "deep.yml", environ={})
    except PlanError as exc:
        return [str(p) for p in exc.problems]
    raise AssertionError("expected a PlanError")


def test_deep_flow_nesting_names_the_line_where_it_passes_the_limit():
    text = "name: t\ndescription: fine\nfaults: " + "[" * 5000 + "]" * 5000 + "\n"
    assert _plan_error(text) == ["deep.yml:3: invalid YAML: nested too deeply (more than 40 levels)"]


def test_deep_block_nesting_names_the_line_where_it_passes_the_limit():
    # Line 1 is the top-level mapping (level 0); line 2 + n opens level n, so level 41 starts on line 43.
    text = "name: t\n" + "".join(" " * i + f"k{i}:\n" for i in range(1500)) + " " * 1500 + "v\n"
    assert _plan_error(text) == ["deep.yml:43: invalid YAML: nested too deeply (more than 40 levels)"]


def assert_located_plan_error_or_plan(text: str) -> None:
    """Only a Plan or a PlanError; every problem at a line of the file, and printable as UTF-8 (stderr)."""
    try:
        plan = parse_plan(text, "fuzz.yml", environ={"X": "1"})
    except PlanError as exc:
        assert exc.problems, "a PlanError must carry at least one problem"
        last = len(re.findall("\r\n|[\n\r\x85\u2028\u2029]", text)) + 1   # YAML's line breaks, not only \n
        for problem in exc.problems:
            shown = str(problem)
            assert isinstance(problem, Problem) and _LOCATED.match(shown), f"no line in {shown!r}"
            assert problem.line <= last, f"line {problem.line} past the end ({last}): {shown!r}"
            shown.encode("utf-8")
        return
    assert isinstance(plan, Plan)
    "\n".join([summary(plan), *dry_run_lines(plan)]).encode("utf-8")   # what validate and dry-run print


def test_every_real_scenario_is_a_valid_fuzz_base():
    for base in BASES:
        plan = parse_plan(base.text, base.name, environ={})
        assert plan.name == base.data["name"]


@MUTATIONS
@given(mutated_files())
@example(("gameday.yml", "splice", "name: t\nfaults: " + BIG_BOMB + "\n"))
def test_real_scenarios_with_one_hostile_change_raise_only_located_plan_errors(case):
    _base, _kind, text = case
    assert_located_plan_error_or_plan(text)


# -- what the fuzz found, each with its exact message -------------------------------------------------------------
_BASE = "name: t\ntargets:\n  p: {process: {pid: 1234}}\n  d: {directory: /tmp}\nfaults:\n  - {at: 1s, for: 2s, fault: pause, target: p}\n"
_DISK = "name: t\ntargets:\n  d: {directory: /tmp}\nfaults:\n  - {at: 1s, for: 2s, fault: disk_fill, target: d, size_bytes: @}\n"
FOUND = [
    ("name: t\r\nx: 1\r\n\x00", "deep.yml:3: invalid YAML: unacceptable character #x0000 (column 1): special characters are not allowed"),
    ("name: t\n  x\x00y\n", "deep.yml:2: invalid YAML: unacceptable character #x0000 (column 4): special characters are not allowed"),
    ('name: "a\\ud800"\n', "deep.yml:1 name: 'name': expected Unicode text; got 'a\\ud800' (a lone surrogate, as from an escape like \\ud800)"),
    ('name: t\n"\\udfff": 1\n', "deep.yml:2: keys must be plain text; got '\\udfff' (a lone surrogate)"),
    ("name: !!binary aGVsbG8=\n", "deep.yml:1: 'name': expected text; got binary data (!!binary)"),
    ('name: "a\\0b"\n', "deep.yml:1: 'name': must not contain a NUL character; got 'a\\x00b'"),
    (_BASE.replace("at: 1s", "at: ٣s"), "deep.yml:6 faults[0] (pause): 'at': expected a number of seconds or a duration "
                                        "like 250ms, 30s, 2m, 1m30s, 1h (in ASCII digits); got '٣s'"),
    (_BASE + "slos:\n  - {name: e, metric: error_rate, max: '٣%'}\n",
     "deep.yml:8 slos[0] (e): 'max': expected a number or a percentage like 10%; got '٣%'"),
    (_BASE.replace("pid: 1234", "pid: 1" + "0" * 400), "deep.yml:3 targets.p (process): 'pid': expected a whole number "
                                                       "of reasonable size; got 10000000000000000000... (401 digits)"),
    (_DISK.replace("@", "9" * 30), "deep.yml:5 faults[0] (disk_fill): parameter 'size_bytes': expected a size below "
                                   "8 EiB; got 999999999999999999999999999999"),
    (_DISK.replace("@", "'٣MB'"), "deep.yml:5 faults[0] (disk_fill): parameter 'size_bytes': expected a size like "
                                  "512MB, 1GiB or a number of bytes (in ASCII digits); got '٣MB'"),
]


@pytest.mark.parametrize("text, message", FOUND, ids=[m.split(": ", 1)[1][:40] for _, m in FOUND])
def test_a_hostile_value_the_fuzz_found_is_one_located_problem(text, message):
    assert _plan_error(text) == [message]


def test_the_base_of_those_cases_is_valid():
    assert [f.type for f in parse_plan(_BASE, "deep.yml", environ={}).faults] == ["pause"]
    assert parse_plan(_DISK.replace("@", "3MB"), "deep.yml", environ={}).faults[0].params.size_bytes == 3_000_000
