"""The paired-ratio interval that decides the harness-overhead goal (bench/interval.py)."""
from __future__ import annotations

import pytest

from bench.interval import paired_ratio_interval, t95


def test_interval_of_paired_ratios_matches_a_hand_computation():
    # ratios 0.97, 0.99, 0.98: mean 0.98, sd 0.01, half-width t(2) * 0.01 / sqrt(3) = 4.303 * 0.005774 = 0.02484
    interval = paired_ratio_interval([100, 100, 100], [97, 99, 98])
    assert (interval.mean, interval.low, interval.high, interval.n) == (0.98, 0.9552, 1.0048, 3)
    assert interval.decision(0.97) == "undecided"


def test_a_tight_interval_decides_the_goal_either_way():
    met = paired_ratio_interval([100] * 8, [99, 99.2, 98.8, 99.1, 98.9, 99, 99.1, 98.9])
    assert met.low > 0.98 and met.decision(0.97) == "met"
    missed = paired_ratio_interval([100] * 8, [90, 90.5, 89.5, 90.2, 89.8, 90, 90.1, 89.9])
    assert missed.high < 0.91 and missed.decision(0.97) == "missed"


def test_pairs_drift_cancels_within_a_pair():
    # The machine slows down by half over the runs; the ratio within each pair stays 0.98, so the interval is exact.
    baseline = [1000, 900, 800, 700, 600, 500]
    interval = paired_ratio_interval(baseline, [b * 0.98 for b in baseline])
    assert interval.low == interval.high == 0.98


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="pairs must match"):
        paired_ratio_interval([1, 2], [1])
    with pytest.raises(ValueError, match="at least two pairs"):
        paired_ratio_interval([1], [1])
    assert t95(1) == 12.706 and t95(30) == 2.042 and t95(200) == 1.96
