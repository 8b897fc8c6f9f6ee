"""Which broker is the active KRaft controller: the leader of the `__cluster_metadata` quorum, asked with the Kafka
protocol's DescribeQuorum request (API key 55, version 0), which a broker forwards to the controllers.

Why not the admin API's "controller": in KRaft mode, a broker's Metadata and DescribeCluster answers name a random
live broker as the controller (the real one is not reachable by clients), so they change from one call to the next.
confluent_kafka has no DescribeQuorum, hence this small client. Standard library only.

Example:
    active_controller("127.0.0.1:19092,127.0.0.1:19093")   # 1
"""
from __future__ import annotations

import socket
import struct

from chaos_events.scenario.fields import split_address

API_KEY, API_VERSION = 55, 0
METADATA_TOPIC = "__cluster_metadata"
CORRELATION = 0x4B524654


class QuorumError(OSError):
    """No broker answered, or the answer was an error."""


def _uvarint(value: int) -> bytes:
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def request_bytes() -> bytes:
    """The framed request: header v2 (flexible), then topics [__cluster_metadata: partitions [0]]."""
    client = b"chaos-events"
    header = struct.pack(">hhih", API_KEY, API_VERSION, CORRELATION, len(client)) + client + b"\x00"
    topic = METADATA_TOPIC.encode()
    body = (_uvarint(2) + _uvarint(len(topic) + 1) + topic + _uvarint(2) + struct.pack(">i", 0) + b"\x00"
            + b"\x00" + b"\x00")
    message = header + body
    return struct.pack(">i", len(message)) + message


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise QuorumError("DescribeQuorum answer cut short")
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return value

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            byte = self.take(">B")
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.at += self.uvarint()

    def compact_string(self) -> str:
        size = self.uvarint() - 1
        text = self.data[self.at:self.at + max(size, 0)].decode("utf-8", "replace")
        self.at += max(size, 0)
        return text


def parse_leader(reply: bytes) -> int:
    """The quorum leader's id from a DescribeQuorum v0 answer (response header v1)."""
    reader = _Reader(reply)
    if reader.take(">i") != CORRELATION:
        raise QuorumError("DescribeQuorum answer to another request")
    reader.skip_tags()
    error = reader.take(">h")
    if error:
        raise QuorumError(f"DescribeQuorum refused (Kafka error code {error})")
    if reader.uvarint() - 1 < 1:
        raise QuorumError("DescribeQuorum answer without topics")
    reader.compact_string()
    if reader.uvarint() - 1 < 1:
        raise QuorumError("DescribeQuorum answer without partitions")
    reader.take(">i")
    error = reader.take(">h")
    if error:
        raise QuorumError(f"DescribeQuorum refused for the metadata partition (Kafka error code {error})")
    return reader.take(">i")


def active_controller(bootstrap: str, timeout_s: float = 5.0) -> int:
    """The active controller's id, from the first server of `bootstrap` that answers; QuorumError when none does."""
    reasons = []
    for server in bootstrap.split(","):
        host, port = split_address(server.strip())
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as sock:
                sock.settimeout(timeout_s)
                sock.sendall(request_bytes())
                size = struct.unpack(">i", recv_exactly(sock, 4))[0]
                leader = parse_leader(recv_exactly(sock, min(size, 1 << 20)))
        except (OSError, struct.error) as exc:
            reasons.append(f"{server}: {exc}")
            continue
        if leader >= 0:
            return leader
        reasons.append(f"{server}: the quorum has no leader right now")
    raise QuorumError("; ".join(reasons))


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """`size` bytes of a Kafka response from `sock`; ConnectionError (an OSError) when the peer closes first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data
