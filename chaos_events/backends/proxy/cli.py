"""The fault proxy as a process: `chaos-events proxy` or `python -m chaos_events.backends.proxy`.

Takes this project's flags (`--control HOST:PORT`, `--route NAME=LISTEN=UPSTREAM`, repeatable) and Toxiproxy's
server flags (`-host`, `-port`, `-config FILE`, `-seed`, `-version`), so it can stand in for `toxiproxy-server` in
scripts. Prints `proxy ready` once every listener is bound; exits 0 on SIGTERM or SIGINT, 2 on bad arguments, a bad
`-config` file or a taken port (never a traceback). Imports gevent; must not import locust, docker or prometheus_client.

Example: chaos-events proxy -host 127.0.0.1 -port 8474 -config proxies.json --route api=127.0.0.1:8000=127.0.0.1:8001
"""
from __future__ import annotations

import argparse
import signal
import sys

import gevent
import gevent.event

from chaos_events import __version__
from chaos_events.backends.proxy.defaults import DEFAULT_CONTROL_HOST as DEFAULT_HOST
from chaos_events.backends.proxy.defaults import DEFAULT_CONTROL_PORT as DEFAULT_PORT
from chaos_events.backends.proxy.route import ProxyError
from chaos_events.backends.proxy.server import ProxyServer
from chaos_events.backends.proxy.spec import format_address, load_config, parse_address, parse_route

PROG = "chaos-events proxy"


class _ArgumentParser(argparse.ArgumentParser):
    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


class _Exit(Exception):
    def __init__(self, code: int):
        self.code = code


def build_parser(prog: str) -> _ArgumentParser:
    parser = _ArgumentParser(prog=prog, allow_abbrev=False,
                             description="TCP fault proxy that speaks Toxiproxy's HTTP API (v2), with extra toxics "
                                         "(down, partition, loss).")
    parser.add_argument("--control", metavar="HOST:PORT", help=f"control API address (default: {DEFAULT_HOST}:{DEFAULT_PORT})")
    parser.add_argument("-host", "--host", help=f"control API host, as toxiproxy-server (default: {DEFAULT_HOST})")
    parser.add_argument("-port", "--port", help=f"control API port, as toxiproxy-server (default: {DEFAULT_PORT})")
    parser.add_argument("-config", "--config", metavar="FILE",
                        help='JSON file of proxies to create at start, as toxiproxy-server: [{"name", "listen", "upstream", "enabled"}]')
    parser.add_argument("--route", action="append", default=[], metavar="NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT",
                        help="a route to serve; repeat for more")
    parser.add_argument("-seed", "--seed", type=int, default=None, help="random seed for toxicity and jitter (default: random)")
    parser.add_argument("--no-splice", action="store_true",
                        help="relay every connection through greenlets (no native splice pass-through)")
    parser.add_argument("-version", "--version", action="version", version=f"chaos-events proxy {__version__} (Toxiproxy HTTP API v2)")
    return parser


def parse_arguments(argv: list[str] | None, prog: str) -> tuple[list, str, argparse.Namespace]:
    """(route specs, control HOST:PORT, args); raises _Exit(2) after printing usage on bad arguments."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.control and (args.host or args.port):
        parser.error("give either --control HOST:PORT or -host/-port, not both")
    control = args.control or f"{args.host or DEFAULT_HOST}:{args.port or DEFAULT_PORT}"
    try:
        parse_address(control, "--control" if args.control else "-host/-port")
        routes = load_config(args.config) if args.config else []
        routes += [parse_route(text) for text in args.route]
    except ValueError as exc:
        parser.error(str(exc))
    return routes, control, args


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Serve until SIGTERM/SIGINT. Returns 0 on a clean stop, 2 on bad arguments or a taken port."""
    try:
        routes, control, args = parse_arguments(argv, prog)
    except _Exit as exc:
        return exc.code
    try:
        server = ProxyServer(routes, control, threaded=False, seed=args.seed, native=not args.no_splice)
        server.start()
    except ProxyError as exc:
        sys.stderr.write(f"proxy: {exc}\n")
        return 2
    stop = gevent.event.Event()
    handlers = [gevent.signal_handler(signum, stop.set) for signum in (signal.SIGTERM, signal.SIGINT)]
    for spec in server.specs:
        print(f"route {spec.name}: {format_address(server.listen_address(spec.name))} -> {format_address(spec.upstream)}",
              flush=True)
    print(f"control: {server.control_url}", flush=True)
    print("proxy ready", flush=True)
    try:
        server.serve_forever(stop)
    finally:
        for handler in handlers:
            handler.cancel()
    return 0
