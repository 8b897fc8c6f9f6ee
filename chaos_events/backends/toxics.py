"""Toxics of the TCP fault proxy: one small class per toxic type, with its attribute schema and its effect.

Standard library only (no gevent, locust, docker or prometheus_client): each class answers questions about one
chunk or one connection ("how long to delay this chunk?", "when must this connection end?"), and
`backends/proxy/relay.py` does the waiting and the socket work in its greenlets.

Type names, attribute names and units are Toxiproxy's (HTTP API v2), so its clients work unchanged:
latency {latency, jitter} ms · bandwidth {rate} KB/s (1 KB = 1000 bytes; 0: no limit) · slow_close {delay} ms ·
timeout {timeout} ms · reset_peer {timeout} ms · slicer {average_size, size_variation} bytes, {delay} µs ·
limit_data {bytes} · noop. Ours besides: down, partition, loss {probability, mode}.
A missing attribute takes Toxiproxy's default (0) unless the toxic cannot work without it. Departures, on purpose:
an unknown attribute or field is an error (Toxiproxy silently ignores it, so a typo `latncy` is a 0 ms toxic there),
numbers may be fractional (Toxiproxy takes whole numbers only), and every problem of a body is reported at once.

Directions (Toxiproxy's words): `upstream` is client -> server, `downstream` is server -> client.
`toxicity` (0..1) is the probability that a connection is affected; it is decided once per connection and toxic.

Example:
    toxic, problems = parse_toxic({"type": "latency", "attributes": {"latency": 200}})
    problems == [] and toxic.delay_s(random.Random()) == 0.2
"""
from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

STREAMS = ("downstream", "upstream")
TOXIC_FIELDS = ("attributes", "name", "stream", "toxicity", "type")
UPDATE_FIELDS = ("attributes", "toxicity")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_REQUIRED = object()
_uids = itertools.count(1)


@dataclass(frozen=True)
class Attr:
    """One attribute of a toxic type: its kind, its default (Toxiproxy's 0 unless required) and its allowed range."""

    name: str
    kind: type                     # int, float or str
    default: Any = 0
    minimum: float | None = 0
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> tuple[Any, str | None]:
        """(value, None) or (None, what is wrong)."""
        if self.kind is str:
            if value not in self.choices:
                return None, f"expected one of: {', '.join(self.choices)}; got {value!r}"
            return value, None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return None, f"expected {self._range_text()}; got {value!r}"
        if self.kind is int and not float(value).is_integer():
            return None, f"expected {self._range_text()}; got {value!r}"
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            return None, f"expected {self._range_text()}; got {value!r}"
        return self.kind(value), None

    def _range_text(self) -> str:
        noun = "a whole number" if self.kind is int else "a number"
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} from {self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f"{noun} of {self.minimum:g} or more"
        return noun


class Toxic:
    """A configured toxic on one route. Invariant: attributes are complete and valid (built by `parse_toxic`).

    `uid` is unique per instance (kept by an update that leaves `toxicity` alone), so a toxic removed and re-added
    under the same name is decided afresh. Subclasses answer the hooks below; the defaults mean "no effect".
    """

    type_name: ClassVar[str] = ""
    attrs: ClassVar[tuple[Attr, ...]] = ()
    # Route-wide toxics cut the whole connection, so their `stream` is recorded but does not narrow them.
    route_wide: ClassVar[bool] = False

    def __init__(self, name: str, stream: str, toxicity: float, attributes: Mapping[str, Any], uid: int | None = None):
        self.name = name
        self.stream = stream
        self.toxicity = toxicity
        self.attributes = dict(attributes)
        self.uid = uid if uid is not None else next(_uids)

    def applies_to(self, direction: str) -> bool:
        return self.route_wide or self.stream == direction

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type_name, "stream": self.stream, "toxicity": self.toxicity,
                "attributes": dict(self.attributes)}

    # -- hooks, called by the proxy for connections this toxic affects ------------------------------
    def holds(self) -> bool:
        """True while data must be held (neither forwarded nor dropped)."""
        return False

    def delay_s(self, rng: random.Random) -> float:
        """Extra delay of one chunk, drawn once per chunk."""
        return 0.0

    def filter(self, state: dict, data: bytes, rng: random.Random) -> tuple[bytes, str | None]:
        """(data to pass on, action) for one chunk; action is None, "close" or "reset". `state` is per connection and direction."""
        return data, None

    def end_delay_s(self) -> float:
        """How long after `filter` asked for an end the connection ends (reset_peer's timeout)."""
        return 0.0

    def deadline(self, seen_at: float) -> tuple[float, str] | None:
        """(monotonic time, "close" | "reset") at which the connection ends, counted from when it met this toxic."""
        return None

    def on_removed(self) -> str | None:
        """What happens to an affected connection when the toxic is removed: None (it carries on) or "close"."""
        return None

    def slice_sizes(self, length: int, rng: random.Random) -> list[int] | None:
        return None

    def slice_delay_s(self) -> float:
        return 0.0

    def rate_bytes_per_s(self) -> float | None:
        return None

    def close_delay_s(self) -> float:
        return 0.0


class Noop(Toxic):
    """Passes everything on unchanged (Toxiproxy's noop)."""

    type_name = "noop"


class Latency(Toxic):
    """Delays every chunk by latency ± jitter ms (uniform). Pipelined: a stream's throughput is unchanged."""

    type_name = "latency"
    attrs = (Attr("latency", float), Attr("jitter", float))

    def delay_s(self, rng):
        jitter = self.attributes["jitter"]
        delay_ms = self.attributes["latency"] + (rng.uniform(-jitter, jitter) if jitter else 0.0)
        return max(0.0, delay_ms) / 1000.0


class Bandwidth(Toxic):
    """Limits the rate to `rate` KB/s (1 KB = 1000 bytes, as in Toxiproxy); 0 means no limit, as there."""

    type_name = "bandwidth"
    attrs = (Attr("rate", float),)

    def rate_bytes_per_s(self):
        return self.attributes["rate"] * 1000.0 or None


class SlowClose(Toxic):
    """Delays passing on the close (FIN) of this direction by `delay` ms."""

    type_name = "slow_close"
    attrs = (Attr("delay", float),)

    def close_delay_s(self):
        return self.attributes["delay"] / 1000.0


class Timeout(Toxic):
    """Swallows all data of this direction; closes the connection after `timeout` ms (0: holds it open). As in
    Toxiproxy, removing it closes the connections it affected: data they sent was lost, so their stream is broken."""

    type_name = "timeout"
    attrs = (Attr("timeout", float),)

    def filter(self, state, data, rng):
        return b"", None

    def deadline(self, seen_at):
        timeout_ms = self.attributes["timeout"]
        return (seen_at + timeout_ms / 1000.0, "close") if timeout_ms > 0 else None

    def on_removed(self):
        return "close"


class ResetPeer(Toxic):
    """On the first data of this direction, swallows it and resets the connection (TCP RST, via SO_LINGER 0) `timeout`
    ms later, as Toxiproxy does. Both sides get the reset; a connection that sends nothing this way is not touched."""

    type_name = "reset_peer"
    attrs = (Attr("timeout", float),)

    def filter(self, state, data, rng):
        return b"", "reset"

    def end_delay_s(self):
        return self.attributes["timeout"] / 1000.0


class Slicer(Toxic):
    """Cuts chunks into pieces of average_size ± size_variation bytes, `delay` µs apart."""

    type_name = "slicer"
    attrs = (Attr("average_size", int, default=_REQUIRED, minimum=1), Attr("size_variation", int), Attr("delay", float))

    def slice_sizes(self, length, rng):
        average, variation = self.attributes["average_size"], self.attributes["size_variation"]
        sizes, left = [], length
        while left > 0:
            size = max(1, average + (rng.randint(-variation, variation) if variation else 0))
            sizes.append(min(size, left))
            left -= sizes[-1]
        return sizes

    def slice_delay_s(self):
        return self.attributes["delay"] / 1_000_000.0


class LimitData(Toxic):
    """Closes the connection once `bytes` bytes have passed in this direction since the connection met the toxic."""

    type_name = "limit_data"
    attrs = (Attr("bytes", int),)

    def filter(self, state, data, rng):
        left = self.attributes["bytes"] - state.get("passed", 0)
        if len(data) < left:
            state["passed"] = state.get("passed", 0) + len(data)
            return data, None
        state["passed"] = self.attributes["bytes"]
        return data[:max(0, left)], "close"


class Down(Toxic):
    """The route is down: with toxicity 1 its listener closes (new connections get ECONNREFUSED) and every
    connection is closed. With toxicity p < 1, each connection (existing or new) is closed with probability p."""

    type_name = "down"
    route_wide = True

    def deadline(self, seen_at):
        return seen_at, "close"


class Partition(Toxic):
    """A network partition: nothing passes either way, and nothing is closed. Existing connections stall; new
    connections are accepted by the listener but hang (never reach the upstream) until the partition heals. Held
    data is kept (TCP would retransmit it), so healed connections resume intact. Clients see timeouts, not resets."""

    type_name = "partition"
    route_wide = True

    def holds(self):
        return True


class Loss(Toxic):
    """Each chunk of this direction is lost with `probability`; a TCP stream cannot skip a lost chunk, so the first
    loss ends the stream: mode "stall" drops that chunk and all later data (connection held open while the toxic
    stays), mode "reset" resets the connection."""

    type_name = "loss"
    attrs = (Attr("probability", float, default=_REQUIRED, maximum=1),
             Attr("mode", str, default="stall", choices=("reset", "stall")))

    def filter(self, state, data, rng):
        if state.get("stalled") or (data and rng.random() < self.attributes["probability"]):
            if self.attributes["mode"] == "reset":
                return b"", "reset"
            state["stalled"] = True
            return b"", None
        return data, None


TOXIC_TYPES: dict[str, type[Toxic]] = {cls.type_name: cls for cls in (
    Noop, Latency, Bandwidth, SlowClose, Timeout, ResetPeer, Slicer, LimitData, Down, Partition, Loss)}
# The types a real Toxiproxy has; the others exist only in this proxy.
TOXIPROXY_TYPES = ("bandwidth", "latency", "limit_data", "noop", "reset_peer", "slicer", "slow_close", "timeout")


def parse_toxic(body: Any) -> tuple[Toxic | None, list[str]]:
    """Validate a control-API toxic body. Returns (toxic, []) or (None, every problem found)."""
    if not isinstance(body, Mapping):
        return None, [f"request body: expected a JSON object with fields {', '.join(TOXIC_FIELDS)}; got {_json_kind(body)}"]
    problems = [f"unknown field {key!r}; expected one of: {', '.join(TOXIC_FIELDS)}" for key in body if key not in TOXIC_FIELDS]
    type_name = body.get("type")
    cls = TOXIC_TYPES.get(type_name) if isinstance(type_name, str) else None
    if "type" not in body:
        problems.append(f"field 'type': missing; expected one of: {', '.join(sorted(TOXIC_TYPES))}")
    elif cls is None:
        problems.append(f"field 'type': unknown toxic type {type_name!r}; expected one of: {', '.join(sorted(TOXIC_TYPES))}")
    stream = body.get("stream", "downstream")
    if stream not in STREAMS:
        problems.append(f"field 'stream': expected one of: {', '.join(STREAMS)}; got {stream!r}")
    toxicity, problem = _toxicity(body.get("toxicity", 1.0))
    problems += problem
    name = body.get("name") or f"{type_name}_{stream}"
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"field 'name': expected 1 to 200 characters of letters, digits, '_', '.', ':' or '-'; got {name!r}")
    attributes: dict[str, Any] = {}
    if cls is not None:
        attributes, attribute_problems = parse_attributes(cls, body.get("attributes", {}), {})
        problems += attribute_problems
    if problems or cls is None:
        return None, problems
    return cls(name, stream, toxicity, attributes), []


def parse_update(toxic: Toxic, body: Any) -> tuple[Toxic | None, list[str]]:
    """Validate a toxic update ({"attributes": {...}, "toxicity": x}; attributes merge into the current ones, as in
    Toxiproxy). `name`, `type` and `stream` may be repeated unchanged; changing them is an error."""
    if not isinstance(body, Mapping):
        return None, [f"request body: expected a JSON object with fields {', '.join(UPDATE_FIELDS)}; got {_json_kind(body)}"]
    current = toxic.to_json()
    problems = []
    for key, value in body.items():
        if key in ("name", "type", "stream"):
            if value != current[key]:
                problems.append(f"field {key!r}: a toxic's {key} cannot be changed (it is {current[key]!r}); got {value!r}")
        elif key not in UPDATE_FIELDS:
            problems.append(f"unknown field {key!r}; expected one of: {', '.join(UPDATE_FIELDS)}")
    toxicity, problem = _toxicity(body.get("toxicity", toxic.toxicity))
    attributes, attribute_problems = parse_attributes(type(toxic), body.get("attributes", {}), toxic.attributes)
    problems += problem + attribute_problems
    if problems:
        return None, problems
    uid = toxic.uid if toxicity == toxic.toxicity else None  # a new toxicity is decided afresh for every connection
    return type(toxic)(toxic.name, toxic.stream, toxicity, attributes, uid=uid), []


def parse_attributes(cls: type[Toxic], raw: Any, base: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Attributes of `cls` from `raw` on top of `base` (defaults for what neither gives). Returns (attributes, problems)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return {}, [f"field 'attributes': expected a JSON object; got {raw!r}"]
    known = {a.name: a for a in cls.attrs}
    expected = ", ".join(sorted(known)) or "(none)"
    problems = []
    attributes: dict[str, Any] = dict(base)
    for key, value in raw.items():
        attr = known.get(key)
        if attr is None:
            problems.append(f"field 'attributes' ({cls.type_name}): unknown attribute {key!r}; expected one of: {expected}")
            continue
        parsed, problem = attr.parse(value)
        if problem:
            problems.append(f"field 'attributes.{key}' ({cls.type_name}): {problem}")
        attributes[key] = parsed
    for attr in cls.attrs:
        if attr.name not in attributes:
            if attr.default is _REQUIRED:
                problems.append(f"field 'attributes' ({cls.type_name}): missing attribute {attr.name!r}")
            else:
                attributes[attr.name] = attr.default
    if cls is Slicer and not problems and attributes["size_variation"] >= attributes["average_size"]:
        problems.append(f"field 'attributes.size_variation' (slicer): expected less than average_size "
                        f"({attributes['average_size']}); got {attributes['size_variation']}")
    return attributes, problems


def _toxicity(value: Any) -> tuple[float, list[str]]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        return 1.0, [f"field 'toxicity': expected a number from 0 to 1; got {value!r}"]
    return float(value), []


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
