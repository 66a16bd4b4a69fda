"""``python -m eval.report_gen --suite tower``: which image tower learns most in the default's CPU budget.

Every variant trains on the manifest's train split with the SAME compute budget as the default bundle's
paper eCLIP run (``reference``: eclip-small, 224 px ViT, 300 steps of batch 32), once per seed, and is
scored on the val split. The budget is turned into steps per variant by :func:`calibrate`: one training
step of each variant (plain and with an expert batch, mixed at the curriculum's mean injection rate) is
timed in this process, interleaved over rounds, in single-thread CPU time (robust to other load on the
machine), and ``steps = reference_steps * cost(reference) / cost(variant)``.

Scores on val (:func:`evaluate_variant`): label classifiers over the frozen image embeddings (fitted on
train, :mod:`rag_report.label_classifiers`), their AUROC per observation; cross-modal retrieval
(label-P@5, R@5) and clinical F1 of the top-1 report with and without label boost.

>>> cfg = TowerSuiteConfig(seeds=[0], variants=["vit224"])
>>> cfg.validate().variants
['vit224']
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eclip_core.errors import ConfigError
from eclip_core.paths import rag_report_home

log = logging.getLogger(__name__)

_LABELS = dict(label_loss_weight=1.0)
_SOFT = dict(soft_target_weight=0.5, soft_target_temperature=0.1)
#: name -> (description, EClipConfig overrides, TrainConfig overrides). All train the eCLIP objective.
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "vit224": ("ViT 224 px (the paper's objective; today's default)", {"name": "eclip-small"}, {}),
    "vit128": ("ViT 128 px", {"name": "eclip-small", "image_size": 128}, {}),
    "cnn128": ("ResNet 128 px (open_clip ModifiedResNet, width 16)", {"name": "eclip-resnet16"}, {}),
    "cnn128_aux": ("ResNet 128 px + auxiliary label head", {"name": "eclip-resnet16"}, _LABELS),
    "cnn128_soft": ("ResNet 128 px + soft label targets", {"name": "eclip-resnet16"}, _SOFT),
    "cnn128_aux_soft": ("ResNet 128 px + label head + soft targets", {"name": "eclip-resnet16"},
                        {**_LABELS, **_SOFT}),
    "vit128_aux_soft": ("ViT 128 px + label head + soft targets", {"name": "eclip-small", "image_size": 128},
                        {**_LABELS, **_SOFT}),
}
#: Mean probability of an expert batch over the paper's curriculum (cold 10 % at 0, warm-up 0.05 -> 0.5 over
#: 30 %, cool-down 0.5 -> 0.1 over 40 %, then 0.1): 0.3 * 0.275 + 0.4 * 0.3 + 0.2 * 0.1.
MEAN_EXPERT_RATE = 0.2225


@dataclass
class TowerSuiteConfig:
    """Budget and inputs of the tower suite (``None`` manifest: the phantom default data)."""

    manifest: str | None = None
    reference_variant: str = "vit224"
    reference_steps: int = 300
    batch_size: int = 32
    lr: float = 3e-4
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    calibration_rounds: int = 5
    eval_split: str = "val"
    num_workers: int = 1
    out_dir: str = "runs/tower"
    name: str = "tower"
    progress: bool = True
    command: str = ""

    def validate(self) -> "TowerSuiteConfig":
        unknown = [v for v in [*self.variants, self.reference_variant] if v not in VARIANTS]
        if unknown:
            raise ConfigError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
        self.variants = [v for v in VARIANTS if v in self.variants]
        if not self.seeds or self.reference_steps < 1:
            raise ConfigError("give at least one seed and reference_steps >= 1")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def model_config(variant: str):
    from eclip_core.config import EClipConfig

    return EClipConfig(lock_text=True, **VARIANTS[variant][1])


def train_config(cfg: TowerSuiteConfig, manifest: str, variant: str, seed: int, steps: int, out: Path):
    from eclip_core.config import TrainConfig

    return TrainConfig(manifest=str(manifest), output_dir=str(out), method="eclip", model=model_config(variant),
                       steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, progress=cfg.progress,
                       checkpoint_every=max(steps // 5, 1), resume=True, num_workers=cfg.num_workers,
                       validate_images=False, **VARIANTS[variant][2])


# ---------------------------------------------------------------------------------------------- budget
def step_costs(variants: list[str], batch_size: int, rounds: int, seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Single-thread CPU seconds of one training step per variant: {variant: {"plain": [...], "expert": [...]}}.

    Every variant runs once per round (plain step, then a step with an expert batch of half the size), in a
    new seeded order each round, on synthetic grey images and reports of Open-I length.
    """
    import torch

    from eclip_core.config import TrainConfig
    from eclip_core.losses import ClipLoss
    from eclip_core.model import EClip
    from eclip_core.training.optim import build_optimizer
    from eclip_core.training.step import train_step
    from eval.bench.train_step import _batch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    state = {}
    try:
        for v in variants:
            torch.manual_seed(seed)
            extra = VARIANTS[v][2]
            tc = TrainConfig(model=model_config(v), lr=3e-4, **extra)
            model_cfg = model_config(v)
            model_cfg.label_head = tc.label_loss_weight > 0
            model = EClip(model_cfg).train()
            model.enable_text_feature_cache()
            opt = build_optimizer(model, tc)
            batch = _batch(model, batch_size, max(1, batch_size // 2), rng)
            if tc.uses_labels:
                g = torch.Generator().manual_seed(seed)
                batch["labels"] = (torch.rand(batch_size, 14, generator=g) > 0.8).float()
                batch["expert_labels"] = batch["labels"][: max(1, batch_size // 2)]
            plain = {k: x for k, x in batch.items() if not k.startswith("expert")}
            plain["inject"] = False
            loss = ClipLoss(tc.soft_target_weight, tc.soft_target_temperature)
            state[v] = (model, opt, loss, tc.label_loss_weight, {"plain": plain, "expert": batch})
            for b in (plain, batch):  # warm-up: text cache, allocator
                train_step(model, opt, loss, b, prime=False, priming_weight=0.0, grad_clip=1.0,
                           label_loss_weight=tc.label_loss_weight)
        times: dict[str, dict[str, list[float]]] = {v: {"plain": [], "expert": []} for v in variants}
        for _ in range(rounds):
            order = list(variants)
            rng.shuffle(order)
            for v in order:
                model, opt, loss, w, batches = state[v]
                for kind in ("plain", "expert"):
                    t0 = time.process_time()
                    train_step(model, opt, loss, batches[kind], prime=False, priming_weight=0.0, grad_clip=1.0,
                               label_loss_weight=w)
                    times[v][kind].append(time.process_time() - t0)
        return times
    finally:
        torch.set_num_threads(threads)


def calibrate(cfg: TowerSuiteConfig) -> dict[str, Any]:
    """Steps per variant for the reference's budget (cached under $RAG_REPORT_HOME/eval/tower)."""
    names = sorted({cfg.reference_variant, *cfg.variants})
    key = hashlib.sha256(json.dumps({"v": names, "b": cfg.batch_size, "r": cfg.calibration_rounds,
                                     "defs": {n: VARIANTS[n][1:] for n in names}}, sort_keys=True).encode()).hexdigest()[:10]
    path = rag_report_home() / "eval" / "tower" / f"calibration-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    times = step_costs(names, cfg.batch_size, cfg.calibration_rounds)
    cost = {v: [p + MEAN_EXPERT_RATE * (e - p) for p, e in zip(t["plain"], t["expert"])] for v, t in times.items()}
    ratio = {v: statistics.median(a / b for a, b in zip(cost[v], cost[cfg.reference_variant])) for v in names}
    steps = {v: max(1, round(cfg.reference_steps / ratio[v])) for v in names}
    out = {"times": times, "cost_ratio": ratio, "steps": steps, "reference": cfg.reference_variant,
           "reference_steps": cfg.reference_steps, "mean_expert_rate": MEAN_EXPERT_RATE}
    from eclip_core.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    return out


# ---------------------------------------------------------------------------------------------- training
def run_dir(cfg: TowerSuiteConfig, manifest: str, variant: str, seed: int, steps: int) -> Path:
    key = json.dumps({"manifest": str(Path(manifest).resolve()), "defs": VARIANTS[variant][1:], "steps": steps,
                      "batch": cfg.batch_size, "lr": cfg.lr, "seed": seed}, sort_keys=True)
    return rag_report_home() / "eval" / "tower" / f"{variant}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def train_variant(cfg: TowerSuiteConfig, manifest: str, variant: str, seed: int, steps: int) -> tuple[Path, float]:
    """Train (or reuse the cached) model of one variant and seed; returns (model dir, train seconds)."""
    from eclip_core.train import train

    out = run_dir(cfg, manifest, variant, seed, steps)
    info_path = out / "suite_run.json"
    if (out / "model" / "config.json").is_file() and info_path.is_file():
        return out / "model", float(json.loads(info_path.read_text())["train_seconds"])
    t0 = time.perf_counter()
    result = train(train_config(cfg, manifest, variant, seed, steps, out))
    seconds = time.perf_counter() - t0
    info_path.write_text(json.dumps({"train_seconds": seconds, "final_loss": result.final_loss, "steps": steps}))
    return Path(result.model_dir), seconds
