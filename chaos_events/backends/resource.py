"""How resource faults reach this machine: CPU-burning children, a memory-holding child, a disk-filling file,
and a child that holds TCP connections open. Also the caps each of them enforces.

Must not import locust, docker or prometheus_client, and not gevent either: it only uses the standard library,
which gevent's monkey-patching makes cooperative inside Locust (`time.sleep(0)` yields between disk chunks).

The children are started, named and stopped by children.py (`ChildHandle`, `stop_child`, `is_alive`, `proc_stat`,
importable from here too): each runs in its own session, is named by pid and start time (a reused pid is never
killed), and exits by itself when the harness dies, so a SIGKILLed harness leaves no burner behind.

Example:
    handle = start_cpu_burner(load=1.0)
    ...
    stop_child(handle)      # idempotent: a child already gone is fine
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from chaos_events.backends.children import (  # noqa: F401  (the child names stay importable from here)
    READY_TIMEOUT_S, ChildHandle, is_alive, proc_stat, spawn, stop_child, wait_ready,
)
from chaos_events.errors import InjectionError, RevertError

GiB = 1024**3
MAX_CONNECTIONS = 5000
DISK_FLOOR_FRACTION = 0.05
DISK_FLOOR_BYTES = 1 * GiB
MEMORY_CAP_FRACTION = 0.5
DISK_FILL_PREFIX = ".chaos-disk-fill-"


# -- CPU ------------------------------------------------------------------------------------------------------
_CPU_CODE = """
load = float(sys.argv[1])
period = 0.1
print("ready", flush=True)
while True:
    start = time.monotonic()
    while time.monotonic() - start < load * period:
        pass
    if load < 1.0:
        time.sleep((1.0 - load) * period)
"""


def cpu_cores() -> int:
    return os.cpu_count() or 1


def cpu_burn_problems(cores: int, available: int | None = None) -> list[str]:
    """The cap: no more burners than cores. `available` defaults to os.cpu_count()."""
    available = cpu_cores() if available is None else available
    if cores > available:
        return [f"cores {cores} exceeds the {available} CPU cores of this machine; expected 1..{available}"]
    return []


def start_cpu_burner(load: float) -> ChildHandle:
    """One child spinning on one core for `load` of each 100 ms (1.0 = flat out)."""
    proc, handle = spawn(_CPU_CODE, [repr(float(load))], "cpu_burn")
    wait_ready(proc, handle, "cpu_burn")
    return handle


# -- memory ---------------------------------------------------------------------------------------------------
_MEMORY_CODE = """
size = int(sys.argv[1])
page = os.sysconf("SC_PAGE_SIZE")
block = bytearray(size)
# bytearray() may map untouched zero pages lazily; writing one byte per page makes every page resident.
block[::page] = b"\\x01" * len(range(0, size, page))
print("ready", size, flush=True)
while True:
    time.sleep(3600)
"""


def mem_available_bytes() -> int:
    """MemAvailable from /proc/meminfo, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise InjectionError("/proc/meminfo has no MemAvailable line")


def memory_problems(size_bytes: int, available: int | None = None) -> list[str]:
    """The cap: at most 50% of MemAvailable. `available` defaults to the current /proc/meminfo value."""
    available = mem_available_bytes() if available is None else available
    cap = int(available * MEMORY_CAP_FRACTION)
    if size_bytes > cap:
        return [f"size_bytes {size_bytes} exceeds the cap of {cap} bytes (50% of MemAvailable {available} bytes)"]
    if size_bytes <= 0:
        return [f"size_bytes must be above 0; got {size_bytes}"]
    return []


def start_memory_hog(size_bytes: int) -> ChildHandle:
    """A child that allocates `size_bytes`, touches every page, and holds it until stopped."""
    proc, handle = spawn(_MEMORY_CODE, [str(int(size_bytes))], "memory_pressure")
    wait_ready(proc, handle, "memory_pressure")
    return handle


def rss_bytes(pid: int) -> int:
    """VmRSS of a process from /proc/PID/status, in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


# -- disk -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiskSpace:
    total_bytes: int
    free_bytes: int      # available to an unprivileged writer (f_bavail)

    @property
    def floor_bytes(self) -> int:
        """Free space a disk fill never goes below: 5% of the filesystem or 1 GiB, whichever is larger."""
        return max(int(self.total_bytes * DISK_FLOOR_FRACTION), DISK_FLOOR_BYTES)


def disk_space(directory: str) -> DiskSpace:
    st = os.statvfs(directory)
    return DiskSpace(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)


def disk_fill_bytes(space: DiskSpace, size_bytes: int | None, free_percent: float | None) -> int:
    """How many bytes a fill writes: `size_bytes`, or enough to leave `free_percent` of the filesystem free."""
    if size_bytes is not None:
        return int(size_bytes)
    target_free = int(space.total_bytes * float(free_percent) / 100.0)
    return max(space.free_bytes - target_free, 0)


def disk_fill_problems(directory: str, size_bytes: int | None, free_percent: float | None,
                       space: DiskSpace | None = None) -> list[str]:
    """The cap: never leave less than `DiskSpace.floor_bytes` free. `space` defaults to statvfs of `directory`."""
    if space is None:
        if not os.path.isdir(directory):
            return [f"directory {directory!r} does not exist"]
        if not os.access(directory, os.W_OK):
            return [f"directory {directory!r} is not writable"]
        space = disk_space(directory)
    fill = disk_fill_bytes(space, size_bytes, free_percent)
    left = space.free_bytes - fill
    if left < space.floor_bytes:
        return [f"filling {fill} bytes would leave {left} bytes free in {directory}; the cap keeps at least "
                f"{space.floor_bytes} bytes free (5% of {space.total_bytes} bytes or 1 GiB, whichever is larger)"]
    return []


def fill_disk(path: str, fill_bytes: int, chunk_bytes: int) -> int:
    """Write `fill_bytes` into `path` in chunks, yielding between chunks. Returns the bytes written.

    Stops early (without error) if free space reaches the floor while writing, since other writers share the disk.
    """
    directory = os.path.dirname(path) or "."
    floor = disk_space(directory).floor_bytes
    # Incompressible, non-zero bytes: a sparse or compressed file would not really take the space.
    chunk = (os.urandom(min(chunk_bytes, 1024 * 1024)) * (chunk_bytes // min(chunk_bytes, 1024 * 1024) + 1))[:chunk_bytes]
    written = 0
    try:
        with open(path, "wb") as handle:
            while written < fill_bytes:
                step = min(chunk_bytes, fill_bytes - written)
                if disk_space(directory).free_bytes - step < floor:
                    break
                handle.write(chunk[:step])
                written += step
                time.sleep(0)  # under gevent's patching this lets other greenlets run between chunks
            handle.flush()
            os.fsync(handle.fileno())  # so statvfs sees the blocks now, not at writeback
    except OSError as exc:
        raise InjectionError(f"disk_fill could not write {path}: {exc}") from exc
    return written


def remove_fill(path: str) -> None:
    """Delete the fill file. Idempotent; refuses any name that is not one of ours."""
    if not os.path.basename(path).startswith(DISK_FILL_PREFIX):
        raise RevertError(f"refusing to delete {path}: not a disk_fill file ({DISK_FILL_PREFIX}*)")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RevertError(f"could not delete {path}: {exc}") from exc


# -- connections ----------------------------------------------------------------------------------------------
_CONNECTION_CODE = """
import resource, socket
host, port, count, hold, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft != resource.RLIM_INFINITY and soft < count + 64:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(count + 64, hard) if hard != resource.RLIM_INFINITY else count + 64, hard))
# Full headers, then a body that never completes: the server passes the request to its app, which waits on it.
request = (f"POST {path} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nContent-Type: application/json\\r\\n"
           f"Content-Length: 1048576\\r\\nUser-Agent: chaos-events pool_exhaustion\\r\\n\\r\\n{{").encode()

def connect():
    s = socket.create_connection((host, port), timeout=5)
    s.setblocking(False)
    if hold == "slow-request":
        s.send(request)
    return s

socks = []
errors = 0
for _ in range(count):
    try:
        socks.append(connect())
    except OSError:
        errors += 1
print("ready", len(socks), errors, flush=True)
last_trickle = time.monotonic()
while True:
    time.sleep(1.0)
    # A server that closes a held connection gets a new one, so the pool stays exhausted for the whole fault.
    for i, s in enumerate(socks):
        try:
            if s.recv(65536) == b"":
                raise OSError("closed")
        except BlockingIOError:
            continue
        except OSError:
            pass
        else:
            continue
        s.close()
        try:
            socks[i] = connect()
        except OSError:
            socks[i] = socket.socket()
    if hold == "slow-request" and time.monotonic() - last_trickle > 5:
        # One body byte now and then, so body-read timeouts keep being reset (slowloris).
        last_trickle = time.monotonic()
        for s in socks:
            try:
                s.send(b" ")
            except OSError:
                pass
"""

HOLD_MODES = ("idle", "slow-request")


def fd_limit() -> int:
    """The hard open-file limit a child may raise itself to."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard if hard != resource.RLIM_INFINITY else 1 << 20


def connection_problems(connections: int, limit: int | None = None) -> list[str]:
    """The caps: at most MAX_CONNECTIONS, and below the open-file limit (default: the hard RLIMIT_NOFILE)."""
    if connections > MAX_CONNECTIONS:
        return [f"connections {connections} exceeds the cap of {MAX_CONNECTIONS}"]
    limit = fd_limit() if limit is None else limit
    if connections >= limit - 64:
        return [f"connections {connections} must be below the open-file limit {limit} minus 64 for the child's own files"]
    return []


@dataclass(frozen=True)
class ConnectionHold:
    handle: ChildHandle
    opened: int
    failed: int


def start_connection_holder(host: str, port: int, connections: int, hold: str, path: str = "/") -> ConnectionHold:
    """A child that opens `connections` TCP connections to host:port and holds them (idle or mid-request)."""
    proc, handle = spawn(_CONNECTION_CODE, [host, str(port), str(connections), hold, path], "pool_exhaustion")
    line = wait_ready(proc, handle, "pool_exhaustion")
    _, opened, failed = line.split()
    return ConnectionHold(handle, int(opened), int(failed))
