"""Statistics for interleaved timing benchmarks on a shared machine.

Each round times every variant once, so a ratio taken within a round cancels whatever load the machine
had during that round; the median of those per-round ratios, with a bootstrap interval over rounds, is
the honest summary of "how much slower is A than B".

>>> r = paired_ratio([3.0, 3.3, 2.9, 3.1], [2.0, 2.2, 2.0, 2.0])
>>> round(r.median, 3), r.lo <= r.median <= r.hi
(1.5, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RatioEstimate:
    """Median of per-round ratios and its percentile-bootstrap interval (``level``, over rounds)."""

    median: float
    lo: float
    hi: float
    rounds: int
    level: float = 0.95

    def verdict(self, target: float) -> str:
        """'met' when the whole interval is at or under ``target``, 'missed' when all of it is over,
        otherwise 'at the target' (the interval contains it: more rounds or a quieter machine decide)."""
        if self.hi <= target:
            return "met"
        if self.lo > target:
            return "missed"
        return "at the target"

    def __str__(self) -> str:
        return f"{self.median:.3f}x [{self.lo:.3f}, {self.hi:.3f}]"


def paired_ratio(
    times: Sequence[float], base: Sequence[float], level: float = 0.95, resamples: int = 4000, seed: int = 0
) -> RatioEstimate:
    """``times[r] / base[r]`` per round r, summarised by its median and a bootstrap interval of the median."""
    t, b = np.asarray(times, dtype=float), np.asarray(base, dtype=float)
    if t.shape != b.shape or t.ndim != 1 or t.size == 0:
        raise ValueError(f"need two equally long, non-empty series of per-round times, got {t.shape} and {b.shape}")
    if np.any(b <= 0) or np.any(t <= 0):
        raise ValueError("times must be positive")
    ratios = t / b
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, ratios.size, size=(resamples, ratios.size))
    medians = np.median(ratios[picks], axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(medians, [alpha, 1.0 - alpha])
    return RatioEstimate(float(np.median(ratios)), float(lo), float(hi), int(ratios.size), level)


def p50_ratio(
    times: Sequence[float], base: Sequence[float], level: float = 0.95, resamples: int = 4000, seed: int = 0
) -> RatioEstimate:
    """``median(times) / median(base)`` with a bootstrap interval that resamples rounds (pairs) together.

    Where the two variants do different work for the same input (e.g. two precisions drafting different
    sentences), the median of per-round ratios (:func:`paired_ratio`) and the ratio of the medians can
    differ; the latter is "how much lower is the typical latency".

    >>> r = p50_ratio([3.0, 1.0, 2.0], [4.0, 4.0, 2.0])
    >>> round(r.median, 3)
    0.5
    """
    t, b = np.asarray(times, dtype=float), np.asarray(base, dtype=float)
    if t.shape != b.shape or t.ndim != 1 or t.size == 0:
        raise ValueError(f"need two equally long, non-empty series of per-round times, got {t.shape} and {b.shape}")
    if np.any(b <= 0) or np.any(t <= 0):
        raise ValueError("times must be positive")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, t.size, size=(resamples, t.size))
    ratios = np.median(t[picks], axis=1) / np.median(b[picks], axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(ratios, [alpha, 1.0 - alpha])
    return RatioEstimate(float(np.median(t) / np.median(b)), float(lo), float(hi), int(t.size), level)
