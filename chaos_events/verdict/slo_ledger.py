"""SLO metrics over data: lost_writes and duplicates (the ledger of acknowledged writes reconciled with Kafka and the
store) and data_rejected (bad payloads refused, poison messages dead-lettered).

Pure: standard library and pydantic (the parameter models). The reconciliation itself happens at the end of the run
(chaos_events.observe.ledger); these functions judge its results, which the record holds.

Example (scenario):
    - {name: no-loss, metric: lost_writes, max: 0, check: kafka}
    - {name: no-dupes, metric: duplicates, max: 0}
    - {name: rejected, metric: data_rejected}
"""
from __future__ import annotations

from pydantic import Field

from chaos_events.scenario.fields import WholeNumber, choice
from chaos_events.scenario.model import SloMetric, SloSpec
from chaos_events.verdict import stats
from chaos_events.verdict.metrics import Judging, MetricParams, metric, not_verifiable, result
from chaos_events.verdict.results import SloResult, SloStatus

LedgerCheck = choice("all", "kafka", "pipeline")
_CHECK_DOC = ("which reconciliation: `kafka` (every write acknowledged by Kafka is read back from the topic), "
              "`pipeline` (every write the API acknowledged is read back through the scenario's `ledger.read_back`), "
              "`all` (both). Default: what the run has (Kafka when it acknowledged Kafka writes; the pipeline when a "
              "read-back is configured)")


class LostWritesParams(MetricParams):
    max: WholeNumber = Field(0, ge=0, description="acknowledged writes that may be missing")
    check: LedgerCheck | None = Field(None, description=_CHECK_DOC)


class DuplicatesParams(MetricParams):
    max: WholeNumber = Field(0, ge=0, description="acknowledged writes that may be stored more than once")
    check: LedgerCheck | None = Field(None, description=_CHECK_DOC)


class DataRejectedParams(MetricParams):
    max_accepted: WholeNumber = Field(0, ge=0, description="bad payloads that may be accepted (2xx) instead of refused")


def _ledger(spec: SloSpec, run: Judging, attr: str, noun: str) -> SloResult:
    check = spec.params.check or "all"
    limit = spec.params.max
    record = run.record
    results = [r for r in record.ledger if check == "all" or r.check == check]
    if not record.ledger:
        return not_verifiable(spec, "no ledger results recorded (no acknowledged writes were tracked)", "writes")
    if not results:
        have = ", ".join(sorted({r.check for r in record.ledger})) or "none"
        return not_verifiable(spec, f"no ledger result for the {check} check (checks recorded: {have})", "writes")
    verifiable = [r for r in results if r.verifiable]
    unverifiable = [r for r in results if not r.verifiable]
    value = sum(getattr(r, attr) for r in verifiable)
    checks = ", ".join(r.check for r in verifiable)
    details = {"check": check, "ledger": [
        {"check": r.check, "acknowledged": r.acknowledged, "checked": r.checked, "found": r.found, "lost": r.lost,
         "duplicates": r.duplicates, "verifiable": r.verifiable, "detail": r.detail} for r in results]}
    acknowledged = sum(r.acknowledged for r in verifiable)
    checked = sum(r.checked for r in verifiable)
    sampled = f", {checked} of {acknowledged} checked" if checked and checked < acknowledged else ""
    why = "; ".join(f"{r.check}: {r.detail or 'unverifiable'}" for r in unverifiable)
    if verifiable and value > limit:
        extra = f"; not verifiable: {why}" if unverifiable else ""
        return result(spec, SloStatus.FAIL, value, limit, "writes",
                      f"{value:g} acknowledged writes {noun} ({checks} check{sampled}), limit {limit:g}{extra}", details)
    if unverifiable:
        return not_verifiable(spec, f"ledger not verifiable ({why})", "writes", details)
    return result(spec, SloStatus.PASS, value, limit, "writes",
                  f"{value:g} of {acknowledged} acknowledged writes {noun} ({checks} check{sampled}), limit {limit:g}",
                  details)


@metric(SloMetric.LOST_WRITES, LostWritesParams, "acknowledged writes missing from Kafka or the store at the end")
def lost_writes(spec: SloSpec, run: Judging) -> SloResult:
    return _ledger(spec, run, "lost", "lost")


@metric(SloMetric.DUPLICATES, DuplicatesParams, "acknowledged writes found more than once")
def duplicates(spec: SloSpec, run: Judging) -> SloResult:
    return _ledger(spec, run, "duplicates", "duplicated")


@metric(SloMetric.DATA_REJECTED, DataRejectedParams,
        "bad payloads refused with a 4xx, and poison messages found in the dead-letter topic")
def data_rejected(spec: SloSpec, run: Judging) -> SloResult:
    record, limit = run.record, spec.params.max_accepted
    totals = {key: w for key, w in record.totals().items() if key[1].startswith(stats.CHAOS_PREFIX)}
    sent = sum(w.count for w in totals.values())
    accepted = sum(w.failures for w in totals.values())  # the sender reports a rejection as success
    poison_sent, dlq_count = record.meta.get("poison_sent"), record.meta.get("dlq_count")
    if not sent and poison_sent is None:
        return not_verifiable(spec, "no bad payloads were sent (no '[chaos] ' requests, no poison_sent)", "requests")
    per_kind = [{"endpoint": f"{k[0]} {k[1]}", "sent": w.count, "accepted": w.failures} for k, w in sorted(totals.items())]
    details = {"sent": sent, "accepted": accepted, "max_accepted": limit, "kinds": per_kind,
               "poison_sent": poison_sent, "dlq_count": dlq_count}
    problems, notes = [], []
    if sent:
        words = f"{accepted} of {sent} bad payloads accepted instead of rejected, limit {limit:g}"
        if accepted > limit:
            worst = [f"{k[1][len(stats.CHAOS_PREFIX):]}: {w.failures}" for k, w in sorted(totals.items()) if w.failures]
            problems.append(words + " (" + "; ".join(worst) + ")")
        else:
            notes.append(words)
    if poison_sent is not None:
        if dlq_count is None:
            notes.append(f"{poison_sent} poison messages sent; dead-letter count unknown")
        elif dlq_count < poison_sent:
            problems.append(f"only {dlq_count} of {poison_sent} poison messages reached the dead-letter topic")
        else:
            notes.append(f"{dlq_count} of {poison_sent} poison messages dead-lettered")
    status = SloStatus.FAIL if problems else SloStatus.PASS
    return result(spec, status, float(accepted), limit, "requests", "; ".join(problems + notes), details)
