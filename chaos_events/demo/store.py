"""The demo platform's store: SQLite in WAL mode, written by the consumer and read by the API.

Imports the standard library only. Writes are idempotent (INSERT OR IGNORE on the event id), so a redelivered
message never duplicates a row. The consumer's heartbeat row lets the API tell a live consumer from a dead one.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    source TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    payload TEXT NOT NULL,
    kafka_partition INTEGER,
    kafka_offset INTEGER,
    stored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_type ON events(type);
CREATE INDEX IF NOT EXISTS events_source ON events(source);
CREATE TABLE IF NOT EXISTS dlq (reason TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS heartbeat (
    name TEXT PRIMARY KEY, ts REAL NOT NULL, pid INTEGER, lag INTEGER, consumed INTEGER, assigned INTEGER
);
"""


def connect(path: str | Path, create: bool = False) -> sqlite3.Connection:
    """A connection with a busy timeout; `create` makes the tables (idempotent) and switches to WAL."""
    conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    if create:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def insert_events(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> int:
    """Insert (id, type, source, timestamp, payload_json, partition, offset) rows; duplicates are ignored."""
    now = time.time()
    conn.execute("BEGIN")
    try:
        cur = conn.executemany(
            "INSERT OR IGNORE INTO events (id, type, source, timestamp, payload, kafka_partition, kafka_offset, stored_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row, now) for row in rows],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return cur.rowcount


def count_dlq(conn: sqlite3.Connection, reasons: dict[str, int]) -> None:
    for reason, n in reasons.items():
        conn.execute("INSERT INTO dlq (reason, count) VALUES (?, ?) ON CONFLICT(reason) DO UPDATE SET count = count + excluded.count", (reason, n))


def beat(conn: sqlite3.Connection, name: str, pid: int, lag: int | None, consumed: int, assigned: int) -> None:
    conn.execute(
        "INSERT INTO heartbeat (name, ts, pid, lag, consumed, assigned) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(name) DO UPDATE SET ts=excluded.ts, pid=excluded.pid, lag=excluded.lag, consumed=excluded.consumed, assigned=excluded.assigned",
        (name, time.time(), pid, lag, consumed, assigned),
    )


def heartbeat(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT ts, pid, lag, consumed, assigned FROM heartbeat WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    return {"ts": row[0], "pid": row[1], "lag": row[2], "consumed": row[3], "assigned": row[4]}


def row_to_event(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0], "type": row[1], "source": row[2], "timestamp": row[3], "payload": json.loads(row[4]),
        "kafka": {"partition": row[5], "offset": row[6]}, "stored_at": row[7],
    }


EVENT_COLUMNS = "id, type, source, timestamp, payload, kafka_partition, kafka_offset, stored_at"
