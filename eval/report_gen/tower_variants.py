"""The tower suite's variants (image tower, input size, label terms) and its budget and inputs: the
settings every other part of the suite (budget, training, scoring) reads.

>>> train_config(TowerSuiteConfig(), "m.csv", "cnn128_aux", 0, 10, Path("out")).label_loss_weight
1.0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eclip_core.errors import ConfigError
from rag_report.paths import text_feature_dir

_LABELS = dict(label_loss_weight=1.0)
_SOFT = dict(soft_target_weight=0.5, soft_target_temperature=0.1)
#: name -> (description, EClipConfig overrides, TrainConfig overrides). All train the eCLIP objective.
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "vit224": ("ViT 224 px (the paper's objective and size)", {"name": "eclip-small"}, {}),
    "vit128": ("ViT 128 px", {"name": "eclip-small", "image_size": 128}, {}),
    "cnn128": ("ResNet 128 px (open_clip ModifiedResNet, width 16)", {"name": "eclip-resnet16"}, {}),
    "cnn128_aux": ("ResNet 128 px + auxiliary label head", {"name": "eclip-resnet16"}, _LABELS),
    "cnn128_soft": ("ResNet 128 px + soft label targets", {"name": "eclip-resnet16"}, _SOFT),
    "cnn128_aux_soft": ("ResNet 128 px + label head + soft targets", {"name": "eclip-resnet16"}, {**_LABELS, **_SOFT}),
    "vit128_aux_soft": (
        "ViT 128 px + label head + soft targets",
        {"name": "eclip-small", "image_size": 128},
        {**_LABELS, **_SOFT},
    ),
}
#: Mean probability of an expert batch over the paper's curriculum (cold 10 % at 0, warm-up 0.05 -> 0.5 over
#: 30 %, cool-down 0.5 -> 0.1 over 40 %, then 0.1): 0.3 * 0.275 + 0.4 * 0.3 + 0.2 * 0.1.
MEAN_EXPERT_RATE = 0.2225


@dataclass
class TowerSuiteConfig:
    """Budget and inputs of the tower suite (``None`` manifest: the phantom default data)."""

    #: Study manifest (None: the default bundle's phantom data).
    manifest: str | None = None
    #: The variant whose step count sets the budget (each other variant gets the steps that cost the same).
    reference_variant: str = field(default="vit224", metadata={"choices": tuple(VARIANTS)})
    #: Training steps of the reference variant.
    reference_steps: int = 300
    #: Training batch size.
    batch_size: int = 32
    #: Learning rate.
    lr: float = 3e-4
    #: One run per seed and variant.
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    #: Image-tower variants to train.
    variants: list[str] = field(default_factory=lambda: list(VARIANTS), metadata={"choices": tuple(VARIANTS)})
    #: Timed rounds per variant when calibrating the cost of a step.
    calibration_rounds: int = 5
    #: Split the variants are scored on.
    eval_split: str = "val"
    #: Data-loader processes per training run.
    num_workers: int = 1
    out_dir: str = "runs/tower"
    name: str = "tower"
    progress: bool = True
    #: The command line that produced the run (filled in by the CLI).
    command: str = field(default="", metadata={"hidden": True})

    def validate(self) -> TowerSuiteConfig:
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

    return TrainConfig(
        manifest=str(manifest),
        output_dir=str(out),
        method="eclip",
        model=model_config(variant),
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=seed,
        progress=cfg.progress,
        checkpoint_every=max(steps // 5, 1),
        resume=True,
        num_workers=cfg.num_workers,
        validate_images=False,
        text_feature_cache_dir=str(text_feature_dir()),
        **VARIANTS[variant][2],
    )
