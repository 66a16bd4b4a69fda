"""The configuration of one benchmark run (every CLI flag of ``python -m eval.report_gen`` is a field)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated

import pydantic

from eclip_core.cli_config import check_fields, cli
from eclip_core.errors import ConfigError
from rag_report.pipeline import PipelineConfig

#: Every system the harness knows, in table order: key -> display name.
SYSTEMS: dict[str, str] = {
    "random": "random retrieval",
    "label_oracle": "label-matched retrieval (diagnostic)",
    "clip_top1": "CLIP top-1",
    "eclip_top1": "eCLIP top-1",
    "eclip_consensus": "eCLIP consensus",
    "eclip_grounded": "eCLIP + LLM grounded",
    "eclip_free": "eCLIP + LLM free",
    "boost_top1": "eCLIP + label boost top-1",
    "boost_grounded": "eCLIP + label boost + LLM grounded",
    "oracle": "oracle (own report)",
}
#: Pipeline systems: key -> (model, drafting mode). "clip" is the CLIP baseline, "paper" eCLIP trained with
#: the paper's objective (no label terms) and drafted without label boost, "default" the pipeline's own
#: model and config (label boost as configured) -- what ``generate_report`` uses.
PIPELINE_SYSTEMS: dict[str, tuple[str, str]] = {
    "clip_top1": ("clip", "top1"),
    "eclip_top1": ("paper", "top1"),
    "eclip_consensus": ("paper", "consensus"),
    "eclip_grounded": ("paper", "grounded"),
    "eclip_free": ("paper", "free"),
    "boost_top1": ("default", "top1"),
    "boost_grounded": ("default", "grounded"),
}
#: Systems that need the LLM (run on the first ``llm_limit`` studies only when a limit is set).
LLM_SYSTEMS = ("eclip_grounded", "eclip_free", "boost_grounded")
QUICK_MAX_STUDIES = 100
QUICK_LLM_STUDIES = 15
QUICK_FREE_STUDIES = 5
#: Words a study limit takes for "no limit" (as ``--llm-limit all``).
ALL_WORDS = ("none", "all", "0")
#: A study limit: at least 1 (pydantic checks it).
Count = Annotated[int, pydantic.Field(ge=1)]


@dataclass
class ReportGenConfig:
    """One run of the report-generation benchmark.

    ``None`` for ``manifest`` and the model / index paths means the embedded default bundle (phantom
    images, real Open-I text). With the default bundle the paper-objective eCLIP and the CLIP baseline are
    trained with the same budget as the default model when missing (cached).

    >>> cfg = ReportGenConfig(limit=20, systems=["random", "eclip_top1", "oracle"])
    >>> cfg.validate().systems
    ['random', 'eclip_top1', 'oracle']
    """

    #: Study manifest (CSV/JSONL); None: the default bundle's phantom data.
    manifest: str | None = None
    #: Split the drafts are scored on.
    split: str = field(default="test", metadata=cli(choices=("train", "val", "test")))
    #: What the default rows load and how they draft (model_dir / index_dir None: the default bundle's).
    pipeline: PipelineConfig = field(default_factory=PipelineConfig, metadata=cli(prefix=""))
    #: The paper-objective eCLIP of the "eCLIP ..." rows (None: the default bundle's; with a user manifest
    #: the pipeline's model, drafted without label boost).
    paper_model: str | None = None
    #: Index built with paper_model (None: built from the train split).
    paper_index: str | None = None
    #: CLIP baseline checkpoint (None: the default bundle's, trained with the same budget).
    clip_model: str | None = None
    #: Index built with clip_model (None: built from the train split).
    clip_index: str | None = None
    #: The systems to run (table order is fixed).
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS), metadata=cli(choices=SYSTEMS, metavar="SYSTEM"))
    #: At most this many test studies (sorted by study id, so runs are comparable); None = all.
    limit: Count | None = field(default=None, metadata=cli(none=ALL_WORDS, metavar="N|all"))
    #: LLM systems run on the first ``llm_limit`` of those studies (the slow part); None = all.
    llm_limit: Count | None = field(default=None, metadata=cli(none=ALL_WORDS, metavar="N|all"))
    #: Free-mode generation (the slowest system) on the first ``free_limit`` studies; None = llm_limit.
    free_limit: Count | None = field(default=None, metadata=cli(none=ALL_WORDS, metavar="N|all"))
    #: Systems that run on every study even with an ``llm_limit`` (e.g. the default's LLM row).
    full_systems: list[str] = field(default_factory=list, metadata=cli(choices=LLM_SYSTEMS, metavar="SYSTEM"))
    #: <= 100 studies, the grounded LLM rows on 15, free mode on 5 (models cached).
    quick: bool = False
    seed: int = 0
    #: METEOR needs Java (a JVM start costs seconds to minutes on a loaded CPU); False leaves it n/a.
    meteor: bool = True
    #: Output folder.
    out_dir: str = "runs/report_gen"
    #: Output file stem.
    name: str = "report_gen"
    progress: bool = True
    #: The exact command line that produced the run (filled in by the CLI; written with every row).
    command: str = field(default="", metadata=cli(hidden=True))

    def validate(self) -> ReportGenConfig:
        check_fields(self)  # types and choices: systems, split, full_systems, the pipeline's
        if not self.systems:
            raise ConfigError("no systems selected; choose from " + ", ".join(SYSTEMS))
        self.systems = [s for s in SYSTEMS if s in self.systems]  # table order
        pipe = self.pipeline
        if pipe.k < 1 or pipe.candidates < pipe.k:
            raise ConfigError(f"need 1 <= k <= candidates, got k={pipe.k}, candidates={pipe.candidates}")
        try:
            pipe.validate()
        except Exception as exc:  # RagReportError: the same message as a config error here
            raise ConfigError(str(exc)) from exc
        if self.quick:
            self.limit = min(self.limit or QUICK_MAX_STUDIES, QUICK_MAX_STUDIES)
            self.llm_limit = min(self.llm_limit or QUICK_LLM_STUDIES, self.limit)
            self.free_limit = min(self.free_limit or QUICK_FREE_STUDIES, self.llm_limit)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
