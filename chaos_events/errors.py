"""The harness's exit codes and exceptions: one root exception, and one subclass per way a run can go wrong.

Pure module: imports nothing beyond the standard library.
Adapters translate their library's errors at the boundary (`raise InjectionError(...) from exc`).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """How a run (or a `chaos-events` command) ends. The one table of exit codes; everything else imports it.

    With several causes the most urgent wins, in this order: REVERT_FAILED, BAD_INPUT, HALTED, INCOMPLETE,
    SLO_FAILED (SLOs judged on an incomplete experiment prove nothing either way). Failed requests during a fault are expected and never decide the code by themselves.
    """

    OK = 0              # every planned fault was injected and reverted; every required SLO was judged and held
    BAD_INPUT = 2       # bad scenario, option or payload; production guard; a harness or judging error
    SLO_FAILED = 3      # an SLO broke, or a required SLO could not be verified (the same code as locust-plugins)
    REVERT_FAILED = 4   # a fault could not be reverted: the system is left degraded, someone must look
    HALTED = 5          # a stop condition (halt_when) tripped: faults reverted, the rest of the timeline cancelled
    INCOMPLETE = 6      # the experiment proved nothing complete: a fault was not injected, or no steady state

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "every planned fault happened and every required SLO was judged and held",
    ExitCode.BAD_INPUT: "bad input (scenario, option, payload), the production guard, or a harness error",
    ExitCode.SLO_FAILED: "an SLO broke, or a required SLO could not be verified",
    ExitCode.REVERT_FAILED: "a fault could not be reverted: the system is left degraded",
    ExitCode.HALTED: "a stop condition tripped: the run was halted",
    ExitCode.INCOMPLETE: "experiment incomplete: a planned fault was not injected, or the steady state was not met",
}
EXIT_PRIORITY = (ExitCode.REVERT_FAILED, ExitCode.BAD_INPUT, ExitCode.HALTED, ExitCode.INCOMPLETE, ExitCode.SLO_FAILED)


def most_urgent(codes) -> ExitCode:
    """The code that wins among several causes (ExitCode.OK when there are none)."""
    present = set(codes)
    return next((code for code in EXIT_PRIORITY if code in present), ExitCode.OK)


class ChaosError(Exception):
    """Root of every error the harness raises on purpose."""

    exit_code = ExitCode.BAD_INPUT


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
    """A fault could not be reverted: the system is left degraded."""

    exit_code = ExitCode.REVERT_FAILED
