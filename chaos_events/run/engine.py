"""The chaos engine: takes the timeline's steps, injects and reverts faults, and keeps a stack of active faults
that it always unwinds, last in first out.

Must not import locust (the plugin drives it from a greenlet: it calls `tick()` and sleeps until the returned
time), gevent, docker or prometheus_client. It reaches the world only through the faults it builds.

What it guarantees:
- every inject and revert becomes a record.FaultEvent on `record.events`, is passed to `on_event`, and is logged
  (`t=30.0s inject pause broker`, `t=50.0s revert pause broker`, loud `REVERT FAILED ...` lines);
- time-up reverts that one occurrence; `revert_all` and `abort` unwind the whole stack last in first out;
- a fault is on the stack (and in the journal) *before* its inject runs, so an inject that raises halfway is
  still reverted; its INJECT_FAILED event is followed by the outcome of that revert;
- after each revert, `verify_reverted` runs; a failure is a REVERT_FAILED event, `revert_failed` turns true (the
  plugin exits 4), the journal keeps the entry, and the other reverts carry on;
- dry run builds each fault (so parameters are checked), logs `t=... would inject ...`, records PLANNED events
  and touches nothing.
After `revert_all` the engine is finished: the rest of the timeline is cancelled and `tick()` does nothing.

Example:
    engine = ChaosEngine(plan, record, journal, clock=run_clock, wall=time.time, context_factory=make_ctx)
    while (next_t := engine.tick()) is not None:
        sleep(max(0.0, next_t - run_clock()))
    failures = engine.revert_all("end of run")
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Callable

from chaos_events.faults import Fault, FaultContext, fault_type
from chaos_events.scenario.model import FaultSpec, Plan
from chaos_events.record import TIME_UP, FaultEvent, FaultEventKind, Record
from chaos_events.scenario.safety import split_allowed
from chaos_events.run.timeline import Action, Step, Timeline


STEADY_STATE_RECHECK_S = 0.5   # how often a waiting gate looks again


@dataclass(frozen=True)
class ActiveFault:
    """A fault injected and not yet reverted, as the web UI shows it."""

    occurrence_id: str
    fault_type: str
    target: str
    started_t: float
    ends_t: float
    description: str


@dataclass(frozen=True)
class RevertFailure:
    """A revert (or its verification) that failed: the target is left degraded."""

    occurrence_id: str
    description: str
    error: str


@dataclass(eq=False)  # compared by identity: the same occurrence on the stack
class _Running:
    occurrence_id: str
    spec: FaultSpec
    fault: Fault
    ctx: FaultContext
    started_t: float
    ends_t: float


class ChaosEngine:
    """Runs a Plan's timeline. Invariant: `_stack` holds, in injection order, every fault whose inject was
    started and whose revert has not been attempted; reverts always pop from its top.

    Example: see the module docstring.
    """

    def __init__(self, plan: Plan, record: Record, journal: Any, clock: Callable[[], float], wall: Callable[[], float],
                 context_factory: Callable[[str], FaultContext], dry_run: bool = False,
                 log: Callable[[str], None] = print, on_event: Callable[[FaultEvent], None] | None = None,
                 gate: Callable[[], tuple[bool, str]] | None = None):
        self.plan = plan
        self.record = record
        self.journal = journal          # a journal.Journal, or None to run without one (tests, dry runs)
        self.clock = clock
        self.wall = wall
        self.context_factory = context_factory
        self.dry_run = dry_run
        self.log = log
        self.on_event = on_event
        self.gate = gate                # the steady-state check: () -> (met, why not)
        self.delay_s = 0.0              # how long the timeline has waited for the steady state
        self._waiting: tuple[str, float, float] | None = None
        self.timeline = Timeline(plan)
        self.revert_failed = False
        self.injected_count = 0         # successful injects
        self.finished = False
        self._stack: list[_Running] = []
        # tick, abort and revert_all run in different greenlets (timeline, web UI, signal handling); a fault's inject
        # or revert may yield mid-way (docker, sleeps), so they take turns. Under Locust, gevent patches this
        # lock into a cooperative one.
        self._lock = threading.RLock()
        self._halted = False

    # -- the plugin's API ------------------------------------------------------------------------
    def tick(self) -> float | None:
        """Take every due step; returns the run time of the next one (None: nothing left)."""
        with self._lock:
            while not self.finished:
                step = self.timeline.peek(self.clock() - self.delay_s)
                if step is None:
                    break
                if step.action is Action.INJECT and self._gated(step):
                    wait = self._steady_state(step)
                    if wait is not None:
                        return wait
                    if self.timeline.peek(self.clock() - self.delay_s) is not step:
                        continue  # the gate gave up and aborted the rest
                self.timeline.take()
                if step.action is Action.INJECT:
                    self._inject(step)
                else:
                    self._revert_step(step)
            if self.finished:
                return None
            next_t = self.timeline.next_t()
            return None if next_t is None else next_t + self.delay_s

    # -- the steady-state gate -------------------------------------------------------------------
    def _gated(self, step: Step) -> bool:
        """The first inject of the run, and every occurrence of a fault marked `steady_state: true`."""
        if self.gate is None or self.plan.steady_state is None:
            return False
        first = next((s for s in self.timeline.steps if s.action is Action.INJECT), None)
        return step is first or step.spec.steady_state

    def _steady_state(self, step: Step) -> float | None:
        """None: go ahead. A run time: check again then (the timeline waits, later steps move with it).
        When the steady state does not come within `wait_up_to`, the run is aborted and nothing more is touched."""
        met, reason = self.gate()
        now = self.clock()
        if met:
            if self._waiting is not None and self._waiting[0] == step.occurrence_id:
                self.delay_s = self._waiting[2] + (now - self._waiting[1])   # the wait moves the rest of the timeline
            self._waiting = None
            return None
        if self._waiting is None or self._waiting[0] != step.occurrence_id:
            self._waiting = (step.occurrence_id, now, self.delay_s)
            self.log(f"t={now:.1f}s waiting for the steady state before {step.occurrence_id} ({step.spec.type} "
                     f"{step.spec.target}): {reason}")
        _, since, delay_before = self._waiting
        if now - since < self.plan.steady_state.wait_up_to_s:
            self.delay_s = delay_before + (now - since)   # the timeline stands still while the run waits
            return now + STEADY_STATE_RECHECK_S
        message = f"steady state not met before f{step.spec.index} ({step.spec.type} {step.spec.target}): {reason}"
        self.record.meta["steady_state_failure"] = {"fault_id": step.occurrence_id, "t": now, "reason": reason}
        self.abort(message)
        return None

    def abort(self, reason: str) -> list[RevertFailure]:
        """Revert every active fault now and cancel the rest of the timeline; the load keeps running."""
        with self._lock:
            self._halted = True
            cancelled = self.timeline.cancel_rest()
            skipped = [s for s in cancelled if s.action is Action.INJECT]
            self.log(f"t={self.clock():.1f}s chaos aborted ({reason}): reverting {len(self._stack)} active fault(s)"
                     + (f", cancelling {len(skipped)} planned" if skipped else ""))
            failures = self._unwind(reason)
            for step in skipped:
                self._event(FaultEventKind.ABORTED, step.occurrence_id, step.spec.type, step.spec.target, reason)
            return failures

    def revert_all(self, reason: str) -> list[RevertFailure]:
        """Revert every active fault, last in first out; one failure never stops the others. Never raises."""
        with self._lock:
            self._halted = True
            self.timeline.cancel_rest()
            self.finished = True
            return self._unwind(reason)

    def active(self) -> list[ActiveFault]:
        return [ActiveFault(r.occurrence_id, r.spec.type, r.spec.target, r.started_t, r.ends_t, r.fault.describe())
                for r in self._stack]

    def planned(self) -> list[Step]:
        """Steps not yet taken."""
        return self.timeline.remaining()

    # -- inject ----------------------------------------------------------------------------------
    def _build(self, spec: FaultSpec) -> Fault:
        return fault_type(spec.type)(spec.params, self.plan.targets[spec.target])

    def _context(self, occurrence_id: str, fault: Fault) -> FaultContext:
        """The factory's context, with save_state also writing this fault's state to the journal."""
        base = self.context_factory(occurrence_id)
        own_save = base.save_state
        journal = self.journal

        def save_state() -> None:
            if journal is not None:
                journal.add(occurrence_id, fault, self._journal_context(base))
            own_save()

        return dataclasses.replace(
            base, save_state=save_state, occurrence_id=base.occurrence_id or occurrence_id,
            extra_allowed=split_allowed(base.extra_allowed) or split_allowed(getattr(self.plan, "extra_allowed", ())))

    @staticmethod
    def _journal_context(ctx: FaultContext) -> dict[str, Any]:
        return {"run_dir": ctx.run_dir, "kafka_bootstrap": ctx.kafka_bootstrap, "occurrence_id": ctx.occurrence_id}

    def _inject(self, step: Step) -> None:
        spec, oid = step.spec, step.occurrence_id
        now = self.clock()
        ends_t = step.t + spec.for_s    # when its revert step is scheduled, even if this inject runs late
        try:
            fault = self._build(spec)
        except Exception as exc:  # the loader built the params, so this is a harness bug or a stale plan
            self.log(f"t={now:.1f}s INJECT FAILED {oid} {spec.type} {spec.target}: {exc}")
            self._event(FaultEventKind.INJECT_FAILED, oid, spec.type, spec.target, str(exc))
            return
        description = fault.describe()
        if self.dry_run:
            self.log(f"t={now:.1f}s would inject {description} for {spec.for_s:g}s [{oid}]")
            self._event(FaultEventKind.PLANNED, oid, spec.type, spec.target, description)
            return
        ctx = self._context(oid, fault)
        now, started_wall = self.clock(), self.wall()
        running = _Running(oid, spec, fault, ctx, now, ends_t)
        self._stack.append(running)
        try:
            if self.journal is not None:
                self.journal.add(oid, fault, self._journal_context(ctx))
            fault.inject(ctx)
        except Exception as exc:
            self.log(f"t={self.clock():.1f}s INJECT FAILED {description} [{oid}]: {exc}; reverting whatever it did")
            self._event(FaultEventKind.INJECT_FAILED, oid, spec.type, spec.target, str(exc), data=fault.observations())
            if running in self._stack:
                self._stack.remove(running)
            self._revert(running, "inject failed")
            return
        self.injected_count += 1
        self.log(f"t={now:.1f}s inject {fault.describe()} [{oid}]")
        # Stamped with the time the inject began: the fault window (and detection) starts with the first side effect.
        self._event(FaultEventKind.INJECTED, oid, spec.type, spec.target, fault.describe(), t=now, wall=started_wall,
                    data=fault.observations())
        if running not in self._stack:  # an abort from within the inject unwound it early: undo what it just did
            self._revert(running, "aborted during its inject")

    # -- revert ----------------------------------------------------------------------------------
    def _revert_step(self, step: Step) -> None:
        if self.dry_run:
            self.log(f"t={self.clock():.1f}s would revert {step.spec.type} {step.spec.target} [{step.occurrence_id}]")
            return
        # Time-up reverts this occurrence alone, wherever it sits on the stack: overlapping faults end on their
        # own schedule. (Unreverting and re-injecting later faults to keep a strict LIFO here would restart
        # processes that a `kill` or `restart` already hit.) Unwinding at the end, on abort or on a signal is LIFO.
        running = next((r for r in self._stack if r.occurrence_id == step.occurrence_id), None)
        if running is None:
            return  # its inject failed (already reverted) or an abort reverted it
        self._stack.remove(running)
        self._revert(running, TIME_UP)

    def _unwind(self, reason: str) -> list[RevertFailure]:
        failures = []
        while self._stack:
            failure = self._revert(self._stack.pop(), reason)
            if failure is not None:
                failures.append(failure)
        return failures

    def _revert(self, running: _Running, reason: str) -> RevertFailure | None:
        """Revert and verify one fault; never raises. Returns the failure, if any."""
        oid, spec, fault = running.occurrence_id, running.spec, running.fault
        description = fault.describe()
        try:
            fault.revert(running.ctx)
            fault.verify_reverted(running.ctx)
        except Exception as exc:  # one failed revert must not stop the others
            error = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
            self.revert_failed = True
            self.log(f"t={self.clock():.1f}s REVERT FAILED {description} [{oid}] ({reason}): {error} "
                     f"-- the target is left degraded; retry with `chaos-events revert --journal {self._journal_path()}`")
            self._event(FaultEventKind.REVERT_FAILED, oid, spec.type, spec.target, error, data=fault.observations())
            if self.journal is not None:
                self._journal_quietly(lambda: self.journal.add(oid, fault))
            return RevertFailure(oid, description, error)
        if self.journal is not None:
            self._journal_quietly(lambda: self.journal.remove(oid))
        self.log(f"t={self.clock():.1f}s revert {description} [{oid}]" + ("" if reason == TIME_UP else f" ({reason})"))
        self._event(FaultEventKind.REVERTED, oid, spec.type, spec.target, reason, data=fault.observations())
        return None

    def _journal_path(self) -> str:
        return str(self.journal.path) if self.journal is not None else "FILE"

    def _journal_quietly(self, write: Callable[[], None]) -> None:
        try:
            write()
        except Exception as exc:  # a full disk must not stop the remaining reverts
            self.log(f"journal write failed: {exc}")

    def _event(self, kind: FaultEventKind, oid: str, fault_type_name: str, target: str, detail: str,
               t: float | None = None, wall: float | None = None, data: dict | None = None) -> None:
        event = FaultEvent(self.clock() if t is None else t, self.wall() if wall is None else wall, kind, oid,
                           fault_type_name, target, detail, dict(data or {}))
        self.record.add_event(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as exc:  # a broken listener must not break the fault's life cycle
                self.log(f"fault event listener failed: {exc}")
