"""Resource faults have real effects on this machine while they last and none after revert.

Each fault goes inject -> revert -> revert. Children are checked in /proc; whatever a test started is stopped by
pid in a finally block (the fault's own revert, then a direct stop of any recorded child as a backstop).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest

from chaos_events.backends import resource as backend
from chaos_events.errors import InjectionError
from chaos_events.faults.base import FaultContext, build_params, fault_type
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import ROOT, free_port

HOST = Target("host", TargetKind.HOST, {})
MiB = 1024 * 1024


def _fault(name: str, target: Target, **raw):
    params, problems = build_params(fault_type(name), raw)
    assert problems == []
    return fault_type(name)(params, target)


def _wait_for(predicate, timeout_s: float = 10.0, every_s: float = 0.05):
    """Poll until `predicate()` is truthy (returns it) or give up after `timeout_s` (returns the last value)."""
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(every_s)
        value = predicate()
    return value


@contextmanager
def _cleanup(fault):
    """Always revert; then stop any child still recorded (the backstop must never be needed)."""
    saved = []
    ctx = FaultContext(save_state=lambda: saved.append(json.loads(json.dumps(fault.state))))
    try:
        yield ctx, saved
    finally:
        try:
            fault.revert(ctx)
        finally:
            for data in fault.state.get("children", []):
                backend.stop_child(backend.ChildHandle.from_state(data))


def _handles(fault) -> list[backend.ChildHandle]:
    return [backend.ChildHandle.from_state(d) for d in fault.state["children"]]


def test_cpu_burn_children_spin_and_are_gone_after_revert():
    fault = _fault("cpu_burn", HOST, cores=1, load=1.0)
    with _cleanup(fault) as (ctx, saved):
        fault.inject(ctx)
        [handle] = _handles(fault)
        assert saved and saved[-1]["children"] == [handle.to_state()]  # the pid was journaled
        first = backend.proc_stat(handle.pid)
        # The child really burns CPU: its user time grows and it is seen running (R).
        assert _wait_for(lambda: backend.proc_stat(handle.pid)[1] > first[1] and backend.proc_stat(handle.pid)[0] == "R")
        fault.revert(ctx)
        assert not backend.is_alive(handle) and backend.proc_stat(handle.pid) is None
        fault.verify_reverted(ctx)
        fault.revert(ctx)
        assert fault.state["children"] == []


def test_memory_pressure_child_holds_the_requested_memory():
    size = 128 * MiB
    fault = _fault("memory_pressure", HOST, size_bytes=size)
    with _cleanup(fault) as (ctx, _):
        fault.inject(ctx)
        [handle] = _handles(fault)
        assert backend.rss_bytes(handle.pid) >= 0.9 * size
        fault.revert(ctx)
        assert backend.rss_bytes(handle.pid) == 0 and not backend.is_alive(handle)
        fault.revert(ctx)


def test_disk_fill_writes_real_blocks_and_revert_deletes_them(tmp_path):
    size = 48 * MiB
    fault = _fault("disk_fill", Target("scratch", TargetKind.DIRECTORY, {"path": str(tmp_path)}), size_bytes=size, chunk_bytes="1MiB")
    ctx = FaultContext(occurrence_id="occ-disk")
    try:
        fault.inject(ctx)
        path = tmp_path / ".chaos-disk-fill-occ-disk"
        assert fault.state == {"id": "occ-disk", "path": str(path), "written_bytes": size}
        st = path.stat()
        # Real blocks on the filesystem (what statvfs counts), not a sparse file.
        assert st.st_size == size and st.st_blocks * 512 >= size
        fault.revert(ctx)
        assert not path.exists() and list(tmp_path.iterdir()) == []
        fault.verify_reverted(ctx)
        fault.revert(ctx)
    finally:
        fault.revert(ctx)


def test_a_burner_exits_by_itself_when_the_harness_is_killed():
    # A harness that dies by SIGKILL cannot revert; its children notice the new parent and end themselves.
    script = ("import sys; from chaos_events.backends import resource as r\n"
              "h = r.start_cpu_burner(0.2); print(h.pid, h.start_ticks, flush=True); sys.stdin.read()")
    harness = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, start_new_session=True)
    handle = None
    try:
        pid, ticks = harness.stdout.readline().split()
        handle = backend.ChildHandle(int(pid), int(ticks))
        assert backend.is_alive(handle)
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait(timeout=10)
        assert _wait_for(lambda: not backend.is_alive(handle), timeout_s=10)
    finally:
        if harness.poll() is None:
            os.kill(harness.pid, signal.SIGKILL)
            harness.wait(timeout=10)
        if handle is not None:
            backend.stop_child(handle)


# -- pool exhaustion against the demo API ----------------------------------------------------------------------
def _post_event(base_url: str, event_id: str) -> int:
    body = json.dumps({"id": event_id, "type": "page.viewed", "source": "web", "timestamp": "2026-01-01T00:00:00Z",
                       "payload": {"page": "/"}}).encode()
    request = urllib.request.Request(base_url + "/api/events", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return -1


@pytest.fixture(scope="module")
def pool_platform(tmp_path_factory):
    """A platform of this module's own: these tests exhaust it (and check that it recovers after each revert)."""
    from chaos_events.demo.supervisor import start_platform

    platform = start_platform(tmp_path_factory.mktemp("pool-run"))
    try:
        yield platform
    finally:
        platform.stop()


def _busy_count(base_url: str) -> int:
    with urllib.request.urlopen(base_url + "/admin/stats", timeout=10) as response:
        return json.load(response)["api"]["busy"]


@pytest.mark.parametrize("hold, connections", [("slow-request", 80), ("idle", 300)])
def test_pool_exhaustion_makes_the_api_answer_503(pool_platform, hold, connections):
    # The demo API allows 64 requests in flight (503 after 0.25 s) and uvicorn 256 connections (503 beyond):
    # 80 half-sent requests exhaust the first, 300 idle connections the second.
    api = pool_platform.api_direct_url
    busy_before = _busy_count(api)
    assert _post_event(api, "pool-before") == 202
    fault = _fault("pool_exhaustion", Target("api", TargetKind.ENDPOINT, {"url": api + "/api/events"}),
                   connections=connections, hold=hold)
    with _cleanup(fault) as (ctx, _):
        fault.inject(ctx)
        assert fault.state["opened"] == connections and fault.state["failed"] == 0
        [handle] = _handles(fault)
        assert backend.is_alive(handle)
        seq = iter(range(1000))
        assert _wait_for(lambda: _post_event(api, f"pool-during-{next(seq)}") == 503, timeout_s=15, every_s=0.2)
        if hold == "slow-request":
            # Refused by the API's in-flight cap (its 'busy' counter), not merely by uvicorn's connection cap.
            assert _busy_count_when_free(api, fault, ctx) > busy_before
        fault.revert(ctx)
        assert not backend.is_alive(handle)
        assert _wait_for(lambda: _post_event(api, f"pool-after-{next(seq)}") == 202, timeout_s=15, every_s=0.2)
        fault.revert(ctx)


def _busy_count_when_free(api: str, fault, ctx) -> int:
    # /admin/stats is itself capped while the slots are held, so read it right after the revert.
    fault.revert(ctx)
    return _wait_for(lambda: _busy_count(api), timeout_s=10)


def test_pool_exhaustion_against_a_closed_port_fails_inject_and_leaves_nothing():
    port = free_port()
    fault = _fault("pool_exhaustion", Target("api", TargetKind.ENDPOINT, {"host": "127.0.0.1", "port": port, "url": None}), connections=3)
    with _cleanup(fault) as (ctx, _):
        with pytest.raises(InjectionError) as err:
            fault.inject(ctx)
        assert str(err.value) == f"pool_exhaustion: no connection to 127.0.0.1:{port} could be opened (3 failed)"
        handles = _handles(fault)  # inject failed halfway: the child was recorded, and revert ends it
        fault.revert(ctx)
        fault.revert(ctx)
        assert handles and not any(backend.is_alive(h) for h in handles)
