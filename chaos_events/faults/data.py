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
from typing import Annotated

from pydantic import Field

from chaos_events.load.corrupt import API_KINDS, POISON_KINDS
from chaos_events.errors import InjectionError
from chaos_events.scenario.model import Target, TargetKind
from chaos_events.faults.base import Fault, FaultContext, FaultParams, register
from chaos_events.scenario.fields import Number, Text, UrlPath, choices

BROADCAST_START = "chaos_bad_traffic"
BROADCAST_STOP = "chaos_bad_traffic_stop"
BROADCAST_STOP_ALL = "chaos_bad_traffic_stop_all"   # the end of a run: every worker stops all of its bad traffic
MAX_RATE_PER_S = 1000.0



Rate = Annotated[Number, Field(gt=0, le=MAX_RATE_PER_S, description="messages per second, for the whole load")]
ApiKinds = choices(*API_KINDS)
PoisonKinds = choices(*POISON_KINDS)


# -- bad_payloads ---------------------------------------------------------------------------------------------
class BadPayloadsParams(FaultParams):
    rate_per_s: Rate
    kinds: ApiKinds = Field(API_KINDS, description="which kinds of bad payload, cycled through")
    path: UrlPath = Field("/api/events", description="where they are posted, below the endpoint's URL")


def ingest_url(target: Target, path: str) -> str:
    """The full URL bad payloads go to: the endpoint's base URL (or host:port) joined with `path`."""
    return target.spec.base_url().rstrip("/") + path


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

    def inject(self, ctx: FaultContext) -> None:
        fault_id = self.own_id(ctx)
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
class PoisonMessagesParams(FaultParams):
    rate_per_s: Rate
    kinds: PoisonKinds = Field(POISON_KINDS, description="which kinds of poison message, cycled through")
    topic: Text | None = Field(None, description="topic to produce to (default: the target's)")
    dead_letter_topic: Text | None = Field(None, description="where the platform should park them; the verdict "
                                                             "counts them there (data_rejected)")


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

    def _where(self, ctx: FaultContext) -> tuple[str, str]:
        bootstrap = self.target.spec.bootstrap or ctx.kafka_bootstrap
        topic = self.params.topic or self.target.spec.topic
        if not bootstrap:
            raise InjectionError(f"poison_messages: target {self.target.name} names no bootstrap servers and the run has none")
        if not topic:
            raise InjectionError(f"poison_messages: target {self.target.name} names no topic and parameter 'topic' is not set")
        return str(bootstrap), str(topic)

    def inject(self, ctx: FaultContext) -> None:
        from chaos_events.backends import poison

        bootstrap, topic = self._where(ctx)
        fault_id = self.own_id(ctx)
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
