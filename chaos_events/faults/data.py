"""Data-corruption faults: bad_payloads (bad HTTP requests sent from inside the load) and poison_messages
(undecodable or schema-breaking messages produced to a Kafka topic).

Must not import locust, gevent, docker or prometheus_client. bad_payloads only broadcasts: each load worker's
`chaos_events.backends.bad_traffic.BadTrafficSender` does the sending, so the bad traffic shows in Locust's
statistics next to the good traffic. poison_messages runs on the process that runs the timeline, through
`chaos_events.backends.poison` (loaded lazily, so this module stays importable without confluent-kafka).

Example (scenario):
    targets: {api: {endpoint: "http://127.0.0.1:8000"}, events: {kafka: {bootstrap: "127.0.0.1:19092", topic: events}}}
    faults:
      - {at: 10s, for: 20s, fault: bad_payloads, target: api, params: {rate_per_s: 5, kinds: [invalid-json, missing-field]}}
      - {at: 10s, for: 20s, fault: poison_messages, target: events, params: {rate_per_s: 10}}
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from chaos_events.load.corrupt import API_KINDS, POISON_KINDS
from chaos_events.errors import InjectionError
from chaos_events.scenario.plan import Target, TargetKind
from chaos_events.faults.base import Fault, FaultContext, register

BROADCAST_START = "chaos_bad_traffic"
BROADCAST_STOP = "chaos_bad_traffic_stop"
MAX_RATE_PER_S = 1000.0


def _occurrence_id(fault: Fault, ctx: FaultContext) -> str:
    """The engine's occurrence id, or one of our own (kept in state so a journal revert finds the same one)."""
    if not fault.state.get("id"):
        fault.state["id"] = ctx.occurrence_id or f"{fault.type_name}-{uuid.uuid4().hex[:12]}"
    return fault.state["id"]


def _check_rate(rate_per_s: float) -> None:
    if not 0.0 < rate_per_s <= MAX_RATE_PER_S:
        raise ValueError(f"parameter 'rate_per_s': expected above 0 and at most {MAX_RATE_PER_S:g}; got {rate_per_s}")


def _check_kinds(kinds: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    if not kinds:
        raise ValueError(f"parameter 'kinds': expected at least one of: {', '.join(allowed)}")
    for kind in kinds:
        if kind not in allowed:
            raise ValueError(f"parameter 'kinds': unknown kind {kind!r}; expected one of: {', '.join(allowed)}")


# -- bad_payloads ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BadPayloadsParams:
    rate_per_s: float
    kinds: tuple[str, ...] = API_KINDS
    path: str = "/api/events"

    def __post_init__(self) -> None:
        _check_rate(self.rate_per_s)
        _check_kinds(self.kinds, API_KINDS)
        if not self.path.startswith("/"):
            raise ValueError(f"parameter 'path': expected a path starting with '/'; got {self.path!r}")


def ingest_url(target: Target, path: str) -> str:
    """The full URL bad payloads go to: the endpoint's base URL (or host:port) joined with `path`."""
    url = target.spec.get("url")
    if not url:
        url = f"http://{target.spec.get('host') or '127.0.0.1'}:{target.spec['port']}"
    return url.rstrip("/") + path


@register
class BadPayloads(Fault):
    """Tell every load worker to send bad payloads to the API at `rate_per_s`, cycling through `kinds`.

    Invariant: state["started"] is saved before the start broadcast, so revert always sends the stop.
    Example: BadPayloads(BadPayloadsParams(rate_per_s=5), Target("api", TargetKind.ENDPOINT, {"url": "http://127.0.0.1:8000"}))
    """

    type_name = "bad_payloads"
    Params = BadPayloadsParams
    target_kinds = frozenset({TargetKind.ENDPOINT})
    summary = "bad HTTP payloads sent from the load workers"

    @classmethod
    def check(cls, params: BadPayloadsParams, target: Target) -> list[str]:
        url = target.spec.get("url")
        if url and not str(url).startswith(("http://", "https://")):
            return [f"target {target.name} must be an http(s) URL for bad_payloads; got {url!r}"]
        if not url and not target.spec.get("port"):
            return [f"target {target.name} needs a URL or a port for bad_payloads"]
        return []

    def inject(self, ctx: FaultContext) -> None:
        fault_id = _occurrence_id(self, ctx)
        message = {"fault_id": fault_id, "url": ingest_url(self.target, self.params.path),
                   "rate_per_s": self.params.rate_per_s, "kinds": list(self.params.kinds)}
        self.state["started"] = True
        ctx.save_state()
        ctx.broadcast(BROADCAST_START, message)

    def revert(self, ctx: FaultContext) -> None:
        if not self.state.get("started") or self.state.get("stopped"):
            return
        ctx.broadcast(BROADCAST_STOP, {"fault_id": self.state["id"]})
        self.state["stopped"] = True
        ctx.save_state()


# -- poison_messages ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoisonMessagesParams:
    rate_per_s: float
    kinds: tuple[str, ...] = POISON_KINDS
    topic: str | None = None
    dead_letter_topic: str | None = None   # where the platform should park them; the verdict counts them there

    def __post_init__(self) -> None:
        _check_rate(self.rate_per_s)
        _check_kinds(self.kinds, POISON_KINDS)


@register
class PoisonMessages(Fault):
    """Produce poison messages to a Kafka topic at `rate_per_s` until reverted; revert records the counts
    (sent, delivered, failed) in state. `counts()` reads them live while the fault is active.

    Example: PoisonMessages(PoisonMessagesParams(rate_per_s=10), Target("events", TargetKind.KAFKA,
                            {"bootstrap": "127.0.0.1:9092", "topic": "events"}))
    """

    type_name = "poison_messages"
    Params = PoisonMessagesParams
    target_kinds = frozenset({TargetKind.KAFKA})
    summary = "poison messages produced to a Kafka topic"

    @classmethod
    def check(cls, params: PoisonMessagesParams, target: Target) -> list[str]:
        if not (params.topic or target.spec.get("topic")):
            return [f"target {target.name} names no topic and parameter 'topic' is not set"]
        return []

    def _where(self, ctx: FaultContext) -> tuple[str, str]:
        bootstrap = self.target.spec.get("bootstrap") or ctx.kafka_bootstrap
        topic = self.params.topic or self.target.spec.get("topic")
        if not bootstrap:
            raise InjectionError(f"poison_messages: target {self.target.name} names no bootstrap servers and the run has none")
        if not topic:
            raise InjectionError(f"poison_messages: target {self.target.name} names no topic and parameter 'topic' is not set")
        return str(bootstrap), str(topic)

    def inject(self, ctx: FaultContext) -> None:
        from chaos_events.backends import poison

        bootstrap, topic = self._where(ctx)
        fault_id = _occurrence_id(self, ctx)
        # A tag of this injection's own, carried as a header, so its messages can be counted in the dead-letter topic
        # apart from any earlier run's.
        tag = self.state.setdefault("tag", uuid.uuid4().hex[:16])
        self.state.update({"started": True, "bootstrap": bootstrap, "topic": topic})
        ctx.save_state()
        try:
            poison.start_poison(fault_id, bootstrap, topic, self.params.rate_per_s, self.params.kinds, tag=tag)
        except ValueError as exc:
            raise InjectionError(f"poison_messages: {exc}") from exc

    def revert(self, ctx: FaultContext) -> None:
        if not self.state.get("started") or self.state.get("stopped"):
            return
        from chaos_events.backends import poison

        # None when another process (a journal revert after a crash) runs this: the producer died with its process.
        final = poison.stop_poison(self.state["id"])
        if final is not None:
            self.state.update({k: final[k] for k in ("sent", "delivered", "failed", "queue_full")})
            ctx.report("poison", {"tag": self.state.get("tag"), "delivered": final["delivered"],
                                  "bootstrap": self.state["bootstrap"], "dead_letter_topic": self.params.dead_letter_topic})
        self.state["stopped"] = True
        ctx.save_state()

    def counts(self) -> dict:
        """sent / delivered / failed / queue_full so far (live while active, final after revert)."""
        if self.state.get("started") and not self.state.get("stopped"):
            from chaos_events.backends import poison

            live = poison.poison_counts(self.state["id"])
            if live is not None:
                return {k: live[k] for k in ("sent", "delivered", "failed", "queue_full")}
        return {k: int(self.state.get(k, 0)) for k in ("sent", "delivered", "failed", "queue_full")}

    def delivered(self) -> int:
        return self.counts()["delivered"]
