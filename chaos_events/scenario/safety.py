"""Guards that decide whether a run may touch anything at all: the production guard, the host allow-list, and
the Docker opt-in rule.

Pure-ish module: standard library only, and it takes the environment and the allow-lists as arguments (it never
reads os.environ itself and never resolves a name over the network). It must not import locust, gevent, docker,
prometheus_client, or chaos_events.scenario.loader at module level (plan imports this module).

Rules:
- `check_environment`: CHAOS_ENVIRONMENT (or CHAOS_ENV) set to production/prod refuses the run.
- `check_host`: the load host must be loopback (127.0.0.0/8, ::1, localhost) or listed in the allowed hosts.
  Names are compared literally, case-insensitively; IP addresses by value; an entry may be a network (192.0.2.0/24).
- Docker opt-in: a container may be touched only when it carries the label `chaos-events.allow=true` OR its name
  is listed in `--chaos-allow`. The docker backend enforces it with `container_allowed` before every action.

Example:
    check_environment({"CHAOS_ENVIRONMENT": "staging"})          # fine
    check_host("http://127.0.0.1:8000", ())                      # fine: loopback
    container_allowed("wotr-kafka-1", {"chaos-events.allow": "true"}, ())  -> True
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from chaos_events.errors import SafetyError

ALLOW_LABEL = "chaos-events.allow"
ENVIRONMENT_VARIABLES = ("CHAOS_ENVIRONMENT", "CHAOS_ENV")
PRODUCTION_NAMES = frozenset({"production", "prod"})
LOOPBACK_NAMES = frozenset({"localhost"})


def check_environment(environ: Mapping[str, str]) -> None:
    """Raise SafetyError when the environment says this is production."""
    for variable in ENVIRONMENT_VARIABLES:
        value = (environ.get(variable) or "").strip()
        if value.lower() in PRODUCTION_NAMES:
            raise SafetyError(
                f"refusing to run: {variable}={value} says this is production; chaos-events never injects faults "
                f"in production. Point the run at a test environment, or unset {variable} if it is wrong."
            )


def split_allowed(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """`--chaos-allow` as given ("a, b" or a list) -> ("a", "b"); blanks dropped."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return tuple(item.strip() for item in items if item and item.strip())


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and the name localhost; no lookups."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """Loopback, or equal to an allowed entry (name, address, or network like 192.0.2.0/24)."""
    if is_loopback(host):
        return True
    name = host.strip().strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for entry in allowed_hosts:
        wanted = str(entry).strip().strip("[]").lower().rstrip(".")
        if not wanted:
            continue
        if wanted == name:
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(wanted, strict=False):
                    return True
            except ValueError:
                continue
    return False


def host_of(host_url: str) -> str | None:
    """The host name in `http://h:p/x`, `h:p`, `[::1]:p` or `h`; None when there is none."""
    text = host_url.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text if "://" in text else f"//{text}")
        return parts.hostname
    except ValueError:
        return None


def check_host(host_url: str | None, allowed_hosts: Iterable[str]) -> None:
    """Raise SafetyError when the load host is neither loopback nor allowed. No host (None or "") is fine."""
    if not host_url:
        return
    allowed = tuple(allowed_hosts)
    host = host_of(host_url)
    if not host:
        raise SafetyError(f"refusing load host {host_url!r}: cannot read a host name from it; expected a URL like http://127.0.0.1:8000")
    if not host_allowed(host, allowed):
        listed = ", ".join(["127.0.0.0/8", "::1", "localhost", *[a for a in allowed if not is_loopback(a)]])
        raise SafetyError(
            f"refusing load host {host_url!r}: host {host!r} is not allowed; allowed hosts: {listed} "
            f"(add it to settings.allowed_hosts in the scenario or to --chaos-allow)"
        )


def container_allowed(name: str, labels: Mapping[str, Any] | None, extra_allowed: str | Iterable[str] | None) -> bool:
    """The Docker opt-in rule: label `chaos-events.allow=true`, or the name listed in --chaos-allow."""
    label = str((labels or {}).get(ALLOW_LABEL, "")).strip().lower()
    if label == "true":
        return True
    return name.lstrip("/") in {n.lstrip("/") for n in split_allowed(extra_allowed)}
