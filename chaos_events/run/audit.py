"""At the end of a run: reconcile the ledger of acknowledged writes with Kafka and the platform's store, and count the
poison messages that reached their dead-letter topic. The results go into the record, where the SLOs read them.

Must not import locust. Blocking calls (Kafka consumers, HTTP read-backs) run through the `run_blocking` hook the
session is given, so they never block the gevent hub.

Which reconciliations run is decided here, once:
- an SLO with `check: kafka | pipeline | all` asks for those;
- an SLO without `check` gets what the run actually has: the Kafka check when the ledger holds acknowledged writes
  and a bootstrap is known, the pipeline check when the scenario configures `ledger.read_back`.

Example:
    audit_ledger(plan, record, ledger, kafka_bootstrap="127.0.0.1:19092", kafka_topic="events", run_blocking=call)
"""
from __future__ import annotations

from typing import Any, Callable

from chaos_events.scenario.model import Plan, SloMetric

LEDGER_METRICS = (SloMetric.LOST_WRITES, SloMetric.DUPLICATES)


def ledger_checks(plan: Plan, acknowledged: int, kafka_bootstrap: str) -> set[str]:
    """The reconciliations this run needs, from its SLOs and what it has."""
    checks: set[str] = set()
    for slo in plan.slos:
        if slo.metric not in LEDGER_METRICS:
            continue
        wanted = slo.params.check
        if wanted == "all":
            checks |= {"kafka", "pipeline"}
        elif wanted:
            checks.add(wanted)
        else:
            if acknowledged and kafka_bootstrap:
                checks.add("kafka")
            if plan.ledger.read_back is not None:
                checks.add("pipeline")
    return checks


def audit_ledger(plan: Plan, record: Any, ledger: Any, kafka_bootstrap: str, kafka_topic: str,
                 run_blocking: Callable[..., Any]) -> None:
    """Run the reconciliations the SLOs need; each LedgerResult is appended to record.ledger."""
    from chaos_events.observe import ledger as ledger_mod

    checks = ledger_checks(plan, ledger.count(), kafka_bootstrap)
    deadline = plan.settings.catch_up_s
    if "kafka" in checks:
        if kafka_bootstrap:
            record.ledger.append(run_blocking(ledger_mod.audit_kafka, ledger, kafka_bootstrap, kafka_topic, deadline, None))
        else:
            record.ledger.append(ledger_mod.LedgerResult(check="kafka", acknowledged=ledger.count(), verifiable=False,
                                                         detail="no Kafka bootstrap servers: set --kafka-bootstrap"))
    if "pipeline" in checks and plan.ledger.read_back is not None:
        record.ledger.append(run_blocking(ledger_mod.audit_pipeline, ledger, plan.ledger.read_back, deadline))


def count_dead_letters(plan: Plan, record: Any, run_blocking: Callable[..., Any]) -> None:
    """Poison messages delivered, and how many reached the dead-letter topic (for data_rejected)."""
    sent = record.meta.get("poison", [])
    if not sent:
        return
    record.meta["poison_sent"] = sum(int(entry["delivered"]) for entry in sent)
    if not all(entry.get("dead_letter_topic") for entry in sent):
        return  # a scenario that names no dead-letter topic gets the count "unknown", not a guess
    from chaos_events.backends.poison import TAG_HEADER
    from chaos_events.observe.ledger import count_tagged

    found = 0
    for (bootstrap, topic), entries in _group_by_topic(sent).items():
        count = run_blocking(count_tagged, bootstrap, topic, TAG_HEADER, {e["tag"] for e in entries},
                             sum(e["delivered"] for e in entries), plan.settings.catch_up_s)
        if count is None:
            return
        found += count
    record.meta["dlq_count"] = found


def _group_by_topic(entries: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        groups.setdefault((entry["bootstrap"], entry["dead_letter_topic"]), []).append(entry)
    return groups
