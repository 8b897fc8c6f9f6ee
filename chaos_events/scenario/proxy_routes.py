"""Checks across the proxy routes a scenario declares (`listen` + `upstream` on proxy targets), which no single
target can make alone: each listen address serves one route, a route name means one route, and every upstream is
an allowed host.

Pure: standard library only (and the scenario's own types). It must not import locust, gevent, docker or
prometheus_client. The loader places each problem at the field's line (exit 2).

Example: two targets both `listen: 127.0.0.1:8000` ->
    (("targets", "b", "proxy", "listen"), "targets.b (proxy)",
     "'listen': 127.0.0.1:8000 is already where target 'a' (route 'api') listens; each declared route needs its own")
"""
from __future__ import annotations

from typing import Iterable, Mapping

from chaos_events.scenario.fields import split_address
from chaos_events.scenario.safety import host_allowed
from chaos_events.scenario.targets import Target, TargetKind


def _address(text: str) -> tuple[str, int]:
    host, port = split_address(text)
    return host.lower().rstrip("."), port


def declared_routes(targets: Mapping[str, Target]) -> list[Target]:
    """The proxy targets that declare their route (the harness starts a proxy for them), in scenario order."""
    return [t for t in targets.values() if t.kind is TargetKind.PROXY and t.spec.declared]


def route_problems(targets: Mapping[str, Target], allowed_hosts: Iterable[str]) -> list[tuple[tuple, str, str]]:
    """(document path, field, message) for every problem across the declared routes."""
    allowed = tuple(allowed_hosts)
    problems: list[tuple[tuple, str, str]] = []
    by_listen: dict[tuple[str, int], Target] = {}
    by_route: dict[str, Target] = {}
    for target in declared_routes(targets):
        spec, field = target.spec, f"targets.{target.name} (proxy)"
        path = ("targets", target.name, "proxy")
        host = split_address(spec.upstream)[0]
        if not host_allowed(host, allowed):
            problems.append(((*path, "upstream"), field, f"'upstream': host {host!r} is not allowed; allowed hosts: "
                             f"{', '.join(allowed)} (add it to settings.allowed_hosts or to --chaos-allow)"))
        first = by_route.get(spec.route)
        if first is not None:
            for key in ("upstream", "listen", "control"):
                if getattr(first.spec, key) != getattr(spec, key):
                    problems.append(((*path, key), field,
                                     f"{key!r}: route {spec.route!r} is already declared by target {first.name!r} with "
                                     f"{key} {getattr(first.spec, key) or '(none)'}; got {getattr(spec, key) or '(none)'}"))
                    break
            continue  # the same route named twice, identically: one route
        by_route[spec.route] = target
        other = by_listen.setdefault(_address(spec.listen), target)
        if other is not target:
            problems.append(((*path, "listen"), field,
                             f"'listen': {spec.listen} is already where target {other.name!r} (route {other.spec.route!r}) "
                             f"listens; each declared route needs its own"))
    return problems
