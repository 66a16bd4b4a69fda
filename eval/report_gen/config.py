"""The configuration of one benchmark run (every CLI flag of ``python -m eval.report_gen`` is a field)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from eclip_core.errors import ConfigError

#: Every system the harness knows, in table order: key -> display name.
SYSTEMS: dict[str, str] = {
    "random": "random retrieval",
    "label_oracle": "label-matched retrieval (diagnostic)",
    "clip_top1": "CLIP top-1",
    "eclip_top1": "eCLIP top-1",
    "eclip_consensus": "eCLIP consensus",
    "eclip_grounded": "eCLIP + LLM grounded",
    "eclip_free": "eCLIP + LLM free",
    "oracle": "oracle (own report)",
}
#: Systems that need the LLM (run on the first ``llm_limit`` studies only when a limit is set).
LLM_SYSTEMS = ("eclip_grounded", "eclip_free")
QUICK_MAX_STUDIES = 100
QUICK_LLM_STUDIES = 30
QUICK_FREE_STUDIES = 10


@dataclass
class ReportGenConfig:
    """One run of the report-generation benchmark.

    ``None`` for ``manifest`` / ``model`` / ``index`` means the embedded default bundle (phantom images,
    real Open-I text). ``clip_model`` / ``clip_index`` are the baseline's; with the default bundle the
    CLIP baseline is trained with the same budget as eCLIP when missing.

    >>> cfg = ReportGenConfig(limit=20, systems=["random", "eclip_top1", "oracle"])
    >>> cfg.validate().systems
    ['random', 'eclip_top1', 'oracle']
    """

    manifest: str | None = None
    split: str = "test"
    model: str | None = None
    index: str | None = None
    clip_model: str | None = None
    clip_index: str | None = None
    llm: str | None = None
    quantization: str = "auto"  # rag_report.precision: nf4 on CUDA / bf16 CPUs, else fp32
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    #: At most this many test studies (sorted by study id, so runs are comparable); None = all.
    limit: int | None = None
    #: LLM systems run on the first ``llm_limit`` of those studies (the slow part); None = all.
    llm_limit: int | None = None
    #: Free-mode generation (the slowest system) on the first ``free_limit`` studies; None = llm_limit.
    free_limit: int | None = None
    quick: bool = False
    seed: int = 0
    k: int = 5
    candidates: int = 100
    diversify: str | None = "kmeans"
    max_sentences: int = 8
    max_new_tokens: int = 200
    #: Free mode: 1 = greedy (CPU budget); the eCLIP reference code uses beam 4.
    num_beams: int = 1
    batch_size: int = 32
    #: METEOR needs Java (a JVM start costs seconds to minutes on a loaded CPU); False leaves it n/a.
    meteor: bool = True
    out_dir: str = "runs/report_gen"
    name: str = "report_gen"
    progress: bool = True
    #: The exact command line that produced the run (filled in by the CLI; written with every row).
    command: str = ""

    def validate(self) -> "ReportGenConfig":
        unknown = [s for s in self.systems if s not in SYSTEMS]
        if unknown:
            raise ConfigError(f"unknown system(s) {unknown}; choose from {list(SYSTEMS)}")
        if not self.systems:
            raise ConfigError("no systems selected; choose from " + ", ".join(SYSTEMS))
        self.systems = [s for s in SYSTEMS if s in self.systems]  # table order
        if self.split not in ("train", "val", "test"):
            raise ConfigError(f"split must be train, val or test, got {self.split!r}")
        for name in ("limit", "llm_limit", "free_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1 or unset, got {value}")
        if self.k < 1 or self.candidates < self.k:
            raise ConfigError(f"need 1 <= k <= candidates, got k={self.k}, candidates={self.candidates}")
        if self.diversify not in (None, "kmeans", "mmr"):
            raise ConfigError(f"diversify must be kmeans, mmr or none, got {self.diversify!r}")
        if self.quick:
            self.limit = min(self.limit or QUICK_MAX_STUDIES, QUICK_MAX_STUDIES)
            self.llm_limit = min(self.llm_limit or QUICK_LLM_STUDIES, self.limit)
            self.free_limit = min(self.free_limit or QUICK_FREE_STUDIES, self.llm_limit)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
