"""All Locust event wiring, and nothing else. Only chaos_events/locust_plugin/ imports locust.

Roles: on the master or local runner a ChaosSession runs the timeline, probes, exporter and verdict; on workers (and
the local runner) a Recorder counts requests and a BadTrafficSender sends the data faults' bad payloads. Workers ship
request windows and ledger acks as deltas in report_to_master; the master merges them in worker_report, and keeps
its books of workers (distributed.py).

With a scenario active the harness owns the exit code (chaos_events.errors.ExitCode); it is set in `quitting`, which
on the master sees every final worker report. Failed requests during a fault do not by themselves exit 1.
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any

import gevent
from locust import events
from locust.runners import STATE_STOPPED, MasterRunner, WorkerRunner

from chaos_events.load.acks import process_ledger
from chaos_events.backends.bad_traffic import BadTrafficSender
from chaos_events.errors import ChaosError, ExitCode, PlanError
from chaos_events.observe.recorder import Recorder
from chaos_events.locust_plugin.distributed import WorkerBooks
from chaos_events.locust_plugin.load_side import LoadSide
from chaos_events.locust_plugin.options import add_options
from chaos_events.locust_plugin.web_guard import LOOPBACK_BIND, web_host_given, web_host_refusal
from chaos_events.scenario.model import Plan, SloMetric
from chaos_events.scenario.loader import load_plan
from chaos_events.record import Record
from chaos_events.scenario.preflight import PreflightOptions, preflight
from chaos_events.scenario.safety import check_environment, split_allowed
from chaos_events.run.session import ChaosSession, LoadHooks, SessionOptions

logger = logging.getLogger("chaos_events")

FINAL_REPORT_WAIT_S = 2.0   # master: time for workers' last report_to_master after a stop


class _Harness:
    """Per-process wiring state. `recorder` is what the request listener writes to (hot path)."""

    session: ChaosSession | None = None
    recorder: Recorder | None = None
    load_side: LoadSide | None = None
    exporter: Any = None
    environment: Any = None
    books: WorkerBooks | None = None


_h = _Harness()


def _say(line: str) -> None:
    print(line, flush=True)


def _fail_input(message: str) -> None:
    """Bad input: a clear message and exit 2 before any load or fault starts. SystemExit passes Locust's hook guard."""
    sys.stderr.write(f"chaos-events: {message}\n")
    sys.stderr.flush()
    sys.exit(ExitCode.BAD_INPUT)


def load_scenario(environment) -> Plan:
    """Load and validate the scenario the options name, then the pre-run checks (targets, containers, the load host,
    journal leftovers: scenario/preflight.py); raises ChaosError."""
    options = environment.parsed_options
    plan = load_plan(options.chaos_plan, extra_allowed=split_allowed(options.chaos_allow))
    preflight(plan, PreflightOptions(journal_path=None if options.chaos_dry_run else options.chaos_journal,
                                     load_host=environment.host, containers=not options.chaos_dry_run))
    return plan


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs):
    add_options(parser)


@events.init.add_listener
def _on_init(environment, runner=None, web_ui=None, **_kwargs):
    options = environment.parsed_options
    if options is None or runner is None:
        return  # used as a library without Locust's command line: nothing to wire
    if web_ui is not None:
        _bind_web_ui_safely(options, web_ui)
    _h.environment = environment
    _wire_bad_traffic(environment, runner)
    environment.events.request.add_listener(_on_request)
    if isinstance(runner, WorkerRunner):
        _h.recorder = Recorder(Record(run_id="worker", scenario="", start_wall=0.0))
        environment.events.report_to_master.add_listener(_on_report_to_master)
        return

    plan = None
    try:
        check_environment(os.environ)
        if options.chaos_plan:
            plan = load_scenario(environment)
    except PlanError as exc:
        _fail_input(f"invalid scenario:\n{exc}")
    except ChaosError as exc:
        _fail_input(str(exc))
    kafka_problems = _kafka_option_problems(environment)
    if kafka_problems:  # here, not only in users.py's test_start: by then the timeline would have started
        _fail_input("\n".join(kafka_problems))

    if isinstance(runner, MasterRunner):
        _h.books = WorkerBooks(runner, lambda: _h.session)
        environment.events.worker_report.add_listener(_on_worker_report)
        environment.events.worker_connect.add_listener(_h.books.on_worker_connect)
        gevent.spawn(_h.books.watch).link_exception(_log_greenlet_failure)
    session = ChaosSession(plan, _session_options(environment), _load_hooks(environment, runner))
    _h.session = session
    _h.recorder = session.recorder
    if plan is not None and options.chaos_dry_run:
        _say(_timeline_text(plan))
    _start_exporter(environment, session)
    if web_ui is not None:
        from chaos_events.locust_plugin.webui import install_chaos_tab
        install_chaos_tab(web_ui, environment, lambda: _h.session, _reload_plan_from_options, abort=_abort_chaos)
    atexit.register(_emergency_revert)


def _bind_web_ui_safely(options, web_ui) -> None:
    """Loopback unless --web-host was given; beyond loopback only with --web-login. Runs before web_ui.start() binds."""
    from locust.argument_parser import get_parser
    given = web_host_given(get_parser)
    if not (given if given is not None else options.web_host != ""):  # unparsable argv: judge by the value
        options.web_host = web_ui.host = LOOPBACK_BIND
        _say(f"chaos-events: the web UI listens on {LOOPBACK_BIND} only: http://{LOOPBACK_BIND}:{options.web_port}"
             f"{options.web_base_path or ''} (give --web-host to choose another address)")
        return
    refusal = web_host_refusal(options.web_host, bool(getattr(options, "web_login", False)))
    if refusal is not None:
        _fail_input(refusal)


def _kafka_option_problems(environment) -> list[str]:
    """users.py's check of --kafka-bootstrap/--kafka-topic, when a KafkaUser is among the run's user classes."""
    users = sys.modules.get("chaos_events.locust_plugin.users")
    if users is None:  # no locustfile imported it, so no KafkaUser can be in the run
        return []
    classes = environment.user_classes or []
    if not any(isinstance(cls, type) and issubclass(cls, users.KafkaUser) for cls in classes):
        return []
    options = environment.parsed_options
    return users.check_kafka_options(options.kafka_bootstrap, options.kafka_topic)


def _session_options(environment) -> SessionOptions:
    options = environment.parsed_options
    return SessionOptions(
        report_dir=options.chaos_report_dir,
        journal_path=options.chaos_journal,
        dry_run=options.chaos_dry_run,
        headless=bool(options.headless),
        watchdog=not options.chaos_no_watchdog,
        prometheus_url=options.chaos_prometheus_url,
        kafka_bootstrap=options.kafka_bootstrap,
        kafka_topic=options.kafka_topic,
        host=environment.host or "",
        extra_allowed=split_allowed(options.chaos_allow),
        allow_unverified=bool(options.chaos_allow_unverified),
    )


def _load_hooks(environment, runner) -> LoadHooks:
    def broadcast(kind: str, data: dict) -> None:
        if isinstance(runner, MasterRunner):
            _h.books.send(kind, data)
        else:
            _h.load_side.handle(kind, data)

    def stop_load() -> None:
        # From the halt watcher's greenlet: stopping the runner ends the test, and with it (headless) the run.
        gevent.spawn(runner.quit if environment.parsed_options.headless else runner.stop)

    def spawn(fn, *args):
        greenlet = gevent.spawn(fn, *args)
        greenlet.link_exception(_log_greenlet_failure)
        return greenlet

    return LoadHooks(
        spawn=spawn,
        sleep=gevent.sleep,
        broadcast=broadcast,
        user_count=lambda: runner.user_count,
        worker_count=lambda: runner.worker_count if isinstance(runner, MasterRunner) else 0,
        run_blocking=lambda fn, *args: gevent.get_hub().threadpool.apply(fn, args),
        join=_join_other,
        stop_load=stop_load,
        log=_say,
    )


def _join_other(greenlet, timeout: float) -> None:
    if greenlet is not gevent.getcurrent():
        greenlet.join(timeout)


def _log_greenlet_failure(greenlet) -> None:
    logger.error("chaos-events: background task failed: %r", greenlet.exception)


def _timeline_text(plan: Plan) -> str:
    from chaos_events.cli import dry_run_lines
    header = f"chaos-events dry run: {plan.name} ({plan.source}); nothing will be touched"
    return "\n".join([header, *("  " + line for line in dry_run_lines(plan))])


def _start_exporter(environment, session: ChaosSession) -> None:
    options = environment.parsed_options
    if not options.chaos_metrics_port:
        return
    from chaos_events.observe.exporter import Exporter
    thresholds = _slo_latency_thresholds(session.plan)
    exporter = Exporter(lambda: session.record, session.exporter_state, slo_thresholds_s=thresholds,
                        totals=lambda: session.recorder.totals())
    try:
        exporter.serve(options.chaos_metrics_host, options.chaos_metrics_port)
    except OSError as exc:
        _fail_input(f"--chaos-metrics-port {options.chaos_metrics_port}: cannot listen on "
                    f"{options.chaos_metrics_host}:{options.chaos_metrics_port} ({exc.strerror or exc}); "
                    "choose a free port or 0 to turn the exporter off")
    _h.exporter = exporter


def _slo_latency_thresholds(plan: Plan | None) -> tuple[float, ...]:
    if plan is None:
        return ()
    return tuple(s.params.max_s for s in plan.slos if s.metric is SloMetric.LATENCY and s.params.max_s is not None)


def _reload_plan_from_options() -> str | None:
    """Web UI start: the form may name another scenario. Returns an error message, or None when it is valid."""
    environment, session = _h.environment, _h.session
    options = environment.parsed_options
    if not options.chaos_plan:
        session.plan = None
        return None
    try:
        plan = load_scenario(environment)
    except ChaosError as exc:
        return str(exc)
    session.plan = plan
    session.options = _session_options(environment)
    return None


def _abort_chaos() -> None:
    if _h.session is not None:
        _h.session.abort_chaos()


# -- requests (hot path) ---------------------------------------------------------------------------
def _on_request(request_type, name, response_time, exception=None, **_kwargs):
    # None (an async request, or an open-model arrival that was dropped) is counted without a latency, as Locust does.
    _h.recorder.on_request(request_type, name, response_time, exception is not None)


def _on_report_to_master(client_id, data, **_kwargs):
    data["chaos_windows"] = _h.recorder.take_wire_delta()
    data["chaos_ledger"] = process_ledger().take_wire_delta()


def _on_worker_report(client_id, data, **_kwargs):
    _h.books.on_worker_report(client_id)
    rows = data.get("chaos_windows")
    if rows:
        _h.session.recorder.merge_wire(rows)
    acks = data.get("chaos_ledger")
    if acks:
        process_ledger().merge_wire(acks)


# -- data faults acting from inside the load (load_side.py) ---------------------------------------------
def _wire_bad_traffic(environment, runner) -> None:
    def fire_request(request_type, name, response_time_ms, response_length, exception):
        environment.events.request.fire(request_type=request_type, name=name, response_time=response_time_ms,
                                        response_length=response_length, exception=exception, context={})

    _h.load_side = LoadSide(BadTrafficSender(fire_request))
    _h.load_side.register_on(runner, _say)


# -- run lifecycle ------------------------------------------------------------------------------------
@events.test_start.add_listener
def _on_test_start(environment, **_kwargs):
    session = _h.session
    if session is None or isinstance(environment.runner, WorkerRunner):
        return
    session.options.host = environment.host or ""
    if _h.books is not None:
        _h.books.reset()
    session.start()
    _h.recorder = session.recorder


@events.spawning_complete.add_listener
def _on_spawning_complete(user_count, **_kwargs):
    # The end of the ramp-up (on the master: every worker done); rates leave the ramp out (verdict/rates.py).
    session = _h.session
    if session is not None and session.running and not isinstance(_h.environment.runner, WorkerRunner):
        session.record.meta.setdefault("ramp_end_t", round(session.clock(), 3))


@events.test_stopping.add_listener
def _on_test_stopping(environment, **_kwargs):
    # The load stops here, or earlier: Locust's stop() blocks the hub (inspect.stack) before it fires this, so on a
    # local runner the last request this process counted is the better mark. test_stop (the run's end) comes later.
    session = _h.session
    if session is None or not session.running or isinstance(environment.runner, WorkerRunner):
        return
    stop_t = session.clock()
    last_wall = session.recorder.last_wall
    if last_wall is not None:
        stop_t = min(stop_t, last_wall - session.record.start_wall)
    session.record.meta.setdefault("load_stop_t", round(stop_t, 3))


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs):
    if isinstance(environment.runner, WorkerRunner):
        if _h.load_side is not None:
            _h.load_side.stop(_h.load_side.sender.active())
        return
    session = _h.session
    if session is None:
        return
    session.stop("test stopped")
    if not environment.parsed_options.headless:
        # In the web UI a run can stop and start again without quitting: judge it once the last reports are in.
        delay = FINAL_REPORT_WAIT_S if isinstance(environment.runner, MasterRunner) else 0.0
        gevent.spawn_later(delay, _finish_and_report, environment)


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs):
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        if _h.load_side is not None:
            _h.load_side.sender.stop_all()
        return
    session = _h.session
    if session is None:
        return
    if session.running and runner is not None and runner.state != STATE_STOPPED:
        runner.stop()  # Ctrl-C or SIGTERM mid-run: stop the load first so the record ends where the run did
        if isinstance(runner, MasterRunner):
            gevent.sleep(FINAL_REPORT_WAIT_S)
    _finish_and_report(environment)


def _finish_and_report(environment) -> None:
    session = _h.session
    if session is None or session.plan is None:
        if session is not None:
            session.stop("run finished")
        return
    try:
        code = session.finish()
    except Exception as exc:  # a bug of the harness (finish() guards judging itself): say so, never exit 0
        logger.error("chaos-events: could not finish the run: %s", exc, exc_info=os.environ.get("CHAOS_DEBUG") == "1")
        session.stop("harness error")
        code = ExitCode.REVERT_FAILED if (session.engine and session.engine.revert_failed) else ExitCode.BAD_INPUT
    if environment.process_exit_code == ExitCode.BAD_INPUT and code != ExitCode.REVERT_FAILED:
        code = ExitCode.BAD_INPUT  # bad input found elsewhere (users.py's option check) must not turn into a pass
    environment.process_exit_code = int(code)
    if not environment.parsed_options.headless:
        _say(session.verdict_table())


@events.quit.add_listener
def _on_quit(exit_code, **_kwargs):
    # After Locust's own summary, so the verdict is the last thing on the console.
    session = _h.session
    if session is not None and session.state.final and _h.environment.parsed_options.headless:
        _say(session.verdict_table())


def _emergency_revert() -> None:
    """Last line of defence on interpreter exit (an exception escaped Locust's main)."""
    if _h.session is not None:
        _h.session.stop("process exiting")  # a no-op when the run already stopped
