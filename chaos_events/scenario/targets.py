"""The target kinds a scenario may name, one typed model each, registered by the key that names them in YAML.

Pure: standard library and pydantic. A target model validates only itself; whether its host is allowed is the
loader's check (it needs the scenario's settings), and whether it exists on this machine is the pre-run check's.

Example (scenario):
    targets:
      broker:   {process: {pidfile: .run/broker.pid, restart: [python, -m, chaos_events.demo, start-part, broker]}}
      kafka:    {container: {name: demo-kafka}}
      link:     {proxy: {name: kafka, control: "http://127.0.0.1:8474"}}
      scratch:  {directory: /var/tmp}
      api:      {endpoint: "http://127.0.0.1:8000"}
      machine:  {host: local}
      events:   {kafka: {bootstrap: "127.0.0.1:19092", topic: events}}
      cluster:  {kafka_cluster: {bootstrap: "127.0.0.1:19092", brokers: {0: {process: {pidfile: .run/kafka-0.pid}}}}}
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Mapping
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator
from pydantic_core import PydanticCustomError

from chaos_events.scenario.fields import (
    Bootstrap, Command, HttpUrl, ScenarioModel, Text, WholeNumber, choice, fail, parse_text, shown, split_address,
)
from chaos_events.scenario.broker_fields import Gid, Port, isolation_fields
from chaos_events.scenario.safety import is_loopback


class TargetKind(enum.Enum):
    PROCESS = "process"        # a local process: pidfile, pid, or a command the harness starts
    CONTAINER = "container"    # a Docker container: by name or label
    PROXY = "proxy"            # a named route of a TCP fault proxy (the harness's own, or a Toxiproxy)
    DIRECTORY = "directory"    # a directory to fill (disk faults)
    ENDPOINT = "endpoint"      # a TCP address or HTTP URL (pool exhaustion, bad payloads to the API)
    HOST = "host"              # this machine (CPU burn, memory pressure)
    KAFKA = "kafka"            # a Kafka topic (poison messages)
    KAFKA_CLUSTER = "kafka_cluster"  # a Kafka cluster's brokers, by role (scenario/kafka_roles.py)



@dataclass(frozen=True)
class Target:
    """One allow-listed thing a fault may touch. `spec` is the kind's own frozen model (below); a plain mapping
    given instead is validated into it.

    Invariant: a fault only ever receives a Target that the scenario named.
    Example: Target("broker", TargetKind.PROCESS, ProcessTarget(pidfile=".run/kafka.pid"), line=3)
    """

    name: str
    kind: TargetKind
    spec: Any
    line: int | None = None
    key_lines: Mapping[str, int] = field(default_factory=dict, compare=False)   # line of each key of the spec

    def __post_init__(self) -> None:
        if isinstance(self.spec, dict):
            object.__setattr__(self, "spec", TARGET_MODELS[self.kind].model_validate(self.spec))

    def line_of(self, key: str) -> int | None:
        """Where a key of this target's spec is written, for the pre-run checks' messages."""
        return self.key_lines.get(key) or self.line

    def describe(self) -> str:
        return f"{self.name} ({self.kind.value})"


class ProcessTarget(ScenarioModel):
    """A local process, named by exactly one of `pidfile`, `pid` or `command` (the argv it runs with).

    `restart` (or `command`) is how the harness starts it again after stop, kill or restart faults; a first word
    `python` or `python3` is the harness's own interpreter. A restart that is not a daemonizing launcher gets its
    new pid written to `pidfile`; a launcher that writes the pidfile itself keeps it.
    """

    pidfile: Text | None = Field(None, description="file holding the process id (re-read at every fault)")
    pid: WholeNumber | None = Field(None, description="the process id itself")
    command: Command | None = Field(None, description="the argv the process runs with: found by it, started with it")
    restart: Command | None = Field(None, description="how to start it again (default: `command`)")
    cwd: Text | None = Field(None, description="working directory for `command` and `restart`")

    @model_validator(mode="before")
    @classmethod
    def _exactly_one_name(cls, data: Any) -> Any:
        if isinstance(data, dict):
            chosen = [k for k in ("pidfile", "pid", "command") if k in data]
            if len(chosen) != 1:
                raise fail(f"expected exactly one of: pidfile, pid, command; got: {', '.join(chosen) or 'none'}")
        return data

    @field_validator("pid")
    @classmethod
    def _not_init(cls, pid: int | None) -> int | None:
        if pid is not None and pid < 1:
            raise fail(f"must be at least 1; got {shown(pid)}")
        if pid == 1:
            raise fail("refusing to target process 1 (init)")
        return pid

    def start_argv(self) -> list[str] | None:
        """How the harness starts it: `restart`, else `command`."""
        argv = self.restart or self.command
        return list(argv) if argv else None


class ContainerTarget(ScenarioModel):
    """A Docker container, by `name` or by `label` (`key=value` or `key`); it must opt in (see safety)."""

    name: Text | None = Field(None, description="container name")
    label: Text | None = Field(None, description="a label that finds exactly one container: key=value or key")

    @field_validator("name")
    @classmethod
    def _docker_name(cls, value: str | None) -> str | None:
        # Docker's own rule; the engine (and docker-py) fail on anything else in ways that name nothing.
        if value is not None and not CONTAINER_NAME.fullmatch(value):
            raise fail(f"expected a container name (a letter or digit, then letters, digits, _ . -); got {shown(value)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _name_or_label(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return {"name": parse_text(data)}
        chosen = [k for k in ("name", "label") if k in data]
        if len(chosen) != 1 and set(data) <= {"name", "label"}:
            raise fail(f"expected exactly one of: label, name; got: {', '.join(chosen) or 'none'}")
        return data


CONTAINER_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]*")

ProxyServer = choice("harness", "toxiproxy")


def parse_route_address(value: Any) -> str:
    """A declared route's `listen` or `upstream`: host:port (port 1..65535), kept as written."""
    text = parse_text(value)
    try:
        split_address(text)
    except ValueError as exc:
        raise fail(str(exc)) from None
    return text


RouteAddress = Annotated[str, BeforeValidator(parse_route_address), WithJsonSchema({"type": "string"})]


class ProxyTarget(ScenarioModel):
    """A route of a TCP fault proxy: the harness's own (`server: harness`) or a real Toxiproxy (`server: toxiproxy`).

    With `listen` and `upstream` the route is declared here: the harness starts its own proxy for it before the load
    (control API on `control`, else on a free port), journals it and stops it at the end. Without
    them, a proxy already running at `control` serves the route; with no `control`, the run uses
    $CHAOS_PROXY_CONTROL, else http://127.0.0.1:8474.
    Example: {name: api, listen: "127.0.0.1:8000", upstream: "127.0.0.1:8001"}
    """

    route: Text = Field(alias="name", description="the route's (proxy's) name")
    control: HttpUrl | None = Field(None, description="URL of the proxy's control API")
    server: ProxyServer = Field("harness", description="which proxy serves the control API")
    listen: RouteAddress | None = Field(None, description="with `upstream`: the harness starts its own proxy, this route "
                                                          "listening here (host:port on loopback)")
    upstream: RouteAddress | None = Field(None, description="with `listen`: where the declared route forwards to "
                                                            "(host:port, an allowed host)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return data if isinstance(data, dict) else {"name": parse_text(data)}

    @field_validator("listen")
    @classmethod
    def _listen_on_loopback(cls, listen: str | None) -> str | None:
        if listen is not None and not is_loopback(split_address(listen)[0]):
            raise fail(f"the harness's proxy listens on loopback only (127.0.0.0/8, ::1, localhost); got {shown(listen)}")
        return listen

    @model_validator(mode="after")
    def _declared_route(self) -> "ProxyTarget":
        if (self.listen is None) != (self.upstream is None):
            given, missing = ("listen", "upstream") if self.upstream is None else ("upstream", "listen")
            raise fail(f"missing key {missing!r}: a declared route needs both 'listen' and 'upstream' "
                       f"(the harness then starts its own proxy); got only {given!r}")
        if self.declared and self.server == "toxiproxy":
            raise fail("'listen' and 'upstream' declare a route the harness serves with its own proxy (server: harness); "
                       "for a Toxiproxy, create the proxy on it (its -config file or toxiproxy-cli create) and name it here")
        if self.declared and self.control:
            parts = urlsplit(self.control)
            if parts.scheme != "http" or parts.port is None or not is_loopback(parts.hostname or ""):
                raise fail(f"'control': the harness starts this proxy, so its control API is http:// on loopback with a "
                           f"port, like http://127.0.0.1:8474; got {shown(self.control)}")
        return self

    @property
    def declared(self) -> bool:
        """The scenario declares this route (listen and upstream): the harness starts its own proxy for it."""
        return self.listen is not None


class DirectoryTarget(ScenarioModel):
    """A directory whose filesystem the disk faults fill."""

    path: Text = Field(description="the directory")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return data if isinstance(data, dict) else {"path": parse_text(data)}


class EndpointTarget(ScenarioModel):
    """A TCP address (`host:port`) or an HTTP URL: what pool exhaustion holds and bad payloads are sent to."""

    host: Text
    port: WholeNumber
    url: Text | None = Field(None, description="the URL when one was given (None for a bare host:port)")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return cls._from_text(data["url"]) if set(data) == {"url"} else data
        text = parse_text(data)
        if "://" in text:
            try:
                parts = urlsplit(text)
                port = parts.port
            except ValueError:
                raise fail(f"expected a URL like http://127.0.0.1:8000; got {shown(text)}") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise fail(f"expected a URL like http://127.0.0.1:8000; got {shown(text)}")
            return {"host": parts.hostname, "port": port or (443 if parts.scheme == "https" else 80), "url": text}
        try:
            host, port = split_address(text)
        except ValueError:
            raise fail(f"expected host:port or an http:// URL; got {shown(text)}") from None
        return {"host": host, "port": port, "url": None}

    def base_url(self) -> str:
        return self.url or f"http://{self.host}:{self.port}"


class HostTarget(ScenarioModel):
    """This machine (`{host: local}`): CPU burn and memory pressure."""

    @model_validator(mode="before")
    @classmethod
    def _local_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data
        if parse_text(data) != "local":
            raise fail(f"only 'local' (this machine) is supported; got {shown(data)}")
        return {}


class KafkaTarget(ScenarioModel):
    """A Kafka topic: where poison messages are produced."""

    bootstrap: Bootstrap = Field(description="bootstrap servers, host:port[,host:port]")
    topic: Text


# -- a Kafka cluster: its brokers, by id (a fault names one by its role: scenario/kafka_roles.py) --------------
def _broker_id(value: Any) -> int:
    """A broker id: a whole number at least 0 (a YAML key comes as text: `0:`)."""
    text = value if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if text is not None and text.strip().isdigit():
        return int(text.strip())
    raise fail(f"expected a broker id (a whole number, 0 or more); got {shown(value)}")


BrokerId = Annotated[int, BeforeValidator(_broker_id), WithJsonSchema({"type": "integer", "minimum": 0})]


def known_keys(data: Any, keys: tuple[str, ...]) -> Any:
    """Unknown keys of a nested mapping, in words that name the nested keys (not the fault's parameters)."""
    if isinstance(data, dict):
        unknown = [k for k in data if k not in keys]
        if unknown:
            raise fail(f"unknown key {unknown[0]!r}; expected one of: {', '.join(sorted(keys))}")
    return data


def exactly_one_key(data: Any, keys: tuple[str, ...]) -> Any:
    known_keys(data, keys)
    if isinstance(data, dict):
        chosen = [k for k in keys if k in data]
        if len(chosen) != 1:
            raise fail(f"expected exactly one of: {', '.join(keys)}; got: {', '.join(chosen) or 'none'}")
    return data


BROKER_KINDS = ("process", "container")
BROKER_KEYS = (*BROKER_KINDS, "gid", "inter_broker_ports")


def _one_broker_kind(data: dict) -> dict:
    known_keys(data, BROKER_KEYS)
    exactly_one_key({k: v for k, v in data.items() if k in BROKER_KINDS}, BROKER_KINDS)
    return data


class BrokerService(ScenarioModel):
    """How the harness reaches one broker: as a local process or as a Docker container (the same models as the
    `process` and `container` target kinds). `gid` and `inter_broker_ports` are for isolate_broker
    (faults/kafka_isolate.py): the group id the broker's process runs with, and its replication and controller ports.
    Example: {process: {pidfile: .run/kafka-0.pid}, gid: 64000, inter_broker_ports: [19093, 19094]}
    """

    process: ProcessTarget | None = Field(None, description="the broker is a local process")
    container: ContainerTarget | None = Field(None, description="the broker is a Docker container")
    gid: Gid | None = Field(None, description="the group id the broker's process runs with, its own "
                                                            "(isolate_broker tells its packets by it)")
    inter_broker_ports: list[Port] | None = Field(None, min_length=1, description="the broker's replication and "
                                                  "controller listener ports (what isolate_broker cuts)")

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise fail(f"expected a mapping with one target kind: process, container; got {shown(data)}")
        return _one_broker_kind(data)

    def target(self, cluster: str, broker_id: int) -> Target:
        """The broker as a target of its own, named `cluster/broker-N` in logs and errors."""
        kind, spec = (TargetKind.PROCESS, self.process) if self.process else (TargetKind.CONTAINER, self.container)
        return Target(f"{cluster}/broker-{broker_id}", kind, spec)


class KafkaClusterTarget(ScenarioModel):
    """A Kafka cluster whose brokers service faults may hit, each named by its role (`broker:` of the fault).

    `brokers` maps every broker id the cluster reports to the process or container that runs it.
    """

    bootstrap: Bootstrap = Field(description="bootstrap servers, host:port[,host:port]")
    brokers: dict[BrokerId, BrokerService] = Field(description="broker id -> {process: ...} or {container: ...}")

    @field_validator("brokers", mode="before")
    @classmethod
    def _a_mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise fail(f"expected a mapping of broker ids to targets, like {{0: {{process: {{pidfile: ...}}}}}}; "
                       f"got {shown(value)}")
        if not value:
            raise fail("must map at least one broker id to a target, like {0: {process: {pidfile: ...}}}")
        out = {}
        for key, entry in value.items():    # here, so that an error names 'brokers' and the broker
            broker_id = _broker_id(key)
            if not isinstance(entry, dict):
                raise fail(f"broker {broker_id}: expected a mapping with one target kind: process, container; "
                           f"got {shown(entry)}")
            try:
                isolation_fields(_one_broker_kind(entry))
            except PydanticCustomError as exc:
                raise fail(f"broker {broker_id}: {exc.context['message']}") from None
            out[broker_id] = entry
        return out

    def broker_ids(self) -> list[int]:
        return sorted(self.brokers)


TARGET_MODELS: dict[TargetKind, type[ScenarioModel]] = {
    TargetKind.PROCESS: ProcessTarget,
    TargetKind.CONTAINER: ContainerTarget,
    TargetKind.PROXY: ProxyTarget,
    TargetKind.DIRECTORY: DirectoryTarget,
    TargetKind.ENDPOINT: EndpointTarget,
    TargetKind.HOST: HostTarget,
    TargetKind.KAFKA: KafkaTarget,
    TargetKind.KAFKA_CLUSTER: KafkaClusterTarget,
}
# Kinds written as one scalar (`{directory: /tmp}`): their errors read `'directory': ...`.
SCALAR_KINDS = frozenset({TargetKind.DIRECTORY, TargetKind.ENDPOINT, TargetKind.HOST})


def target_hosts(kind: TargetKind, spec: Any) -> list[tuple[str, str]]:
    """(field, host) pairs that the allow-list must cover: faults send traffic there."""
    if kind is TargetKind.ENDPOINT:
        return [("endpoint", spec.host)]
    if kind in (TargetKind.KAFKA, TargetKind.KAFKA_CLUSTER):
        return [("bootstrap", split_address(server)[0]) for server in spec.bootstrap.split(",")]
    if kind is TargetKind.PROXY and spec.control:
        return [("control", urlsplit(spec.control).hostname or "")]
    return []
