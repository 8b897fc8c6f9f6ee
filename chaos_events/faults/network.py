"""Network faults: one fault type per toxic family of the harness's TCP fault proxy (backends/proxy.py).

Must not import locust, gevent, docker or prometheus_client at module level: the proxy client (which pulls in gevent
through its module) is imported inside inject/revert only, so `chaos-events validate` stays light.

Every type targets a proxy route: target spec {"proxy": ROUTE, "control": URL or None}; with no control URL the
fault uses $CHAOS_PROXY_CONTROL, else http://127.0.0.1:8474. Common parameters: `toxicity` (0..1, the share of
connections affected, decided per connection) and, for the directional types, `stream`: "downstream" (server to
client, the default, as in Toxiproxy), "upstream" (client to server) or "both" (two toxics, one per direction).
`down` and `partition` cut whole connections, so they take no `stream`.

The timeout toxic is registered as the fault `blackhole` (its behaviour: data is swallowed; timeout_ms > 0 closes the
connection after that long, 0 holds it open until the fault ends). Proxy-level names stay Toxiproxy's (`timeout`).

Example scenario lines:
    - {at: 30s, for: 20s, fault: latency, target: api-route, params: {latency_ms: 300, jitter_ms: 50}}
    - {at: 60s, for: 10s, fault: partition, target: kafka-route}
"""
from __future__ import annotations

import os
import re
import uuid
from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from chaos_events.errors import InjectionError, RevertError
from chaos_events.scenario.model import Target, TargetKind
from chaos_events.faults.base import Fault, FaultContext, FaultParams, register
from chaos_events.scenario.fields import Milliseconds, Number, SizeBytes, choice, fail

STREAM_CHOICES = ("both", "downstream", "upstream")
_TOXIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")  # the proxy's toxic-name alphabet
DEFAULT_CONTROL_URL = "http://127.0.0.1:8474"


def control_url_for(target: Target) -> str:
    """The target's control URL, else $CHAOS_PROXY_CONTROL, else the default."""
    return target.spec.control or os.environ.get("CHAOS_PROXY_CONTROL") or DEFAULT_CONTROL_URL


LossMode = choice("reset", "stall")
Stream = Annotated[choice(*STREAM_CHOICES), Field(description="downstream (server to client), upstream, or both")]
Toxicity = Annotated[Number, Field(ge=0, le=1, description="share of connections affected, decided per connection")]


class NetworkFault(Fault):
    """Adds toxics to one proxy route on inject and removes exactly those on revert.

    Invariant: `state["toxics"]` lists every toxic name this fault may have added, written (and journalled) before the
    proxy is asked, so a revert in another process after a crash removes them too. Removing is idempotent.
    Example: LatencyFault(LatencyParams(latency_ms=200), target).inject(ctx) adds "chaos.latency.<target>.downstream.<id>".
    """

    target_kinds: ClassVar[frozenset[TargetKind]] = frozenset({TargetKind.PROXY})
    toxic_type: ClassVar[str] = ""
    directional: ClassVar[bool] = True

    def attributes(self) -> dict:
        """The proxy attributes of this fault's toxic."""
        return {}

    # contract
    def inject(self, ctx: FaultContext) -> None:
        from chaos_events.backends.proxy import ProxyClient

        route = self.target.spec.route
        control = self.state.setdefault("control", control_url_for(self.target))
        self.state["route"] = route
        occurrence = self.state.setdefault("occurrence", ctx.occurrence_id or uuid.uuid4().hex[:8])
        names = self.state.setdefault("toxics", [])
        client = ProxyClient(control)
        streams = self._streams()
        for stream in streams:
            name = _TOXIC_NAME_UNSAFE.sub("_", f"chaos.{self.type_name}.{self.target.name}.{stream}.{occurrence}")
            if name not in names:
                names.append(name)
                ctx.save_state()  # journalled before the side effect, so a crash right after still gets reverted
            client.add_toxic(route, name, self.toxic_type, self.attributes(), stream=stream, toxicity=self.params.toxicity)
            ctx.log(f"{self.type_name}: toxic {name} on route {route!r} ({stream}, toxicity {self.params.toxicity:g})")

    def revert(self, ctx: FaultContext) -> None:
        from chaos_events.backends.proxy import ProxyClient

        names = list(self.state.get("toxics", []))
        if not names:
            return
        client = ProxyClient(self.state.get("control") or control_url_for(self.target))
        route = self.state.get("route") or self.target.spec.route
        failures = []
        for name in names:  # one failed removal does not stop the others
            try:
                client.remove_toxic(route, name)
            except InjectionError as exc:
                failures.append(str(exc))
        if failures:
            raise RevertError(f"{self.type_name} on {self.target.name}: could not remove toxics: " + "; ".join(failures))

    def verify_reverted(self, ctx: FaultContext) -> None:
        from chaos_events.backends.proxy import ProxyClient, UnknownRouteError

        names = set(self.state.get("toxics", []))
        if not names:
            return
        client = ProxyClient(self.state.get("control") or control_url_for(self.target))
        route = self.state.get("route") or self.target.spec.route
        try:
            present = {t["name"] for t in client.toxics(route)}
        except UnknownRouteError:
            return  # no route, so none of our toxics on it
        except InjectionError as exc:
            raise RevertError(f"{self.type_name} on {self.target.name}: cannot confirm the revert: {exc}") from exc
        left = sorted(names & present)
        if left:
            raise RevertError(f"{self.type_name} on {self.target.name}: toxics still on route {route!r}: {', '.join(left)}")

    def _streams(self) -> list[str]:
        if not self.directional:
            return ["downstream"]  # recorded by the proxy, which cuts both directions anyway
        return ["downstream", "upstream"] if self.params.stream == "both" else [self.params.stream]


# -- one type per toxic family ---------------------------------------------------------------------
class LatencyParams(FaultParams):
    latency_ms: Milliseconds = Field(description="delay added to each chunk")
    jitter_ms: Milliseconds = Field(0.0, description="random ± spread around latency_ms")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


@register
class LatencyFault(NetworkFault):
    """Delays data by latency_ms ± jitter_ms per direction (stream both: the round trip grows by twice that)."""

    type_name = "latency"
    Params = LatencyParams
    toxic_type = "latency"
    summary = "delay every chunk by latency_ms ± jitter_ms"

    def attributes(self):
        return {"latency_ms": self.params.latency_ms, "jitter_ms": self.params.jitter_ms}


class BandwidthParams(FaultParams):
    rate_kbps: Number = Field(gt=0, description="kilobits per second (1 kbps = 125 bytes/s)")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


@register
class BandwidthFault(NetworkFault):
    """Caps throughput at rate_kbps kilobits per second (1 kbps = 125 bytes/s)."""

    type_name = "bandwidth"
    Params = BandwidthParams
    toxic_type = "bandwidth"
    summary = "cap throughput at rate_kbps kilobits per second"

    def attributes(self):
        return {"rate_kbps": self.params.rate_kbps}



class SlowCloseParams(FaultParams):
    delay_ms: Milliseconds = Field(description="delay before a close (FIN) is passed on")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


@register
class SlowCloseFault(NetworkFault):
    """Delays passing on a close (FIN) by delay_ms."""

    type_name = "slow_close"
    Params = SlowCloseParams
    toxic_type = "slow_close"
    summary = "delay the close of connections by delay_ms"

    def attributes(self):
        return {"delay_ms": self.params.delay_ms}


class BlackholeParams(FaultParams):
    timeout_ms: Milliseconds = Field(0.0, description="close the connection after this long; 0 holds it open")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


@register
class BlackholeFault(NetworkFault):
    """Swallows data (Toxiproxy's timeout toxic); timeout_ms > 0 closes the connection after that long, 0 holds it open."""

    type_name = "blackhole"
    Params = BlackholeParams
    toxic_type = "timeout"
    summary = "swallow data; close after timeout_ms (0: hold open)"

    def attributes(self):
        return {"timeout_ms": self.params.timeout_ms}


class ResetPeerParams(FaultParams):
    timeout_ms: Milliseconds = Field(0.0, description="reset this long after a connection meets the fault")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


@register
class ResetPeerFault(NetworkFault):
    """Resets connections (TCP RST) timeout_ms after they meet the fault, new ones included."""

    type_name = "reset_peer"
    Params = ResetPeerParams
    toxic_type = "reset_peer"
    summary = "reset connections with TCP RST after timeout_ms"

    def attributes(self):
        return {"timeout_ms": self.params.timeout_ms}


class SlicerParams(FaultParams):
    average_size_bytes: SizeBytes = Field(ge=1, description="average size of each slice")
    size_variation_bytes: SizeBytes = Field(0, description="random ± spread of the size (less than the average)")
    delay_us: Number = Field(0.0, ge=0, description="microseconds between slices")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0

    @model_validator(mode="after")
    def _variation_below_average(self) -> "SlicerParams":
        if self.size_variation_bytes >= self.average_size_bytes:
            raise fail(f"parameter 'size_variation_bytes': expected less than average_size_bytes "
                       f"({self.average_size_bytes}); got {self.size_variation_bytes}")
        return self


@register
class SlicerFault(NetworkFault):
    """Cuts data into pieces of average_size_bytes ± size_variation_bytes, delay_us apart."""

    type_name = "slicer"
    Params = SlicerParams
    toxic_type = "slicer"
    summary = "slice data into small pieces with delays between them"

    def attributes(self):
        return {"average_size": self.params.average_size_bytes, "size_variation": self.params.size_variation_bytes,
                "delay_us": self.params.delay_us}



class LimitDataParams(FaultParams):
    limit_bytes: SizeBytes = Field(description="close a connection once this much has passed")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


@register
class LimitDataFault(NetworkFault):
    """Closes a connection once limit_bytes have passed in the stream's direction."""

    type_name = "limit_data"
    Params = LimitDataParams
    toxic_type = "limit_data"
    summary = "close connections after limit_bytes"

    def attributes(self):
        return {"bytes": self.params.limit_bytes}


class DownParams(FaultParams):
    toxicity: Toxicity = 1.0


@register
class DownFault(NetworkFault):
    """The route is down: new connections are refused (ECONNREFUSED) and open ones closed. toxicity < 1 closes that
    share of connections instead (accepted, then closed)."""

    type_name = "down"
    Params = DownParams
    toxic_type = "down"
    directional = False
    summary = "refuse new connections and close open ones"


class PartitionParams(FaultParams):
    toxicity: Toxicity = 1.0


@register
class PartitionFault(NetworkFault):
    """Nothing passes either way and nothing is closed: open connections stall, new ones are accepted but hang.
    Clients see timeouts; when the fault ends, held data flows on intact (as TCP retransmission would deliver it)."""

    type_name = "partition"
    Params = PartitionParams
    toxic_type = "partition"
    directional = False
    summary = "cut both directions: connections stall, new ones hang"


class LossParams(FaultParams):
    probability: Number = Field(ge=0, le=1, description="chance that each chunk is lost")
    mode: LossMode = Field("stall", description="stall: later data is dropped; reset: the connection is reset")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


@register
class LossFault(NetworkFault):
    """Each chunk is lost with `probability`; the first loss stalls the stream (mode stall: later data is dropped,
    the connection held open) or resets the connection (mode reset)."""

    type_name = "loss"
    Params = LossParams
    toxic_type = "loss"
    summary = "lose data with a probability: the stream stalls or resets"

    def attributes(self):
        return {"probability": self.params.probability, "mode": self.params.mode}



NETWORK_FAULTS = (LatencyFault, BandwidthFault, SlowCloseFault, BlackholeFault, ResetPeerFault, SlicerFault,
                  LimitDataFault, DownFault, PartitionFault, LossFault)
