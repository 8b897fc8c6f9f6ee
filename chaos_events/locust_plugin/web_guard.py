"""The web UI's safety rules: where it listens, which requests may change state, which scenario files
the start form may name. The web UI starts and aborts chaos, so it must not be an open door.

- Bind: 127.0.0.1 unless `--web-host` was given (on the command line, in locust.conf or as LOCUST_WEB_HOST); a
  non-loopback address is refused without `--web-login`.
- Writes: a POST (any method but GET/HEAD/OPTIONS) whose Origin, or else Referer, names another host than the
  request's Host is refused with 403; a client that sends neither header (curl) is allowed.
- Scenarios: a `chaos_plan` chosen in the form must resolve, after realpath, under the scenario directory: the
  directory of the `--chaos-plan` Locust started with, or `scenarios/` when it started without one.

Pure functions plus one Flask before_request hook. Must not import locust (wiring.py hands over Locust's parser
factory), gevent, docker or prometheus_client.

Example:
    is_loopback_host("127.0.0.2") is True; is_loopback_host("0.0.0.0") is False
    same_origin("http://evil.example", "127.0.0.1:8089", "http") is False
"""
from __future__ import annotations

import contextlib
import io
import ipaddress
import os
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import jsonify, request

LOOPBACK_BIND = "127.0.0.1"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_SCENARIO_DIR = "scenarios"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSET = "\0chaos-events: not given"


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1 (bracketed or not); False for "", "*", 0.0.0.0, :: and other names."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # "" and "*" (all interfaces), or a name we do not resolve
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def web_host_given(make_parser: Callable[[], Any], argv: list[str] | None = None) -> bool | None:
    """Whether `--web-host` came from the command line, a config file or LOCUST_WEB_HOST; None if argv cannot be parsed.

    Re-parses with a sentinel default, as Locust itself re-parses for each web UI page (ui_extra_args_dict):
    configargparse only fills an option from a file or the environment when one of them sets it.
    """
    parser = make_parser()
    parser.set_defaults(web_host=_UNSET)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parsed, _unknown = parser.parse_known_args(args=argv)
    except SystemExit:
        return None
    return parsed.web_host != _UNSET


def web_host_refusal(web_host: str, web_login: bool) -> str | None:
    """The one-line refusal of a web UI bound beyond loopback without a login, or None when the bind is acceptable."""
    if web_login or is_loopback_host(web_host):
        return None
    shown = {"": "'' (all interfaces)", "*": "* (all interfaces)"}.get(web_host.strip(), web_host)
    return (f"--web-host {shown}: a web UI reachable from other machines can start and abort chaos, so it needs "
            f"--web-login; add --web-login (and a login_manager.user_loader in the locustfile) "
            f"or use --web-host {LOOPBACK_BIND}")


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    parts = urlsplit("//" + netloc)
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower().rstrip("."), port if port is not None else _DEFAULT_PORTS.get(scheme)


def same_origin(source: str, host_header: str, scheme: str) -> bool:
    """Whether an Origin or Referer URL names the host and port of the request's Host header (`scheme` is the request's)."""
    parts = urlsplit(source.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return False  # "null" (sandboxed frames, file: pages) and anything that is not a web page
    theirs = _host_port(parts.netloc, parts.scheme)
    ours = _host_port(host_header.strip(), scheme)
    return theirs is not None and ours is not None and theirs == ours


def cross_origin_refusal(method: str, origin: str | None, referer: str | None, host_header: str,
                         scheme: str) -> str | None:
    """Why a request must be refused as cross-origin (Origin first, else Referer), or None when it may go on."""
    if method.upper() in SAFE_METHODS:
        return None
    header, source = ("Origin", origin) if origin is not None else ("Referer", referer)
    if source is None:
        return None  # neither header: not a browser page (curl, scripts), which no other site can drive
    if same_origin(source, host_header, scheme):
        return None
    return (f"cross-origin request refused: {header} {source!r} does not match this web UI's host {host_header!r}; "
            "state-changing requests must come from the web UI's own pages (or from a client that sends "
            "neither Origin nor Referer, such as curl)")


def refuse_cross_origin_writes(app: Any) -> None:
    """Register a before_request hook on the Flask app: a cross-origin state-changing request gets 403 and JSON."""

    @app.before_request
    def _refuse_cross_origin():  # registered first, so it runs before every other hook of the chaos tab
        message = cross_origin_refusal(request.method, request.headers.get("Origin"), request.headers.get("Referer"),
                                       request.host, request.scheme)
        if message is None:
            return None
        return jsonify({"ok": False, "success": False, "message": message}), 403


def scenario_directory(startup_plan: str) -> tuple[Path, str]:
    """The directory form-chosen scenarios must live in (realpath), and a few words saying where it comes from."""
    if startup_plan:
        return Path(os.path.realpath(os.path.dirname(startup_plan) or ".")), "the directory of --chaos-plan"
    return Path(os.path.realpath(DEFAULT_SCENARIO_DIR)), f"{DEFAULT_SCENARIO_DIR}/, as Locust started without --chaos-plan"


def scenario_path_refusal(value: str | None, directory: Path, origin: str) -> str | None:
    """Why a form-chosen scenario path is refused (it resolves outside `directory`), or None. Empty means load only."""
    if not value:
        return None
    resolved = os.path.realpath(value)
    base = str(directory)
    if resolved != base and os.path.commonpath([resolved, base]) == base:
        return None
    return (f"Scenario refused, run not started: chaos_plan {value!r} resolves to {resolved}, outside the scenario "
            f"directory {base} ({origin}); choose a scenario file under that directory")
