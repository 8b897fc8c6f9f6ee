"""The fault proxy's control API: Toxiproxy's HTTP API v2, as a WSGI app over the server's routes.

Endpoints, bodies and status codes are Toxiproxy's, so its clients (toxiproxy-python, toxiproxy-node-client, the Go
client and toxiproxy-cli) drive this proxy unchanged, and fail where they would fail against Toxiproxy:
    GET  /version                              200 {"version": ...}
    GET  /proxies                              200 {name: proxy}
    POST /proxies                              201 proxy | 400 | 409 proxy already exists | 500 cannot listen
    POST /populate                             201 {"proxies": [...]} | 400 | 500 (with the proxies done so far)
    GET|POST|PATCH|DELETE /proxies/NAME        200 proxy | 204 | 400 | 404 proxy not found | 500
    GET|POST /proxies/NAME/toxics              200 [toxic] | 200 toxic | 400 | 404 | 409 toxic already exists
    GET|POST|PATCH|DELETE /proxies/NAME/toxics/TOXIC   200 toxic | 204 | 400 | 404 toxic not found
    POST /reset                                204 (every proxy enabled, every toxic removed)
An error body is {"error": text, "status": code}; a 400 adds "problems" (every problem found, not just the first).
Another method on a known path is 405, an unknown path 404; a browser's request (User-Agent "Mozilla/...") is 403, as
in Toxiproxy, so a web page cannot add toxics behind the user's back. Imports no gevent itself (the server runs this
app in gevent's WSGI server); must not import locust, docker or prometheus_client.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Protocol

from chaos_events import __version__
from chaos_events.backends.proxy.route import ProxyError, Route
from chaos_events.backends.proxy.spec import RouteSpec, spec_from_json, specs_from_json
from chaos_events.backends.toxics import parse_toxic, parse_update



class RouteTable(Protocol):
    """What the control API needs of the proxy (server.py's ProxyServer), declared here so the API does not import
    the server that mounts it."""

    routes: dict[str, Route]

    def add_route(self, spec: RouteSpec) -> Route: ...

    def remove_route(self, name: str) -> None: ...


MAX_BODY_BYTES = 1 << 20
SERVER_NAME = "chaos-events"
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error"}
Reply = tuple[int, Any]


def error(status: int, message: str, **extra: Any) -> Reply:
    return status, {"error": message, "status": status, **extra}


PROXY_NOT_FOUND = error(404, "proxy not found")
TOXIC_NOT_FOUND = error(404, "toxic not found")


class _BadBody(Exception):
    pass


class ControlAPI:
    """The WSGI app. Invariant: it never raises and never hangs up; every answer is JSON with a Toxiproxy status code.

    Example: WSGIServer(("127.0.0.1", 8474), ControlAPI(server)).start()
    """

    def __init__(self, server: RouteTable):
        self.server = server

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        parts = [p for p in environ.get("PATH_INFO", "/").split("/") if p]
        try:
            if environ.get("HTTP_USER_AGENT", "").startswith("Mozilla/"):
                status, body = error(403, "User agent not allowed")
            else:
                status, body = self._dispatch(method, parts, environ)
        except _BadBody as exc:
            status, body = error(400, f"bad request body: {exc}")
        except Exception as exc:  # the control API must answer, never hang up: say what broke
            status, body = error(500, f"{exc.__class__.__name__}: {exc}")
        payload = b"" if status == 204 else json.dumps(body).encode() + b"\n"
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        if status == 405:
            headers.append(("Allow", body.pop("allow")))
            payload = json.dumps(body).encode() + b"\n"
            headers[1] = ("Content-Length", str(len(payload)))
        start_response(f"{status} {_REASONS[status]}", headers)
        return [payload]

    def _dispatch(self, method: str, parts: list[str], environ: dict) -> Reply:
        if parts == ["version"]:
            return _allow(method, "GET") or (200, {"version": __version__, "server": SERVER_NAME})
        if parts == ["reset"]:
            return _allow(method, "POST") or self._reset()
        if parts == ["populate"]:
            return _allow(method, "POST") or self._populate(_json_body(environ))
        if parts == ["proxies"]:
            if method == "POST":
                return self._create(_json_body(environ))
            return _allow(method, "GET, POST") or (200, {n: r.to_json() for n, r in self.server.routes.items()})
        if not parts or parts[0] != "proxies" or len(parts) > 4 or (len(parts) > 2 and parts[2] != "toxics"):
            return error(404, f"not found: {method} /{'/'.join(parts)}")
        route = self.server.routes.get(parts[1])
        if len(parts) == 2:
            return _allow(method, "GET, POST, PATCH, DELETE") or self._proxy(method, route, environ)
        if len(parts) == 3:
            return _allow(method, "GET, POST") or self._toxics(method, route, environ)
        return _allow(method, "GET, POST, PATCH, DELETE") or self._toxic(method, route, parts[3], environ)

    # proxies
    def _reset(self) -> Reply:
        for route in self.server.routes.values():
            route.remove_all_toxics()
            route.set_enabled(True)
        return 204, None

    def _create(self, body: Any) -> Reply:
        try:
            spec = spec_from_json(body)
        except ValueError as exc:
            return _bad_spec(exc)
        if spec.name in self.server.routes:
            return error(409, "proxy already exists")
        try:
            route = self.server.add_route(spec)
        except ProxyError as exc:
            return error(500, str(exc))
        return 201, route.to_json()

    def _populate(self, body: Any) -> Reply:
        try:
            specs = specs_from_json(body)
        except ValueError as exc:
            return _bad_spec(exc, proxies=[])
        done: list[dict] = []
        for spec in specs:
            existing = self.server.routes.get(spec.name)
            if existing is not None and (spec.listen, spec.upstream) == (existing.listen_address, existing.upstream):
                done.append(existing.to_json())  # the same proxy: kept as it is, as Toxiproxy does
                continue
            try:
                if existing is not None:
                    self.server.remove_route(spec.name)
                done.append(self.server.add_route(spec).to_json())
            except ProxyError as exc:
                return error(500, str(exc), proxies=done)
        return 201, {"proxies": done}

    def _proxy(self, method: str, route: Route | None, environ: dict) -> Reply:
        if route is None:
            return PROXY_NOT_FOUND
        if method == "GET":
            return 200, route.to_json()
        if method == "DELETE":
            self.server.remove_route(route.spec.name)
            return 204, None
        base = RouteSpec(route.spec.name, route.listen_address, route.upstream, route.enabled)
        try:
            spec = spec_from_json(_json_body(environ), base=base)
        except ValueError as exc:
            return _bad_spec(exc)
        try:
            route.respec(spec)
        except ProxyError as exc:
            return error(500, str(exc))
        return 200, route.to_json()

    # toxics
    def _toxics(self, method: str, route: Route | None, environ: dict) -> Reply:
        if route is None:
            return PROXY_NOT_FOUND
        if method == "GET":
            return 200, route.to_json()["toxics"]
        toxic, problems = parse_toxic(_json_body(environ))
        if problems:
            return _bad_toxic(problems)
        if toxic.name in route.toxics:
            return error(409, "toxic already exists")
        route.add_toxic(toxic)
        return 200, toxic.to_json()

    def _toxic(self, method: str, route: Route | None, name: str, environ: dict) -> Reply:
        if route is None:
            return PROXY_NOT_FOUND
        toxic = route.toxics.get(name)
        if toxic is None:
            return TOXIC_NOT_FOUND
        if method == "GET":
            return 200, toxic.to_json()
        if method == "DELETE":
            route.remove_toxic(name)
            return 204, None
        updated, problems = parse_update(toxic, _json_body(environ))
        if problems:
            return _bad_toxic(problems)
        route.update_toxic(updated)
        return 200, updated.to_json()


def _json_body(environ: dict) -> Any:
    raw = environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise _BadBody(f"larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise _BadBody(f"invalid JSON ({exc})") from None


def _bad_spec(exc: ValueError, **extra: Any) -> Reply:
    text = str(exc)
    return error(400, text if text.startswith("missing required field") else f"bad request body: {text}", **extra)


def _bad_toxic(problems: list[str]) -> Reply:
    return error(400, "bad request body: " + "; ".join(problems), problems=problems)


def _allow(method: str, allowed: str) -> Reply | None:
    if method in allowed.split(", "):
        return None
    return error(405, f"method {method} not allowed here; allowed: {allowed}", allow=allowed)
