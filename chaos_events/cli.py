"""The offline command line, `chaos-events`: validate and dry-run scenarios, revert leftovers from the journal,
and reach the proxy, the report writer and the watchdog.

Thin adapter: argparse plus delegation. It must not import locust, gevent, docker or prometheus_client at module
level; the subcommands that need other parts of the harness import them when they run.
Bad input never ends in a traceback: every ChaosError is printed and exits with its code (2 for bad input).

Exit codes: 0 fine; 2 bad input or harness error; 3 an SLO broke (`report`); 4 a fault could not be reverted.

Example:
    chaos-events validate scenarios/gameday.yml --no-target-check   ->  ok: gameday (4 targets, 3 faults, 7 SLOs)
    chaos-events dry-run scenarios/service-broker-pause.yml        ->  t=20.0s inject pause broker ...
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, Sequence

from chaos_events.errors import ChaosError, PlanError
from chaos_events.scenario.plan import Plan, load_plan

DEFAULT_JOURNAL = ".run/chaos-journal.json"
EXIT_OK, EXIT_BAD_INPUT, EXIT_REVERT_FAILED = 0, 2, 4
# Subcommands that own their whole argument list (their own --help included).
DELEGATED = {
    "proxy": ("chaos_events.backends.proxy.cli", "the TCP fault proxy (Toxiproxy's HTTP API): routes plus a control API"),
    "watchdog": ("chaos_events.run.watchdog", "revert the journal's faults when a watched process dies"),
}


def _seconds(t: float) -> str:
    """30 -> '30.0s'; 0.25 -> '0.25s': one decimal unless the value needs more."""
    return f"{t:.1f}s" if round(t, 1) == t else f"{t:g}s"


def dry_run_lines(plan: Plan) -> list[str]:
    """Every inject and revert of the plan, repeat expanded, in run order (a revert before an inject at the same t)."""
    steps: list[tuple[float, int, int, str]] = []
    for spec in plan.faults:
        for start, end in spec.occurrences():
            steps.append((start, 1, spec.index, f"t={_seconds(start)} inject {spec.type} {spec.target}"))
            steps.append((end, 0, spec.index, f"t={_seconds(end)} revert {spec.type} {spec.target}"))
    return [line for *_, line in sorted(steps)]


def summary(plan: Plan) -> str:
    return (f"ok: {plan.name} ({_count(len(plan.targets), 'target')}, {_count(len(plan.faults), 'fault')}, "
            f"{_count(len(plan.slos), 'SLO')})")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# -- subcommands ---------------------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    plan = load_plan(args.file, extra_allowed=args.allow, check_targets=not args.no_target_check)
    out(summary(plan))
    return EXIT_OK


def cmd_dry_run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    plan = load_plan(args.file, extra_allowed=args.allow, check_targets=not args.no_target_check)
    out(f"dry run of {plan.name}: {_count(len(plan.faults), 'fault')} on the timeline; nothing is touched")
    lines = dry_run_lines(plan)
    for line in lines:
        out(line)
    if not lines:
        out("(no faults)")
    return EXIT_OK


def cmd_revert(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    path = args.journal
    if not os.path.exists(path):
        out(f"nothing to revert: no journal at {path}")
        return EXIT_OK
    journal = _import("chaos_events.run.journal", "revert")
    results = list(journal.revert_from_journal(path) or [])
    if not results:
        out(f"nothing to revert: the journal {path} is empty")
        return EXIT_OK
    failed = 0
    for result in results:
        ok = _result_ok(result)
        failed += 0 if ok else 1
        out(_result_line(result, ok))
    if failed:
        out(f"{failed} of {len(results)} faults could not be reverted; the system may still be degraded "
            f"(the journal {path} keeps them)")
        return EXIT_REVERT_FAILED
    out(f"reverted {_count(len(results), 'fault')}")
    return EXIT_OK


def _result_ok(result: Any) -> bool:
    """A journal result says ok either as an `ok` flag or by an empty `error`."""
    get = result.get if isinstance(result, dict) else (lambda key, default=None: getattr(result, key, default))
    ok = get("ok", None)
    if isinstance(ok, bool):
        return ok
    return not get("error", None)


def _result_line(result: Any, ok: bool) -> str:
    get = result.get if isinstance(result, dict) else (lambda key, default=None: getattr(result, key, default))
    name = " ".join(str(x) for x in (get("occurrence_id", ""), get("description", "")) if x) or str(result)
    error = get("error", "")
    return f"reverted {name}" if ok else f"FAILED {name}: {error or 'revert failed'}"


def cmd_report(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """Re-judge a saved record against a scenario; exit code as the run's own (0 held, 3 broken, 4 revert failed)."""
    report = _import("chaos_events.verdict.report", "report")
    verdict, paths = report.report_from_files(args.record, args.plan, args.out)
    out(report.format_verdict_table(verdict))
    for path in paths.values():
        out(f"wrote {path}")
    return int(verdict.exit_code)


def _import(module: str, command: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise ChaosError(f"`chaos-events {command}` is unavailable: module {module} is not installed") from None
        raise


def run_delegated(name: str, argv: Sequence[str]) -> int:
    module = _import(DELEGATED[name][0], name)
    code = module.main(list(argv))
    return int(code or 0)


# -- entry ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaos-events", description="Load plus chaos on Locust: offline tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def with_plan(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", metavar="FILE", help="scenario file (YAML)")
        p.add_argument("--no-target-check", action="store_true",
                       help="do not check that targets exist now (pidfiles, pids, commands, directories)")
        p.add_argument("--allow", default="", metavar="NAMES",
                       help="extra allowed hosts and container names, comma-separated (like --chaos-allow)")

    p = sub.add_parser("validate", help="check a scenario and print every problem")
    with_plan(p)
    p.set_defaults(handler=cmd_validate)
    p = sub.add_parser("dry-run", help="print the timeline of a scenario; touches nothing")
    with_plan(p)
    p.set_defaults(handler=cmd_dry_run)
    p = sub.add_parser("revert", help="revert every fault the journal lists (after a crash)")
    p.add_argument("--journal", default=os.environ.get("CHAOS_JOURNAL") or DEFAULT_JOURNAL, metavar="FILE",
                   help=f"revert journal (default: $CHAOS_JOURNAL or {DEFAULT_JOURNAL})")
    p.set_defaults(handler=cmd_revert)
    p = sub.add_parser("report", help="write the reports of a recorded run")
    p.add_argument("record", metavar="RECORD_JSON", help="the run record (JSON)")
    p.add_argument("--plan", required=True, metavar="FILE", help="the scenario the run used")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the reports")
    p.set_defaults(handler=cmd_report)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = print
    try:
        if args_list and args_list[0] in DELEGATED:
            return run_delegated(args_list[0], args_list[1:])
        parser = build_parser()
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # argparse already printed usage; its code 2 is ours for bad input too
            return int(exc.code or 0)
        return args.handler(args, out)
    except PlanError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return exc.exit_code
    except ChaosError as exc:
        print(f"chaos-events: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("chaos-events: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug, not bad input: say so in one line; CHAOS_DEBUG=1 shows the traceback
        if os.environ.get("CHAOS_DEBUG") == "1":
            raise
        print(f"chaos-events: internal error ({type(exc).__name__}: {exc}); this is a bug, please report it "
              f"(CHAOS_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
