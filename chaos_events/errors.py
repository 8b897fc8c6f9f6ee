"""The harness's exceptions: one root, and one subclass per way a run can go wrong.

Pure module: imports nothing beyond the standard library.
Adapters translate their library's errors at the boundary (`raise InjectionError(...) from exc`).
"""
from __future__ import annotations

from dataclasses import dataclass


class ChaosError(Exception):
    """Root of every error the harness raises on purpose."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located precisely.

    Example: Problem("scenarios/x.yml", 12, "faults[2] (latency)", "unknown parameter 'latncy'; expected one of: jitter_ms, latency_ms")
    renders as `scenarios/x.yml:12 faults[2] (latency): unknown parameter 'latncy'; expected one of: jitter_ms, latency_ms`.
    """

    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where} {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class PlanError(ChaosError):
    """A scenario or option is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SafetyError(ChaosError):
    """The production guard or the allow-list refused the run."""


class InjectionError(ChaosError):
    """A fault could not be injected. Its revert is still attempted."""


class RevertError(ChaosError):
    """A fault could not be reverted: the system is left degraded. Exit code 4."""

    exit_code = 4
