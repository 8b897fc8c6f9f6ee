"""The game day in containers, for real: build the images (cached), bring docker-compose.locust.yml up, let the
headless master with two workers run scenarios/gameday-compose.yml (about two minutes) and its SLO-breaking variant,
`docker kill` the master in the middle of a container pause, and take everything down again.

Checked: the master's exit code is the verdict's (0 tolerated, 3 broken); the four reports land on the mounted
directory and say the same; the stack's Prometheus fired the alert the scenario expects; the watchdog service
unpauses the container within 5 s of the master's death; `down -v` leaves no container, volume or network of the
project. One stack (one Kafka cluster) serves every test of the module, in order; it is taken down in finally.

It takes several minutes (images on a fresh machine, three JVMs, three runs), so it is not part of `make test`:
`.ci/run` runs it as a step of its own, and it runs only with CHAOS_COMPOSE_GAMEDAY=1:
    CHAOS_COMPOSE_GAMEDAY=1 .venv/bin/python -m pytest -v tests/integration/test_compose_gameday.py
Every port is a free one and the project and container names are the test's own, so nothing collides with a stack
of the same file started by someone else on this machine.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos_events.backends.process import wait_until
from tests.helpers import ROOT, free_port, require, require_docker
from tests.unit.test_compose import COMPOSE, PORT_VAR, compose_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.skipif(os.environ.get("CHAOS_COMPOSE_GAMEDAY") != "1",
                       reason="the compose game day takes minutes: it runs as its own .ci/run step, or with "
                              "CHAOS_COMPOSE_GAMEDAY=1"),
]

RUN_TIME = "150s"          # scenarios/gameday-compose.yml is laid out for 2m30s
BROKEN_RUN_TIME = "50s"
START_TIMEOUT_S = 300        # three JVMs, topics, consumer and API healthy, two workers connected
REVERT_DEADLINE_S = 5.0
REPORTS = ("chaos-report.json", "chaos-report.xml", "chaos-report.md", "chaos-report.html")


def _seconds(text: str) -> int:
    return int(text[:-1]) * (60 if text.endswith("m") else 1)


class Stack:
    """One compose project of docker-compose.locust.yml on free ports; every command's output goes to `log`."""

    def __init__(self, cli: list[str], tmp: Path):
        self.cli = cli
        self.tmp = tmp
        self.name = f"cgd{uuid.uuid4().hex[:8]}"
        self.log = tmp / "compose.log"
        ports: dict[str, str] = {}
        for var, _default in PORT_VAR.findall(COMPOSE.read_text()):
            ports.setdefault(var, "")
        taken: set[int] = set()
        for var in ports:
            port = free_port()
            while port in taken:
                port = free_port()
            taken.add(port)
            ports[var] = str(port)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("CHAOS_")}, **ports,
                    "CHAOS_STACK": self.name, "CHAOS_WORKERS": "2"}

    def compose(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        argv = [*self.cli, "-p", self.name, "-f", str(COMPOSE), *args]
        with open(self.log, "a") as out:
            out.write(f"\n$ {' '.join(argv)}\n")
            out.flush()
            return subprocess.run(argv, cwd=ROOT, env={**self.env, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout)

    def container(self, part: str) -> str:
        return f"{self.name}-{part}"

    def run_master(self, plan: str, run_time: str, reports: Path, first: bool = False) -> None:
        """Start the master and two workers with `plan` (the whole stack the first time); returns once started."""
        reports.mkdir(parents=True, exist_ok=True)
        env = {"CHAOS_PLAN": plan, "CHAOS_RUN_TIME": run_time, "CHAOS_REPORT_DIR": str(reports)}
        args = ["up", "-d", "--scale", "worker=2"] + ([] if first else ["--no-deps", "--force-recreate", "locust-master", "worker"])
        result = self.compose(*args, env=env, timeout=START_TIMEOUT_S + 300)
        assert result.returncode == 0, f"`compose up` failed:\n{self.tail()}"

    def wait_master(self, timeout_s: float) -> int:
        """The master's exit code (`docker wait`), or fail the test when it runs past `timeout_s`."""
        try:
            proc = subprocess.run(["docker", "wait", self.container("locust-master")], capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the master still runs after {timeout_s:g} s:\n{self.logs('locust-master')}")
        assert proc.returncode == 0, proc.stderr
        return int(proc.stdout.strip())

    def state(self, part: str) -> str:
        proc = subprocess.run(["docker", "inspect", "--format", "{{.State.Status}}", self.container(part)],
                              capture_output=True, text=True, timeout=30)
        return proc.stdout.strip() if proc.returncode == 0 else "missing"

    def logs(self, part: str, lines: int = 80) -> str:
        proc = subprocess.run(["docker", "logs", "--tail", str(lines), self.container(part)], capture_output=True,
                              text=True, timeout=30)
        return proc.stdout + proc.stderr

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks of this project that Docker still has."""
        label = f"label=com.docker.compose.project={self.name}"
        found = {}
        for kind, argv in (("containers", ["ps", "-a", "--filter", label, "--format", "{{.Names}}"]),
                           ("containers by name", ["ps", "-a", "--filter", f"name={self.name}-", "--format", "{{.Names}}"]),
                           ("volumes", ["volume", "ls", "--filter", label, "--format", "{{.Name}}"]),
                           ("networks", ["network", "ls", "--filter", label, "--format", "{{.Name}}"])):
            out = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=30).stdout.split()
            found[kind] = out
        return found


@pytest.fixture(scope="module")
def stack():
    require_docker()
    cli = compose_cli()
    require("Docker Compose", cli is not None, "neither `docker compose` nor `docker-compose` is installed")
    from chaos_events.demo import images, kafka_dist

    # Not under pytest's basetemp: other pytest runs on this machine rotate it away, and this module's reports
    # directory is mounted into the master for minutes.
    tmp = Path(tempfile.mkdtemp(prefix="chaos-compose-gameday-"))
    started = time.monotonic()
    print(f"\ncompose: {' '.join(cli)}; {kafka_dist.fetch().describe(kafka_dist.pinned_version())}")
    with open(tmp / "images.log", "w") as out:
        images.build_all(log=lambda line: print(line, file=out, flush=True), out=out)
    print(f"compose: images ready after {time.monotonic() - started:.0f} s (log {tmp / 'images.log'})")
    stack = Stack(cli, tmp)
    try:
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300)
        print(f"compose: module done after {time.monotonic() - started:.0f} s")
        shutil.rmtree(tmp, ignore_errors=True)  # failures carry the logs they need in their messages


def _report(directory: Path) -> dict:
    missing = [name for name in REPORTS if not (directory / name).is_file() or not (directory / name).stat().st_size]
    assert not missing, f"reports missing or empty in {directory}: {missing}"
    return json.loads((directory / "chaos-report.json").read_text())


def _slo(report: dict, name: str) -> dict:
    (result,) = [r for r in report["verdict"]["results"] if r["name"] == name]
    return result


def _junit_failures(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [case.get("name") for case in root.iter("testcase") if case.find("failure") is not None]


@pytest.mark.timeout(1800)
def test_the_tolerated_game_day_exits_0_with_its_reports(stack):
    reports = stack.tmp / "reports-tolerated"
    stack.run_master("scenarios/gameday-compose.yml", RUN_TIME, reports, first=True)
    workers = subprocess.run([*stack.cli, "-p", stack.name, "-f", str(COMPOSE), "ps", "-q", "worker"], cwd=ROOT,
                             env=stack.env, capture_output=True, text=True, timeout=60).stdout.split()
    assert len(workers) == 2, workers
    code = stack.wait_master(_seconds(RUN_TIME) + START_TIMEOUT_S + 120)
    master_log = stack.logs("locust-master", 60)
    assert code == 0, f"master exit code {code}, expected 0 (every SLO held):\n{master_log}"
    report = _report(reports)
    assert report["scenario"] == "gameday-compose" and report["verdict"]["exit_code"] == 0
    assert {r["name"]: r["status"] for r in report["verdict"]["results"]} == {
        "ingest-errors-during-faults": "pass", "recovers-within-30s": "pass", "health-detects-consumer-within-30s": "pass",
        "no-lost-writes": "pass", "health-alert-fires": "pass"}, master_log
    # The alert really fired in the stack's Prometheus, and was read back from it.
    (alerts,) = report["alerts"]
    assert "ChaosHealthDegraded" in alerts["fired"] and alerts["alerts"][0]["fired"] is True
    assert _junit_failures(reports / "chaos-report.xml") == []
    assert "PASS" in (reports / "chaos-report.md").read_text().upper()
    assert "<html" in (reports / "chaos-report.html").read_text().lower()
    # Every fault was injected and reverted, and the targets run again.
    faults = {f["target"]: f for f in report["faults"]}
    assert sorted(faults) == ["api-link", "broker-1", "broker-2", "consumer"]
    assert all(f["closed"] and not f["revert_failed"] for f in faults.values()), faults
    for part in ("kafka-1", "kafka-2", "demo-consumer"):
        assert stack.state(part) == "running", f"{part} is {stack.state(part)} after the run"


@pytest.mark.timeout(900)
def test_the_variant_that_breaks_an_slo_exits_3(stack):
    reports = stack.tmp / "reports-broken"
    stack.run_master("scenarios/gameday-compose-broken.yml", BROKEN_RUN_TIME, reports)
    code = stack.wait_master(_seconds(BROKEN_RUN_TIME) + START_TIMEOUT_S)
    assert code == 3, f"master exit code {code}, expected 3 (an SLO broke):\n{stack.logs('locust-master', 60)}"
    report = _report(reports)
    assert report["verdict"]["exit_code"] == 3
    assert _slo(report, "ingest-errors-during-fault")["status"] == "fail"
    assert "ingest-errors-during-fault" in _junit_failures(reports / "chaos-report.xml")
    assert stack.state("demo-api") == "running", "the stop fault's revert starts the API again"


@pytest.mark.timeout(900)
def test_docker_kill_of_the_master_mid_pause_is_reverted_by_the_watchdog(stack):
    stack.run_master("tests/integration/scenarios/compose-master-killed.yml", "5m", stack.tmp / "reports-killed")
    assert wait_until(lambda: stack.state("demo-consumer") == "paused", START_TIMEOUT_S, 0.2), (
        f"the consumer was never paused:\n{stack.logs('locust-master')}")
    subprocess.run(["docker", "kill", stack.container("locust-master")], check=True, capture_output=True, timeout=30)
    assert wait_until(lambda: stack.state("demo-consumer") == "running", REVERT_DEADLINE_S, 0.05), (
        f"the consumer is still {stack.state('demo-consumer')} {REVERT_DEADLINE_S:g} s after the master was killed:\n"
        f"{stack.logs('watchdog')}")
    # The consumer runs again before the watchdog prints its summary line: wait for the line too.
    assert wait_until(lambda: "reverted 1 fault(s), 0 failed" in stack.logs("watchdog"), 10, 0.2), stack.logs("watchdog")
    watchdog_log = stack.logs("watchdog")
    assert re.search(r"locust-master is exited", watchdog_log), watchdog_log
    assert stack.state("watchdog") == "running"


@pytest.mark.timeout(600)
def test_down_leaves_no_container_volume_or_network(stack):
    assert any(stack.leftovers().values()), "the stack should exist before `down`"
    result = stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300)
    assert result.returncode == 0, stack.tail()
    assert stack.leftovers() == {"containers": [], "containers by name": [], "volumes": [], "networks": []}
