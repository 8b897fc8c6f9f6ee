"""The fields of a `kafka_cluster` broker entry that isolate_broker needs (scenario/targets.py's BrokerService):
`gid`, the group id the broker's process runs with, and `inter_broker_ports`, its replication and controller ports.

Pure: standard library and pydantic.

Example (a brokers: entry): {process: {pidfile: .run/kafka-0.pid}, gid: 64000, inter_broker_ports: [19093, 19094]}
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from chaos_events.scenario.fields import fail, parse_port, shown


def _port(value: Any) -> int:
    try:
        return parse_port(value)
    except ValueError as exc:
        raise fail(f"'inter_broker_ports': {exc}") from None


def _gid(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"'gid': expected a whole number, at least 1 (a group id); got {shown(value)}")
    return value


# A nested model's fields get no `${VAR}` alternative from scenario/schema.py: these say so themselves.
_VARIABLE = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"}
Port = Annotated[int, BeforeValidator(_port),
                 WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, _VARIABLE]})]
Gid = Annotated[int, BeforeValidator(_gid), WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1}, _VARIABLE]})]


def isolation_fields(entry: dict) -> None:
    """`gid` and `inter_broker_ports`, checked here so that an error names the broker."""
    if "gid" in entry:
        _gid(entry["gid"])
    if "inter_broker_ports" in entry:
        ports = entry["inter_broker_ports"]
        if not isinstance(ports, list) or not ports:
            got = "an empty list" if ports == [] else shown(ports)
            raise fail(f"'inter_broker_ports': expected a list of ports like [19093, 19094]; got {got}")
        for port in ports:
            _port(port)
