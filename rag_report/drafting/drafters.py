"""The drafting modes, one registry: retrieved reports (+ the image's predicted labels) -> draft sentences.

Every caller that turns retrieved reports into a draft goes through :func:`draft_reports` (the pipeline,
hence ``generate_report``, the app, the CLI and the benchmark), so what is benchmarked is what ships.

* ``top1``: the first report (the nearest, or the best after label boost), its clean sentences (a sentence
  that may not enter a draft is replaced by one of another retrieved report that says the same), completed
  by up to ``finding_statements`` sentences of the next reports stating findings the image's classifiers
  predict and it leaves unsaid, and up to ``normal_statements`` negative statements about what it leaves
  unsaid;
* ``consensus``: sentences a similarity-weighted majority of the reports state;
* ``grounded``: the LLM composes the draft from the reports' sentences (:mod:`rag_report.drafting.grounded`),
  following the predicted labels when there are any;
* ``free``: the LLM writes freely from a few-shot prompt (:mod:`rag_report.drafting.free`), told the predicted
  findings when there are any; its sentences pass the same hygiene.

>>> from types import SimpleNamespace as R
>>> reports = [R(study_id="A", similarity=0.9, findings="Stable cardiomegaly.", impression="No XXXX effusion.")]
>>> [s.text for s in draft_reports("top1", reports, DraftSettings()).sentences]
['Cardiomegaly.']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rag_report.drafting.checker import CheckerConfig, check_draft
from rag_report.drafting.consensus import (
    SourcedSentence,
    add_predicted_findings,
    add_unstated_normals,
    consensus_draft,
    top1_draft,
)
from rag_report.errors import RagReportError
from rag_report.protocols import DraftingLLM, ReportLike
from rag_report.report import SentenceCheck

LLM_MODES = ("grounded", "free")


@dataclass
class DraftLimits:
    """How long a draft may be and what top1 adds: declared once here, fields of
    :class:`~rag_report.pipeline.PipelineConfig` (its base class) and of :class:`DraftSettings`."""

    #: Most new tokens of a free-mode draft.
    max_new_tokens: int = 200
    #: Most sentences in a grounded draft.
    max_sentences: int = 8
    #: top1: most normal statements (negative findings the first report leaves unsaid and the image's
    #: classifiers do not predict) added from the next retrieved reports; 0 = the first report alone.
    normal_statements: int = 3
    #: top1: most sentences added from the next retrieved reports that state a finding the image's
    #: classifiers predict present and the first report leaves unsaid; 0 = none.
    finding_statements: int = 2
    #: Beams of free-mode generation (1 = greedy; the paper uses 4).
    num_beams: int = 1


@dataclass
class DraftSettings(DraftLimits):
    """What a drafter may use besides the reports: the limits, the LLM, the predicted labels."""

    llm: DraftingLLM | None = None
    #: observation -> predicted present (from the index's label classifiers); None: no prediction.
    predicted: Mapping[str, bool] | None = None
    #: observation -> the label classifiers' probability (the draft checker's image step); None: no check.
    probabilities: Mapping[str, float] | None = None
    #: The draft checker (:mod:`rag_report.drafting.checker`); None: its defaults. ``check=False`` skips it.
    checker: CheckerConfig | None = None
    check: bool = True


@dataclass
class Drafted:
    """Sentences with their sources (free mode: sources empty), any warnings of the drafter, and what the
    draft checker did to each drafted sentence."""

    sentences: list[SourcedSentence]
    warnings: list[str] = field(default_factory=list)
    checks: list[SentenceCheck] = field(default_factory=list)

    @property
    def findings(self) -> str:
        return " ".join(s.text for s in self.sentences if s.section == "findings")

    @property
    def impression(self) -> str:
        return " ".join(s.text for s in self.sentences if s.section == "impression")


def _needs_llm(mode: str, settings: DraftSettings) -> DraftingLLM:
    if settings.llm is None:
        raise RagReportError(f"mode {mode!r} needs an LLM")
    return settings.llm


def _top1(reports: Sequence[ReportLike], settings: DraftSettings) -> Drafted:
    from eclip_core.labeler import sentence_observations

    draft = top1_draft(reports, observations=sentence_observations)
    if settings.finding_statements > 0 and draft:
        draft = add_predicted_findings(
            draft, reports, sentence_observations, settings.predicted, max_added=settings.finding_statements
        )
    if settings.normal_statements > 0 and draft:
        draft = add_unstated_normals(
            draft, reports, sentence_observations, settings.predicted, max_added=settings.normal_statements
        )
    return Drafted(draft)


def _consensus(reports: Sequence[ReportLike], settings: DraftSettings) -> Drafted:
    from eclip_core.labeler import sentence_observations

    return Drafted(consensus_draft(reports, observations=sentence_observations))


def _grounded(reports: Sequence[ReportLike], settings: DraftSettings) -> Drafted:
    from rag_report.drafting.grounded import GroundedConfig, grounded_draft

    out = grounded_draft(
        _needs_llm("grounded", settings),
        reports,
        GroundedConfig(max_sentences=settings.max_sentences),
        predicted=settings.predicted,
    )
    return Drafted([SourcedSentence(s.text, s.section, list(s.source_ids), float(s.support)) for s in out.sentences])


def _free(reports: Sequence[ReportLike], settings: DraftSettings) -> Drafted:
    from eclip_core.text import split_sentences
    from rag_report.drafting.free import FreeConfig, free_draft
    from rag_report.drafting.hygiene import clean_sentences

    findings = None
    if settings.predicted is not None:
        findings = [name for name, on in settings.predicted.items() if on]
    out = free_draft(
        _needs_llm("free", settings),
        reports,
        FreeConfig(max_new_tokens=settings.max_new_tokens, num_beams=settings.num_beams),
        predicted_findings=findings,
    )
    sentences = [
        SourcedSentence(s, section, [])
        for section, text in (("findings", out.findings), ("impression", out.impression))
        for s in clean_sentences(split_sentences(text))
    ]
    return Drafted(sentences, list(out.warnings))


#: mode -> drafter(reports, settings). The LLM modes need ``settings.llm`` (RagReportError without it).
DRAFTERS: dict[str, Callable[[Sequence[ReportLike], DraftSettings], Drafted]] = {
    "top1": _top1,
    "consensus": _consensus,
    "grounded": _grounded,
    "free": _free,
}


def draft_reports(mode: str, reports: Sequence[ReportLike], settings: DraftSettings) -> Drafted:
    """Draft with ``mode`` (a key of :data:`DRAFTERS`) from ``reports`` (most relevant first), then pass the
    draft through the draft checker (:func:`rag_report.drafting.checker.check_draft`) unless ``settings.check`` is off."""
    if mode not in DRAFTERS:
        raise RagReportError(f"unknown drafting mode {mode!r}; choose one of {tuple(DRAFTERS)}")
    drafted = DRAFTERS[mode](reports, settings)  # the LLM modes raise when settings.llm is None
    if not settings.check:
        return drafted
    from eclip_core.labeler import sentence_observations

    kept, checks = check_draft(
        drafted.sentences,
        reports,
        observations=sentence_observations,
        probabilities=settings.probabilities,
        predicted=settings.predicted,
        config=settings.checker,
    )
    return Drafted(kept, drafted.warnings, checks)
