"""Score one system's drafts against the references: NLG metrics, clinical F1, label-precision@k, latency.

References and drafts go through the same normalisation (eclip_core.text; the metric code tokenises
both with ``tokenize_for_metrics``) and the same labeler (eclip_core.labeler). Clinical F1 is given
under both uncertain-label policies, each number with its policy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from eclip_core.labels import CHEXPERT_OBSERVATIONS

log = logging.getLogger(__name__)

NLG_COLUMNS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
POLICIES = ("uncertain_as_negative", "uncertain_as_positive")
CLINICAL_COLUMNS = ("micro_f1_14", "macro_f1_14", "micro_f1_5", "macro_f1_5")


def positive_set(labels: dict | None) -> frozenset[str]:
    """Observations labelled positive (uncertain counts as negative here), for label-precision@k."""
    return frozenset(k for k, v in (labels or {}).items() if v is not None and float(v) == 1.0)


def label_precision_at_k(
    query_labels: Sequence[dict], retrieved_labels: Sequence[Sequence[dict]], k: int = 5
) -> float | None:
    """Mean over queries of the fraction of the top-``k`` retrieved reports whose set of positive
    CheXpert observations equals the query's (a normal study matches a normal report).

    >>> q = [{"Edema": 1.0}, {"No Finding": 1.0}]
    >>> r = [[{"Edema": 1.0}, {"Edema": 0.0}], [{"No Finding": 1.0}, {"No Finding": 1.0}]]
    >>> label_precision_at_k(q, r, k=2)
    0.75
    """
    scores = []
    for q, got in zip(query_labels, retrieved_labels):
        got = list(got)[:k]
        if not got:
            continue
        target = positive_set(q)
        scores.append(sum(positive_set(g) == target for g in got) / len(got))
    return float(np.mean(scores)) if scores else None


def nlg_scores(
    references: Sequence[str], hypotheses: Sequence[str], *, meteor: bool = True
) -> tuple[dict[str, float | None], list[str]]:
    """Corpus-level BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap engine via eval.metrics).

    Returns (scores, notes); a metric that cannot run (METEOR without Java) is None with a note.
    """
    from eval.metrics import nlg

    result = nlg.compute_nlg(list(hypotheses), list(references), meteor=meteor)
    scores = {c: result.get(c) for c in NLG_COLUMNS}
    notes = list(result.get("notes", []) or [])
    return scores, notes


def clinical_scores(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, dict[str, float]]:
    """Clinical micro/macro-F1 over the 14 observations and the 5 common ones, per uncertain policy."""
    from eval.metrics import clinical

    return clinical.clinical_f1_from_texts(list(hypotheses), list(references))


def score_system(
    output: Any, references: dict[str, str], reference_labels: dict[str, dict], *, k: int = 5, meteor: bool = True
) -> dict[str, Any]:
    """All metrics of one :class:`~eval.report_gen.systems.SystemOutput` against the references."""
    ids = output.study_ids
    refs = [references[i] for i in ids]
    hyps = [d.text for d in output.drafts]
    nlg, notes = nlg_scores(refs, hyps, meteor=meteor)
    clinical = clinical_scores(refs, hyps)
    has_retrieval = any(d.retrieved_labels for d in output.drafts)
    lp = (
        label_precision_at_k([reference_labels[i] for i in ids], [d.retrieved_labels for d in output.drafts], k)
        if has_retrieval
        else None
    )
    latency = [d.latency_ms for d in output.drafts]
    empty = sum(1 for h in hyps if not h.strip())
    return {
        "nlg": nlg,
        "clinical": clinical,
        f"label_precision@{k}": lp,
        "latency_ms_mean": float(np.mean(latency)) if latency else None,
        "latency_ms_p95": float(np.percentile(latency, 95)) if latency else None,
        "n_studies": len(ids),
        "n_empty_drafts": empty,
        # How many different texts a system produced: a retriever that collapses onto a few "hub" reports
        # scores well on the majority pattern (normal studies) while saying the same thing to everyone.
        "distinct_drafts": len({h.strip() for h in hyps}),
        "notes": notes,
        "observations": list(CHEXPERT_OBSERVATIONS),
    }


#: LLM row -> the top-1 row of the same model it is compared with on the same studies.
PAIRED_TOP1 = {"eclip_grounded": "eclip_top1", "eclip_free": "eclip_top1", "boost_grounded": "boost_top1"}
PAIRED_COLUMNS = ("micro_f1_5", "micro_f1_14", "macro_f1_14")


def paired_with_top1(rows: Sequence[dict], references: dict[str, str]) -> list[dict[str, Any]]:
    """Each LLM row against its model's top-1 row on the LLM row's own studies (uncertain -> negative).

    LLM rows often score fewer studies than the retrieval rows; this puts both on the same ones.
    """
    by_system = {r["system"]: r for r in rows}
    out = []
    for llm_key, top1_key in PAIRED_TOP1.items():
        if llm_key not in by_system or top1_key not in by_system:
            continue
        llm_drafts, top1_drafts = by_system[llm_key]["drafts"], by_system[top1_key]["drafts"]
        ids = [s for s in llm_drafts if s in top1_drafts]
        if not ids:
            continue
        refs = [references[s] for s in ids]
        scores = {}
        for key, drafts in ((llm_key, llm_drafts), (top1_key, top1_drafts)):
            f1 = clinical_scores(refs, [drafts[s] for s in ids])["uncertain_as_negative"]
            scores[key] = {c: float(f1[c]) for c in PAIRED_COLUMNS}
        better = all(scores[llm_key][c] >= scores[top1_key][c] for c in ("micro_f1_5", "micro_f1_14"))
        out.append({"llm": llm_key, "top1": top1_key, "n": len(ids), "scores": scores, "llm_at_least_top1": better})
    return out
