"""The offline command line, `chaos-events`: validate and dry-run scenarios, print the scenario schema, the reference
and the harness's options, revert leftovers from the journal, re-judge a saved run, and reach the proxy and the
watchdog.

Thin adapter: argparse plus delegation. It must not import locust, gevent, docker or prometheus_client at module
level; the subcommands that need other parts of the harness import them when they run.
Bad input never ends in a traceback: every ChaosError is printed and exits with its code (ExitCode.BAD_INPUT).

Example:
    chaos-events validate scenarios/gameday.yml --no-target-check   ->  ok: gameday (4 targets, 3 faults, 7 SLOs)
    chaos-events dry-run scenarios/service-broker-pause.yml        ->  t=20.0s inject pause broker ...
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from chaos_events.errors import ChaosError, ExitCode, PlanError
from chaos_events.scenario.loader import load_plan
from chaos_events.scenario.model import Plan

# Subcommands that own their whole argument list (their own --help included).
DELEGATED = {
    "proxy": ("chaos_events.backends.proxy.cli", "the TCP fault proxy (Toxiproxy's HTTP API): routes plus a control API"),
    "watchdog": ("chaos_events.run.watchdog", "revert the journal's faults when a watched process dies"),
}


def dry_run_lines(plan: Plan) -> list[str]:
    """Every inject and revert of the plan, repeats expanded, in the order the timeline takes them."""
    from chaos_events.run.timeline import schedule

    return [step.describe() for step in schedule(plan)]


def summary(plan: Plan) -> str:
    return (f"ok: {plan.name} ({_count(len(plan.targets), 'target')}, {_count(len(plan.faults), 'fault')}, "
            f"{_count(len(plan.slos), 'SLO')})")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def load_checked(path: str, allow: str, check_targets: bool) -> Plan:
    """The plan, with its targets looked up on this machine unless `check_targets` is False (PlanError otherwise)."""
    from chaos_events.scenario.preflight import PreflightOptions, preflight

    plan = load_plan(path, extra_allowed=allow)
    if check_targets:
        preflight(plan, PreflightOptions())
    return plan


# -- subcommands ---------------------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    out(summary(load_checked(args.file, args.allow, not args.no_target_check)))
    return ExitCode.OK


def cmd_dry_run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    plan = load_checked(args.file, args.allow, not args.no_target_check)
    out(f"dry run of {plan.name}: {_count(len(plan.faults), 'fault')} on the timeline; nothing is touched")
    lines = dry_run_lines(plan)
    for line in lines:
        out(line)
    if not lines:
        out("(no faults)")
    return ExitCode.OK


def cmd_revert(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    path = args.journal
    if not os.path.exists(path):
        out(f"nothing to revert: no journal at {path}")
        return ExitCode.OK
    journal = _import("chaos_events.run.journal", "revert")
    results = list(journal.revert_from_journal(path) or [])
    if not results:
        out(f"nothing to revert: the journal {path} is empty")
        return ExitCode.OK
    failed = [r for r in results if not r.ok]
    for result in results:
        name = f"{result.occurrence_id} {result.description}".strip()
        done = "stopped" if result.part else "reverted"
        out(f"{done} {name}" if result.ok else f"FAILED {name}: {result.error or 'revert failed'}")
    if failed:
        out(f"{len(failed)} of {len(results)} faults could not be reverted; the system may still be degraded "
            f"(the journal {path} keeps them)")
        return ExitCode.REVERT_FAILED
    faults, parts = sum(not r.part for r in results), sum(r.part for r in results)
    out(f"reverted {_count(faults, 'fault')}" + (f", stopped {_count(parts, 'part')} the run started" if parts else ""))
    return ExitCode.OK


def cmd_report(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """Re-judge a saved record against a scenario; the exit code is the run's own."""
    report = _import("chaos_events.verdict.report", "report")
    from chaos_events.verdict.slo import evaluate

    record = report.load_record(args.record)
    plan = load_plan(args.plan)     # judging a past run: its targets need not exist on this machine now
    verdict = evaluate(plan, record, allow_unverified=args.allow_unverified)
    paths = report.write_reports(verdict, plan, record, Path(args.out))
    out(report.format_verdict_table(verdict))
    for path in paths.values():
        out(f"wrote {path}")
    return int(verdict.exit_code)


def cmd_schema(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from chaos_events.scenario.schema import scenario_schema

    return _emit(json.dumps(scenario_schema(), indent=2, sort_keys=True) + "\n", args.out, out)


def cmd_reference(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from chaos_events.scenario.schema import reference_markdown

    return _emit(reference_markdown(), args.out, out)


def cmd_options(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from chaos_events.locust_plugin.options import options_markdown

    return _emit(options_markdown(), args.out, out)


def _emit(text: str, path: str | None, out: Callable[[str], None]) -> int:
    if path:
        from chaos_events.atomic import atomic_write_text
        atomic_write_text(Path(path), text)
        out(f"wrote {path}")
    else:
        out(text.rstrip("\n"))
    return ExitCode.OK


def _import(module: str, command: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise ChaosError(f"`chaos-events {command}` is unavailable: module {module} is not installed") from None
        raise


def run_delegated(name: str, argv: Sequence[str]) -> int:
    module = _import(DELEGATED[name][0], name)
    return int(module.main(list(argv)) or 0)


# -- entry ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from chaos_events.locust_plugin.options import default

    parser = argparse.ArgumentParser(prog="chaos-events", description="Load plus chaos on Locust: offline tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def with_plan(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", metavar="FILE", help="scenario file (YAML)")
        p.add_argument("--no-target-check", action="store_true",
                       help="do not check that targets exist now (pidfiles, pids, commands, directories, containers)")
        p.add_argument("--allow", default="", metavar="NAMES",
                       help="extra allowed hosts and container names, comma-separated (like --chaos-allow)")

    def with_out(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--out", default=None, metavar="FILE", help=f"write the {what} to FILE instead of stdout")

    p = sub.add_parser("validate", help="check a scenario and print every problem")
    with_plan(p)
    p.set_defaults(handler=cmd_validate)
    p = sub.add_parser("dry-run", help="print the timeline of a scenario; touches nothing")
    with_plan(p)
    p.set_defaults(handler=cmd_dry_run)
    p = sub.add_parser("schema", help="print the JSON Schema of scenario files (for editors)")
    with_out(p, "schema")
    p.set_defaults(handler=cmd_schema)
    p = sub.add_parser("reference", help="print the reference of every target, probe, fault and SLO metric")
    with_out(p, "reference")
    p.set_defaults(handler=cmd_reference)
    p = sub.add_parser("options", help="print the harness's options for locust (flags, environment variables, defaults)")
    with_out(p, "options table")
    p.set_defaults(handler=cmd_options)
    journal = os.environ.get("CHAOS_JOURNAL") or default("chaos_journal")
    p = sub.add_parser("revert", help="revert every fault the journal lists (after a crash)")
    p.add_argument("--journal", default=journal, metavar="FILE", help=f"revert journal (default: $CHAOS_JOURNAL or {journal})")
    p.set_defaults(handler=cmd_revert)
    p = sub.add_parser("report", help="re-judge a recorded run and write its reports")
    p.add_argument("record", metavar="RECORD_JSON", help="the run record (JSON), or a chaos-report.json")
    p.add_argument("--plan", required=True, metavar="FILE", help="the scenario the run used")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the reports")
    p.add_argument("--allow-unverified", action="store_true", help="an SLO that cannot be verified does not fail")
    p.set_defaults(handler=cmd_report)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and args_list[0] in DELEGATED:
            return run_delegated(args_list[0], args_list[1:])
        parser = build_parser()
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # argparse already printed usage; its code 2 is ours for bad input too
            return int(exc.code or 0)
        return int(args.handler(args, print))
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
        return ExitCode.OK
    except Exception as exc:  # a bug, not bad input: say so in one line; CHAOS_DEBUG=1 shows the traceback
        if os.environ.get("CHAOS_DEBUG") == "1":
            raise
        print(f"chaos-events: internal error ({type(exc).__name__}: {exc}); this is a bug, please report it "
              f"(CHAOS_DEBUG=1 shows the traceback)", file=sys.stderr)
        return ExitCode.BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
