"""Resource-pressure faults: cpu_burn, memory_pressure, disk_fill, pool_exhaustion.

Must not import locust, gevent, docker or prometheus_client. Reaches the machine only through
`chaos_events.backends.resource`. Every cap is checked twice: in `preflight` (before the run, so a scenario that asks
too much is refused with exit 2) and again in `inject` (the machine may have changed since).

Example (scenario):
    targets: {host: {host: local}, scratch: {directory: /var/tmp}, api: {endpoint: "http://127.0.0.1:8000"}}
    faults:
      - {at: 10s, for: 20s, fault: cpu_burn, target: host, params: {cores: 1, load: 0.8}}
      - {at: 10s, for: 20s, fault: disk_fill, target: scratch, params: {free_percent: 10}}
      - {at: 40s, for: 20s, fault: pool_exhaustion, target: api, params: {connections: 200, hold: slow-request}}
"""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from chaos_events.backends import resource as backend
from chaos_events.errors import InjectionError, RevertError
from chaos_events.scenario.model import Target, TargetKind
from pydantic import Field, model_validator

from chaos_events.faults.base import Fault, FaultContext, FaultParams, register
from chaos_events.scenario.fields import Number, SizeBytes, UrlPath, WholeNumber, choice, fail


def _stop_children(fault: Fault, ctx: FaultContext) -> None:
    """Revert for the child-based faults: stop every recorded child, keep going past failures, report them all."""
    failures = []
    for data in list(fault.state.get("children", [])):
        handle = backend.ChildHandle.from_state(data)
        try:
            backend.stop_child(handle)
        except RevertError as exc:
            failures.append(str(exc))
            continue
        fault.state["children"].remove(data)
        ctx.save_state()
    if failures:
        raise RevertError(f"{fault.type_name}: " + "; ".join(failures))


def _verify_children_gone(fault: Fault) -> None:
    alive = [d["pid"] for d in fault.state.get("children", []) if backend.is_alive(backend.ChildHandle.from_state(d))]
    if alive:
        raise RevertError(f"{fault.type_name}: processes still running: {', '.join(map(str, alive))}")


class _CappedFault(Fault):
    """A resource fault whose caps (`preflight`) are checked again at inject time: the machine may have changed."""

    def inject(self, ctx: FaultContext) -> None:
        problems = self.preflight(self.params, self.target)
        if problems:
            raise InjectionError(f"{self.type_name}: {problems[0]}")
        self._apply(ctx)

    def _apply(self, ctx: FaultContext) -> None:
        raise NotImplementedError


class _ChildProcessFault(_CappedFault):
    """Its effect lives in child processes. Invariant: state["children"] lists each child, saved as it starts."""

    def _keep(self, handle: Any, ctx: FaultContext) -> None:
        self.state.setdefault("children", []).append(handle.to_state())
        ctx.save_state()

    def revert(self, ctx: FaultContext) -> None:
        _stop_children(self, ctx)

    def verify_reverted(self, ctx: FaultContext) -> None:
        _verify_children_gone(self)



# -- cpu_burn -------------------------------------------------------------------------------------------------
class CpuBurnParams(FaultParams):
    cores: WholeNumber = Field(ge=1, description="how many cores to keep busy (capped at the machine's cores)")
    load: Number = Field(1.0, gt=0, le=1, description="share of each core's time to burn")


@register
class CpuBurn(_ChildProcessFault):
    """Spin `cores` child processes, each busy for `load` of the time. Invariant: state["children"] lists every
    child started so far, saved before the next one starts.

    Example: CpuBurn(CpuBurnParams(cores=1, load=0.5), Target("host", TargetKind.HOST, {}))
    """

    type_name = "cpu_burn"
    Params = CpuBurnParams
    target_kinds = frozenset({TargetKind.HOST})
    summary = "busy-loop child processes on N cores"

    @classmethod
    def preflight(cls, params: CpuBurnParams, target: Target) -> list[str]:
        return backend.cpu_burn_problems(params.cores)

    def _apply(self, ctx: FaultContext) -> None:
        for _ in range(self.params.cores):
            self._keep(backend.start_cpu_burner(self.params.load), ctx)


# -- memory_pressure ------------------------------------------------------------------------------------------
class MemoryPressureParams(FaultParams):
    size_bytes: SizeBytes = Field(gt=0, description="resident memory to hold (capped at half of MemAvailable)")


@register
class MemoryPressure(_ChildProcessFault):
    """One child that allocates `size_bytes`, touches every page and holds it. Capped at 50% of MemAvailable.

    Example: MemoryPressure(MemoryPressureParams(size_bytes=256 * 2**20), Target("host", TargetKind.HOST, {}))
    """

    type_name = "memory_pressure"
    Params = MemoryPressureParams
    target_kinds = frozenset({TargetKind.HOST})
    summary = "a child process holding resident memory"

    @classmethod
    def preflight(cls, params: MemoryPressureParams, target: Target) -> list[str]:
        return backend.memory_problems(params.size_bytes)

    def _apply(self, ctx: FaultContext) -> None:
        self._keep(backend.start_memory_hog(self.params.size_bytes), ctx)


# -- disk_fill ------------------------------------------------------------------------------------------------
class DiskFillParams(FaultParams):
    size_bytes: SizeBytes | None = Field(None, gt=0, description="how much to write")
    free_percent: Number | None = Field(None, ge=0, lt=100, description="or: fill until only this % is free")
    chunk_bytes: SizeBytes = Field(4 * 1024 * 1024, ge=4096, le=64 * 1024 * 1024, description="size of each write")

    @model_validator(mode="after")
    def _exactly_one_amount(self) -> "DiskFillParams":
        if (self.size_bytes is None) == (self.free_percent is None):
            raise fail("expected exactly one of 'size_bytes' or 'free_percent'")
        return self


def _directory(target: Target) -> str:
    return target.spec.path


@register
class DiskFill(_CappedFault):
    """Write `.chaos-disk-fill-<id>` in the target directory until `size_bytes` are written or only
    `free_percent` of the filesystem is free. Never leaves less than 5% (at least 1 GiB) free.

    Invariant: state["path"] is saved before the file is created, so a revert always finds it.
    Example: DiskFill(DiskFillParams(size_bytes=64 * 2**20), Target("scratch", TargetKind.DIRECTORY, {"path": "/var/tmp"}))
    """

    type_name = "disk_fill"
    Params = DiskFillParams
    target_kinds = frozenset({TargetKind.DIRECTORY})
    summary = "a file that fills a directory's filesystem"

    @classmethod
    def preflight(cls, params: DiskFillParams, target: Target) -> list[str]:
        return backend.disk_fill_problems(_directory(target), params.size_bytes, params.free_percent)

    def _apply(self, ctx: FaultContext) -> None:
        directory = _directory(self.target)
        fill = backend.disk_fill_bytes(backend.disk_space(directory), self.params.size_bytes, self.params.free_percent)
        path = os.path.join(directory, f"{backend.DISK_FILL_PREFIX}{self.own_id(ctx)}")
        self.state["path"] = path
        ctx.save_state()
        self.state["written_bytes"] = backend.fill_disk(path, fill, self.params.chunk_bytes)
        ctx.save_state()
        if self.state["written_bytes"] < fill:
            ctx.log(f"disk_fill: stopped at {self.state['written_bytes']} of {fill} bytes in {directory}: "
                    "free space reached the floor while writing (other writers share this disk)")

    def revert(self, ctx: FaultContext) -> None:
        path = self.state.get("path")
        if path:
            backend.remove_fill(path)

    def verify_reverted(self, ctx: FaultContext) -> None:
        path = self.state.get("path")
        if path and os.path.exists(path):
            raise RevertError(f"disk_fill: {path} still exists")


# -- pool_exhaustion ------------------------------------------------------------------------------------------
HoldMode = choice(*backend.HOLD_MODES)


class PoolExhaustionParams(FaultParams):
    connections: WholeNumber = Field(ge=1, description="connections to open and hold")
    hold: HoldMode = Field("idle", description="idle, or slow-request: a body that never ends")
    path: UrlPath | None = Field(None, description="where a slow request goes; default: the target URL's path, else /")


def endpoint_address(target: Target) -> tuple[str, int, str]:
    """(host, port, path) of an endpoint target: its host and port, and its URL's path (else /)."""
    spec = target.spec
    return spec.host, spec.port, (urlsplit(spec.url).path or "/") if spec.url else "/"


@register
class PoolExhaustion(_ChildProcessFault):
    """A child process opens `connections` TCP connections to the endpoint and holds them: idle, or with a
    request whose body never finishes ("slow-request"), which ties up the server's request slots. A slow
    request must go to a route that reads its body (`path`, e.g. /api/events): a 404 frees the slot at once.
    Connections the server closes are reopened, so the pool stays exhausted until revert.

    Example: PoolExhaustion(PoolExhaustionParams(connections=50, hold="slow-request"),
                            Target("api", TargetKind.ENDPOINT, {"url": "http://127.0.0.1:8001/api/events"}))
    """

    type_name = "pool_exhaustion"
    Params = PoolExhaustionParams
    target_kinds = frozenset({TargetKind.ENDPOINT})
    summary = "hold N connections to a server open"

    @classmethod
    def preflight(cls, params: PoolExhaustionParams, target: Target) -> list[str]:
        return backend.connection_problems(params.connections)

    def _apply(self, ctx: FaultContext) -> None:
        host, port, path = endpoint_address(self.target)
        held = backend.start_connection_holder(host, port, self.params.connections, self.params.hold,
                                               self.params.path or path)
        self.state["opened"], self.state["failed"] = held.opened, held.failed
        self._keep(held.handle, ctx)
        if held.opened == 0:
            raise InjectionError(f"pool_exhaustion: no connection to {host}:{port} could be opened ({held.failed} failed)")
