"""Expert-injection curriculum: the probability that training step ``step`` of ``total_steps`` adds an
expert batch.

cold start (s <= cold_frac*T): 0; warm-up (to warm_end_frac*T): linear p_start -> p_peak; cool-down
(to cool_end_frac*T): linear p_peak -> p_floor; afterwards p_floor. The "naive" method injects always.

>>> from eclip_core.config import TrainConfig
>>> cfg = TrainConfig()
>>> [round(expert_probability(s, 100, cfg), 3) for s in (0, 10, 25, 40, 60, 80, 100)]
[0.0, 0.0, 0.275, 0.5, 0.3, 0.1, 0.1]
"""

from __future__ import annotations

from eclip_core.config import TrainConfig


def in_cold_start(step: int, total_steps: int, cfg: TrainConfig) -> bool:
    """True while the priming loss applies (eCLIP methods only; see :func:`uses_curriculum`)."""
    return step <= cfg.cold_frac * total_steps


def uses_curriculum(cfg: TrainConfig) -> bool:
    return cfg.method in ("eclip", "mask", "random")


def expert_probability(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Probability of injecting an expert batch at ``step`` (0-based or 1-based; fractions of T decide)."""
    if cfg.method == "clip":
        return 0.0
    if cfg.method == "naive":
        return 1.0
    t = max(1, int(total_steps))
    s = float(step)
    cold, warm, cool = cfg.cold_frac * t, cfg.warm_end_frac * t, cfg.cool_end_frac * t
    if s <= cold:
        return 0.0
    if s <= warm:
        frac = (s - cold) / max(warm - cold, 1e-12)
        return cfg.p_start + frac * (cfg.p_peak - cfg.p_start)
    if s <= cool:
        frac = (s - warm) / max(cool - warm, 1e-12)
        return cfg.p_peak + frac * (cfg.p_floor - cfg.p_peak)
    return cfg.p_floor
