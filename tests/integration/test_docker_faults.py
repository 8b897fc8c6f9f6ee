"""Service faults against real Docker containers: a busybox httpd per container (host network), probed over HTTP.

The image is made with `docker import` from a one-file rootfs (no registry here). Every container and the image
are removed in finally blocks, whatever happens.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest
import requests

from chaos_events.backends import docker as containers
from chaos_events.backends.process import wait_until
from chaos_events.errors import SafetyError
from chaos_events.faults.base import FaultContext, build_params, fault_type
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import free_port, require_docker

pytestmark = pytest.mark.docker
IMAGE = f"chaos-events-test-httpd:{uuid.uuid4().hex[:8]}"


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    require_docker()
    root = tmp_path_factory.mktemp("rootfs")
    (root / "bin").mkdir()
    (root / "www").mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "www" / "index.html").write_text("ok\n")
    tar = root.parent / f"{root.name}.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
    docker("import", str(tar), IMAGE)
    try:
        yield IMAGE
    finally:
        docker("rmi", "-f", IMAGE, check=False)


class Httpd:
    """One labelled (or not) busybox httpd container on a free loopback port."""

    def __init__(self, image: str, label: bool = True, create_only: bool = False, extra: tuple[str, ...] = ()):
        self.port = free_port()
        self.name = f"chaos-events-test-{uuid.uuid4().hex[:10]}"
        args = ["create" if create_only else "run", *([] if create_only else ["-d"]), "--name", self.name, "--network", "host",
                *(["--label", "chaos-events.allow=true"] if label else []), *extra,
                image, "/bin/busybox", "httpd", "-f", "-p", f"127.0.0.1:{self.port}", "-h", "/www"]
        docker(*args)
        self.target = Target("web", TargetKind.CONTAINER, {"name": self.name})
        if not create_only:
            assert self.wait_up(), "httpd did not answer after start"

    def probe(self) -> str:
        """'ok' (HTTP 200), 'refused', or 'timeout'."""
        try:
            response = requests.get(f"http://127.0.0.1:{self.port}/", timeout=0.5)
        except requests.exceptions.ConnectionError as exc:
            return "timeout" if "timed out" in str(exc).lower() else "refused"
        except requests.exceptions.Timeout:
            return "timeout"
        return "ok" if response.status_code == 200 else f"http {response.status_code}"

    def wait_up(self) -> bool:
        return wait_until(lambda: self.probe() == "ok", 10, 0.1)

    def wait_down(self) -> bool:
        return wait_until(lambda: self.probe() == "refused", 10, 0.1)

    def inspect(self) -> dict:
        return json.loads(docker("inspect", self.name))[0]

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


@pytest.fixture
def httpd(image):
    made: list[Httpd] = []

    def make(**kwargs) -> Httpd:
        made.append(Httpd(image, **kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for container in made:
            container.remove()


def make_fault(type_name: str, target: Target, **raw):
    params, problems = build_params(fault_type(type_name), raw)
    assert problems == []
    return fault_type(type_name)(params, target)


def ctx(**kwargs) -> FaultContext:
    return FaultContext(log=lambda line: None, **kwargs)


def test_pause_makes_requests_time_out_and_revert_restores_them(httpd):
    web = httpd()
    fault = make_fault("pause", web.target)
    fault.inject(ctx())
    assert web.inspect()["State"]["Paused"] is True
    assert web.probe() == "timeout"
    fault.revert(ctx())
    fault.verify_reverted(ctx())
    assert web.probe() == "ok"
    fault.revert(ctx())


@pytest.mark.parametrize("type_name,raw", [("stop", {"timeout_s": 1}), ("kill", {"signal": "SIGKILL"})])
def test_stop_and_kill_take_it_down_and_revert_starts_it(httpd, type_name, raw):
    web = httpd()
    fault = make_fault(type_name, web.target, **raw)
    fault.inject(ctx())
    assert web.wait_down()
    assert web.inspect()["State"]["Running"] is False
    fault.revert(ctx())
    fault.verify_reverted(ctx())
    assert web.wait_up()


def test_kill_with_restart_false_leaves_it_down(httpd):
    web = httpd()
    fault = make_fault("kill", web.target, restart=False)
    fault.inject(ctx())
    assert web.wait_down()
    fault.revert(ctx())
    fault.verify_reverted(ctx())
    assert web.inspect()["State"]["Running"] is False and web.probe() == "refused"


def test_restart_comes_back_with_a_new_start_time(httpd):
    web = httpd()
    started = web.inspect()["State"]["StartedAt"]
    fault = make_fault("restart", web.target, timeout_s=1)
    fault.inject(ctx())
    assert web.wait_up()
    assert web.inspect()["State"]["StartedAt"] != started
    fault.revert(ctx())
    fault.verify_reverted(ctx())


def test_start_runs_a_stopped_container_and_revert_stops_it(httpd):
    web = httpd(create_only=True)
    assert web.probe() == "refused"
    fault = make_fault("start", web.target, timeout_s=1)   # httpd as pid 1 ignores SIGTERM: SIGKILL after 1 s
    fault.inject(ctx())
    assert web.wait_up()
    fault.revert(ctx())
    fault.verify_reverted(ctx())
    assert web.wait_down()


def test_throttle_changes_limits_and_revert_clears_them(httpd):
    web = httpd()
    fault = make_fault("throttle", web.target, cpus=0.5, memory_bytes="64MiB")
    fault.inject(ctx())
    host = web.inspect()["HostConfig"]
    assert (host["CpuQuota"], host["CpuPeriod"], host["Memory"]) == (50_000, 100_000, 64 * 2**20)
    assert web.probe() == "ok"
    fault.revert(ctx())
    fault.verify_reverted(ctx())
    host = web.inspect()["HostConfig"]
    assert host["CpuQuota"] <= 0 and host["Memory"] in (0, containers.UNLIMITED_MEMORY) and host["MemorySwap"] == -1


def test_throttle_restores_limits_the_container_already_had(httpd):
    web = httpd(extra=("--cpus", "1.5", "--memory", "128m"))
    before = web.inspect()["HostConfig"]
    fault = make_fault("throttle", web.target, cpus=0.25, memory_bytes="32MiB")
    fault.inject(ctx())
    host = web.inspect()["HostConfig"]
    assert (host["NanoCpus"], host["Memory"]) == (250_000_000, 32 * 2**20)
    fault.revert(ctx())
    fault.verify_reverted(ctx())
    after = web.inspect()["HostConfig"]
    assert {k: after[k] for k in ("NanoCpus", "Memory", "MemorySwap")} == {k: before[k] for k in ("NanoCpus", "Memory", "MemorySwap")}


def test_a_container_without_the_opt_in_label_is_refused(httpd):
    web = httpd(label=False)
    fault = make_fault("pause", web.target)
    with pytest.raises(SafetyError) as err:
        fault.inject(ctx())
    assert str(err.value) == (f"container target 'web': container {web.name!r} has not opted in to faults; "
                              "expected the label chaos-events.allow=true or its name in --chaos-allow")
    assert web.inspect()["State"]["Paused"] is False and web.probe() == "ok"
    fault.revert(ctx())                              # nothing was done: nothing to undo
    allowed = make_fault("pause", web.target)
    allowed.inject(ctx(extra_allowed=(web.name,)))   # --chaos-allow NAME lets it through
    assert web.inspect()["State"]["Paused"] is True
    allowed.revert(ctx())
    assert web.probe() == "ok"


def test_a_run_naming_a_missing_or_unlabelled_container_is_refused_before_any_load(httpd, tmp_path):
    # Exit 2 before anything starts: no fault, no load, the container untouched.
    from tests.helpers import run_locust

    web = httpd(label=False)
    locustfile = tmp_path / "lf.py"
    locustfile.write_text("import chaos_events\nfrom locust import FastHttpUser, task\n"
                          "class U(FastHttpUser):\n    @task\n    def t(self):\n        self.client.get('/')\n")
    for container, expected in [
        ("chaos-no-such-container", "targets.web (container): container target 'web': no container named 'chaos-no-such-container'"),
        (web.name, f"targets.web (container): container target 'web': container {web.name!r} has not opted in to faults"),
    ]:
        scenario = tmp_path / "s.yml"
        scenario.write_text(f"name: c\ntargets:\n  web: {{container: {container}}}\n"
                            "faults:\n  - {at: 0s, for: 5s, fault: pause, target: web}\n")
        run = run_locust(["-f", str(locustfile), "--headless", "-u", "1", "-r", "1", "--run-time", "3s",
                          "--host", f"http://127.0.0.1:{web.port}", "--chaos-plan", str(scenario), "--chaos-metrics-port", "0",
                          "--chaos-journal", str(tmp_path / "j.json"), "--chaos-report-dir", str(tmp_path / "r")],
                         timeout=60)
        assert run.returncode == 2, run.output[-3000:]
        assert f"{scenario}:3 {expected}" in run.output, run.output[-3000:]
        assert "Traceback" not in run.output
        assert web.inspect()["State"]["Paused"] is False
