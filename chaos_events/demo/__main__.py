"""Command line of the demo platform: `python -m chaos_events.demo up | down | status | start-part NAME | gameday |
fetch-kafka`.

Imports the standard library and chaos_events.demo.{supervisor,kafka_dist}; never locust or gevent (the game day runs
Locust as a subprocess). Also runnable as a script (`python demo/__main__.py ...`), which is how restart commands call
it, so they work from any working directory. `--kafka apache` runs the platform on a three-broker Apache Kafka cluster
instead of Tansu; its jars come from `fetch-kafka` (Maven, once, into a cache outside the repository).
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
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chaos_events.errors import ChaosError  # noqa: E402
from chaos_events.demo import kafka_dist  # noqa: E402
from chaos_events.demo import prometheus as local_prometheus  # noqa: E402
from chaos_events.demo.brokers import KINDS  # noqa: E402
from chaos_events.demo.supervisor import REPO, Platform, default_ports, start_platform  # noqa: E402

DEFAULT_RUN_DIR = ".run/demo"
# The game day per Kafka: Apache Kafka has one proxy route per broker (kafka-0..2) instead of Tansu's one `kafka`.
DEFAULT_SCENARIOS = {"tansu": "scenarios/gameday.yml", "apache": "scenarios/gameday-apache.yml"}


def _print_platform(platform: Platform) -> None:
    print(f"demo platform in {platform.run_dir} (Kafka: {platform.kafka})")
    print(f"  API (through proxy):   {platform.api_url}    direct: {platform.api_direct_url}")
    print(f"  Kafka (through proxy): {platform.kafka_bootstrap}   direct: {platform.kafka_direct}")
    print(f"  proxy control:         {platform.proxy_control_url}")
    print(f"  store:                 {platform.store_path}")
    for name, st in platform.status().items():
        print(f"  {name:<9} {'running pid ' + str(st['pid']) if st['running'] else 'NOT running'}")


def cmd_up(args) -> int:
    ports = default_ports(args.kafka) if not args.free_ports else None
    platform = start_platform(Path(args.run_dir), ports, kafka=args.kafka)
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


def cmd_fetch_kafka(args) -> int:
    version = kafka_dist.pinned_version()
    result = kafka_dist.fetch(offline=args.offline)
    print(result.describe(version))
    kafka_dist.java_binary()  # the jars alone do not run: say now when Java is missing
    return 0


def cmd_gameday(args) -> int:
    scenario = Path(args.scenario or DEFAULT_SCENARIOS[args.kafka])
    if not scenario.exists():
        print(f"warning: scenario {scenario} does not exist; the harness will report it", file=sys.stderr)
    ports = default_ports(args.kafka) if not args.free_ports else None
    platform = start_platform(Path(args.run_dir), ports, kafka=args.kafka)
    locust = Path(sys.executable).parent / "locust"
    argv = [str(locust) if locust.exists() else "locust", "-f", str(REPO / "locustfiles" / "platform.py"), "--headless",
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
    parser = argparse.ArgumentParser(prog="python -m chaos_events.demo", description="The demo event platform (Kafka, proxy, API, consumer) on 127.0.0.1.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_run_dir(p):
        p.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help=f"pidfiles, logs, store and platform.json (default {DEFAULT_RUN_DIR})")
        return p

    def with_kafka(p):
        p.add_argument("--kafka", choices=KINDS, default="tansu",
                       help="tansu: one in-memory broker (default); apache: three replicated Apache Kafka brokers (Java 17, fetch-kafka first)")
        return p

    up = with_kafka(with_run_dir(sub.add_parser("up", help="start the platform (detached) and wait until it is ready")))
    up.add_argument("--free-ports", action="store_true", help="use free ports instead of the defaults (API 8000, Kafka 19092, proxy control 8474)")
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops the platform")
    up.set_defaults(func=cmd_up)
    with_run_dir(sub.add_parser("down", help="stop every part by its pidfile (SIGTERM, then SIGKILL)")).set_defaults(func=cmd_down)
    status = with_run_dir(sub.add_parser("status", help="show the platform and which parts run; exit 1 if any is down"))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sp = with_run_dir(sub.add_parser("start-part", help="(re)start one part with its recorded ports and wait until ready"))
    sp.add_argument("name", help="broker (Tansu) or kafka-0, kafka-1, kafka-2 (Apache Kafka), proxy, consumer, api")
    sp.set_defaults(func=cmd_start_part)
    fk = sub.add_parser("fetch-kafka", help=f"fetch Apache Kafka {kafka_dist.pinned_version()}'s jars with Maven into "
                                            f"${kafka_dist.HOME_ENV} (default ~/.cache/chaos-events/kafka); does nothing when they are there")
    fk.add_argument("--offline", action="store_true", help="use Maven's local repository only (mvn -o)")
    fk.set_defaults(func=cmd_fetch_kafka)
    gd = with_kafka(with_run_dir(sub.add_parser("gameday", help="start the platform, run Locust with a scenario, stop the platform")))
    gd.add_argument("--run-time", default="2m")
    gd.add_argument("--scenario", default=None, help=f"default: {DEFAULT_SCENARIOS['tansu']} (tansu), {DEFAULT_SCENARIOS['apache']} (apache)")
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
    except ChaosError as exc:  # PlatformError, BrokerError (no tansu binary), KafkaSetupError (no Java or jars), ...
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # start_platform has already stopped whatever it started
        print("interrupted; stopped what was started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
