"""The demo supervisor without a broker: port conflicts, pidfiles, and `down` on stale or live pidfiles.

Processes started here are plain `sleep`s in their own sessions, ended by pid in `finally`.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys

import pytest

from chaos_events.demo.supervisor import (DEFAULT_PORTS, PARTS, Platform, PlatformError, pid_alive, pid_runs, read_pidfile, start_platform,
                             write_pidfile)
from tests.helpers import ROOT, free_port, stop_group

SLEEP = shutil.which("sleep")


def run_demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chaos_events.demo", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
def listener():
    """A socket listening on a free port of 127.0.0.1, as if another program held it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@pytest.fixture
def sleeper():
    procs = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([SLEEP, "60"], start_new_session=True)
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            stop_group(proc, grace=2)


@pytest.mark.parametrize("key,part,what", [("api", "api", "HTTP API"), ("kafka_route", "proxy", "Kafka route"),
                                           ("kafka", "broker", "Kafka listener"), ("proxy_control", "proxy", "control API")])
def test_taken_port_is_named_with_its_part(tmp_path, listener, key, part, what):
    with pytest.raises(PlatformError) as info:
        start_platform(tmp_path / "run", {key: listener})
    assert str(info.value) == f"port {listener} on 127.0.0.1 is already in use; the demo {part} needs it ({what}, ports.{key})"
    assert not list((tmp_path / "run").glob("*.pid")), "nothing may be started when a port is taken"


def test_up_on_a_taken_port_exits_2_with_the_message(tmp_path, listener):
    # The CLI's default ports are fixed, so provoke the conflict through a port it checks first: use `start-part`.
    platform = Platform(tmp_path, {**{k: free_port() for k in DEFAULT_PORTS}, "api": listener})
    platform.save()
    proc = run_demo("start-part", "api", "--run-dir", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: port {listener} on 127.0.0.1 is already in use; the demo api needs it (HTTP API, ports.api)"


def test_bad_port_maps_are_refused(tmp_path):
    with pytest.raises(PlatformError, match=r"^unknown port name\(s\) apii; expected: api_route, api, kafka_route, kafka, proxy_control$"):
        start_platform(tmp_path, {"apii": 1234})
    port = free_port()
    with pytest.raises(PlatformError, match=rf"^port\(s\) \[{port}\] given to more than one part"):
        start_platform(tmp_path, {"api": port, "kafka": port})


def test_platform_json_has_the_interface_facts(tmp_path):
    ports = {k: free_port() for k in DEFAULT_PORTS}
    platform = Platform(tmp_path, ports)
    platform.save()
    data = json.loads((tmp_path / "platform.json").read_text())
    assert data["api_url"] == f"http://127.0.0.1:{ports['api_route']}"
    assert data["api_direct_url"] == f"http://127.0.0.1:{ports['api']}"
    assert data["kafka_bootstrap"] == f"127.0.0.1:{ports['kafka_route']}"
    assert data["kafka_direct"] == f"127.0.0.1:{ports['kafka']}"
    assert data["proxy_control_url"] == f"http://127.0.0.1:{ports['proxy_control']}"
    assert (data["topic"], data["dlq_topic"], data["consumer_group"]) == ("events", "events.dlq", "events-store")
    assert set(data["pidfiles"]) == {"broker", "api", "consumer", "proxy"}
    assert data["restart_commands"]["broker"][-4:] == ["start-part", "broker", "--run-dir", str(tmp_path.resolve())]
    assert data["env"] == platform.env() and set(platform.env()) == {
        "DEMO_RUN_DIR", "DEMO_API_URL", "DEMO_API_DIRECT_URL", "DEMO_KAFKA_BOOTSTRAP", "DEMO_KAFKA_DIRECT", "DEMO_PROXY_CONTROL", "DEMO_TOPIC"}
    # The broker advertises the proxy route, so every Kafka client goes through the proxy.
    assert f"tcp://127.0.0.1:{ports['kafka_route']}" in data["argv"]["broker"]
    loaded = Platform.load(tmp_path)
    assert loaded.ports == ports and loaded.part_argv("api") == data["argv"]["api"]


def test_pidfile_round_trip_and_identity_check(tmp_path, sleeper):
    proc = sleeper()
    path = tmp_path / "x.pid"
    write_pidfile(path, proc.pid)
    assert read_pidfile(path) == proc.pid
    assert pid_runs(proc.pid, [SLEEP, "60"])
    assert not pid_runs(proc.pid, [SLEEP, "61"]), "a pid running another command line is not ours"
    path.write_text("garbage\n")
    assert read_pidfile(path) is None
    assert read_pidfile(tmp_path / "missing.pid") is None


def _platform_with_fake_broker(tmp_path, argv: list[str]) -> Platform:
    platform = Platform(tmp_path, {k: free_port() for k in DEFAULT_PORTS})
    platform.save()
    data = json.loads((tmp_path / "platform.json").read_text())
    data["argv"]["broker"] = argv
    (tmp_path / "platform.json").write_text(json.dumps(data))
    return Platform.load(tmp_path)


def test_down_on_a_stale_pidfile_removes_it_and_signals_nothing(tmp_path, sleeper):
    dead = subprocess.Popen(["true"])
    dead.wait()
    bystander = sleeper()  # alive, but not running the recorded command line: a reused pid
    platform = _platform_with_fake_broker(tmp_path, [SLEEP, "99"])
    write_pidfile(platform.pidfiles["broker"], dead.pid)
    write_pidfile(platform.pidfiles["api"], bystander.pid)
    proc = run_demo("down", "--run-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert f"broker: stale pidfile (pid {dead.pid} is not running the demo broker); removed" in proc.stdout
    assert f"api: stale pidfile (pid {bystander.pid} is not running the demo api); removed" in proc.stdout
    assert "consumer: not running" in proc.stdout
    assert not list(tmp_path.glob("*.pid"))
    assert bystander.poll() is None and pid_alive(bystander.pid), "down must never signal a pid that is not ours"


def test_down_stops_a_live_part_by_pidfile(tmp_path, sleeper):
    part = sleeper()
    platform = _platform_with_fake_broker(tmp_path, [SLEEP, "60"])
    write_pidfile(platform.pidfiles["broker"], part.pid)
    assert platform.status()["broker"] == {"pid": part.pid, "running": True, "pidfile": str(platform.pidfiles["broker"])}
    proc = run_demo("down", "--run-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert f"broker: stopped pid {part.pid}" in proc.stdout
    assert part.wait(timeout=10) == -15  # SIGTERM
    assert not platform.pidfiles["broker"].exists()


def test_down_without_platform_json_only_removes_pidfiles(tmp_path, sleeper):
    bystander = sleeper()
    write_pidfile(tmp_path / "broker.pid", bystander.pid)
    proc = run_demo("down", "--run-dir", str(tmp_path))
    assert proc.returncode == 0
    assert "no platform.json to verify pid" in proc.stdout
    assert bystander.poll() is None
    assert run_demo("down", "--run-dir", str(tmp_path / "nothing")).stdout.strip() == f"no demo platform in {tmp_path / 'nothing'}"


def test_status_and_start_part_without_a_platform_exit_2(tmp_path):
    proc = run_demo("status", "--run-dir", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {tmp_path}/platform.json: no demo platform here (file not found); "
                                   f"start one with `python -m chaos_events.demo up --run-dir {tmp_path}`")
    assert PARTS == ("broker", "proxy", "consumer", "api")
