"""Curriculum values at the spec's checkpoints, for the paper's and the reference code's floors."""

import pytest

from eclip_core.config import TrainConfig
from eclip_core.curriculum import expert_probability, in_cold_start

T = 1000
POINTS = (0, 100, 250, 400, 600, 800, 1000)


@pytest.mark.parametrize("preset,floor", [("paper", 0.1), ("ref", 0.05)])
def test_values_at_spec_points(preset, floor):
    cfg = TrainConfig.preset(preset)
    got = [expert_probability(s, T, cfg) for s in POINTS]
    mid_cool = 0.5 + 0.5 * (floor - 0.5)
    expected = [0.0, 0.0, 0.05 + 0.5 * 0.45, 0.5, mid_cool, floor, floor]
    assert got == pytest.approx(expected)


def test_shape_between_points():
    cfg = TrainConfig()
    assert expert_probability(101, T, cfg) == pytest.approx(0.05 + 0.45 / 300)  # rises right after cold start
    assert expert_probability(900, T, cfg) == pytest.approx(0.1)
    assert in_cold_start(100, T, cfg) and not in_cold_start(101, T, cfg)


def test_naive_and_clip_baselines():
    assert all(expert_probability(s, T, TrainConfig(method="naive")) == 1.0 for s in POINTS)
    assert all(expert_probability(s, T, TrainConfig(method="clip")) == 0.0 for s in POINTS)
