"""One chaos run on the master (or local runner): plan, record, engine, probes, exporter, ledger audit, verdict, reports.

plugin.py adapts Locust's events to the methods here; this module must not import locust. It reaches gevent only
through the `LoadHooks` callables it is given, so it can be driven from a test without a load run.

Life of a run: `start()` at test_start -> the timeline greenlet injects and reverts on the run clock ->
`stop()` at test_stop or quitting reverts everything still active (LIFO) -> `finish()` audits the ledger, judges the
SLOs, writes the reports and returns the exit code. `stop()` and `finish()` are idempotent, because Locust reaches
them along several paths (run time over, Ctrl-C, SIGTERM, web UI stop).
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from chaos_events.load.acks import process_ledger
from chaos_events.run.engine import ChaosEngine
from chaos_events.errors import ChaosError
from chaos_events.faults.base import FaultContext
from chaos_events.run.journal import Journal
from chaos_events.observe.probes import ProbeRunner, build_probe
from chaos_events.observe.recorder import Recorder
from chaos_events.scenario.model import Phase, Plan, ProbeKind, ProbeSpec, SloMetric
from chaos_events.scenario.probe_kinds import PrometheusAlertsProbe
from chaos_events.record import FaultEventKind, Record
from chaos_events.verdict.phases import current_phase
from chaos_events.verdict.report import format_verdict_table, progress_line, write_reports
from chaos_events.verdict.slo import SloStatus, Verdict, evaluate

LIVE_VERDICT_EVERY_S = 2.0      # provisional SLOs for the exporter and the web UI
LIVE_VERDICT_MAX_SHARE_INV = 20  # ... recomputed no sooner than 20x its own cost after the last time
PROGRESS_EVERY_S = 5.0          # headless console progress line
INJECT_FINISH_WAIT_S = 15.0     # at stop, how long an inject under way may take to finish before it is cut off


@dataclass
class LoadHooks:
    """What the load side (Locust, via plugin.py) lends a session."""

    spawn: Callable[..., Any]                          # start a greenlet: spawn(fn, *args)
    sleep: Callable[[float], None]
    broadcast: Callable[[str, dict], None]             # to every worker, or to this process when local
    user_count: Callable[[], int] = lambda: 0
    worker_count: Callable[[], int] = lambda: 0
    run_blocking: Callable[..., Any] = lambda fn, *a: fn(*a)   # a blocking call off the hub (native thread)
    join: Callable[[Any, float], None] = lambda greenlet, timeout: None   # wait for a greenlet (never the current one)
    log: Callable[[str], None] = print


@dataclass
class SessionOptions:
    """The harness options a session needs; plugin.py fills it from Locust's parsed options."""

    report_dir: str = "reports"
    journal_path: str = ".run/chaos-journal.json"
    dry_run: bool = False
    headless: bool = True
    watchdog: bool = True
    prometheus_url: str = ""
    kafka_bootstrap: str = ""
    kafka_topic: str = "events"
    host: str = ""
    extra_allowed: tuple[str, ...] = ()


@dataclass
class RunState:
    """Live, derived view of a run for the exporter and the web UI (recomputed, never the source of truth)."""

    phase: str = Phase.BASELINE.value
    verdict: Verdict | None = None
    final: bool = False
    reports: dict[str, str] = field(default_factory=dict)


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
        self.state = RunState()
        self.running = False
        self.harness_error: str | None = None
        self._stopped = True
        self._finished = True
        self._t0 = time.perf_counter()
        self._watchdog = None
        self._greenlets: list[Any] = []

    # -- clock -----------------------------------------------------------------------------------
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
        self.state = RunState()
        self.harness_error = None
        self.engine = self.probes = None
        self.running, self._stopped, self._finished = True, False, False
        if self.plan is None:
            return
        Path(self.options.journal_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.journal = Journal(self.options.journal_path, run_id=self.record.run_id)
        except ChaosError as exc:
            # Leftovers appeared after the up-front check: inject nothing, and end the run as a harness error.
            self.harness_error = str(exc)
            self.hooks.log(f"chaos-events: ERROR: {exc}; no fault will be injected in this run")
            return
        self.engine = ChaosEngine(self.plan, self.record, self.journal, clock=self.clock, wall=time.time,
                                  context_factory=self._fault_context, dry_run=self.options.dry_run, log=self.hooks.log,
                                  on_event=self._broadcast_event)
        if self.options.watchdog and not self.options.dry_run and self.plan.faults:
            self._watchdog = self._spawn_watchdog()
        defaults = {"prometheus_url": self.options.prometheus_url, "kafka_bootstrap": self.options.kafka_bootstrap}
        probes = {name: build_probe(spec, defaults) for name, spec in self.plan.probes.items()}
        if not any(spec.kind is ProbeKind.PROMETHEUS_ALERTS for spec in self.plan.probes.values()) and self._wants_alerts():
            spec = ProbeSpec("alerts", ProbeKind.PROMETHEUS_ALERTS,
                             PrometheusAlertsProbe(url=self.options.prometheus_url or None, every=2.0))
            probes["alerts"] = build_probe(spec, defaults)
        self.probes = ProbeRunner(probes, self.record, clock=self.clock, wall=time.time, spawn=self.hooks.spawn)
        self.probes.start()
        self._greenlets = [self.hooks.spawn(self._run_timeline), self.hooks.spawn(self._refresh_live_state)]
        if self.options.headless:
            self._greenlets.append(self.hooks.spawn(self._print_progress))

    def _broadcast_event(self, event) -> None:
        # Workers print every injection and revert too, so each node's log tells the whole story.
        line = f"t={event.t:.1f}s {event.kind.value} {event.fault_type} {event.target}"
        self.hooks.broadcast("chaos_event", {"line": line, "kind": event.kind.value, "fault_id": event.fault_id})

    def _wants_alerts(self) -> bool:
        return any(slo.metric is SloMetric.ALERTS_FIRED for slo in self.plan.slos)

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
        """Recompute the phase and the provisional verdict from the record (never stored elsewhere)."""
        if self.plan is None:
            return
        now = self.clock()
        self.state.phase = current_phase(self.record, self.plan, now).value
        previous_end = self.record.end_t
        self.record.end_t = now
        try:
            self.state.verdict = evaluate(self.plan, self.record)
        finally:
            self.record.end_t = previous_end

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
        self.hooks.broadcast("chaos_bad_traffic_stop_all", {})

    def finish(self) -> int:
        """Audit, judge, report. Returns the exit code (0 held, 3 broken, 4 revert failed)."""
        if self._finished:
            return self.state.verdict.exit_code if self.state.verdict else 0
        self.stop("run finished")
        self._finished = True
        if self.plan is None:
            return 0
        if self.harness_error:
            return 2
        self._audit_ledger()
        self._count_dead_letters()
        verdict = evaluate(self.plan, self.record)
        if self.options.dry_run:
            # Nothing was injected, so nothing was proven: the verdict is shown for information and never fails a build.
            verdict = dataclasses.replace(verdict, exit_code=0, summary={**verdict.summary, "dry_run": True})
        self.state.verdict, self.state.final = verdict, True
        self.state.phase = current_phase(self.record, self.plan, self.record.end_t or self.clock()).value
        try:
            paths = write_reports(verdict, self.plan, self.record, Path(self.options.report_dir))
            self.state.reports = {kind: str(path) for kind, path in paths.items()}
        except (OSError, ChaosError) as exc:
            self.hooks.log(f"chaos-events: ERROR: could not write reports to {self.options.report_dir}: {exc}")
        if self.journal is not None and not (self.engine and self.engine.revert_failed):
            self.journal.close()
        self._stop_watchdog()
        return verdict.exit_code

    def verdict_table(self) -> str:
        if self.state.verdict is None:
            return ""
        lines = [format_verdict_table(self.state.verdict)]
        if self.state.reports:
            lines.append("Reports: " + ", ".join(self.state.reports.values()))
        return "\n".join(lines)

    def _audit_ledger(self) -> None:
        """Reconcile acknowledged writes with the broker and the store, only for the checks an SLO asks for."""
        checks = self._ledger_checks()
        if not checks:
            return
        from chaos_events.observe import ledger as ledger_mod
        ledger = process_ledger()
        deadline = self.plan.settings.catch_up_s
        if "kafka" in checks:
            result = self.hooks.run_blocking(ledger_mod.audit_kafka, ledger, self.options.kafka_bootstrap,
                                             self.options.kafka_topic, deadline, None)
            self.record.ledger.append(result)
        if "pipeline" in checks:
            result = self.hooks.run_blocking(ledger_mod.audit_pipeline, ledger, self.options.host, 1.0, 500, deadline)
            self.record.ledger.append(result)

    def _count_dead_letters(self) -> None:
        """Poison messages delivered, and how many of them reached the dead-letter topic (for data_rejected)."""
        sent = self.record.meta.get("poison", [])
        if not sent:
            return
        self.record.meta["poison_sent"] = sum(int(entry["delivered"]) for entry in sent)
        if not all(entry.get("dead_letter_topic") for entry in sent):
            return  # a scenario that names no dead-letter topic gets the count "unknown", not a guess
        from chaos_events.backends.poison import TAG_HEADER
        from chaos_events.observe.ledger import count_tagged

        found = 0
        for (bootstrap, topic), entries in _group_by_topic(sent).items():
            count = self.hooks.run_blocking(count_tagged, bootstrap, topic, TAG_HEADER,
                                            {e["tag"] for e in entries}, sum(e["delivered"] for e in entries),
                                            self.plan.settings.catch_up_s)
            if count is None:
                return
            found += count
        self.record.meta["dlq_count"] = found

    def _ledger_checks(self) -> set[str]:
        checks: set[str] = set()
        for slo in self.plan.slos:
            if slo.metric in (SloMetric.LOST_WRITES, SloMetric.DUPLICATES):
                wanted = slo.params.check or "all"
                checks |= {"kafka", "pipeline"} if wanted == "all" else {wanted}
        return checks

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.poll() is None:
            self._watchdog.terminate()
            try:
                self._watchdog.wait(timeout=5)
            except Exception:
                self._watchdog.kill()
        self._watchdog = None

    # -- live view -------------------------------------------------------------------------------
    def exporter_state(self) -> dict:
        """The dict the exporter reads at scrape time (see observe/exporter.py)."""
        events = self.record.events
        verdict = self.state.verdict
        detection = recovery = None
        slo_ok: dict[str, bool | None] = {}
        if verdict is not None:
            for result in verdict.results:
                slo_ok[result.name] = None if result.status is SloStatus.NOT_VERIFIABLE else result.status is SloStatus.PASS
                if result.metric is SloMetric.DETECTION_TIME and result.value is not None:
                    detection = result.value
                if result.metric is SloMetric.RECOVERY_TIME and result.value is not None:
                    recovery = result.value
        ledger = process_ledger()
        ledger_counts = {"acknowledged": ledger.count()}
        for result in self.record.ledger:
            ledger_counts["verified"] = ledger_counts.get("verified", 0) + result.found
            ledger_counts["lost"] = ledger_counts.get("lost", 0) + result.lost
        probes_latest = self.probes.latest if self.probes else {}
        lag = {}
        for name, sample in probes_latest.items():
            spec = self.plan.probes.get(name) if self.plan else None
            if spec is not None and spec.kind is ProbeKind.KAFKA_LAG and sample.value is not None:
                lag[(spec.params.group, spec.params.topic)] = sample.value
        return {
            "phase": self.state.phase,
            "active_faults": [(a.fault_type, a.target) for a in self.engine.active()] if self.engine else [],
            "planned_faults": sorted({(f.type, f.target) for f in self.plan.faults}) if self.plan else [],
            "users": self.hooks.user_count(),
            "workers": self.hooks.worker_count(),
            "injections": sum(1 for e in events if e.kind is FaultEventKind.INJECTED),
            "reverts_ok": sum(1 for e in events if e.kind is FaultEventKind.REVERTED),
            "reverts_failed": sum(1 for e in events if e.kind is FaultEventKind.REVERT_FAILED),
            "detection_s": detection,
            "recovery_s": recovery,
            "slo_ok": slo_ok,
            "ledger": ledger_counts,
            "consumer_lag": lag,
            # Not the prometheus_alerts probes: their "healthy" is "no alert firing", and fed back to Prometheus as
            # chaos_probe_healthy it would keep ChaosHealthDegraded firing on itself for the rest of the run.
            "probes": {name: (s.healthy, s.value) for name, s in probes_latest.items()
                       if self.probes.probes[name].kind is not ProbeKind.PROMETHEUS_ALERTS},
            "run_id": self.record.run_id,
            "scenario": self.record.scenario,
        }


def _group_by_topic(entries: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        groups.setdefault((entry["bootstrap"], entry["dead_letter_topic"]), []).append(entry)
    return groups
