"""How service faults reach a Docker container: resolve it (refusing containers that did not opt in), stop,
start, restart, kill, pause, unpause, and change its CPU and memory limits.

The only module that imports `docker`, and lazily, so the docker extra stays optional. Must not import locust,
gevent or prometheus_client. docker.errors are translated here into InjectionError / RevertError (or the
`error` class a caller passes) with text that names the container.

Opt-in: a container is a fault target only when it carries the label `chaos-events.allow=true`, or its name is
in the run's extra allow-list (`--chaos-allow`).

Limits and Docker's update API: in the engine's API a zero means "leave unchanged", so a limit cannot be cleared
back to "none". A CPU throttle of a container without a CPU limit therefore uses the CFS quota (`CpuQuota`,
`CpuPeriod`), which can be cleared with -1; a memory limit is cleared by setting the kernel's "no limit" value
(`UNLIMITED_MEMORY`, what an unlimited cgroup reports). Verified on Docker 20.10.

Example:
    container = resolve_container(ContainerTarget(name="demo-kafka"), "broker")
    pause(container, "broker"); status(container) == "paused"; unpause(container, "broker")
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from chaos_events.errors import ChaosError, InjectionError, SafetyError
from chaos_events.scenario.safety import ALLOW_LABEL, container_allowed

CPU_PERIOD_US = 100_000
# memory.limit_in_bytes of an unlimited cgroup v1 (PAGE_COUNTER_MAX pages of 4 KiB): the kernel's "no limit".
UNLIMITED_MEMORY = 9223372036854771712

_client: Any = None


def _docker():
    try:
        import docker  # lazy: only runs that use container targets need the SDK
    except ImportError as exc:
        raise InjectionError("container targets need the Docker SDK: pip install docker") from exc
    return docker


def client() -> Any:
    """A cached client for the engine at DOCKER_HOST (default /var/run/docker.sock)."""
    global _client
    if _client is None:
        docker = _docker()
        try:
            _client = docker.from_env()
            _client.ping()
        except docker.errors.DockerException as exc:
            _client = None
            raise InjectionError(f"cannot reach the Docker engine (DOCKER_HOST or /var/run/docker.sock): {exc}") from exc
    return _client


def resolve_container(spec: Any, name: str = "", extra_allowed: Iterable[str] = (),
                      error: type[ChaosError] = InjectionError) -> Any:
    """The one container a ContainerTarget names (`name`, or `label` as key=value); refuses one that did not opt in."""
    docker = _docker()
    api = client()
    try:
        if spec.name:
            try:
                container = api.containers.get(spec.name)
            except docker.errors.NotFound:
                raise error(f"container target {name!r}: no container named {spec.name!r}") from None
        elif spec.label:
            found = api.containers.list(all=True, filters={"label": spec.label})
            if len(found) != 1:
                shown = ", ".join(c.name for c in found) or "none"
                raise error(f"container target {name!r}: expected exactly one container with label {spec.label!r}; found {len(found)} ({shown})")
            container = found[0]
        else:
            raise error(f"container target {name!r}: names no container `name` or `label`")
    except docker.errors.DockerException as exc:
        raise error(f"container target {name!r}: Docker engine error while looking it up: {_explain(exc)}") from exc
    labels = container.attrs.get("Config", {}).get("Labels") or {}
    if not container_allowed(container.name, labels, extra_allowed):
        raise SafetyError(
            f"container target {name!r}: container {container.name!r} has not opted in to faults; "
            f"expected the label {ALLOW_LABEL}=true or its name in --chaos-allow")
    return container


def by_id(container_id: str, name: str = "", error: type[ChaosError] = InjectionError) -> Any | None:
    """The container with this id, or None when it no longer exists (it was removed)."""
    docker = _docker()
    try:
        return client().containers.get(container_id)
    except docker.errors.NotFound:
        return None
    except docker.errors.DockerException as exc:
        raise error(f"container target {name!r}: Docker engine error: {_explain(exc)}") from exc


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def _call(action: str, container: Any, name: str, error: type[ChaosError], fn, *args, **kwargs) -> Any:
    docker = _docker()
    try:
        return fn(*args, **kwargs)
    except docker.errors.DockerException as exc:
        raise error(f"container target {name!r}: cannot {action} container {container.name!r}: {_explain(exc)}") from exc


# -- state -----------------------------------------------------------------------------------------
def status(container: Any, name: str = "", error: type[ChaosError] = InjectionError) -> str:
    """Docker's status after a fresh look: created, running, paused, restarting, exited, dead."""
    _call("inspect", container, name, error, container.reload)
    return container.status


def is_running(container: Any, name: str = "", error: type[ChaosError] = InjectionError) -> bool:
    """Running and not paused."""
    return status(container, name, error) == "running"


# -- actions ---------------------------------------------------------------------------------------
def stop(container: Any, name: str = "", timeout_s: float = 10.0, error: type[ChaosError] = InjectionError) -> None:
    _call("stop", container, name, error, container.stop, timeout=int(max(0, round(timeout_s))))


def start(container: Any, name: str = "", error: type[ChaosError] = InjectionError) -> None:
    _call("start", container, name, error, container.start)


def restart(container: Any, name: str = "", timeout_s: float = 10.0, error: type[ChaosError] = InjectionError) -> None:
    _call("restart", container, name, error, container.restart, timeout=int(max(0, round(timeout_s))))


def kill(container: Any, signal_name: str, name: str = "", error: type[ChaosError] = InjectionError) -> None:
    _call(f"send {signal_name} to", container, name, error, container.kill, signal=signal_name)


# runc's cgroup freezer gives up ("unable to freeze") when a process joins the cgroup mid-freeze, which an exec
# healthcheck does every few seconds (moby/moby#48205). The engine leaves the container running, so another try is safe.
FREEZE_ATTEMPTS = 5
FREEZE_RETRY_S = 0.2
_TRANSIENT_FREEZE = ("unable to freeze", "unable to thaw", "freezer", "device or resource busy")


def is_transient_freeze_error(text: str) -> bool:
    """Whether an engine error from pause/unpause is the freezer's transient race, not a real refusal (pure)."""
    lowered = text.lower()
    return any(marker in lowered for marker in _TRANSIENT_FREEZE)


def _freeze_call(action: str, wanted: str, container: Any, name: str, error: type[ChaosError], fn,
                 sleep=None) -> int:
    """pause/unpause with retries over the freezer's race; returns the attempts it took. Done once the container
    is in the `wanted` state, even when the engine's answer to the last attempt was an error."""
    import time

    sleep = sleep or time.sleep
    docker = _docker()
    for attempt in range(1, FREEZE_ATTEMPTS + 1):
        try:
            fn()
            return attempt
        except docker.errors.DockerException as exc:
            text = _explain(exc)
            if attempt == FREEZE_ATTEMPTS or not is_transient_freeze_error(text):
                raise error(f"container target {name!r}: cannot {action} container {container.name!r}: {text}"
                            + (f" (after {attempt} attempts)" if attempt > 1 else "")) from exc
        if status(container, name, error) == wanted:
            return attempt
        sleep(FREEZE_RETRY_S * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


def pause(container: Any, name: str = "", error: type[ChaosError] = InjectionError) -> int:
    return _freeze_call("pause", "paused", container, name, error, container.pause)


def unpause(container: Any, name: str = "", error: type[ChaosError] = InjectionError) -> int:
    return _freeze_call("unpause", "running", container, name, error, container.unpause)


# -- limits ----------------------------------------------------------------------------------------
LIMIT_KEYS = ("NanoCpus", "CpuQuota", "CpuPeriod", "Memory", "MemorySwap")


def limits(container: Any, name: str = "", error: type[ChaosError] = InjectionError) -> dict[str, int]:
    """The container's current CPU and memory limits, as Docker's HostConfig names them."""
    _call("inspect", container, name, error, container.reload)
    host = container.attrs.get("HostConfig", {})
    return {key: int(host.get(key) or 0) for key in LIMIT_KEYS}


def throttle_update(current: Mapping[str, int], cpus: float | None, memory_bytes: int | None) -> dict[str, int]:
    """The update body that applies `cpus` and `memory_bytes` on top of `current` limits (pure)."""
    body: dict[str, int] = {}
    if cpus is not None:
        if current.get("NanoCpus"):
            body["NanoCpus"] = int(cpus * 1e9)  # Docker refuses a CFS quota next to NanoCpus
        else:
            period = current.get("CpuPeriod") or CPU_PERIOD_US
            body["CpuPeriod"] = period
            body["CpuQuota"] = max(1000, int(cpus * period))
    if memory_bytes is not None:
        body["Memory"] = int(memory_bytes)
        body["MemorySwap"] = -1  # no extra swap limit; a lower memory limit next to an old swap limit is refused
    return body


def restore_update(previous: Mapping[str, int], body_applied: Mapping[str, int]) -> dict[str, int]:
    """The update body that puts back `previous` for each key the throttle changed (pure).

    Zero means "unchanged" to Docker, so "no limit" is written as -1 (CFS quota, swap) or UNLIMITED_MEMORY.
    """
    restore: dict[str, int] = {}
    if "NanoCpus" in body_applied:
        restore["NanoCpus"] = previous.get("NanoCpus", 0)
    if "CpuQuota" in body_applied:
        restore["CpuQuota"] = previous.get("CpuQuota") if previous.get("CpuQuota", 0) > 0 else -1
        if previous.get("CpuPeriod"):
            restore["CpuPeriod"] = previous["CpuPeriod"]
    if "Memory" in body_applied:
        restore["Memory"] = previous.get("Memory") or UNLIMITED_MEMORY
        restore["MemorySwap"] = previous.get("MemorySwap") or -1
    return restore


def limits_differ(previous: Mapping[str, int], now: Mapping[str, int], keys: Iterable[str]) -> list[str]:
    """Which of `keys` differ between `previous` and `now`, counting every "no limit" spelling as equal (pure)."""
    def norm(key: str, value: int) -> int:
        if key in ("CpuQuota", "MemorySwap") and value <= 0:
            return 0
        if key == "Memory" and (value <= 0 or value >= UNLIMITED_MEMORY):
            return 0
        return value

    return [k for k in keys if k != "CpuPeriod" and norm(k, previous.get(k, 0)) != norm(k, now.get(k, 0))]


def update(container: Any, body: Mapping[str, int], name: str = "", error: type[ChaosError] = InjectionError) -> None:
    """POST /containers/ID/update with exactly `body`; the SDK's update() cannot set NanoCpus."""
    api = client().api

    def post() -> None:
        response = api._post_json(api._url("/containers/{0}/update", container.id), data=dict(body))
        api._raise_for_status(response)

    _call("update the limits of", container, name, error, post)
