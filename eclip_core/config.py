"""Typed configs of the model (:class:`EClipConfig`) and of training (:class:`TrainConfig`).

Every constant of the eCLIP method is a field. Where the paper and the authors' reference code
disagree, the paper's value is the default and :meth:`TrainConfig.preset` gives the other one:

=====================  =======  =========
constant               paper    ref. code
=====================  =======  =========
mixup_alpha            0.3      0.2
priming_weight         0.1      0.3
p_floor (cool-down)    0.1      0.05
heatmap_norm           sample   batch
=====================  =======  =========

Configs load from JSON or YAML files and from plain dicts (unknown keys are an error, so a typo
never silently falls back to a default):

>>> cfg = TrainConfig.from_dict({"steps": 10, "model": {"name": "eclip-tiny"}})
>>> cfg.model.name, cfg.steps, cfg.mixup_alpha
('eclip-tiny', 10, 0.3)
>>> TrainConfig.preset("ref").priming_weight
0.3
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Annotated, Any

import pydantic

from eclip_core.cli_config import check_fields, cli, deep_update, from_mapping, read_config_file
from eclip_core.errors import ConfigError

METHODS = ("clip", "eclip", "naive", "mask", "random")
PROCESSOR_VARIANTS = ("mha", "mask", "random")
HEATMAP_NORMS = ("sample", "batch")
WEIGHT_FORMATS = ("auto", "timm", "torchvision", "open_clip", "efficientnet_pytorch")
MIXED_PRECISION = ("no", "fp16", "bf16")
#: What training validation selects on (TrainConfig.val_metric).
VAL_METRICS = ("loss", "recall")
#: Bounded numbers: pydantic checks the bounds (``validate()``, config files and flags alike).
Positive = Annotated[float, pydantic.Field(gt=0)]
NonNegative = Annotated[float, pydantic.Field(ge=0)]
Fraction = Annotated[float, pydantic.Field(ge=0, le=1)]


@dataclass
class EClipConfig:
    """The model: an open_clip CLIP (built from a named model config) plus a heatmap processor.

    ``name`` is a JSON model config in ``eclip_core/configs`` (``eclip-tiny``, ``eclip-small``) or any
    open_clip architecture (``ViT-B-16``, ``RN50``); ``pretrained`` an optional local weights file of
    that architecture (a whole open_clip checkpoint; every key must match). ``image_tower`` /
    ``image_weights`` start the image tower alone from pretrained weights (eclip_core.towers). Nothing is
    ever downloaded.
    """

    name: str = "eclip-small"
    pretrained: str | None = None
    #: A timm architecture replacing the model config's image tower (tf_efficientnet_lite0, resnet50,
    #: densenet121, ...; its first convolution takes one grey channel); none keeps the config's tower.
    image_tower: str | None = None
    #: Pretrained weights of the image tower: 'efficientnet-lite0' (ImageNet, shipped in a package; implies
    #: image_tower tf_efficientnet_lite0) or a local safetensors/.pth file (timm or torchvision state dict
    #: for image_tower, else an open_clip visual tower); none starts from random weights.
    image_weights: str | None = None
    #: Key names of image_weights: auto (from the keys), timm, torchvision, open_clip, efficientnet_pytorch.
    image_weights_format: str = field(default="auto", metadata={"choices": WEIGHT_FORMATS})
    #: Override the model config's image size (pixels, square); None keeps it.
    image_size: int | None = None
    #: Freeze the text tower except its projection (much faster on a CPU with a pretrained text tower).
    lock_text: bool = False
    #: Freeze a timm image tower's trunk (its pretrained features, BatchNorm statistics included) and train
    #: only its projection: on a small real archive this keeps the ImageNet features the fine-tuning would
    #: wear down, and a CPU step needs no backward pass through the trunk.
    lock_image: bool = False
    #: Heatmap processor (spec: patch conv 16 -> 256-d, 8-head MHA, transposed conv back).
    processor_variant: str = field(default="mha", metadata={"choices": PROCESSOR_VARIANTS})
    processor_dim: int = 256
    processor_heads: int = 8
    processor_patch: int = 16
    #: Heatmap scaling: divide by the per-sample max (sane) or by the batch max (reference code).
    heatmap_norm: str = field(default="sample", metadata={"choices": HEATMAP_NORMS})
    #: Image pipeline: grey [0,1] -> (x - mean) / std -> 3 channels. Mean; none: what the image weights expect (0.58 for a tower from scratch).
    image_mean: float | None = None
    #: Input normalisation std; none: what the image weights expect (0.26 for a tower from scratch).
    image_std: Positive | None = None
    crop_scale_min: float = 0.5
    crop_scale_max: float = 1.0
    clahe_p: Fraction = 0.3
    clahe_clip_limit: float = 2.0
    clahe_tiles: int = 8
    #: Temperature tau = 1 / logit_scale: initial value and clamp range.
    temperature_init: float = 0.07
    temperature_min: float = 0.01
    temperature_max: float = 2.0
    #: A linear head from the image embedding to the 14 CheXpert observations (trained by
    #: TrainConfig.label_loss_weight; not part of the paper's model).
    label_head: bool = False

    def validate(self) -> EClipConfig:
        check_fields(self)  # types, choices and bounds
        if not 0 < self.crop_scale_min <= self.crop_scale_max <= 1:
            raise ConfigError(
                f"crop scale must satisfy 0 < crop_scale_min <= crop_scale_max <= 1, got "
                f"({self.crop_scale_min}, {self.crop_scale_max})"
            )
        if not 0 < self.temperature_min <= self.temperature_init <= self.temperature_max:
            raise ConfigError(
                f"need 0 < temperature_min <= temperature_init <= temperature_max, got "
                f"{self.temperature_min}, {self.temperature_init}, {self.temperature_max}"
            )
        if self.pretrained and self.image_weights:
            raise ConfigError(
                "give either pretrained (a whole open_clip checkpoint) or image_weights (the image tower's), "
                f"not both (got {self.pretrained!r} and {self.image_weights!r})"
            )
        if self.processor_dim % self.processor_heads:
            raise ConfigError(
                f"processor_dim {self.processor_dim} must be divisible by processor_heads {self.processor_heads}"
            )
        return self

    @property
    def logit_scale_bounds(self) -> tuple[float, float]:
        """(min, max) of the log logit scale, i.e. log(1/tau_max), log(1/tau_min)."""
        return math.log(1.0 / self.temperature_max), math.log(1.0 / self.temperature_min)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EClipConfig:
        return from_mapping(cls, data, "model config")


@dataclass
class TrainConfig:
    """One training run. Every CLI flag of ``python -m eclip_core.train`` is a field here."""

    manifest: str = ""
    output_dir: str = "runs/eclip"
    method: str = field(default="eclip", metadata={"choices": METHODS})
    #: The model (a config file may give just its name: ``model: eclip-small``).
    model: EClipConfig = field(default_factory=EClipConfig, metadata={"shorthand": "name"})
    split: str = "train"
    # Schedule and optimiser (step-based).
    steps: Annotated[int, pydantic.Field(ge=1)] = 1000
    batch_size: Annotated[int, pydantic.Field(ge=2)] = 32
    #: Expert batch size; None = batch_size // 2 (spec: B/2 mixed expert pairs appended).
    expert_batch_size: Annotated[int, pydantic.Field(ge=1)] | None = None
    lr: Positive = 1e-4
    weight_decay: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup_frac: Fraction = 0.1
    grad_clip: NonNegative = 1.0
    processor_lr_mult: float = 2.0
    # eCLIP objective.
    mixup_alpha: Positive = 0.3
    priming_weight: Fraction = 0.1
    #: Label-aware terms (not in the paper; 0 = the paper's objective, computed exactly as without them).
    #: Auxiliary multi-label loss on report-derived labels through the model's label head, added to L_clip
    #: with this weight:
    label_loss_weight: NonNegative = 0.0
    #: Soft contrastive targets: (1 - w) one-hot + w softmax(label cosine / T), so that reports with the same
    #: findings are not pushed apart as negatives (MedCLIP's semantic matching idea).
    soft_target_weight: Fraction = 0.0
    soft_target_temperature: Positive = 0.1
    #: Curriculum: cold start until cold_frac*T, rise p_start -> p_peak until warm_end_frac*T,
    #: fall p_peak -> p_floor until cool_end_frac*T, then stay at p_floor.
    cold_frac: float = 0.1
    warm_end_frac: float = 0.4
    cool_end_frac: float = 0.8
    p_start: Fraction = 0.05
    p_peak: Fraction = 0.5
    p_floor: Fraction = 0.1
    # Runtime.
    seed: int = 42
    mixed_precision: str = field(default="no", metadata={"choices": MIXED_PRECISION})
    cpu: bool = False
    num_workers: int = 0
    #: Expert heatmaps built from fixations are kept in memory (per data-loader process) up to this size.
    heatmap_cache_mb: float = 1024.0
    #: With a locked Hugging Face text tower, encode each report's frozen tower once and reuse it (exact).
    cache_text_features: bool = True
    #: Folder where those features persist between runs (None: this run only). A caller's cache setting, no
    #: flag: `rag-report train` and the default bundle use $RAG_REPORT_HOME/text_features.
    text_feature_cache_dir: str | None = field(default=None, metadata=cli(hidden=True))
    checkpoint_every: int = 0
    #: Every this many steps and at the last step, score the manifest's val split (image -> report loss and
    #: R@1/5/10, logged to metrics.jsonl; eclip_core.training.validation); 0 = never.
    val_every: Annotated[int, pydantic.Field(ge=0)] = 0
    #: With val_every: the model saved is the scored step with the best val metric, not the last step
    #: (without val_every there is nothing to choose by: the last step).
    keep_best: bool = False
    #: With val_every: stop training once this many scorings in a row have not improved the val metric
    #: (0 = run every step; a run of one process only).
    val_patience: Annotated[int, pydantic.Field(ge=0)] = 0
    #: What keep_best and val_patience compare: "loss", the val image -> report cross-entropy (lower is
    #: better), or "recall", the mean of val R@1/5/10 (higher is better; a later step must beat the kept
    #: one by more than one standard error over the val rows, else the earlier step is kept).
    val_metric: str = field(default="loss", metadata={"choices": VAL_METRICS})
    #: The manifest split that val_every scores.
    val_split: str = "val"
    resume: bool = False
    log_every: int = 10
    progress: bool = True
    #: Bad manifest rows: decode every image before training (drop unreadable rows) and whether a bad
    #: row is fatal instead of skipped with one warning.
    validate_images: bool = True
    fail_on_bad_rows: bool = False

    def validate(self) -> TrainConfig:
        check_fields(self)  # types, choices and bounds, the model's too
        if not 0 <= self.cold_frac <= self.warm_end_frac <= self.cool_end_frac <= 1:
            raise ConfigError(
                "curriculum fractions must satisfy 0 <= cold_frac <= warm_end_frac <= cool_end_frac <= 1, got "
                f"{self.cold_frac}, {self.warm_end_frac}, {self.cool_end_frac}"
            )
        if self.val_every and self.val_split == self.split:
            raise ConfigError(f"val_split and split are both {self.split!r}: validate on rows that do not train")
        self.model.validate()
        return self

    @property
    def uses_labels(self) -> bool:
        """True when a label-aware term is on (batches then carry each report's label row)."""
        return self.label_loss_weight > 0 or self.soft_target_weight > 0

    @property
    def effective_expert_batch_size(self) -> int:
        return self.expert_batch_size if self.expert_batch_size is not None else max(1, self.batch_size // 2)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return from_mapping(cls, data, "train config")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TrainConfig:
        """Load from a .json, .yaml or .yml file."""
        return cls.from_dict(read_config_file(path))

    @classmethod
    def preset(cls, which: str = "paper", **overrides: Any) -> TrainConfig:
        """The paper's constants (default) or the reference code's (``"ref"``), plus overrides."""
        if which not in ("paper", "ref"):
            raise ConfigError(f"preset must be 'paper' or 'ref', got {which!r}")
        cfg = cls()
        if which == "ref":
            cfg.mixup_alpha, cfg.priming_weight, cfg.p_floor = 0.2, 0.3, 0.05
            cfg.model.heatmap_norm = "batch"
        data = cfg.to_dict()
        deep_update(data, overrides)
        return cls.from_dict(data)
