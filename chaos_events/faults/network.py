"""Network faults: toxics on a route of a fault proxy, this project's (backends/proxy/) or a real Toxiproxy.

Must not import locust, gevent, docker or prometheus_client: the proxy's client (requests) is imported inside the
methods, and at module level only its default address (backends/proxy/defaults.py, standard library), so
`chaos-events validate` stays light.

Every fault targets a proxy route (a ProxyTarget: route, control URL or None, server `harness` or `toxiproxy`);
with no control URL the fault uses $CHAOS_PROXY_CONTROL, else http://127.0.0.1:8474.
Common parameters: `toxicity` (0..1, the share of connections affected, decided per connection) and, for the
directional faults, `stream`: "downstream" (server to client, the default, as in Toxiproxy), "upstream" (client to
server) or "both" (two toxics, one per direction). `down` and `partition` cut whole connections: no `stream`.

Each fault is declared once: its parameters (a FaultParams model, units in the field names) and one row of
`TOXICS`, which maps it to the proxy's toxic type and attribute names and units (Toxiproxy's; both servers speak
them). The harness's own names stay in scenarios: `blackhole` is Toxiproxy's `timeout` toxic, `rate_kbps` (kilobits)
is `rate` in KB/s. On a real Toxiproxy, `down` is its `enabled: false` (toxicity 1 only), and `partition` and `loss`
do not exist: such a fault is refused before the run, never sent as a silent no-op.

Example scenario lines:
    - {at: 30s, for: 20s, fault: latency, target: api-route, params: {latency_ms: 300, jitter_ms: 50}}
    - {at: 60s, for: 10s, fault: partition, target: kafka-route}
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from chaos_events.backends.proxy.defaults import default_control_url
from chaos_events.errors import InjectionError, RevertError
from chaos_events.faults.base import Fault, FaultContext, FaultParams, register
from chaos_events.scenario.fields import Milliseconds, Number, SizeBytes, choice, fail
from chaos_events.scenario.model import Target, TargetKind

STREAM_CHOICES = ("both", "downstream", "upstream")
SERVERS = ("harness", "toxiproxy")
_TOXIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")  # the proxy's toxic-name alphabet
KBPS_TO_KB_PER_S = 1 / 8  # 1 kbps = 1000 bit/s = 125 bytes/s = 0.125 KB/s (Toxiproxy's KB is 1000 bytes)
DISABLE = "disable"      # on a real Toxiproxy the fault is the proxy's `enabled: false`, not a toxic


def control_url_for(target: Target) -> str:
    """The target's control URL, else $CHAOS_PROXY_CONTROL, else the default."""
    return target.spec.control or default_control_url()


def server_for(target: Target) -> str:
    return target.spec.server


# -- parameters: one model per fault, units in the field names ----------------------------------------
LossMode = choice("reset", "stall")
Stream = Annotated[choice(*STREAM_CHOICES), Field(description="downstream (server to client), upstream, or both")]
Toxicity = Annotated[Number, Field(ge=0, le=1, description="share of connections affected, decided per connection")]


class LatencyParams(FaultParams):
    latency_ms: Milliseconds = Field(description="delay added to each chunk")
    jitter_ms: Milliseconds = Field(0.0, description="random ± spread around latency_ms")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


class BandwidthParams(FaultParams):
    rate_kbps: Number = Field(gt=0, description="kilobits per second (1 kbps = 125 bytes/s)")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


class SlowCloseParams(FaultParams):
    delay_ms: Milliseconds = Field(description="delay before a close (FIN) is passed on")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


class BlackholeParams(FaultParams):
    timeout_ms: Milliseconds = Field(0.0, description="close the connection after this long; 0 holds it open")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


class ResetPeerParams(FaultParams):
    timeout_ms: Milliseconds = Field(0.0, description="reset this long after a connection's first data")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


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


class LimitDataParams(FaultParams):
    limit_bytes: SizeBytes = Field(description="close a connection once this much has passed")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


class DownParams(FaultParams):
    toxicity: Toxicity = 1.0


class PartitionParams(FaultParams):
    toxicity: Toxicity = 1.0


class LossParams(FaultParams):
    probability: Number = Field(ge=0, le=1, description="chance that each chunk is lost")
    mode: LossMode = Field("stall", description="stall: later data is dropped; reset: the connection is reset")
    stream: Stream = "downstream"
    toxicity: Toxicity = 1.0


# -- the one table: fault -> the proxy's toxic -----------------------------------------------------
@dataclass(frozen=True)
class Attribute:
    """A parameter sent as a toxic attribute: attribute = parameter x factor, in `unit`."""

    name: str
    unit: str
    factor: float = 1.0


@dataclass(frozen=True)
class ToxicRow:
    """One network fault: its Params, the proxy's toxic type, and how each parameter becomes a toxic attribute.
    `toxiproxy` says what a real Toxiproxy does with it: "toxic" (the same toxic), DISABLE, or None (it cannot)."""

    params: type
    toxic_type: str
    attributes: dict[str, Attribute]
    summary: str
    doc: str
    toxiproxy: str | None = "toxic"


TOXICS: dict[str, ToxicRow] = {
    "latency": ToxicRow(LatencyParams, "latency",
                        {"latency_ms": Attribute("latency", "ms"), "jitter_ms": Attribute("jitter", "ms")},
                        "delay every chunk by latency_ms ± jitter_ms",
                        "Delays data by latency_ms ± jitter_ms per direction (stream both: the round trip grows by twice that)."),
    "bandwidth": ToxicRow(BandwidthParams, "bandwidth", {"rate_kbps": Attribute("rate", "KB/s", KBPS_TO_KB_PER_S)},
                          "cap throughput at rate_kbps kilobits per second",
                          "Caps throughput at rate_kbps kilobits per second (1 kbps = 125 bytes/s)."),
    "slow_close": ToxicRow(SlowCloseParams, "slow_close", {"delay_ms": Attribute("delay", "ms")},
                           "delay the close of connections by delay_ms", "Delays passing on a close (FIN) by delay_ms."),
    "blackhole": ToxicRow(BlackholeParams, "timeout", {"timeout_ms": Attribute("timeout", "ms")},
                          "swallow data; close after timeout_ms (0: hold open)",
                          "Swallows data (Toxiproxy's timeout toxic); timeout_ms > 0 closes the connection after that "
                          "long, 0 holds it open. When the fault ends, the connections it swallowed from are closed "
                          "(their stream lost data), as Toxiproxy does."),
    "reset_peer": ToxicRow(ResetPeerParams, "reset_peer", {"timeout_ms": Attribute("timeout", "ms")},
                           "reset connections with TCP RST after timeout_ms",
                           "Resets connections (TCP RST) timeout_ms after their first data in the stream's direction."),
    "slicer": ToxicRow(SlicerParams, "slicer",
                       {"average_size_bytes": Attribute("average_size", "bytes"),
                        "size_variation_bytes": Attribute("size_variation", "bytes"), "delay_us": Attribute("delay", "µs")},
                       "slice data into small pieces with delays between them",
                       "Cuts data into pieces of average_size_bytes ± size_variation_bytes, delay_us apart."),
    "limit_data": ToxicRow(LimitDataParams, "limit_data", {"limit_bytes": Attribute("bytes", "bytes")},
                           "close connections after limit_bytes",
                           "Closes a connection once limit_bytes have passed in the stream's direction."),
    "down": ToxicRow(DownParams, "down", {}, "refuse new connections and close open ones",
                     "The route is down: new connections are refused (ECONNREFUSED) and open ones closed. toxicity < 1 "
                     "closes that share of connections instead (accepted, then closed); a real Toxiproxy has toxicity 1 only.",
                     toxiproxy=DISABLE),
    "partition": ToxicRow(PartitionParams, "partition", {}, "cut both directions: connections stall, new ones hang",
                          "Nothing passes either way and nothing is closed: open connections stall, new ones are accepted "
                          "but hang. When the fault ends, held data flows on intact (as TCP retransmission would deliver it).",
                          toxiproxy=None),
    "loss": ToxicRow(LossParams, "loss", {"probability": Attribute("probability", "ratio"), "mode": Attribute("mode", "")},
                     "lose data with a probability: the stream stalls or resets",
                     "Each chunk is lost with `probability`; the first loss stalls the stream (mode stall: later data is "
                     "dropped, the connection held open) or resets the connection (mode reset).",
                     toxiproxy=None),
}


def toxic_attributes(row: ToxicRow, params: Any) -> dict[str, Any]:
    """The toxic attributes of these parameters, in the proxy's names and units (whole numbers sent as integers)."""
    out: dict[str, Any] = {}
    for name, attribute in row.attributes.items():
        value = getattr(params, name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = value * attribute.factor
            value = int(value) if float(value).is_integer() else value
        out[attribute.name] = value
    return out


def toxiproxy_problems(row: ToxicRow, type_name: str, params: Any, target: Target) -> list[str]:
    """Why a real Toxiproxy cannot do this fault as asked (empty: it can)."""
    where = f"target {target.name!r} is a real Toxiproxy (server: toxiproxy)"
    if row.toxiproxy is None:
        return [f"{where}, which has no {row.toxic_type!r} toxic; this fault needs the harness's own proxy (server: harness)"]
    if row.toxiproxy == DISABLE:
        if params.toxicity != 1:
            return [f"parameter 'toxicity': {where}, which takes a proxy down whole (enabled: false); "
                    f"expected 1; got {params.toxicity!r}"]
        return []
    problems = []
    for name, attribute in row.attributes.items():
        value = getattr(params, name)
        converted = value * attribute.factor if isinstance(value, (int, float)) else value
        if isinstance(converted, float) and not converted.is_integer():
            hint = f" (use a multiple of {1 / attribute.factor:g})" if attribute.factor < 1 else ""
            problems.append(f"parameter {name!r}: {where}, which takes a whole number of {attribute.unit} for "
                            f"{row.toxic_type} {attribute.name!r}; got {value:g}, which is {converted:g} {attribute.unit}{hint}")
    return problems


def check_proxy_target(target: Target, timeout_s: float = 2.0) -> list[str]:
    """Problems reaching the target's proxy now: the control API does not answer, or has no proxy of that name.
    For the pre-run checks: a real Toxiproxy is not started by the harness, so it must be up before any load."""
    from chaos_events.backends.proxy.client import ProxyClient, UnknownRouteError

    route, control = target.spec.route, control_url_for(target)
    client = ProxyClient(control, timeout_s=timeout_s)
    try:
        client.route(route)
    except UnknownRouteError:
        try:
            known = ", ".join(sorted(client.routes())) or "(none)"
        except InjectionError:
            known = "(unknown)"
        return [f"target {target.name!r}: the proxy at {control} has no proxy {route!r}; proxies: {known}"]
    except InjectionError as exc:
        return [f"target {target.name!r}: {exc}"]
    return []


# -- the fault ------------------------------------------------------------------------------------
class NetworkFault(Fault):
    """Adds toxics to one proxy route on inject and removes exactly those on revert (`row` says which).

    Invariant: `state["toxics"]` lists every toxic name this fault may have added, and `state["disabled"]` says it
    may have disabled the proxy (a real Toxiproxy's `down`), both written (and journalled) before the proxy is asked,
    so a revert in another process after a crash undoes them too. Reverting is idempotent.
    Example: fault_type("latency")(LatencyParams(latency_ms=200), target).inject(ctx) adds
    "chaos.latency.<target>.downstream.<id>" with attributes {"latency": 200, "jitter": 0}.
    """

    target_kinds: ClassVar[frozenset[TargetKind]] = frozenset({TargetKind.PROXY})
    row: ClassVar[ToxicRow]

    @property
    def toxic_type(self) -> str:
        return self.row.toxic_type

    @classmethod
    def directional(cls) -> bool:
        return "stream" in cls.Params.model_fields

    def _client(self) -> Any:
        from chaos_events.backends.proxy.client import ProxyClient

        return ProxyClient(self.state.get("control") or control_url_for(self.target))

    # contract
    def inject(self, ctx: FaultContext) -> None:
        route = self.state.setdefault("route", self.target.spec.route)
        self.state.setdefault("control", control_url_for(self.target))
        client = self._client()
        if server_for(self.target) == "toxiproxy" and self.row.toxiproxy == DISABLE:
            self._disable(ctx, client, route)
            return
        occurrence = self.state.setdefault("occurrence", ctx.occurrence_id or uuid.uuid4().hex[:8])
        names = self.state.setdefault("toxics", [])
        attributes = toxic_attributes(self.row, self.params)
        for stream in self._streams():
            name = _TOXIC_NAME_UNSAFE.sub("_", f"chaos.{self.type_name}.{self.target.name}.{stream}.{occurrence}")
            if name not in names:
                names.append(name)
                ctx.save_state()  # journalled before the side effect, so a crash right after still gets reverted
            client.add_toxic(route, name, self.toxic_type, attributes, stream=stream, toxicity=self.params.toxicity)
            ctx.log(f"{self.type_name}: toxic {name} on route {route!r} ({stream}, toxicity {self.params.toxicity:g})")

    def _disable(self, ctx: FaultContext, client: Any, route: str) -> None:
        if "disabled" not in self.state:
            self.state["disabled"] = bool(client.route(route).get("enabled", True))  # only re-enable what we disabled
            ctx.save_state()
        if self.state["disabled"]:
            client.set_enabled(route, False)
            ctx.log(f"{self.type_name}: proxy {route!r} disabled")

    def revert(self, ctx: FaultContext) -> None:
        names = list(self.state.get("toxics", []))
        if not names and not self.state.get("disabled"):
            return
        client = self._client()
        route = self.state.get("route") or self.target.spec.route
        failures = []
        for name in names:  # one failed removal does not stop the others
            try:
                client.remove_toxic(route, name)
            except InjectionError as exc:
                failures.append(str(exc))
        if self.state.get("disabled"):
            try:
                client.set_enabled(route, True)
            except InjectionError as exc:
                failures.append(str(exc))
        if failures:
            raise RevertError(f"{self.type_name} on {self.target.name}: could not revert: " + "; ".join(failures))

    def verify_reverted(self, ctx: FaultContext) -> None:
        from chaos_events.backends.proxy.client import UnknownRouteError

        names = set(self.state.get("toxics", []))
        if not names and not self.state.get("disabled"):
            return
        route = self.state.get("route") or self.target.spec.route
        try:
            shown = self._client().route(route)
        except UnknownRouteError:
            return  # no route, so none of our toxics on it
        except InjectionError as exc:
            raise RevertError(f"{self.type_name} on {self.target.name}: cannot confirm the revert: {exc}") from exc
        left = sorted(names & {t["name"] for t in shown.get("toxics", [])})
        if left:
            raise RevertError(f"{self.type_name} on {self.target.name}: toxics still on route {route!r}: {', '.join(left)}")
        if self.state.get("disabled") and not shown.get("enabled", True):
            raise RevertError(f"{self.type_name} on {self.target.name}: proxy {route!r} is still disabled")

    @classmethod
    def check_plan(cls, params: Any, target: Target) -> list[str]:
        """A real Toxiproxy cannot do every fault: refused when the scenario is loaded, never sent as a no-op."""
        return toxiproxy_problems(cls.row, cls.type_name, params, target) if server_for(target) == "toxiproxy" else []

    @classmethod
    def preflight(cls, params: Any, target: Target) -> list[str]:
        """A real Toxiproxy is not started by the harness: it must answer, and have the named proxy, before any load."""
        return check_proxy_target(target) if server_for(target) == "toxiproxy" else []

    def _streams(self) -> list[str]:
        if not self.directional():
            return ["downstream"]  # recorded by the proxy, which cuts both directions anyway
        return ["downstream", "upstream"] if self.params.stream == "both" else [self.params.stream]


def _fault_class(type_name: str, row: ToxicRow) -> type[NetworkFault]:
    class_name = "".join(part.title() for part in type_name.split("_")) + "Fault"
    cls = type(class_name, (NetworkFault,), {"type_name": type_name, "Params": row.params, "row": row,
                                             "summary": row.summary, "__doc__": row.doc, "__module__": __name__})
    return register(cls)


NETWORK_FAULTS = tuple(_fault_class(name, row) for name, row in TOXICS.items())
