"""Exit codes of real Locust runs (ARCHITECTURE section 4): with a scenario active the harness owns the code
(0 every SLO held, 3 one broke), and failed requests alone never give Locust's 1; without a scenario, Locust's own
rule stands (1 on any failure).

Each scenario run pauses a real `sleep` process for 2 s of its 4 s and checks it was resumed (a fault that fits
in the run: one cut short by the end makes the run incomplete, exit 6, which test_revert_always covers). The load goes to
a stdlib HTTP server on loopback: `/` answers 200, `/missing` answers 404 (a failed request).
"""
from __future__ import annotations

import pytest


FAILING_LOCUSTFILE = """
import chaos_events
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def visit(self):
        self.client.get("/")

    @task
    def broken(self):
        self.client.get("/missing")
"""

def _pausing_scenario(name: str, slo: str) -> str:
    """Pause the victim for 2 s of the 4 s run (a fault that fits in the run), judged by the one SLO `slo`."""
    return (f'name: {name}\ntargets:\n  victim: {{process: {{pidfile: "@PIDFILE@"}}}}\n'
            f"faults:\n  - {{at: 1s, for: 2s, fault: pause, target: victim}}\nslos:\n  - {slo}\n")


STRICT_SCENARIO = _pausing_scenario("strict", "{name: no-errors, metric: error_rate, during: all, max: 0}")
LENIENT_SCENARIO = _pausing_scenario("lenient", "{name: any-errors, metric: error_rate, during: all, max: 1.0}")
HOLDING_SCENARIO = _pausing_scenario("holding", "{name: few-errors, metric: error_rate, max: 0.5}")


def _slo_statuses(scene) -> dict:
    return {r["name"]: r["status"] for r in scene.report()["verdict"]["results"]}


def test_every_slo_holds_exits_0(scene):
    scene.write_scenario(HOLDING_SCENARIO)
    run = scene.run(scene.args("4s"))
    assert run.returncode == 0, run.output[-4000:]
    assert _slo_statuses(scene) == {"few-errors": "pass"}
    assert "T" in scene.seen
    scene.assert_reverted(run.output)


def test_broken_slo_exits_3(scene):
    scene.write_locustfile(FAILING_LOCUSTFILE)
    scene.write_scenario(STRICT_SCENARIO)
    run = scene.run(scene.args("4s"))
    assert run.returncode == 3, run.output[-4000:]
    assert _slo_statuses(scene) == {"no-errors": "fail"}
    assert "chaos verdict: FAIL" in run.output, run.output[-4000:]
    scene.assert_reverted(run.output)


def test_failures_alone_do_not_give_1_with_a_scenario(scene):
    scene.write_locustfile(FAILING_LOCUSTFILE)
    scene.write_scenario(LENIENT_SCENARIO)
    run = scene.run(scene.args("4s"))
    assert "404" in run.output or "/missing" in run.output, run.output[-4000:]   # there were failures ...
    assert run.returncode == 0, run.output[-4000:]                               # ... and the SLO decides
    assert _slo_statuses(scene) == {"any-errors": "pass"}
    scene.assert_reverted(run.output)


@pytest.mark.parametrize("locustfile, expected", [(FAILING_LOCUSTFILE, 1), (None, 0)], ids=["failures", "clean"])
def test_without_a_scenario_locust_decides(scene, locustfile, expected):
    if locustfile:
        scene.write_locustfile(locustfile)
    run = scene.run(scene.args("3s", plan=False))
    assert run.returncode == expected, run.output[-4000:]
    assert "chaos verdict" not in run.output
    assert not (scene.reports / "chaos-report.json").exists()
    assert "T" not in scene.seen, "a run without a scenario paused the victim"


@pytest.mark.parametrize("source", ["locust.conf", "environment"])
def test_harness_options_work_from_locust_conf_and_environment(scene, source):
    # Every harness option has an environment variable and a locust.conf key; the run is configured by them alone.
    scene.write_scenario(HOLDING_SCENARIO)
    settings = {"chaos-plan": str(scene.scenario), "chaos-report-dir": str(scene.reports / "from-config"),
                "chaos-journal": str(scene.journal), "chaos-metrics-port": "0"}
    argv = ["-f", str(scene.locustfile), "-u", "2", "-r", "2", "--host", scene.host, "--headless", "--run-time", "4s"]
    env = {}
    if source == "locust.conf":
        conf = scene.tmp / "locust.conf"
        conf.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        argv += ["--config", str(conf)]
    else:
        env = {"CHAOS_" + key.removeprefix("chaos-").upper().replace("-", "_"): value for key, value in settings.items()}
    run = scene.run(argv, env=env)
    assert run.returncode == 0, run.output[-4000:]
    assert (scene.reports / "from-config" / "chaos-report.json").exists(), run.output[-4000:]
    assert "T" in scene.seen, "the scenario from the config was not run"
    scene.assert_reverted(run.output)
