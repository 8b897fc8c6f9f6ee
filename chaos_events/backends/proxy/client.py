"""The harness's client of a fault proxy's control API: this project's proxy or a real Toxiproxy (HTTP API v2).

Imports requests only (no gevent), so the network faults can check a target before a run without loading the proxy.
Every failure is an InjectionError with plain text naming the control URL, what was asked and the server's answer;
"proxy not found" is an UnknownRouteError, and removing what is already gone is not an error.

Example: ProxyClient("http://127.0.0.1:8474").add_toxic("kafka", "slow", "latency", {"latency": 200}, stream="upstream")
"""
from __future__ import annotations

import time
from typing import Any

import requests

from chaos_events.backends.proxy.defaults import DEFAULT_CONTROL_URL, default_control_url  # noqa: F401  (importable here)
from chaos_events.errors import InjectionError


class UnknownRouteError(InjectionError):
    """The control API has no proxy (route) of that name."""


class _NotFound(InjectionError):
    pass


class ProxyClient:
    """Talks to a proxy's control API with short timeouts. Works the same against this project's proxy and Toxiproxy.

    Example: ProxyClient("http://127.0.0.1:8474").set_enabled("api", False)
    """

    def __init__(self, control_url: str | None = None, timeout_s: float = 3.0):
        self.control_url = (control_url or default_control_url()).rstrip("/")
        self.timeout_s = timeout_s

    def version(self) -> dict:
        """{"version": ...}; this project's proxy adds "server": "chaos-events"."""
        return self._request("GET", "/version", "version")

    def routes(self) -> dict[str, dict]:
        """Every proxy: name -> {name, listen, upstream, enabled, toxics}."""
        return self._request("GET", "/proxies", "list proxies")

    def route(self, name: str) -> dict:
        return self._request("GET", f"/proxies/{name}", f"show proxy {name!r}")

    def create_route(self, name: str, listen: str, upstream: str, enabled: bool = True) -> dict:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return self._request("POST", "/proxies", f"creation of proxy {name!r}", body)

    def delete_route(self, name: str) -> bool:
        try:
            self._request("DELETE", f"/proxies/{name}", f"deletion of proxy {name!r}")
        except _NotFound:
            return False
        return True

    def set_enabled(self, route: str, enabled: bool) -> dict:
        """Enable or disable a proxy (disabled: not listening, every connection closed)."""
        return self._request("POST", f"/proxies/{route}", f"{'enabling' if enabled else 'disabling'} proxy {route!r}",
                             {"enabled": enabled})

    def toxics(self, route: str) -> list[dict]:
        return self._request("GET", f"/proxies/{route}/toxics", f"list toxics of proxy {route!r}")

    def add_toxic(self, route: str, name: str, type: str, attributes: dict, stream: str = "downstream",
                  toxicity: float = 1.0) -> dict:
        """Add a toxic; returns it as the proxy stored it (defaults filled in)."""
        body = {"name": name, "type": type, "stream": stream, "toxicity": toxicity, "attributes": dict(attributes)}
        return self._request("POST", f"/proxies/{route}/toxics", f"toxic {name!r} ({type}) on proxy {route!r}", body)

    def update_toxic(self, route: str, name: str, attributes: dict, toxicity: float | None = None) -> dict:
        body: dict[str, Any] = {"attributes": dict(attributes)}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return self._request("PATCH", f"/proxies/{route}/toxics/{name}", f"update of toxic {name!r} on proxy {route!r}", body)

    def remove_toxic(self, route: str, name: str) -> bool:
        """Remove a toxic; True if it was there. Idempotent: a toxic (or proxy) that is not there is fine."""
        try:
            self._request("DELETE", f"/proxies/{route}/toxics/{name}", f"removal of toxic {name!r} from proxy {route!r}")
        except _NotFound:
            return False
        return True

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._request("POST", "/reset", "reset")

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Poll until the control API answers; InjectionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.routes()
                return
            except InjectionError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _request(self, method: str, path: str, what: str, body: Any = None) -> Any:
        url = self.control_url + path
        try:
            response = requests.request(method, url, json=body, timeout=(min(1.0, self.timeout_s), self.timeout_s))
        except requests.RequestException as exc:
            raise InjectionError(f"fault proxy control API at {self.control_url} unreachable ({what}): {_reason(exc, self.timeout_s)}") from exc
        if response.status_code < 300:
            return response.json() if response.content else None
        try:
            detail = response.json()  # Toxiproxy sends its JSON error as text/plain; parse it all the same
        except ValueError:
            detail = {"error": response.text.strip()[:300]}
        text = detail.get("error") if isinstance(detail, dict) else str(detail)
        message = f"fault proxy at {self.control_url} refused {what}: HTTP {response.status_code}: {text}"
        if response.status_code == 404 and text == "toxic not found":
            raise _NotFound(message)
        if response.status_code == 404 and text == "proxy not found":
            if method == "DELETE":
                raise _NotFound(message)
            raise UnknownRouteError(message)
        raise InjectionError(message)


def _reason(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout_s:g}s"
    chain, seen = exc, 0
    while chain is not None and seen < 10:
        if isinstance(chain, ConnectionRefusedError) or "Connection refused" in str(chain):
            return "connection refused"
        chain, seen = chain.__cause__ or chain.__context__, seen + 1
    return exc.__class__.__name__
