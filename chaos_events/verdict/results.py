"""What a verdict is made of: one SloResult per SLO, and the Verdict with its exit code.

Pure: standard library only.

Example:
    SloResult("no-loss", SloMetric.LOST_WRITES, SloStatus.FAIL, 1532, 0, "writes",
              "1532 acknowledged writes lost (kafka check), limit 0")
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from chaos_events.errors import ExitCode
from chaos_events.scenario.model import SloMetric


class SloStatus(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_VERIFIABLE = "not_verifiable"


@dataclass(frozen=True)
class SloResult:
    """The judgement of one SLO. `message` says what, when and by how much; `details` is JSON-serialisable.

    `optional`: the scenario marked the SLO optional, so NOT_VERIFIABLE does not fail the run (shown as skipped).
    """

    name: str
    metric: SloMetric
    status: SloStatus
    value: float | None
    limit: float | None
    unit: str
    message: str
    details: dict = field(default_factory=dict)
    optional: bool = False

    @property
    def headline(self) -> str:
        """`metric: message`, the form of the JUnit failure message."""
        return f"{self.metric.value}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "metric": self.metric.value, "status": self.status.value, "value": self.value,
            "limit": self.limit, "unit": self.unit, "message": self.message, "details": self.details,
            "optional": self.optional,
        }


@dataclass(frozen=True)
class Verdict:
    """All SLO results of a run plus the exit code. Invariant: exit_code follows from results and the run's events.

    `headline` is the one line that says why the run passed or not ("experiment incomplete: ...").
    """

    results: tuple[SloResult, ...]
    exit_code: int
    revert_failed: bool
    summary: dict
    headline: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "exit_code": int(self.exit_code), "revert_failed": self.revert_failed,
            "headline": self.headline, "summary": self.summary, "results": [r.to_dict() for r in self.results],
        }
