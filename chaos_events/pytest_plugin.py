"""pytest plugin: write chaos experiments as tests. A scenario runs under real Locust load; the test reads the verdict.

Registered as a `pytest11` entry point, so an installed chaos-events offers it everywhere; in this repository
tests/chaos/conftest.py hands it its hooks when nothing registered it (see the reason there). This module holds the
hooks and fixtures; the target, the runner and the result live in chaos_events/pytest_support/, and every name is
importable from here. Imports pytest, the standard library, PyYAML and the harness's pure core (record,
verdict.stats); never locust, gevent, docker or prometheus_client: Locust runs as a subprocess in its own session
and is ended by its pid, so a hung run cannot take the test process down with it.

Fixtures and marker:
- `chaos_target`: what the load and the faults aim at. By default a fresh demo platform (chaos_events.demo.supervisor) in the
  test's tmp dir, stopped at the end; with `--chaos-target-url URL` (or $CHAOS_TARGET_URL, plus
  `--chaos-target-kafka` / $CHAOS_TARGET_KAFKA) the user's platform, and the demo is not started.
- `chaos_run`: a ChaosRunner. `chaos_run("scenario.yml" | {...}, run_time="20s", users=10, env=None,
  observe=None) -> ChaosResult`; `observe(event)` runs while each injected fault is active, and what it returns
  (or raises, after the run ended and every fault was reverted) lands in the result.
- ChaosResult: `.exit_code`, `.verdict` (SloView list), `.slo(name)`, `.phases` / `.phase(name, endpoints)`,
  `.between(t0, t1, endpoints)`, `.events`, `.injected()`, `.reverted()`, `.probe_samples(probe)`, `.ledger(check)`,
  `.observed(fault)`, `.report_dir`, `.output`, `.assert_slos(*names)` (fails with the verdict table),
  `.assert_reverted()`.
- `@pytest.mark.chaos(scenario=..., run_time=..., users=...)` with the `chaos_result` fixture: the run happens before
  the test body; after the body, the SLOs are asserted unless the marker says `assert_slos=False`.

Example:
    def test_broker_pause(chaos_target, chaos_run):
        result = chaos_run("tests/chaos/scenarios/broker-pause.yml", run_time="20s")
        assert result.phase("fault").error_rate > result.phase("baseline").error_rate
        result.assert_slos()
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from chaos_events.pytest_support.result import ChaosEvent, ChaosResult, Observation, PhaseView, SloView
from chaos_events.pytest_support.runner import (
    DEFAULT_LOCUSTFILE, DEMO_ONLY_VARIABLES, OBSERVE_AFTER_S, OVERHEAD_S, STOP_GRACE_S, ChaosRunner,
)
from chaos_events.pytest_support.target import ChaosTarget, http_json, open_chaos_target

__all__ = ["ChaosEvent", "ChaosResult", "ChaosRunner", "ChaosTarget", "Observation", "PhaseView", "SloView",
           "http_json", "open_chaos_target", "chaos_target", "chaos_run", "chaos_result", "DEFAULT_LOCUSTFILE",
           "DEMO_ONLY_VARIABLES", "OBSERVE_AFTER_S", "OVERHEAD_S", "STOP_GRACE_S"]


# -- options, marker -----------------------------------------------------------------------------------------
def pytest_addoption(parser):
    group = parser.getgroup("chaos-events", "chaos experiments under load (chaos-events)")
    group.addoption("--chaos-target-url", default=None,
                    help="Run chaos tests against this platform's HTTP API instead of starting the demo platform "
                         "(env CHAOS_TARGET_URL). Scenarios that need the demo's pidfiles or proxy are skipped.")
    group.addoption("--chaos-target-kafka", default=None,
                    help="Kafka bootstrap servers of the platform given by --chaos-target-url (env CHAOS_TARGET_KAFKA).")
    group.addoption("--chaos-report-root", default=None,
                    help="Directory for each chaos test's reports (one subdirectory per test). Default: the test's tmp dir.")
    parser.addini("chaos_locustfile", default=DEFAULT_LOCUSTFILE,
                  help="Locustfile chaos_run uses when a test names none (relative to the rootdir).")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "chaos(scenario, run_time='20s', users=10, spawn_rate=None, locustfile=None, env=None, assert_slos=True): "
        "run the scenario under load before the test (fixture chaos_result); assert its SLOs after the test body.")


def pytest_collection_modifyitems(session, config, items):
    # A marked test gets its run even when it does not ask for `chaos_result` by name.
    for item in items:
        if item.get_closest_marker("chaos") is not None and "chaos_result" not in getattr(item, "fixturenames", ["chaos_result"]):
            item.fixturenames.append("chaos_result")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # raises when the test body failed: then its own failure is the one to report
    assert_marked_slos(item)
    return result


def assert_marked_slos(item) -> None:
    """After the body of a `@pytest.mark.chaos` test that passed: its run's SLOs, unless `assert_slos=False`."""
    marker = item.get_closest_marker("chaos")
    result = getattr(item, "_chaos_result", None)
    if marker is None or result is None:
        return
    if marker.kwargs.get("assert_slos", True):
        result.assert_slos()


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture
def chaos_target(request, tmp_path):
    """The platform under test: the user's (--chaos-target-url / $CHAOS_TARGET_URL), else a fresh demo platform."""
    with open_chaos_target(request.config, tmp_path) as target:
        yield target


@pytest.fixture
def chaos_run(request, chaos_target, tmp_path):
    """A ChaosRunner bound to `chaos_target`; each call writes its reports under --chaos-report-root (or tmp)."""
    config = request.config
    root = config.getoption("chaos_report_root", None)
    if root:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")
        report_root = Path(root).resolve() / safe
    else:
        report_root = tmp_path / "chaos-reports"

    def on_result(result: ChaosResult) -> None:
        request.node.user_properties.append(("chaos_report", str(result.report_dir / "chaos-report.json")))
        request.node.user_properties.append(("chaos_exit_code", result.exit_code))
        request.node.add_report_section("call", "chaos verdict", result.verdict_table())

    try:
        locustfile = config.getini("chaos_locustfile") or DEFAULT_LOCUSTFILE
    except ValueError:  # the ini key is unknown when the plugin was loaded late
        locustfile = DEFAULT_LOCUSTFILE
    return ChaosRunner(chaos_target, report_root, config.rootpath, locustfile,
                       on_result=on_result, test_dir=Path(str(request.node.path)).parent)


@pytest.fixture
def chaos_result(request, chaos_run):
    """The finished run of the test's `@pytest.mark.chaos(scenario=..., ...)`."""
    marker = request.node.get_closest_marker("chaos")
    if marker is None:
        pytest.fail("chaos_result needs @pytest.mark.chaos(scenario=...) on the test", pytrace=False)
    kwargs = dict(marker.kwargs)
    kwargs.pop("assert_slos", None)
    scenario = kwargs.pop("scenario", None) or (marker.args[0] if marker.args else None)
    if scenario is None:
        pytest.fail("@pytest.mark.chaos needs scenario=PATH (or a dict)", pytrace=False)
    result = chaos_run(scenario, **kwargs)
    request.node._chaos_result = result
    return result
