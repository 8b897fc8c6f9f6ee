"""Probes: things sampled on a period during the whole run (health endpoint, consumer lag, Prometheus alerts).

`build_probe(spec, defaults)` turns a plan's ProbeSpec into a Probe whose `sample(t, wall)` returns a ProbeSample and
never raises for a failure of the thing it watches: an unreachable target is a sample too (healthy False, or None
when the probe cannot tell), with a bounded error string. `ProbeRunner` samples every probe on its own period, in
greenlets the caller spawns, and appends to `record.probes`.

Blocking calls run through `offload`, on the hub's native thread pool under gevent, so no greenlet freezes;
librdkafka runs in the lag reader's child process (observe/lag_reader.py), never here. This
module is an adapter: it may use gevent (imported lazily); it must not import locust or prometheus_client.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping, Protocol

from chaos_events.scenario.model import ProbeKind, ProbeSpec
from chaos_events.record import ProbeSample, Record
from chaos_events.observe.lag_reader import LagReader
from chaos_events.observe.ledger import kafka_error_text

__all__ = ["Probe", "HttpProbe", "KafkaLagProbe", "AlertsProbe", "ProbeRunner", "build_probe", "offload"]

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 200       # detail strings stay bounded: they end up in reports and the web UI
MAX_DEPENDENCIES = 32
MAX_BODY_BYTES = 64 * 1024
NO_PROMETHEUS = "no Prometheus configured"


def _bounded(text: object, limit: int = MAX_ERROR_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket"))


def offload(fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
    """Run a blocking call so that no greenlet freezes: on the gevent hub's native thread pool when gevent is
    patched in (under Locust), else directly. Raises TimeoutError after `timeout` seconds when offloaded."""
    if not _gevent_patched():
        return fn(*args)
    import gevent

    def captured() -> tuple[bool, Any]:
        # The pool prints a traceback for any exception escaping the task; hand it back to the caller instead.
        try:
            return True, fn(*args)
        except Exception as exc:
            return False, exc

    try:
        ok, value = gevent.get_hub().threadpool.spawn(captured).get(timeout=timeout)
    except gevent.Timeout:
        # gevent.Timeout is a BaseException; callers expect an ordinary error. The native call finishes on its own.
        raise TimeoutError(f"{getattr(fn, '__qualname__', fn)} did not finish within {timeout}s") from None
    if not ok:
        raise value
    return value


class Probe(Protocol):
    name: str
    kind: ProbeKind
    every_s: float

    def sample(self, t: float, wall: float) -> ProbeSample: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------------------
# HTTP health
# ---------------------------------------------------------------------------------------------------------
def _dependency_ok(state: Any) -> bool | None:
    """Normalise one dependency's state: True/False, 'ok'/'up'/'healthy', or a dict with ok/healthy/status."""
    if isinstance(state, bool):
        return state
    if isinstance(state, str):
        return state.strip().lower() in ("ok", "up", "healthy", "pass", "true")
    if isinstance(state, Mapping):
        for key in ("ok", "healthy", "up"):
            if isinstance(state.get(key), bool):
                return state[key]
        if "status" in state:
            return _dependency_ok(state["status"])
    return None


class HttpProbe:
    """GET a health URL. healthy = (status in expect_status); value = the status; detail = {dependency: ok} when the
    body is JSON with a "dependencies" mapping, or {"error": ...} when the request failed.

    Example: HttpProbe("health", 1.0, "http://127.0.0.1:8000/health").sample(3.0, 1003.0).healthy is True
    """

    kind = ProbeKind.HTTP

    def __init__(self, name: str, every_s: float, url: str, expect_status: tuple[int, ...] = (200,), timeout_s: float = 2.0):
        self.name, self.every_s, self.url = name, every_s, url
        self.expect_status = tuple(expect_status)
        self.timeout_s = timeout_s

    def sample(self, t: float, wall: float) -> ProbeSample:
        try:
            status, body = self._get()
        except (OSError, ValueError) as exc:  # URLError, timeouts and refused connections are OSErrors
            reason = getattr(exc, "reason", None) or exc
            return ProbeSample(t, wall, self.name, False, None, {"error": _bounded(f"GET {self.url}: {reason}")})
        return ProbeSample(t, wall, self.name, status in self.expect_status, float(status), self._dependencies(body))

    def _get(self) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, response.read(MAX_BODY_BYTES)
        except urllib.error.HTTPError as exc:  # a 503 is an answer, not a failure to ask
            with exc:
                return exc.code, exc.read(MAX_BODY_BYTES)

    @staticmethod
    def _dependencies(body: bytes) -> dict:
        try:
            payload = json.loads(body)
        except ValueError:
            return {}
        deps = payload.get("dependencies") if isinstance(payload, dict) else None
        if not isinstance(deps, Mapping):
            return {}
        return {_bounded(name, 64): _dependency_ok(state) for name, state in list(deps.items())[:MAX_DEPENDENCIES]}

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------
# Kafka consumer lag
# ---------------------------------------------------------------------------------------------------------
class KafkaLagProbe:
    """Consumer lag of `group` on `topic`: end offset minus committed offset, summed over partitions (a partition
    without a commit counts from its low watermark). healthy = lag <= max_lag when given, else True while the broker
    answers; an unreachable broker gives healthy False and {"error": ...}.

    Against Apache Kafka the lag is exact (its high watermark is the offset after the last committed record). Tansu
    quirk, deliberately not worked around: Tansu reports the high watermark as the last batch's base offset + 1, so
    against Tansu the lag reads low by up to one batch per partition (never below 0); reading to the real end would
    cost a fetch per partition per sample, and the probe only has to show a lag rising and falling.
    """

    kind = ProbeKind.KAFKA_LAG

    def __init__(self, name: str, every_s: float, bootstrap: str, group: str, topic: str,
                 max_lag: int | None = None, timeout_s: float = 5.0):
        self.name, self.every_s = name, every_s
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.max_lag = max_lag
        self.timeout_s = timeout_s
        self._reader: LagReader | None = None

    def read_lag(self) -> dict[int, int]:
        """Lag per partition, from the reader child (librdkafka stays out of this process). Called on the hub, not
        through `offload`: gevent starts and reaps children only from its main loop, and the pipe I/O yields."""
        if self._reader is None:
            self._reader = LagReader(self.bootstrap, self.group, self.topic, self.timeout_s)
        return self._reader.read()

    def sample(self, t: float, wall: float) -> ProbeSample:
        try:
            per_partition = self.read_lag()  # cooperative under gevent: a pipe and select, no native call here
        except Exception as exc:  # KafkaException, LookupError, TimeoutError: all mean "could not read the lag"
            text = kafka_error_text(exc) or type(exc).__name__
            return ProbeSample(t, wall, self.name, False, None, {
                "group": self.group, "topic": self.topic, "error": _bounded(f"{self.bootstrap}: {text}")})
        total = sum(per_partition.values())
        healthy = total <= self.max_lag if self.max_lag is not None else True
        detail = {"group": self.group, "topic": self.topic, "partitions": {str(p): n for p, n in sorted(per_partition.items())}}
        return ProbeSample(t, wall, self.name, healthy, float(total), detail)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


# ---------------------------------------------------------------------------------------------------------
# Prometheus alerts
# ---------------------------------------------------------------------------------------------------------
class AlertsProbe:
    """GET {url}/api/v1/alerts. detail = {"firing": [names], "pending": [names]}; value = how many are firing;
    healthy = nothing firing. Without a URL, or when Prometheus does not answer, healthy is None (cannot tell)."""

    kind = ProbeKind.PROMETHEUS_ALERTS

    def __init__(self, name: str, every_s: float, url: str | None, timeout_s: float = 2.0):
        self.name, self.every_s, self.timeout_s = name, every_s, timeout_s
        self.url = url.rstrip("/") if url else None

    def sample(self, t: float, wall: float) -> ProbeSample:
        if not self.url:
            return ProbeSample(t, wall, self.name, None, None, {"error": NO_PROMETHEUS})
        endpoint = self.url + "/api/v1/alerts"
        try:
            with urllib.request.urlopen(endpoint, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
            alerts = payload["data"]["alerts"]
        except urllib.error.HTTPError as exc:
            exc.close()
            return ProbeSample(t, wall, self.name, None, None, {"error": _bounded(f"GET {endpoint}: HTTP {exc.code}")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            reason = getattr(exc, "reason", None) or exc
            return ProbeSample(t, wall, self.name, None, None, {"error": _bounded(f"GET {endpoint}: {reason}")})
        by_state: dict[str, set[str]] = {"firing": set(), "pending": set()}
        for alert in alerts if isinstance(alerts, list) else []:
            state = alert.get("state") if isinstance(alert, dict) else None
            if state in by_state:
                by_state[state].add(_bounded((alert.get("labels") or {}).get("alertname", "?"), 128))
        detail = {state: sorted(names) for state, names in by_state.items()}
        return ProbeSample(t, wall, self.name, not detail["firing"], float(len(detail["firing"])), detail)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------
# Building and running
# ---------------------------------------------------------------------------------------------------------
def build_probe(spec: ProbeSpec, defaults: Mapping[str, Any]) -> Probe:
    """A Probe for a validated ProbeSpec. `defaults` may carry "kafka_bootstrap" and "prometheus_url", used when the
    spec does not name its own; "timeout_s" overrides a probe's default timeout."""
    params = spec.params
    timeout = getattr(params, "timeout_s", None) or defaults.get("timeout_s")
    extra = {"timeout_s": float(timeout)} if timeout else {}
    if spec.kind is ProbeKind.HTTP:
        return HttpProbe(spec.name, spec.every_s, params.url, tuple(params.expect_status), **extra)
    if spec.kind is ProbeKind.KAFKA_LAG:
        bootstrap = params.bootstrap or defaults.get("kafka_bootstrap")
        return KafkaLagProbe(spec.name, spec.every_s, bootstrap, params.group, params.topic, None, **extra)
    if spec.kind is ProbeKind.PROMETHEUS_ALERTS:
        return AlertsProbe(spec.name, spec.every_s, params.url or defaults.get("prometheus_url") or None, **extra)
    raise ValueError(f"probe {spec.name!r}: unknown kind {spec.kind!r}; expected one of: {', '.join(k.value for k in ProbeKind)}")


class ProbeRunner:
    """Samples each probe every `every_s` seconds (on its own schedule) until stopped, appending to record.probes.

    Invariant: `latest[name]` is the newest sample of each probe that has sampled at least once.
    Example:
        runner = ProbeRunner({"health": probe}, record, clock=session.clock, wall=time.time, spawn=gevent.spawn)
        runner.start(); ...; runner.stop()
    `spawn(fn)` starts fn concurrently (a greenlet under Locust, a thread in tests) and may return a handle with join().
    """

    def __init__(self, probes: Mapping[str, Probe], record: Record, clock: Callable[[], float],
                 wall: Callable[[], float] = time.time, spawn: Callable[..., Any] | None = None):
        self.probes = dict(probes)
        self.record = record
        self.clock, self.wall = clock, wall
        self._spawn = spawn or _spawn_thread
        self.latest: dict[str, ProbeSample] = {}
        self._stop = threading.Event()  # gevent's Event once Locust has patched threading
        self._handles: list[Any] = []

    def start(self) -> None:
        """Begin sampling; every probe takes its first sample right away."""
        self._stop.clear()
        self._handles = [self._spawn(self._loop, probe) for probe in self.probes.values()]

    def sample_once(self, probe: Probe) -> ProbeSample:
        """Take one sample now, record it, and return it."""
        try:
            sample = probe.sample(self.clock(), self.wall())
        except Exception as exc:  # a probe bug must not end its loop; it shows up as a sample that cannot tell
            log.exception("probe %s failed", probe.name)
            sample = ProbeSample(self.clock(), self.wall(), probe.name, None, None,
                                 {"error": _bounded(f"probe failed: {type(exc).__name__}: {exc}")})
        self.record.add_probe(sample)
        self.latest[probe.name] = sample
        return sample

    def _loop(self, probe: Probe) -> None:
        next_due = time.monotonic()
        while not self._stop.is_set():
            self.sample_once(probe)
            next_due += probe.every_s
            now = time.monotonic()
            if next_due < now:  # a slow sample: skip the missed ticks rather than burst
                next_due = now
            if self._stop.wait(next_due - now):
                break

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sampling, wait for the loops (up to `timeout`), and close the probes."""
        self._stop.set()
        for handle in self._handles:
            join = getattr(handle, "join", None)
            if join is not None:
                join(timeout)
        self._handles = []
        for probe in self.probes.values():
            try:
                probe.close()
            except Exception:
                log.exception("closing probe %s failed", probe.name)

    def consumer_lag(self) -> dict[tuple[str, str], float]:
        """{(group, topic): lag} from the latest kafka_lag samples that have a value (for the exporter)."""
        out: dict[tuple[str, str], float] = {}
        for name, sample in self.latest.items():
            probe = self.probes.get(name)
            if isinstance(probe, KafkaLagProbe) and sample.value is not None:
                out[(probe.group, probe.topic)] = sample.value
        return out


def _spawn_thread(fn: Callable[..., Any], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True, name="chaos-probe")
    thread.start()
    return thread
