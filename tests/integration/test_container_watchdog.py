"""`docker kill` of the harness's container with a container paused: the container watchdog (a process of its own
here, a container of its own in docker-compose.locust.yml) reverts from the journal within seconds.

Real dockerd, real containers (busybox from a one-file rootfs, `docker import`: no registry), the real pause fault
and journal. Every container, the image and the watchdog process are removed or ended in finally blocks.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from chaos_events.backends.process import wait_until
from chaos_events.faults.base import FaultContext, build_params, fault_type
from chaos_events.run.journal import Journal, read_journal
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import ROOT, require_docker

pytestmark = pytest.mark.docker
TAG = uuid.uuid4().hex[:8]
IMAGE = f"chaos-events-test-busybox:{TAG}"
REVERT_DEADLINE_S = 5.0


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def state(name: str) -> str:
    return json.loads(docker("inspect", name))[0]["State"]["Status"]


@pytest.fixture
def containers(tmp_path):
    """A labelled victim and an unlabelled "master", both `busybox sleep`; yields their names."""
    require_docker()
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    subprocess.run(["tar", "-C", str(root), "-cf", str(tmp_path / "rootfs.tar"), "."], check=True)
    docker("import", str(tmp_path / "rootfs.tar"), IMAGE)
    victim, master = f"chaos-events-test-victim-{TAG}", f"chaos-events-test-master-{TAG}"
    try:
        docker("run", "-d", "--name", victim, "--network", "host", "--label", "chaos-events.allow=true", IMAGE,
               "/bin/busybox", "sleep", "600")
        docker("run", "-d", "--name", master, "--network", "host", IMAGE, "/bin/busybox", "sleep", "600")
        yield victim, master
    finally:
        docker("rm", "-f", victim, master, check=False)
        docker("rmi", "-f", IMAGE, check=False)


def test_docker_kill_of_the_master_unpauses_the_container_it_paused(containers, tmp_path):
    victim, master = containers
    journal_path = tmp_path / "journal.json"
    journal = Journal(journal_path, run_id="compose-run")
    params, problems = build_params(fault_type("pause"), {})
    assert not problems
    pause = fault_type("pause")(params, Target("consumer", TargetKind.CONTAINER, {"name": victim}))
    ctx = FaultContext(run_dir=str(tmp_path), save_state=lambda: journal.add("f0#1", pause))
    journal.add("f0#1", pause)       # what the engine does: journal first, then the side effect
    pause.inject(ctx)
    assert state(victim) == "paused"
    log = tmp_path / "watchdog.log"
    with open(log, "wb") as out:
        watchdog = subprocess.Popen([sys.executable, "-m", "chaos_events.run.container_watchdog", "--container", master,
                                     "--journal", str(journal_path), "--interval", "0.2"], cwd=ROOT, stdout=out,
                                    stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                    start_new_session=True)
    try:
        assert wait_until(lambda: f"{master} is running" in log.read_text(), 20, 0.1), log.read_text()
        assert state(victim) == "paused"  # the owner lives: its fault is its own
        docker("kill", master)
        assert wait_until(lambda: state(victim) == "running", REVERT_DEADLINE_S, 0.05), (
            f"{victim} is still {state(victim)} {REVERT_DEADLINE_S:g} s after the master was killed:\n{log.read_text()}")
        assert wait_until(lambda: read_journal(journal_path)["entries"] == {}, 5, 0.1)
        # The journal is emptied before the summary line is printed: wait for the line, not just the journal.
        assert wait_until(lambda: "reverted 1 fault(s), 0 failed" in log.read_text(), 5, 0.1), log.read_text()
        assert watchdog.poll() is None  # it keeps watching: the stack may start another master
    finally:
        if watchdog.poll() is None:
            os.kill(watchdog.pid, signal.SIGTERM)
        try:
            code = watchdog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            code = watchdog.wait()
    assert code == 0, log.read_text()
