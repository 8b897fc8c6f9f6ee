"""A paired-ratio 95% confidence interval, so a benchmark can say whether its goal is met, missed, or not yet decided
by its runs (pure: no I/O).

Runs alternate A B A B; each pair gives one ratio B/A, which cancels the drift that both runs of a pair share. The
interval is Student's t on the mean of those ratios.

Example: paired_ratio_interval([100, 102, 98], [97, 99, 96]) -> RatioInterval(mean=0.9734, low=..., high=..., n=3)
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

# Two-sided 95% critical values of Student's t by degrees of freedom (1-30); beyond 30, the normal 1.96 is close.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class RatioInterval:
    mean: float
    low: float
    high: float
    n: int

    def decision(self, goal: float) -> str:
        """'met' when the whole interval is at or above `goal`, 'missed' when it is all below, else 'undecided'."""
        if self.low >= goal:
            return "met"
        if self.high < goal:
            return "missed"
        return "undecided"


def t95(degrees_of_freedom: int) -> float:
    if degrees_of_freedom < 1:
        raise ValueError("a confidence interval needs at least two pairs")
    return _T95[degrees_of_freedom - 1] if degrees_of_freedom <= len(_T95) else 1.96


def paired_ratio_interval(baseline: Sequence[float], treated: Sequence[float]) -> RatioInterval:
    """95% interval of the mean of treated[i] / baseline[i] over the pairs."""
    if len(baseline) != len(treated):
        raise ValueError(f"pairs must match: {len(baseline)} baseline runs, {len(treated)} treated runs")
    ratios = [t / b for b, t in zip(baseline, treated) if b > 0]
    if len(ratios) < 2:
        raise ValueError("a confidence interval needs at least two pairs with a non-zero baseline")
    mean = statistics.fmean(ratios)
    half = t95(len(ratios) - 1) * statistics.stdev(ratios) / math.sqrt(len(ratios))
    return RatioInterval(round(mean, 4), round(mean - half, 4), round(mean + half, 4), len(ratios))
