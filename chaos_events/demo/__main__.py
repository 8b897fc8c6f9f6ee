"""Command line of the demo platform: `python -m chaos_events.demo up | down | status | start-part NAME | gameday`.

Imports the standard library and chaos_events.demo.supervisor; never locust or gevent (the game day runs Locust as a
subprocess). Also runnable as a script (`python demo/__main__.py ...`), which is how restart commands call it,
so they work from any working directory.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos_events.demo import prometheus as local_prometheus  # noqa: E402
from chaos_events.demo.supervisor import DEFAULT_PORTS, PARTS, Platform, PlatformError, start_platform  # noqa: E402

DEFAULT_RUN_DIR = ".run/demo"
LOCUSTFILE = Path(__file__).resolve().parents[2] / "locustfiles" / "platform.py"  # supervisor.ROOT is the package


def _print_platform(platform: Platform) -> None:
    print(f"demo platform in {platform.run_dir}")
    print(f"  API (through proxy):   {platform.api_url}    direct: {platform.api_direct_url}")
    print(f"  Kafka (through proxy): {platform.kafka_bootstrap}   direct: {platform.kafka_direct}")
    print(f"  proxy control:         {platform.proxy_control_url}")
    print(f"  store:                 {platform.store_path}")
    for name, st in platform.status().items():
        print(f"  {name:<9} {'running pid ' + str(st['pid']) if st['running'] else 'NOT running'}")


def cmd_up(args) -> int:
    ports = dict(DEFAULT_PORTS) if not args.free_ports else None
    platform = start_platform(Path(args.run_dir), ports)
    _print_platform(platform)
    if not args.foreground:
        print(f"stop it with: {sys.executable} -m chaos_events.demo down --run-dir {args.run_dir}")
        return 0
    print("running in the foreground; Ctrl-C stops it")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        platform.stop()
    return 0


def cmd_down(args) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / "platform.json").exists():
        leftovers = sorted(run_dir.glob("*.pid"))
        for pidfile in leftovers:
            # Without platform.json we cannot tell our process from a reused pid: never signal, only report.
            print(f"{pidfile}: no platform.json to verify pid {pidfile.read_text().strip()!r}; removed the pidfile, signalled nothing")
            pidfile.unlink(missing_ok=True)
        if not leftovers:
            print(f"no demo platform in {run_dir}")
        return 0
    platform = Platform.load(run_dir)
    for name, outcome in platform.stop().items():
        print(f"{name}: {outcome}")
    return 0


def cmd_status(args) -> int:
    platform = Platform.load(Path(args.run_dir))
    if args.json:
        print(json.dumps({**platform.to_json(), "status": platform.status()}, indent=2))
    else:
        _print_platform(platform)
    return 0 if all(s["running"] for s in platform.status().values()) else 1


def cmd_start_part(args) -> int:
    platform = Platform.load(Path(args.run_dir))
    pid = platform.start_part(args.name)
    print(f"{args.name}: started pid {pid}")
    return 0


def cmd_gameday(args) -> int:
    scenario = Path(args.scenario)
    if not scenario.exists():
        print(f"warning: scenario {scenario} does not exist; the harness will report it", file=sys.stderr)
    ports = dict(DEFAULT_PORTS) if not args.free_ports else None
    platform = start_platform(Path(args.run_dir), ports)
    locust = Path(sys.executable).parent / "locust"
    argv = [str(locust) if locust.exists() else "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(args.users), "-r", str(args.spawn_rate), "--run-time", args.run_time, "--host", platform.api_url,
            "--kafka-bootstrap", platform.kafka_bootstrap, "--kafka-topic", platform.topic,
            "--chaos-plan", str(scenario), "--chaos-report-dir", args.report_dir, *args.locust_args]
    proc = None
    prometheus = None
    interrupted = []

    def forward(signum, _frame):
        # Locust runs in its own session, so the terminal's Ctrl-C reaches only us; it gets exactly one SIGINT.
        interrupted.append(signum)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT if len(interrupted) == 1 else signal.SIGTERM)

    old_int = signal.signal(signal.SIGINT, forward)
    old_term = signal.signal(signal.SIGTERM, forward)
    try:
        _print_platform(platform)
        # A local Prometheus with the project's rules, when there is a binary, so alerts_fired is judged.
        prometheus = local_prometheus.for_gameday(args.locust_args, platform.run_dir / "logs", args.free_ports)
        argv += prometheus.locust_args
        print("+ " + " ".join(argv), flush=True)
        proc = subprocess.Popen(argv, env={**os.environ, **platform.env()}, start_new_session=True)
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # only if SIGINT arrived before our handler existed
                continue
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if prometheus is not None:
            prometheus.stop()
        print("stopping the demo platform", flush=True)
        platform.stop()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    return code if code >= 0 else 128 - code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chaos_events.demo", description="The demo event platform (broker, proxy, API, consumer) on 127.0.0.1.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_run_dir(p):
        p.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help=f"pidfiles, logs, store and platform.json (default {DEFAULT_RUN_DIR})")
        return p

    up = with_run_dir(sub.add_parser("up", help="start the platform (detached) and wait until it is ready"))
    up.add_argument("--free-ports", action="store_true", help="use free ports instead of the defaults (API 8000, Kafka 19092, proxy control 8474)")
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops the platform")
    up.set_defaults(func=cmd_up)
    with_run_dir(sub.add_parser("down", help="stop every part by its pidfile (SIGTERM, then SIGKILL)")).set_defaults(func=cmd_down)
    status = with_run_dir(sub.add_parser("status", help="show the platform and which parts run; exit 1 if any is down"))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sp = with_run_dir(sub.add_parser("start-part", help="(re)start one part with its recorded ports and wait until ready"))
    sp.add_argument("name", choices=PARTS)
    sp.set_defaults(func=cmd_start_part)
    gd = with_run_dir(sub.add_parser("gameday", help="start the platform, run Locust with a scenario, stop the platform"))
    gd.add_argument("--run-time", default="2m")
    gd.add_argument("--scenario", default="scenarios/gameday.yml")
    gd.add_argument("--report-dir", default="reports")
    gd.add_argument("--users", type=int, default=20)
    gd.add_argument("--spawn-rate", type=float, default=10)
    gd.add_argument("--free-ports", action="store_true")
    gd.add_argument("locust_args", nargs=argparse.REMAINDER, help="extra Locust arguments after --")
    gd.set_defaults(func=cmd_gameday)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "locust_args", None) and args.locust_args[0] == "--":
        args.locust_args = args.locust_args[1:]
    try:
        return args.func(args)
    except PlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # start_platform has already stopped whatever it started
        print("interrupted; stopped what was started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
