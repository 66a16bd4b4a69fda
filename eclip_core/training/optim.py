"""Optimiser and schedule: AdamW without decay on biases / norms / temperature, 2x lr for the processor,
linear warm-up then cosine decay to zero (step-based)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from eclip_core.config import TrainConfig


def _no_decay(name: str, param: torch.Tensor) -> bool:
    lowered = name.lower()
    return (
        param.ndim < 2
        or "bias" in lowered
        or "norm" in lowered
        or ".ln_" in lowered
        or lowered.startswith("ln_")
        or "logit_scale" in lowered
        or "logit_bias" in lowered
    )


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Four groups: {backbone, processor} x {decay, no decay}; frozen parameters are left out."""
    groups: dict[tuple[bool, bool], list] = {(p, d): [] for p in (False, True) for d in (False, True)}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        groups[(name.startswith("heatmap_processor."), not _no_decay(name, param))].append(param)
    out = []
    for (is_proc, decay), params in groups.items():
        if params:
            out.append(
                {
                    "params": params,
                    "lr": cfg.lr * (cfg.processor_lr_mult if is_proc else 1.0),
                    "weight_decay": cfg.weight_decay if decay else 0.0,
                    "name": f"{'processor' if is_proc else 'backbone'}_{'decay' if decay else 'no_decay'}",
                }
            )
    return out


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    groups = param_groups(model, cfg)
    kwargs: dict[str, Any] = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    try:
        # The fused kernel (CPU and CUDA) is much faster than the per-tensor loop torch uses on CPU.
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, **kwargs)


def cosine_lambda(total_steps: int, warmup_steps: int):
    """Multiplier of the base lr at scheduler step s: (s+1)/warmup, then half a cosine to 0."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))

    return f


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = int(round(cfg.warmup_frac * cfg.steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_lambda(cfg.steps, warmup))
