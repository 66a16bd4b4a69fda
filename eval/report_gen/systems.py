"""The systems compared by the benchmark.

Model-based systems run through ``ReportPipeline``'s own stages (:func:`run_pipeline_system`): each model
embeds the test images once, exactly as ``generate`` does (:func:`embed_studies`), and every system of
that model retrieves and drafts with the pipeline's ``retrieve`` and ``draft`` in its mode, so a row scores
what the library returns. The diagnostics (random retrieval, label-matched retrieval, the own report)
need no model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def _labels_of(report: Any) -> dict:
    labels = getattr(report, "labels", None)
    if labels:
        return dict(labels)
    from eclip_core.labeler import label_report

    return label_report(join_report(getattr(report, "findings", ""), getattr(report, "impression", "")))


@dataclass
class Embedded:
    """One model's view of the test studies: eCLIP vectors, predicted label probabilities, ms per study."""

    vectors: list[np.ndarray]
    probabilities: list[np.ndarray | None]
    embed_ms: list[float]


def embed_studies(pipe: Any, studies: Sequence[Study], *, progress: bool = True, desc: str = "embed") -> Embedded:
    """Each study's first X-ray through ``pipe.embed`` and ``pipe.predict_labels``, one at a time, exactly
    as ``ReportPipeline.generate`` does."""
    from rag_report.pipeline import read_image

    vectors, probs, times = [], [], []
    for study in tqdm(studies, desc=desc, disable=not progress, unit="study"):
        t0 = time.perf_counter()
        pixels = read_image(study.image_paths[0])
        vec = pipe.embed(pixels)
        probs.append(pipe.predict_labels(vec, pixels))
        times.append(_ms(t0))
        vectors.append(vec)
    return Embedded(vectors, probs, times)


def run_pipeline_system(
    key: str,
    name: str,
    pipe: Any,
    studies: Sequence[Study],
    embedded: Embedded,
    mode: str,
    *,
    llm: Any = None,
    progress: bool = True,
    meta: dict | None = None,
) -> SystemOutput:
    """Draft every study with the pipeline's own stages (retrieve, then draft in ``mode``): the same calls
    and the same text as ``ReportPipeline.generate`` for that image and config. Latency per study = its
    embedding + label prediction + retrieval + drafting."""
    from eclip_core.errors import EClipError

    drafts, failures = [], []
    for i, study in enumerate(tqdm(studies, desc=name, disable=not progress, unit="study")):
        t0 = time.perf_counter()
        probs = embedded.probabilities[i]
        reports = pipe.retrieve(embedded.vectors[i], mode=mode, probabilities=probs)
        try:
            drafted = pipe.draft(reports, mode, probabilities=probs, llm=llm)
            text = join_report(drafted.findings, drafted.impression)
        except EClipError as exc:  # e.g. no usable evidence sentence: an empty draft, scored as such
            failures.append(f"{study.study_id}: {exc}")
            text = ""
        drafts.append(
            StudyDraft(
                study_id=study.study_id,
                text=text,
                latency_ms=embedded.embed_ms[i] + _ms(t0),
                retrieved_ids=[r.study_id for r in reports],
                retrieved_labels=[_labels_of(r) for r in reports],
            )
        )
    meta = dict(meta or {})
    if failures:
        log.warning(
            "%s: %d of %d drafts failed (scored as empty), first: %s", name, len(failures), len(drafts), failures[0]
        )
        meta["failed_drafts"] = failures
    return SystemOutput(key, name, drafts, meta)


def random_system(
    studies: Sequence[Study], corpus: Sequence[Study], *, k: int, seed: int, name: str = "random retrieval"
) -> SystemOutput:
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
        drafts.append(
            StudyDraft(
                study.study_id,
                text,
                _ms(t0),
                [c.study_id for c in chosen],
                [dict(c.labels) if c.labels else _labels_of(c) for c in chosen],
            )
        )
    return SystemOutput("random", name, drafts, {"seed": seed, "corpus": len(corpus)})


def label_matched_system(
    studies: Sequence[Study],
    corpus: Sequence[Study],
    query_labels: dict[str, dict],
    *,
    k: int,
    seed: int,
    name: str = "label-matched retrieval (diagnostic)",
) -> SystemOutput:
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
        drafts.append(
            StudyDraft(
                study.study_id,
                chosen[0].report_text,
                _ms(t0),
                [c.study_id for c in chosen],
                [dict(c.labels) if c.labels else _labels_of(c) for c in chosen],
            )
        )
    return SystemOutput("label_oracle", name, drafts, {"seed": seed, "diagnostic": True})


def oracle_system(studies: Sequence[Study], name: str = "oracle (own report)") -> SystemOutput:
    """Ceiling: the study's own report (scores 1 on every overlap metric by construction)."""
    return SystemOutput("oracle", name, [StudyDraft(s.study_id, s.report_text, 0.0) for s in studies], {})
