"""The embedding suite's ablation ladder (CLIP -> full eCLIP, plus a random-heatmap control), its metrics
and zero-shot prompts, and its budget and inputs (:class:`EmbeddingSuiteConfig`).

>>> list(VARIANTS)[0], list(VARIANTS)[-2]
('clip', 'eclip')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from eclip_core.errors import ConfigError

#: The ablation ladder as TrainConfig overrides (what each rung adds is written next to it).
_ALWAYS_INJECT = dict(cold_frac=0.0, warm_end_frac=0.0, cool_end_frac=0.0, p_start=1.0, p_peak=1.0, p_floor=1.0)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "clip": ("CLIP (no expert data)", {"method": "clip"}),
    "mask": ("+mask (E*I, eCLIP schedule)", {"method": "mask"}),
    "mha": ("+MHA (naive: expert every step, no mixup/curriculum/priming)", {"method": "naive", "priming_weight": 0.0}),
    "mixup": (
        "+mixup (expert every step, no curriculum/priming)",
        {"method": "eclip", "priming_weight": 0.0, **_ALWAYS_INJECT},
    ),
    "curriculum": ("+curriculum (no priming)", {"method": "eclip", "priming_weight": 0.0}),
    "eclip": ("+priming = full eCLIP", {"method": "eclip"}),
    "random": ("random heatmaps (control)", {"method": "random"}),
}
PROBE_FRACTIONS = (0.01, 0.1, 1.0)
METRIC_ORDER = (
    "zero_shot_macro_f1_5",
    "zero_shot_accuracy_5",
    "i2t_R@1",
    "i2t_R@5",
    "i2t_R@10",
    "label_precision@5",
    "alignment",
    "uniformity",
    "modality_gap",
    "probe_auroc_1%",
    "probe_auroc_10%",
    "probe_auroc_100%",
)
ZERO_SHOT_PROMPTS: dict[str, list[str]] = {
    "Atelectasis": ["Atelectasis.", "There is atelectasis.", "Subsegmental atelectasis in the lung base."],
    "Cardiomegaly": ["Cardiomegaly.", "The heart is enlarged.", "Heart size is enlarged."],
    "Consolidation": ["Consolidation.", "There is airspace consolidation.", "Focal consolidation in the lung."],
    "Edema": ["Pulmonary edema.", "There is pulmonary edema.", "Interstitial edema."],
    "Pleural Effusion": ["Pleural effusion.", "There is a pleural effusion.", "Small pleural effusion."],
}


@dataclass
class EmbeddingSuiteConfig:
    """Budget and inputs of the embedding suite (``None`` manifest: the phantom default data)."""

    #: Study manifest (None: the default bundle's phantom data).
    manifest: str | None = None
    #: Model config name of every run (eclip-tiny, eclip-small, ...).
    model: str = "eclip-tiny"
    #: Freeze the text tower except its projection (as the default bundle does).
    lock_text: bool = False
    #: Training steps per run.
    steps: int = 200
    #: Training batch size.
    batch_size: int = 32
    #: Learning rate.
    lr: float = 5e-4
    #: One run per seed and variant.
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    #: Ablation variants to train.
    variants: list[str] = field(default_factory=lambda: list(VARIANTS), metadata={"choices": tuple(VARIANTS)})
    #: Split the embeddings are scored on.
    eval_split: str = "test"
    #: At most this many studies of that split (None = all).
    max_eval: int | None = field(default=None, metadata={"none": ("none", "all", "0"), "metavar": "N|all"})
    #: Linear probe trained on at most this many train studies (seeded subset; None = all).
    max_probe_train: int | None = field(default=1000, metadata={"none": ("none", "all")})
    #: k of label precision@k.
    k: int = 5
    #: Data-loader processes per training run (the weights do not depend on it).
    num_workers: int = 0
    out_dir: str = "runs/embedding"
    name: str = "embedding"
    progress: bool = True
    #: The command line that produced the run (filled in by the CLI).
    command: str = field(default="", metadata={"hidden": True})
    #: Result JSON files of earlier runs of this suite (another machine, an earlier cache) whose per-run
    #: metrics join this table; their budget must equal this one. Runs trained here take precedence.
    include_runs: list[str] = field(default_factory=list)

    def validate(self) -> EmbeddingSuiteConfig:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ConfigError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
        self.variants = [v for v in VARIANTS if v in self.variants]
        if not self.seeds:
            raise ConfigError("give at least one seed")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
