"""The harness's TCP fault proxy: named routes LISTEN -> UPSTREAM, toxics applied and removed live, driven through
Toxiproxy's HTTP API (v2), so Toxiproxy's own clients work against it and the harness works against a real Toxiproxy.

Why: the kernel here has no netem, so network faults need a user-space path. Modules, each small:
- `spec.py`     routes as data, address parsing, Toxiproxy's `-config` / populate format (standard library only);
- `client.py`   ProxyClient, the harness's client of this proxy or of a real Toxiproxy (requests only, no gevent);
- `server.py`   ProxyServer: routes, the native relay and the control API, started and stopped as one;
- `route.py`    one route: listener, toxics, connections;  `relay.py` one connection's data path (greenlets);
- `native.py`   the splice pass-through for connections no toxic affects (one OS thread);
- `api.py`      the control API (Toxiproxy's endpoints, bodies and status codes);  `cli.py` the process.
Toxic types and their attributes live in `chaos_events/backends/toxics.py`.

Three ways to use it:
- in-process: `ProxyServer(["api=127.0.0.1:8000=127.0.0.1:8001"], control="127.0.0.1:8474").start()` ... `.stop()`;
- as a process: `chaos-events proxy --control 127.0.0.1:8474 --route api=127.0.0.1:8000=127.0.0.1:8001`
  (or Toxiproxy's flags: `-host 127.0.0.1 -port 8474 -config proxies.json`);
- the client: `ProxyClient("http://127.0.0.1:8474").add_toxic("api", "slow", "latency", {"latency": 200})`.

Names resolve lazily, so `from chaos_events.backends.proxy.client import ProxyClient` (the network faults' check
before a run) loads neither gevent nor the server. Must not import locust, docker or prometheus_client.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DEFAULT_CONTROL_URL": "client", "ProxyClient": "client", "UnknownRouteError": "client",
    "default_control_url": "client",
    "RouteSpec": "spec", "parse_address": "spec", "parse_route": "spec", "format_address": "spec",
    "load_config": "spec",
    "ProxyError": "route", "ProxyServer": "server", "main": "cli",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
