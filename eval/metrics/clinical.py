"""Clinical-efficacy F1: labels of generated vs reference reports by the project's CheXpert-style labeler.

Conventions (printed with every number):

* Labels come from :func:`eclip_core.labeler.label_reports` (or a matrix you pass), shape [n, 14] in
  :data:`eclip_core.labels.CHEXPERT_OBSERVATIONS` order; NaN = not mentioned.
* "Not mentioned" and negative (0) count as negative.
* Uncertain (-1) is mapped by the *policy*: ``uncertain_as_negative`` or ``uncertain_as_positive``;
  both are reported (the policy alone moves micro-F1 by a few points).
* micro-F1 pools true/false positives over the observations; macro-F1 averages per-observation F1,
  and an observation with no positive in either predictions or references has F1 = 0 (scikit-learn's
  ``zero_division=0``, what CheXbert-based evaluations print).
* "14" = all 14 observations including "No Finding"; "5" = COMMON_FIVE (Atelectasis, Cardiomegaly,
  Consolidation, Edema, Pleural Effusion).

>>> ref = np.array([[1, 0], [np.nan, 1]], float); pred = np.array([[1, 1], [-1, 1]], float)
>>> binarize(pred, "uncertain_as_positive").tolist()
[[True, True], [True, True]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eclip_core.labels import CHEXPERT_OBSERVATIONS, COMMON_FIVE

POLICIES = ("uncertain_as_negative", "uncertain_as_positive")
COLUMNS = ("micro_f1_14", "macro_f1_14", "micro_f1_5", "macro_f1_5")
_FIVE_IDX = [CHEXPERT_OBSERVATIONS.index(o) for o in COMMON_FIVE]


def binarize(labels: np.ndarray, policy: str) -> np.ndarray:
    """Label matrix (1 / 0 / -1 / NaN) -> boolean positives under an uncertain policy."""
    if policy not in POLICIES:
        raise ValueError(f"unknown uncertain policy {policy!r}; use one of {POLICIES}")
    labels = np.asarray(labels, dtype=float)
    positive = labels == 1.0
    if policy == "uncertain_as_positive":
        positive |= labels == -1.0
    return positive


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def f1_scores(pred: np.ndarray, ref: np.ndarray, policy: str = "uncertain_as_negative") -> dict[str, float]:
    """Micro/macro F1 over the 14 observations and over COMMON_FIVE, for one uncertain policy.

    Returns the :data:`COLUMNS` keys, ``per_observation`` (name -> F1) and ``policy``.
    """
    pred, ref = np.asarray(pred, float), np.asarray(ref, float)
    if pred.shape != ref.shape or pred.ndim != 2 or pred.shape[1] != len(CHEXPERT_OBSERVATIONS):
        raise ValueError(
            f"label matrices must both be [n, {len(CHEXPERT_OBSERVATIONS)}]; got predictions "
            f"{pred.shape} and references {ref.shape}"
        )
    p, r = binarize(pred, policy), binarize(ref, policy)
    tp = (p & r).sum(0).astype(float)
    fp = (p & ~r).sum(0).astype(float)
    fn = (~p & r).sum(0).astype(float)
    per = _f1(tp, fp, fn)
    out: dict = {
        "micro_f1_14": float(_f1(tp.sum(), fp.sum(), fn.sum())),
        "macro_f1_14": float(per.mean()),
        "micro_f1_5": float(_f1(tp[_FIVE_IDX].sum(), fp[_FIVE_IDX].sum(), fn[_FIVE_IDX].sum())),
        "macro_f1_5": float(per[_FIVE_IDX].mean()),
        "per_observation": {name: float(v) for name, v in zip(CHEXPERT_OBSERVATIONS, per)},
        "policy": policy,
    }
    return out


def clinical_f1(pred: np.ndarray, ref: np.ndarray) -> dict[str, dict]:
    """:func:`f1_scores` under both uncertain policies: ``{policy: scores}``."""
    return {policy: f1_scores(pred, ref, policy) for policy in POLICIES}


def clinical_f1_from_texts(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, dict]:
    """Label both sides with the project's labeler, then :func:`clinical_f1`.

    >>> r = clinical_f1_from_texts(["Cardiomegaly."], ["The heart is enlarged."])
    >>> r["uncertain_as_negative"]["micro_f1_14"]
    1.0
    """
    from eclip_core.labeler import label_reports

    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses but {len(references)} references")
    return clinical_f1(label_reports(hypotheses), label_reports(references))


__all__ = ["clinical_f1", "clinical_f1_from_texts", "f1_scores", "binarize", "POLICIES", "COLUMNS"]
