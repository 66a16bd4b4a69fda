"""Paired per-round ratios for the interleaved timing benchmarks (eval.bench.stats)."""

import numpy as np
import pytest

from eval.bench.stats import RatioEstimate, paired_ratio


def test_constant_ratio_has_a_zero_width_interval():
    base = np.array([1.0, 1.3, 0.9, 2.0, 1.1])  # load changes from round to round; the ratio does not
    r = paired_ratio(1.5 * base, base)
    assert r.median == pytest.approx(1.5) and r.lo == pytest.approx(1.5) and r.hi == pytest.approx(1.5)
    assert r.rounds == 5


def test_pairing_cancels_round_to_round_load():
    rng = np.random.default_rng(1)
    load = rng.uniform(1.0, 1.6, 40)  # a noisy machine: both variants slowed alike within a round
    base = 1.0 * load
    times = 1.55 * load * rng.normal(1.0, 0.005, 40)
    r = paired_ratio(times, base)
    assert abs(r.median - 1.55) < 0.005 and r.hi - r.lo < 0.01
    # unpaired medians would have been dragged by the different load in each round; paired ones are not
    assert r.verdict(1.6) == "met" and r.verdict(1.5) == "missed"


def test_interval_covers_the_median_and_widens_with_noise():
    rng = np.random.default_rng(2)
    base = np.ones(30)
    quiet = paired_ratio(1.6 + rng.normal(0, 0.01, 30), base)
    noisy = paired_ratio(1.6 + rng.normal(0, 0.1, 30), base)
    assert quiet.lo <= quiet.median <= quiet.hi and noisy.lo <= noisy.median <= noisy.hi
    assert noisy.hi - noisy.lo > 3 * (quiet.hi - quiet.lo)
    assert noisy.verdict(1.6) == "at the target"


def test_verdict_boundaries():
    assert RatioEstimate(1.59, 1.58, 1.60, 9).verdict(1.6) == "met"
    assert RatioEstimate(1.62, 1.601, 1.63, 9).verdict(1.6) == "missed"
    assert RatioEstimate(1.60, 1.59, 1.61, 9).verdict(1.6) == "at the target"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equally long"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        paired_ratio([1.0, 0.0], [1.0, 1.0])


def test_p50_ratio_is_the_ratio_of_medians_with_a_paired_interval():
    from eval.bench.stats import p50_ratio

    a = [2.0, 6.0, 3.0, 2.5, 5.0]
    b = [4.0, 8.0, 4.0, 5.0, 9.0]
    r = p50_ratio(a, b)
    assert r.median == pytest.approx(3.0 / 5.0) and r.rounds == 5
    assert r.lo <= r.median <= r.hi
    # Not the median of the per-round ratios (0.5, 0.75, 0.75, 0.5, 0.556): rounds differ in work.
    assert paired_ratio(a, b).median == pytest.approx(5.0 / 9.0)
    with pytest.raises(ValueError):
        p50_ratio([1.0], [1.0, 2.0])
