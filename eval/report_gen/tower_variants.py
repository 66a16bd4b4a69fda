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
_LOCKED = dict(lr=1e-3)
_LOCKED_AUX_SOFT = {**_LOCKED, **_LABELS, **_SOFT}


def _lite0(size: int, locked: bool) -> dict[str, Any]:
    return {"name": "eclip-resnet16", "image_weights": "efficientnet-lite0", "image_size": size, "lock_image": locked}


#: name -> (description, EClipConfig overrides, TrainConfig overrides). All train the eCLIP objective unless
#: their TrainConfig overrides name another method.
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
    # The packaged ImageNet EfficientNet-Lite0 (eclip_core.towers), with the default's label terms; a locked
    # trunk trains only the projections and the label head, at `rag-report train`'s rate for that setting.
    "lite0_128_locked": ("EfficientNet-Lite0 ImageNet 128 px, trunk locked", _lite0(128, True), _LOCKED_AUX_SOFT),
    "lite0_224_locked": ("EfficientNet-Lite0 ImageNet 224 px, trunk locked", _lite0(224, True), _LOCKED_AUX_SOFT),
    "lite0_128_tuned": ("EfficientNet-Lite0 ImageNet 128 px, fine-tuned", _lite0(128, False), {**_LABELS, **_SOFT}),
    "lite0_224_tuned": ("EfficientNet-Lite0 ImageNet 224 px, fine-tuned", _lite0(224, False), {**_LABELS, **_SOFT}),
    # The paper's claim in its own setting: eCLIP's objective vs CLIP's on the same pretrained tower.
    "lite0_224_locked_paper": ("EfficientNet-Lite0 224 px locked, eCLIP (paper objective)", _lite0(224, True), _LOCKED),
    "lite0_224_locked_clip": (
        "EfficientNet-Lite0 224 px locked, CLIP (same steps)",
        _lite0(224, True),
        {**_LOCKED, "method": "clip"},
    ),
}
#: Variants that train the steps of another (a paired comparison: same seeds, same steps, other objective).
SAME_STEPS_AS = {"lite0_224_locked_clip": "lite0_224_locked_paper"}
#: Pretrained towers compared seed by seed with the small ResNet from scratch (+ label terms) in the same compute
#: budget: the baseline a pretrained tower has to beat.
BUDGET_PAIRS = {
    v: "cnn128_aux_soft" for v in ("lite0_128_locked", "lite0_224_locked", "lite0_128_tuned", "lite0_224_tuned")
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
    #: Steps of a variant given as NAME=N instead of calibrated (e.g. to rerun a published table's budget);
    #: with every run variant given, nothing is calibrated.
    variant_steps: list[str] = field(default_factory=list, metadata={"metavar": "NAME=N"})
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
        self.given_steps()
        return self

    def given_steps(self) -> dict[str, int]:
        """``variant_steps`` as {variant: steps}; a malformed entry or an unknown variant raises ConfigError.

        >>> TowerSuiteConfig(variant_steps=["cnn128=959", "vit224=300"]).given_steps()
        {'cnn128': 959, 'vit224': 300}
        """
        out: dict[str, int] = {}
        for item in self.variant_steps:
            name, _, count = item.partition("=")
            if name not in VARIANTS or not count.strip().isdigit() or int(count) < 1:
                raise ConfigError(f"--variant-steps {item!r}: give NAME=N with N >= 1 and NAME one of {list(VARIANTS)}")
            out[name] = int(count)
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def model_config(variant: str):
    from eclip_core.config import EClipConfig

    return EClipConfig(lock_text=True, **VARIANTS[variant][1])


def train_config(cfg: TowerSuiteConfig, manifest: str, variant: str, seed: int, steps: int, out: Path):
    from eclip_core.config import TrainConfig

    settings: dict[str, Any] = {"method": "eclip", "lr": cfg.lr, **VARIANTS[variant][2]}
    return TrainConfig(
        manifest=str(manifest),
        output_dir=str(out),
        model=model_config(variant),
        steps=steps,
        batch_size=cfg.batch_size,
        seed=seed,
        progress=cfg.progress,
        checkpoint_every=max(steps // 5, 1),
        resume=True,
        num_workers=cfg.num_workers,
        validate_images=False,
        text_feature_cache_dir=str(text_feature_dir()),
        **settings,
    )
