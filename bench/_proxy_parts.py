"""Parts of the proxy benchmark: the two proxies as pinned processes, wrk runs, and toxics set on either proxy.

Standard library only (plus the harness's requests-only proxy client); must not import locust or gevent. Toxiproxy is
the one .ci/run installs ($CHAOS_TOXIPROXY_BIN, else ~/.cache/chaos-events/toxiproxy/VERSION/bin).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from chaos_events.backends.proxy.client import ProxyClient

from .common import LOAD_CORE, PYTHON, pinned, start, stop, wait_port

TOXIPROXY_VERSION = "v2.12.0"  # the one .ci/run installs
ROUTES = ("bulk", "http")


def toxiproxy_server() -> str:
    directory = Path(os.environ.get("CHAOS_TOXIPROXY_BIN")
                     or Path.home() / ".cache" / "chaos-events" / "toxiproxy" / TOXIPROXY_VERSION / "bin")
    server = directory / "server"
    if not os.access(server, os.X_OK):
        raise RuntimeError(f"no Toxiproxy server at {server} (.ci/run installs it with go install)")
    return str(server)


@contextmanager
def proxy_process(kind: str, upstreams: dict[str, int], ports: dict[str, int], control: int, core: int,
                  log: Path) -> Iterator[ProxyClient]:
    """The harness's proxy ("harness") or Toxiproxy ("toxiproxy") on `core`, one route per upstream; yields a client."""
    if kind == "harness":
        argv = [PYTHON, "-m", "chaos_events.backends.proxy", "--control", f"127.0.0.1:{control}"]
        argv += [f"--route={name}=127.0.0.1:{ports[name]}=127.0.0.1:{port}" for name, port in upstreams.items()]
        env = {}
    else:
        config = log.with_suffix(".json")
        config.write_text(json.dumps([{"name": name, "listen": f"127.0.0.1:{ports[name]}", "upstream": f"127.0.0.1:{port}"}
                                      for name, port in upstreams.items()]))
        argv = [toxiproxy_server(), "-host", "127.0.0.1", "-port", str(control), "-config", str(config)]
        env = {"LOG_LEVEL": "warn"}  # no log line per connection: the harness's proxy writes none either
    proc = start(argv, core=core, log=log, env=env)
    try:
        for port in ports.values():
            wait_port(port, proc=proc, what=f"{kind} proxy")
        client = ProxyClient(f"http://127.0.0.1:{control}")
        client.wait_ready()
        yield client
    finally:
        stop(proc)


def set_toxic(client: ProxyClient, toxic: str) -> None:
    """"none": no toxic on any route; "latency0": a 0 ms latency toxic downstream on every route."""
    for route in ROUTES:
        client.remove_toxic(route, "bench")
        if toxic == "latency0":
            client.add_toxic(route, "bench", "latency", {"latency": 0, "jitter": 0})


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, connections: int, seconds: float) -> dict:
    """One wrk run pinned to the load core: {"rps", "p50_ms", "p99_ms"} (wrk's own latency distribution)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    argv = pinned(LOAD_CORE, [binary, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()[-300:]}")
    out = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if rps is None or errors is not None:
        raise RuntimeError(f"wrk: no clean result: {out[-400:]}")
    latency = {p: float(v) * _UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    return {"rps": float(rps.group(1)), "p50_ms": latency["50"], "p99_ms": latency["99"]}
