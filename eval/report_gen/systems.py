"""The systems compared by the benchmark, run on precomputed query embeddings.

Each model embeds the test images ONCE (:func:`embed_queries`); every system of that model reuses the
vectors and the retrieved reports, and only its drafting step differs. A system's per-study latency is
its share of the batched embedding time + its retrieval + its drafting, measured in this process.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from eclip_core.data.manifest import Study
from eclip_core.text import join_report

log = logging.getLogger(__name__)


@dataclass
class StudyDraft:
    """One system's draft for one study, with what it retrieved (for label-precision@k)."""

    study_id: str
    text: str
    latency_ms: float
    retrieved_ids: list[str] = field(default_factory=list)
    retrieved_labels: list[dict] = field(default_factory=list)


@dataclass
class SystemOutput:
    """All drafts of one system, in the order of the studies it ran on."""

    key: str
    name: str
    drafts: list[StudyDraft]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def study_ids(self) -> list[str]:
        return [d.study_id for d in self.drafts]


@dataclass
class Retrieval:
    """The reports one model retrieved for each query, and how long each retrieval took."""

    reports: list[list[Any]]
    retrieve_ms: list[float]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def embed_queries(model: Any, studies: Sequence[Study], *, batch_size: int = 32,
                  progress: bool = True) -> tuple[np.ndarray, float]:
    """Embed the first image of every study once; returns (vectors [n, D], mean ms per image)."""
    t0 = time.perf_counter()
    vectors = model.embed_images([s.image_paths[0] for s in studies], batch_size=batch_size, progress=progress)
    return vectors, _ms(t0) / max(len(studies), 1)


def retrieve_all(retriever: Any, vectors: np.ndarray, *, k: int, candidates: int, diversify: str | None,
                 progress: bool = True, desc: str = "retrieve") -> Retrieval:
    """Retrieve ``k`` reports per query vector (``diversify=None``: the plain nearest ``k``, nearest first)."""
    reports, times = [], []
    for vec in tqdm(vectors, desc=desc, disable=not progress, unit="study"):
        t0 = time.perf_counter()
        got = retriever.retrieve_vector(vec, k=k, candidates=max(candidates, k), diversify=diversify)
        times.append(_ms(t0))
        reports.append(list(got))
    return Retrieval(reports, times)


def _labels_of(report: Any) -> dict:
    labels = getattr(report, "labels", None)
    if labels:
        return dict(labels)
    from eclip_core.labeler import label_report

    return label_report(join_report(getattr(report, "findings", ""), getattr(report, "impression", "")))


def sentences_to_text(sentences: Sequence[Any]) -> str:
    """SourcedSentence list -> report text (findings then impression), as the pipeline assembles it."""
    findings = " ".join(s.text for s in sentences if s.section == "findings")
    impression = " ".join(s.text for s in sentences if s.section == "impression")
    return join_report(findings, impression)


def run_drafter(key: str, name: str, studies: Sequence[Study], embed_ms: float, retrieval: Retrieval,
                drafter: Callable[[list[Any]], str], *, label_retrieval: Retrieval | None = None,
                progress: bool = True, meta: dict | None = None) -> SystemOutput:
    """Draft every study from its retrieved reports with ``drafter`` (reports -> text), timing each draft.

    ``label_retrieval`` (default: ``retrieval``) gives the reports scored by label-precision@k.
    """
    from eclip_core.errors import EClipError

    label_retrieval = label_retrieval or retrieval
    drafts, failures = [], []
    for i, study in enumerate(tqdm(studies, desc=name, disable=not progress, unit="study")):
        t0 = time.perf_counter()
        try:
            text = drafter(retrieval.reports[i])
        except EClipError as exc:  # e.g. no usable evidence sentence: an empty draft, scored as such
            failures.append(f"{study.study_id}: {exc}")
            text = ""
        draft_ms = _ms(t0)
        shown = label_retrieval.reports[i]
        drafts.append(StudyDraft(
            study_id=study.study_id, text=text,
            latency_ms=embed_ms + retrieval.retrieve_ms[i] + draft_ms,
            retrieved_ids=[r.study_id for r in shown], retrieved_labels=[_labels_of(r) for r in shown],
        ))
    meta = dict(meta or {})
    if failures:
        log.warning("%s: %d of %d drafts failed (scored as empty), first: %s", name, len(failures), len(drafts),
                    failures[0])
        meta["failed_drafts"] = failures
    return SystemOutput(key, name, drafts, meta)


def top1_text(reports: list[Any]) -> str:
    """CXR-RePaiR-style baseline: the nearest report, whole."""
    from rag_report.consensus import top1_draft

    return sentences_to_text(top1_draft(reports))


def consensus_text(reports: list[Any]) -> str:
    """Similarity-weighted majority of the retrieved reports' sentences (the pipeline's consensus mode)."""
    from eclip_core.labeler import sentence_observations
    from rag_report.consensus import consensus_draft

    return sentences_to_text(consensus_draft(reports, observations=sentence_observations))


def grounded_drafter(llm: Any, max_sentences: int) -> Callable[[list[Any]], str]:
    """Evidence-constrained LLM drafting (rag_report.grounded) as a reports -> text function."""
    from rag_report.grounded import GroundedConfig, grounded_draft

    cfg = GroundedConfig(max_sentences=max_sentences)

    def draft(reports: list[Any]) -> str:
        out = grounded_draft(llm, reports, cfg)
        return join_report(out.findings, out.impression)

    return draft


def free_drafter(llm: Any, max_new_tokens: int, num_beams: int = 1) -> Callable[[list[Any]], str]:
    """The paper's protocol: retrieved reports in a few-shot prompt, the LLM writes freely."""
    from rag_report.free import FreeConfig, free_draft

    cfg = FreeConfig(max_new_tokens=max_new_tokens, num_beams=num_beams)

    def draft(reports: list[Any]) -> str:
        out = free_draft(llm, reports, cfg)
        return join_report(out.findings, out.impression)

    return draft


def random_system(studies: Sequence[Study], corpus: Sequence[Study], *, k: int, seed: int,
                  name: str = "random retrieval") -> SystemOutput:
    """Floor: each study gets a uniformly random corpus report (seeded; same seed, same drafts).

    The draft is the first of ``k`` random reports; all ``k`` are scored by label-precision@k.
    """
    if not corpus:
        raise ValueError("random retrieval needs a non-empty corpus")
    rng = np.random.default_rng(seed)
    drafts = []
    for study in studies:
        t0 = time.perf_counter()
        picks = rng.choice(len(corpus), size=min(k, len(corpus)), replace=False)
        chosen = [corpus[int(j)] for j in picks]
        text = chosen[0].report_text
        drafts.append(StudyDraft(study.study_id, text, _ms(t0), [c.study_id for c in chosen],
                                 [dict(c.labels) if c.labels else _labels_of(c) for c in chosen]))
    return SystemOutput("random", name, drafts, {"seed": seed, "corpus": len(corpus)})


def label_matched_system(studies: Sequence[Study], corpus: Sequence[Study], query_labels: dict[str, dict], *,
                         k: int, seed: int, name: str = "label-matched retrieval (diagnostic)") -> SystemOutput:
    """Diagnostic, not a method: retrieve corpus reports whose positive observations best match the
    study's OWN reference labels (Jaccard of positive sets; ties broken at random, seeded).

    It shows what a retriever with perfect label knowledge scores, i.e. how much room an image model
    has between random retrieval and this; it reads the answer, so never compare it as a system.
    """
    from eval.report_gen.scoring import positive_set

    rng = np.random.default_rng(seed)
    sets = [positive_set(dict(c.labels) if c.labels else _labels_of(c)) for c in corpus]
    drafts = []
    for study in studies:
        t0 = time.perf_counter()
        want = positive_set(query_labels[study.study_id])
        score = np.array([len(want & s) / max(len(want | s), 1) if (want or s) else 1.0 for s in sets])
        order = np.lexsort((rng.random(len(sets)), -score))[:k]
        chosen = [corpus[int(j)] for j in order]
        drafts.append(StudyDraft(study.study_id, chosen[0].report_text, _ms(t0), [c.study_id for c in chosen],
                                 [dict(c.labels) if c.labels else _labels_of(c) for c in chosen]))
    return SystemOutput("label_oracle", name, drafts, {"seed": seed, "diagnostic": True})


def oracle_system(studies: Sequence[Study], name: str = "oracle (own report)") -> SystemOutput:
    """Ceiling: the study's own report (scores 1 on every overlap metric by construction)."""
    return SystemOutput("oracle", name, [StudyDraft(s.study_id, s.report_text, 0.0) for s in studies], {})
