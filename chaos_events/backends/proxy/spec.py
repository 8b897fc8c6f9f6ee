"""Routes of the fault proxy as data: `RouteSpec`, address parsing, and the Toxiproxy `-config` / `POST /populate` format.

Standard library only; no gevent, locust, docker or prometheus_client. Every function raises ValueError with the
field, what was expected and what was received, so the CLI can print it and exit 2 and the API can answer 400.

Example:
    parse_route("api=127.0.0.1:8000=127.0.0.1:8001") == RouteSpec("api", ("127.0.0.1", 8000), ("127.0.0.1", 8001))
    specs_from_json([{"name": "api", "listen": "127.0.0.1:8000", "upstream": "127.0.0.1:8001"}], "config.json")
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

DEFAULT_LISTEN = "127.0.0.1:0"
# The keys of a proxy in Toxiproxy's JSON. `toxics` is what the Go client echoes back when it saves a proxy; as in
# Toxiproxy, a create, an update or a populate does not change toxics.
PROXY_FIELDS = ("enabled", "listen", "name", "toxics", "upstream")
_NAME = re.compile(r"^[^/\s?#]{1,200}$")


@dataclass(frozen=True)
class RouteSpec:
    """A named route. Example: RouteSpec("api", ("127.0.0.1", 8000), ("127.0.0.1", 8001)); port 0 listens on a free port."""

    name: str
    listen: tuple[str, int]
    upstream: tuple[str, int]
    enabled: bool = True


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """'127.0.0.1:8000' -> ('127.0.0.1', 8000); raises ValueError naming `what` and the expected form."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{what}: expected HOST:PORT with a port from 0 to 65535; got {text!r}")
    return host.strip("[]"), int(port)


def format_address(address: tuple[str, int]) -> str:
    """('127.0.0.1', 80) -> '127.0.0.1:80'; ('::1', 80) -> '[::1]:80'."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_upstream(text: Any, what: str) -> tuple[str, int]:
    address = parse_address(text, what)
    if address[1] == 0:
        raise ValueError(f"{what}: expected a port from 1 to 65535; got {text!r}")
    return address


def parse_route(text: str) -> RouteSpec:
    """'api=127.0.0.1:8000=127.0.0.1:8001' -> RouteSpec; raises ValueError with the expected form."""
    parts = str(text).split("=")
    if len(parts) != 3 or not _NAME.match(parts[0]):
        raise ValueError(f"route: expected NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT; got {text!r}")
    name, listen, upstream = parts
    return RouteSpec(name, parse_address(listen, f"route {name!r} listen"), parse_upstream(upstream, f"route {name!r} upstream"))


def spec_from_json(body: Any, where: str = "", base: RouteSpec | None = None) -> RouteSpec:
    """One proxy object ({name, listen, upstream, enabled}) -> RouteSpec; `base` gives the defaults of an update.
    Messages are Toxiproxy's where it has one ("missing required field: name"), with " at WHERE" when given."""
    at = f" at {where}" if where else ""
    if not isinstance(body, Mapping):
        raise ValueError(f"expected a JSON object with fields {', '.join(PROXY_FIELDS)}; got {body!r}{at}")
    unknown = [key for key in body if key not in PROXY_FIELDS]
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; expected one of: {', '.join(PROXY_FIELDS)}{at}")
    if base is None:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"missing required field: name{at}")
        if not _NAME.match(name):
            raise ValueError(f"field 'name': expected 1 to 200 characters without '/', '?', '#' or spaces; got {name!r}{at}")
        if not body.get("upstream"):
            raise ValueError(f"missing required field: upstream{at}")
    else:
        name = base.name
        if body.get("name", name) != name:
            raise ValueError(f"field 'name': a proxy cannot be renamed (it is {name!r}); got {body['name']!r}{at}")
    if not isinstance(body.get("toxics") or [], list):
        raise ValueError(f"field 'toxics': expected a list (it is ignored here, as in Toxiproxy); got {body['toxics']!r}{at}")
    enabled = body.get("enabled", True if base is None else base.enabled)
    if not isinstance(enabled, bool):
        raise ValueError(f"field 'enabled': expected true or false; got {enabled!r}{at}")
    listen_text = body.get("listen", None if base is None else format_address(base.listen)) or DEFAULT_LISTEN
    listen = parse_address(listen_text, f"field 'listen'{at}")
    upstream = parse_upstream(body["upstream"], f"field 'upstream'{at}") if "upstream" in body else base.upstream
    return RouteSpec(name, listen, upstream, enabled)


def specs_from_json(body: Any, where: str = "") -> list[RouteSpec]:
    """A list of proxy objects (Toxiproxy's `-config` file and `POST /populate` body) -> RouteSpecs, names unique."""
    if not isinstance(body, list):
        raise ValueError("expected a JSON array of proxies like "
                         '[{"name": "api", "listen": "127.0.0.1:8000", "upstream": "127.0.0.1:8001"}]; '
                         f"got {json.dumps(body)[:200]}" + (f" at {where}" if where else ""))
    specs = [spec_from_json(item, f"proxy {index + 1}") for index, item in enumerate(body)]
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"proxy names must be unique; repeated: {', '.join(repeated)}")
    return specs


def load_config(path: str) -> list[RouteSpec]:
    """Read a Toxiproxy `-config` JSON file. Unlike Toxiproxy, which logs a bad file and starts without it, a bad file
    is an error here (the caller exits 2): a chaos run must not start with routes silently missing."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ValueError(f"-config {path}: cannot read: {exc.strerror or exc}") from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"-config {path}: invalid JSON: {exc}") from None
    try:
        return specs_from_json(body)
    except ValueError as exc:
        raise ValueError(f"-config {path}: {exc}") from None
