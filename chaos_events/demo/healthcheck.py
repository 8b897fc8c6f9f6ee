"""Health checks of the compose stack's demo parts (docker-compose.locust.yml `healthcheck:`), one per kind.

    python -m chaos_events.demo.healthcheck tcp PORT [PORT ...]     # each port on 127.0.0.1 accepts a connection
    python -m chaos_events.demo.healthcheck http URL                 # GET URL answers 200
Exit 0 when healthy, 1 with one line saying why not. Standard library only (it runs every couple of seconds in
its container, so it must start fast); never locust or gevent.
"""
from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request

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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    checks = {"tcp": (check_tcp, lambda a: (a,)), "http": (check_http, lambda a: (a[0],))}
    if not args or args[0] not in checks or len(args) < 2:
        print("usage: python -m chaos_events.demo.healthcheck {tcp PORT... | http URL}", file=sys.stderr)
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
