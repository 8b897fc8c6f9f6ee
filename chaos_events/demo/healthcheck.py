"""Health checks of the compose stack's demo parts (docker-compose.locust.yml `healthcheck:`), one per kind.

    python -m chaos_events.demo.healthcheck tcp PORT [PORT ...]     # each port on 127.0.0.1 accepts a connection
    python -m chaos_events.demo.healthcheck http URL                 # GET URL answers 200
    python -m chaos_events.demo.healthcheck consumer STORE           # the consumer's heartbeat row is fresh and it
                                                                     # holds partitions (what the local supervisor
                                                                     # waits for before it starts the API)
Exit 0 when healthy, 1 with one line saying why not. Standard library only; never locust or gevent.
"""
from __future__ import annotations

import socket
import sqlite3
import sys
import time
import urllib.error
import urllib.request

HEARTBEAT_FRESH_S = 5.0
TIMEOUT_S = 2.0


def check_tcp(ports: list[str]) -> str | None:
    for port in ports:
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=TIMEOUT_S):
                pass
        except (OSError, ValueError) as exc:
            return f"127.0.0.1:{port} does not accept connections ({exc})"
    return None


def check_http(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            return None if resp.status == 200 else f"{url} answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}: {exc.read()[:200]!r}"
    except OSError as exc:
        return f"{url}: {exc}"


def check_consumer(store: str) -> str | None:
    from chaos_events.demo.consumer import HEARTBEAT_NAME

    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=TIMEOUT_S)
        try:
            row = conn.execute("SELECT ts, assigned FROM heartbeat WHERE name = ?", (HEARTBEAT_NAME,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"store {store} not readable yet: {exc}"
    if row is None:
        return "no consumer heartbeat yet"
    age = time.time() - row[0]
    if age > HEARTBEAT_FRESH_S:
        return f"consumer heartbeat is {age:.0f} s old"
    return None if row[1] else "the consumer holds no partitions yet"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    checks = {"tcp": (check_tcp, lambda a: (a,)), "http": (check_http, lambda a: (a[0],)),
              "consumer": (check_consumer, lambda a: (a[0],))}
    if not args or args[0] not in checks or len(args) < 2:
        print("usage: python -m chaos_events.demo.healthcheck {tcp PORT... | http URL | consumer STORE}", file=sys.stderr)
        return 2
    check, unpack = checks[args[0]]
    problem = check(*unpack(args[1:]))
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
