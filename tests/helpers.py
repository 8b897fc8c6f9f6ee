"""Shared test helpers: free ports, real-part requirements, and a bounded Locust subprocess.

Every process started here is ended by its pid, even when the test fails.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socketserver
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaos_events.backends.process import stop_group  # noqa: F401  (the suites import it from here)

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LOCUST = str(VENV_BIN / "locust")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(part: str, available: bool, why: str) -> None:
    """Skip on a laptop that lacks `part`; fail in CI (CHAOS_REQUIRE_REAL_PARTS=1), where it must run."""
    if available:
        return
    message = f"needs {part}: {why}"
    if os.environ.get("CHAOS_REQUIRE_REAL_PARTS") == "1":
        pytest.fail(message + " (CHAOS_REQUIRE_REAL_PARTS=1: real parts are mandatory here)")
    pytest.skip(message)


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


def require_docker() -> None:
    require("Docker", docker_available(), "no Docker engine answers `docker info`")


def require_prometheus() -> None:
    require("Prometheus", bool(shutil.which("prometheus") and shutil.which("promtool")), "prometheus/promtool not on PATH (apt-get install prometheus)")


def require_chromium() -> None:
    require("Chromium", bool(shutil.which("chromium")), "chromium not on PATH (apt-get install chromium)")


# The Toxiproxy release .ci/run installs (go install ...@TOXIPROXY_VERSION into TOXIPROXY_CACHE/bin).
TOXIPROXY_VERSION = "v2.12.0"
TOXIPROXY_CACHE = Path.home() / ".cache" / "chaos-events" / "toxiproxy" / TOXIPROXY_VERSION


@dataclass(frozen=True)
class Toxiproxy:
    server: str
    cli: str


def toxiproxy_binaries() -> Toxiproxy | None:
    """Toxiproxy's server and CLI: in $CHAOS_TOXIPROXY_BIN, else in the cache .ci/run fills; None when absent."""
    directory = Path(os.environ.get("CHAOS_TOXIPROXY_BIN") or TOXIPROXY_CACHE / "bin")
    server, cli = directory / "server", directory / "cli"
    if server.is_file() and os.access(server, os.X_OK) and cli.is_file() and os.access(cli, os.X_OK):
        return Toxiproxy(str(server), str(cli))
    return None


def require_toxiproxy() -> Toxiproxy:
    """Toxiproxy's binaries, or skip (fail under CHAOS_REQUIRE_REAL_PARTS=1) saying how to get them."""
    found = toxiproxy_binaries()
    require("Toxiproxy", found is not None,
            f"no server and cli in $CHAOS_TOXIPROXY_BIN or {TOXIPROXY_CACHE / 'bin'} (.ci/run installs them: "
            f"GOBIN=DIR go install github.com/Shopify/toxiproxy/v2/cmd/server@{TOXIPROXY_VERSION} .../cmd/cli@{TOXIPROXY_VERSION})")
    return found


def require_kafka() -> None:
    """Apache Kafka's broker needs Java 17+ and the jars that `python -m chaos_events.demo fetch-kafka` caches."""
    from chaos_events.demo.kafka_dist import KafkaSetupError, require as kafka_ready

    try:
        kafka_ready()
    except KafkaSetupError as exc:
        require("Apache Kafka", False, str(exc))


@dataclass
class LocustRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_locust(args: list[str], timeout: float = 120, env: dict | None = None, cwd: Path = ROOT) -> LocustRun:
    """Run `locust ARGS` to completion; on timeout, end it (and its group) by pid and fail the test."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen([LOCUST, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        out, err = proc.communicate()
        pytest.fail(f"locust did not finish within {timeout}s\nstdout:\n{out[-4000:]}\nstderr:\n{err[-4000:]}")
    return LocustRun(proc.returncode, out, err)


@contextlib.contextmanager
def running_tansu():
    """A Tansu broker (memory storage) on a free 127.0.0.1 port; yields its bootstrap address, killed by pid after."""
    from chaos_events.demo.broker import broker_argv

    port = free_port()
    proc = subprocess.Popen(broker_argv(port, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Tansu did not listen on 127.0.0.1:{port} (exit code {proc.poll()})")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # memory storage: nothing to flush
        proc.wait(10)


@contextlib.contextmanager
def registered_faults(*classes):
    """Register test-only fault types for the block, then remove them, so no other test sees them in listings."""
    from chaos_events.faults import base

    for cls in classes:
        base.register(cls)
    try:
        yield
    finally:
        for cls in classes:
            base._REGISTRY.pop(cls.type_name, None)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def running_echo_server():
    """A TCP echo server on a free 127.0.0.1 port; yields its (host, port)."""
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address
    finally:
        server.shutdown()
        server.server_close()
