"""One chaos run on the master (or local runner): record, engine, probes, stop conditions, steady-state gate, ledger
audit, verdict, reports and the event stream.

The Locust plugin (locust_plugin/wiring.py) adapts Locust's events to the methods here; this module must not import
locust. It reaches gevent only through the `LoadHooks` callables it is given, so it is driven from a test without a
load run.

Life of a run: `start()` at test_start -> the timeline greenlet injects and reverts on the run clock (waiting for the
steady state where the scenario asks) while a watcher checks the stop conditions -> `stop()` at test_stop or quitting
reverts everything still active (LIFO) -> `finish()` audits the ledger, judges the SLOs, writes the reports and
returns the exit code. `stop()` and `finish()` are idempotent, because Locust reaches them along several paths (run
time over, Ctrl-C, SIGTERM, web UI stop). `finish()` writes the reports whatever fails on the way.
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from chaos_events.errors import ChaosError, ExitCode
from chaos_events.faults.base import FaultContext
from chaos_events.faults.data import BROADCAST_STOP_ALL
from chaos_events.load.acks import process_ledger
from chaos_events.locust_plugin.options import default
from chaos_events.observe.probes import ProbeRunner, build_probe
from chaos_events.observe.recorder import Recorder
from chaos_events.record import Record
from chaos_events.run import audit, halts, live, proxy_part, steady
from chaos_events.run.engine import ChaosEngine
from chaos_events.run.events import EVENTS_FILE, EventStream
from chaos_events.run.journal import Journal
from chaos_events.scenario.model import Plan, ProbeKind, ProbeSpec, SloMetric
from chaos_events.verdict.phases import current_phase
from chaos_events.verdict.report import format_verdict_table, progress_line, write_reports
from chaos_events.verdict.results import Verdict
from chaos_events.verdict.slo import evaluate

LIVE_VERDICT_EVERY_S = 2.0      # provisional SLOs for the exporter and the web UI
LIVE_VERDICT_MAX_SHARE_INV = 20  # ... recomputed no sooner than 20x its own cost after the last time
PROGRESS_EVERY_S = 5.0          # headless console progress line
HALT_CHECK_EVERY_S = 1.0        # stop conditions
INJECT_FINISH_WAIT_S = 15.0     # at stop, how long an inject under way may take to finish before it is cut off


@dataclass
class LoadHooks:
    """What the load side (Locust, via the plugin) lends a session."""

    spawn: Callable[..., Any]                          # start a greenlet: spawn(fn, *args)
    sleep: Callable[[float], None]
    broadcast: Callable[[str, dict], None]             # to every worker, or to this process when local
    user_count: Callable[[], int] = lambda: 0
    worker_count: Callable[[], int] = lambda: 0
    run_blocking: Callable[..., Any] = lambda fn, *a: fn(*a)   # a blocking call off the hub (native thread)
    join: Callable[[Any, float], None] = lambda greenlet, timeout: None   # wait for a greenlet (never the current one)
    stop_load: Callable[[], None] = lambda: None      # a stop condition tripped with on_halt: stop_load
    log: Callable[[str], None] = print

    def data_lag_s(self) -> float:
        """How far behind the record's newest seconds are: workers report every few seconds."""
        return 4.0 if self.worker_count() else 1.0


@dataclass
class SessionOptions:
    """The harness options a session needs; the plugin fills it from Locust's parsed options (defaults: options.py)."""

    report_dir: str = default("chaos_report_dir")
    journal_path: str = default("chaos_journal")
    dry_run: bool = False
    headless: bool = True
    watchdog: bool = True
    prometheus_url: str = ""
    kafka_bootstrap: str = ""
    kafka_topic: str = default("kafka_topic")
    host: str = ""
    extra_allowed: tuple[str, ...] = ()
    allow_unverified: bool = False


class ChaosSession:
    """Owns one run at a time. Invariant: every fault it injects is reverted by `stop()`, whatever called it.

    Example:
        session = ChaosSession(plan, options, hooks); session.start(); ...; session.stop("run over"); code = session.finish()
    """

    def __init__(self, plan: Plan | None, options: SessionOptions, hooks: LoadHooks):
        self.plan = plan
        self.options = options
        self.hooks = hooks
        self.record = Record(run_id="idle", scenario=plan.name if plan else "", start_wall=time.time())
        self.recorder = Recorder(self.record)
        self.engine: ChaosEngine | None = None
        self.probes: ProbeRunner | None = None
        self.journal: Journal | None = None
        self.events: EventStream | None = None
        self.state = live.RunState()
        self.running = False
        self.harness_error: str | None = None
        self.trip: halts.Trip | None = None
        self._stopped = True
        self._finished = True
        self._t0 = time.perf_counter()
        self._watchdog = None
        self._greenlets: list[Any] = []
        self._proxies: list[proxy_part.StartedProxy] = []   # the harness's proxy for declared routes

    def clock(self) -> float:
        """Run time: seconds since test start, on this process's monotonic clock."""
        return time.perf_counter() - self._t0

    # -- start -----------------------------------------------------------------------------------
    def start(self) -> None:
        """A new run: fresh record, engine, journal, probes, watchdog; the timeline greenlet starts."""
        if self.running:
            self.stop("a new run started")
        self._t0 = time.perf_counter()
        self.record = Record(run_id=uuid.uuid4().hex[:12], scenario=self.plan.name if self.plan else "",
                             start_wall=time.time())
        self.record.meta.update({"host": self.options.host, "dry_run": self.options.dry_run})
        self.recorder = Recorder(self.record)
        process_ledger().clear()
        self.state, self.harness_error, self.trip = live.RunState(), None, None
        self.engine = self.probes = None
        self.running, self._stopped, self._finished = True, False, False
        if self.plan is None:
            return
        self.events = EventStream(Path(self.options.report_dir) / EVENTS_FILE, self.clock, self.hooks.log)
        self.events.write("run_started", run_id=self.record.run_id, scenario=self.plan.name)
        Path(self.options.journal_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.journal = Journal(self.options.journal_path, run_id=self.record.run_id)
        except ChaosError as exc:
            # Leftovers appeared after the up-front check: inject nothing, and end the run as a harness error.
            self.harness_error = str(exc)
            self.hooks.log(f"chaos-events: ERROR: {exc}; no fault will be injected in this run")
            return
        run_plan = self._start_proxies()
        if run_plan is None:
            return
        self.engine = ChaosEngine(run_plan, self.record, self.journal, clock=self.clock, wall=time.time,
                                  context_factory=self._fault_context, dry_run=self.options.dry_run, log=self.hooks.log,
                                  on_event=self._on_fault_event, gate=self._steady_state if self.plan.steady_state else None)
        if self.options.watchdog and not self.options.dry_run and (self.plan.faults or self._proxies):
            self._watchdog = self._spawn_watchdog()
        self.probes = ProbeRunner(self._build_probes(), self.record, clock=self.clock, wall=time.time, spawn=self.hooks.spawn)
        self.probes.start()
        self._greenlets = [self.hooks.spawn(self._run_timeline), self.hooks.spawn(self._refresh_live_state)]
        if self.plan.halts and not self.options.dry_run:
            self._greenlets.append(self.hooks.spawn(self._watch_halts))
        if self.options.headless:
            self._greenlets.append(self.hooks.spawn(self._print_progress))

    def _start_proxies(self) -> Plan | None:
        """Start the harness's proxy for the routes the scenario declares; the plan whose faults reach it, or None."""
        if not proxy_part.groups(self.plan):
            return self.plan
        try:
            self._proxies = proxy_part.start_declared(self.plan, str(Path(self.options.journal_path).parent),
                                                      self.journal, self.hooks.log)
        except (OSError, ChaosError) as exc:
            self.harness_error = f"the harness's proxy for the declared routes did not start: {exc}"
            self.hooks.log(f"chaos-events: ERROR: {self.harness_error}; no fault will be injected in this run")
            return None
        self.record.meta["proxies"] = [p.journal_info() for p in self._proxies]
        if self.events is not None:
            for proxy in self._proxies:
                self.events.write("proxy_started", pid=proxy.pid, control=proxy.url, routes=list(proxy.routes))
        return proxy_part.with_controls(self.plan, self._proxies)

    def _build_probes(self) -> dict[str, Any]:
        defaults = {"prometheus_url": self.options.prometheus_url, "kafka_bootstrap": self.options.kafka_bootstrap}
        probes = {name: build_probe(spec, defaults) for name, spec in self.plan.probes.items()}
        if not self._alert_probe_names() and self._wants_alerts():
            spec = ProbeSpec("alerts", ProbeKind.PROMETHEUS_ALERTS, {"url": self.options.prometheus_url or None, "every": 2.0})
            probes["alerts"] = build_probe(spec, defaults)
        return probes

    def _alert_probe_names(self) -> list[str]:
        return [n for n, p in self.plan.probes.items() if p.kind is ProbeKind.PROMETHEUS_ALERTS]

    def _wants_alerts(self) -> bool:
        return (any(slo.metric is SloMetric.ALERTS_FIRED for slo in self.plan.slos)
                or any(h.kind == "alert_firing" and not h.params.probe for h in self.plan.halts))

    def _on_fault_event(self, event) -> None:
        if self.events is not None:
            self.events.fault_event(event)
        # Workers print every injection and revert too, so each node's log tells the whole story.
        line = f"t={event.t:.1f}s {event.kind.value} {event.fault_type} {event.target}"
        self.hooks.broadcast("chaos_event", {"line": line, "kind": event.kind.value, "fault_id": event.fault_id})

    def _fault_context(self, occurrence_id: str) -> FaultContext:
        return FaultContext(run_dir=str(Path(self.options.journal_path).parent), broadcast=self.hooks.broadcast,
                            log=self.hooks.log, kafka_bootstrap=self.options.kafka_bootstrap or None,
                            occurrence_id=occurrence_id, extra_allowed=self.options.extra_allowed,
                            report=self._observe)

    def _observe(self, key: str, data: dict) -> None:
        self.record.meta.setdefault(key, []).append(data)

    def _spawn_watchdog(self):
        try:
            from chaos_events.run.watchdog import spawn_watchdog
            return spawn_watchdog(os.getpid(), self.options.journal_path)
        except (OSError, ChaosError) as exc:  # the run is still safe on the normal paths; say so loudly
            self.hooks.log(f"chaos-events: WARNING: watchdog not started ({exc}); a SIGKILL would need `chaos-events revert`")
            return None

    # -- the steady state and the stop conditions ----------------------------------------------------
    def _steady_state(self) -> tuple[bool, str]:
        latest = self.probes.latest if self.probes else {}
        every = {name: spec.every_s for name, spec in self.plan.probes.items()}
        verdict = steady.steady_state_now(self.plan.steady_state, self.record, latest, every, time.time(),
                                          self.hooks.data_lag_s())
        return verdict.met, verdict.reason

    def _watch_halts(self) -> None:
        names = self._alert_probe_names() or (["alerts"] if self._wants_alerts() else [])
        while self.running and self.trip is None:
            self.hooks.sleep(HALT_CHECK_EVERY_S)
            trip = halts.first_trip(self.plan.halts, self.record, self.record.probes, names, self.clock(),
                                    self.hooks.data_lag_s())
            if trip is not None and self.running:
                self.halt(trip)

    def halt(self, trip: halts.Trip) -> None:
        """A stop condition tripped: revert every active fault, cancel the rest, stop the load unless told not to."""
        self.trip = trip
        self.record.meta["halt"] = trip.to_dict()
        self.hooks.log(f"chaos-events: HALTED at t={trip.t:.1f}s: {trip.message}; reverting every active fault"
                       + (" and stopping the load" if self.plan.on_halt == "stop_load" else "; the load goes on"))
        if self.events is not None:
            # "kind" is the stream's own key: the condition's kind goes in as halt_kind.
            self.events.write("halted", condition=trip.condition.label, halt_kind=trip.condition.kind, message=trip.message,
                              values=trip.values)
        if self.engine is not None:
            self.engine.abort(f"halted: {trip.message}")
        if self.plan.on_halt == "stop_load":
            self.hooks.stop_load()

    # -- background greenlets --------------------------------------------------------------------
    def _run_timeline(self) -> None:
        engine = self.engine
        try:
            while self.running and engine is self.engine:
                next_t = engine.tick()
                if next_t is None:
                    return
                # Short naps keep injection skew low without a busy loop.
                self.hooks.sleep(max(0.0, min(next_t - self.clock(), 0.25)))
        except BaseException:
            # Whatever killed the timeline, nothing injected may stay injected. When stop() killed it, stop() unwinds
            # the stack itself: a second unwind here would race it (out of LIFO order, under the wrong reason).
            if not self._stopped:
                engine.revert_all("timeline stopped by an error")
            raise

    def _refresh_live_state(self) -> None:
        while self.running:
            started = time.perf_counter()
            self.update_live_state()
            cost = time.perf_counter() - started
            # The live verdict runs on the hub, alongside the load: keep it under ~5% of the hub on long runs.
            self.hooks.sleep(max(LIVE_VERDICT_EVERY_S, LIVE_VERDICT_MAX_SHARE_INV * cost))

    def update_live_state(self) -> None:
        if self.plan is not None:
            live.refresh(self.state, self.plan, self.record, self.clock())

    def _print_progress(self) -> None:
        while self.running:
            self.hooks.sleep(PROGRESS_EVERY_S)
            if self.running and self.plan is not None:
                active = [a.description for a in self.engine.active()] if self.engine else []
                self.hooks.log(progress_line(self.record, self.plan, self.clock(), active))

    # -- control ---------------------------------------------------------------------------------
    def abort_chaos(self, reason: str = "aborted from the web UI") -> None:
        """Revert every active fault now and cancel the rest of the timeline. The load keeps running."""
        if self.engine is not None:
            self.engine.abort(reason)

    # -- stop and finish -------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Revert everything still active (LIFO). Safe to call many times."""
        if self._stopped:
            return
        self._stopped = True
        self.running = False
        if self.record.end_t is None:
            self.record.end_t = self.clock()
        if self._greenlets:
            # Let an inject already under way finish (it is then recorded, and reverted below) rather than cut it off
            # halfway; the loop itself ends at its next turn because `running` is now False.
            self.hooks.join(self._greenlets[0], INJECT_FINISH_WAIT_S)
        for greenlet in self._greenlets:
            try:
                greenlet.kill(block=False)
            except Exception:  # a greenlet that already ended
                pass
        if self.engine is not None:
            self.engine.revert_all(reason)
        if self.probes is not None:
            self.probes.stop()
        self.hooks.broadcast(BROADCAST_STOP_ALL, {})
        if self._proxies:  # after the reverts: removing a toxic needs the proxy up
            pids = [proxy.pid for proxy in self._proxies]
            proxy_part.stop_started(self._proxies, self.journal, self.hooks.log)
            if self.events is not None:
                self.events.write("proxy_stopped", pids=pids)

    def finish(self) -> int:
        """Audit, judge, report: the exit code. Reports are written whatever fails; a failed part is named, exit 2."""
        if self._finished:
            return self.state.verdict.exit_code if self.state.verdict else ExitCode.OK
        self.stop("run finished")
        self._finished = True
        if self.plan is None:
            return ExitCode.OK
        if self.harness_error:
            return ExitCode.BAD_INPUT
        verdict = self._judge()
        self.state.verdict, self.state.final = verdict, True
        self.state.phase = current_phase(self.record, self.plan, self.record.end_t or self.clock()).value
        try:
            paths = write_reports(verdict, self.plan, self.record, Path(self.options.report_dir))
            self.state.reports = {kind: str(path) for kind, path in paths.items()}
        except (OSError, ChaosError) as exc:
            self.hooks.log(f"chaos-events: ERROR: could not write reports to {self.options.report_dir}: {exc}")
        if self.events is not None:
            self.events.write("verdict", exit_code=int(verdict.exit_code), headline=verdict.headline)
        if self.journal is not None and not (self.engine and self.engine.revert_failed):
            self.journal.close()
        self._stop_watchdog()
        return verdict.exit_code

    def _judge(self) -> Verdict:
        """The verdict, with every part that can fail guarded: a failure is named in the record and ends in exit 2."""
        steps = (("ledger audit", lambda: audit.audit_ledger(self.plan, self.record, process_ledger(),
                                                              self.options.kafka_bootstrap, self.options.kafka_topic,
                                                              self.hooks.run_blocking)),
                 ("dead-letter count", lambda: audit.count_dead_letters(self.plan, self.record, self.hooks.run_blocking)))
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001  (a judging error must never lose the record or the reports)
                self._judging_error(name, exc)
        try:
            verdict = evaluate(self.plan, self.record, allow_unverified=self.options.allow_unverified)
        except Exception as exc:  # noqa: BLE001
            self._judging_error("verdict", exc)
            verdict = Verdict((), ExitCode.BAD_INPUT, False, {"scenario": self.plan.name, "run_id": self.record.run_id},
                              f"harness error while judging the run: {exc}")
        if self.record.meta.get("judging_errors") and verdict.exit_code not in (ExitCode.REVERT_FAILED, ExitCode.BAD_INPUT):
            failed = "; ".join(f"{e['part']}: {e['error']}" for e in self.record.meta["judging_errors"])
            verdict = dataclasses.replace(verdict, exit_code=ExitCode.BAD_INPUT,
                                          headline=f"harness error while judging the run ({failed}); {verdict.headline}")
        if self.options.dry_run:
            # Nothing was injected, so nothing was proven: the verdict is shown for information and never fails a build.
            verdict = dataclasses.replace(verdict, exit_code=ExitCode.OK, summary={**verdict.summary, "dry_run": True})
        return verdict

    def _judging_error(self, part: str, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self.record.meta.setdefault("judging_errors", []).append({"part": part, "error": error})
        self.hooks.log(f"chaos-events: ERROR: the {part} failed ({error}); the reports say so and the exit code is 2")

    def verdict_table(self) -> str:
        if self.state.verdict is None:
            return ""
        lines = [format_verdict_table(self.state.verdict)]
        if self.state.reports:
            lines.append("Reports: " + ", ".join(self.state.reports.values()))
        return "\n".join(lines)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.poll() is None:
            self._watchdog.terminate()
            try:
                self._watchdog.wait(timeout=5)
            except Exception:
                self._watchdog.kill()
        self._watchdog = None

    def exporter_state(self) -> dict:
        """The dict the exporter reads at scrape time (see observe/exporter.py)."""
        probes = self.probes
        return live.exporter_state(self.state, self.plan, self.record, self.engine.active() if self.engine else [],
                                   process_ledger(), probes.latest if probes else {},
                                   {n: p.kind for n, p in probes.probes.items()} if probes else {},
                                   self.hooks.user_count(), self.hooks.worker_count())
