"""Scores of the real-image suite: patient-grouped linear probes, image->note recall against its exact chance,
and patient-cluster bootstrap intervals.

>>> x = np.array([[0.0], [0.1], [1.0], [1.1], [0.05], [1.05]])
>>> y, groups = np.array([0, 0, 1, 1, 0, 1]), np.array([1, 2, 3, 4, 5, 6])
>>> round(auroc(y, grouped_cv_probe(x, y, groups, folds=3, seed=0)), 3)
1.0
>>> round(chance_recall(n=10, matches=1, k=5), 3)  # one right note of 10: 5 draws of 10
0.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of binary ``y`` (NaN when only one class is present)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    return float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else float("nan")


def _probe():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))


def grouped_cv_probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold probabilities of a standardised logistic probe, folds stratified and grouped by patient
    (no patient in both the fitting and the scored part)."""
    from sklearn.model_selection import StratifiedGroupKFold

    x, y = np.asarray(x, np.float64), np.asarray(y)
    out = np.full(len(y), np.nan)
    for fit, score in StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, groups):
        if len(np.unique(y[fit])) < 2:
            continue
        out[score] = _probe().fit(x[fit], y[fit]).predict_proba(x[score])[:, 1]
    return out


def split_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Probabilities on ``test_x`` of the probe fitted on the train rows."""
    return _probe().fit(np.asarray(train_x, np.float64), np.asarray(train_y)).predict_proba(test_x)[:, 1]


def chance_recall(n: int, matches: int, k: int) -> float:
    """Probability that k notes drawn at random from n (without replacement) include one of ``matches`` right
    ones: 1 - C(n - m, k) / C(n, k)."""
    k = min(k, n)
    return 1.0 - math.comb(n - matches, k) / math.comb(n, k)


def recall_at_k(image_vecs: np.ndarray, note_vecs: np.ndarray, notes: Sequence[str], ks=(1, 5, 10)) -> dict:
    """Image -> note retrieval over the same rows: a hit when one of the top k notes has the query's own text
    (a patient's X-rays often share one note). Per query: hit indicators for each k and the exact chance."""
    sims = np.asarray(image_vecs, np.float32) @ np.asarray(note_vecs, np.float32).T
    order = np.argsort(-sims, axis=1)
    texts = np.asarray(notes, dtype=object)
    same = texts[None, :] == texts[:, None]
    n = len(texts)
    out: dict = {}
    for k in ks:
        out[f"hits@{k}"] = same[np.arange(n)[:, None], order[:, :k]].any(axis=1).astype(float)
        out[f"chance@{k}"] = np.array([chance_recall(n, int(m), k) for m in same.sum(axis=1)])
    return out


def cluster_bootstrap(
    values_fn, groups: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of ``values_fn(rows)`` over resamples of whole patients (``groups``) with replacement."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    rows_of = {g: np.flatnonzero(groups == g) for g in uniq}
    stats = []
    for _ in range(n_boot):
        pick = rng.choice(uniq, size=len(uniq), replace=True)
        rows = np.concatenate([rows_of[g] for g in pick])
        v = values_fn(rows)
        if not math.isnan(v):
            stats.append(v)
    if not stats:
        return float("nan"), float("nan")
    lo, hi = np.percentile(stats, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def auroc_with_ci(y: np.ndarray, p: np.ndarray, groups: np.ndarray, seed: int = 0, n_boot: int = 1000) -> dict:
    """{"auroc", "ci": [lo, hi], "n", "n_pos", "patients"} of probabilities ``p`` (NaN rows dropped)."""
    y, p, groups = np.asarray(y), np.asarray(p, np.float64), np.asarray(groups)
    keep = ~np.isnan(p)
    y, p, groups = y[keep], p[keep], groups[keep]
    lo, hi = cluster_bootstrap(lambda r: auroc(y[r], p[r]), groups, n_boot, seed)
    return {
        "auroc": auroc(y, p),
        "ci": [lo, hi],
        "n": int(len(y)),
        "n_pos": int(y.sum()),
        "patients": int(len(np.unique(groups))),
    }


def mean_with_ci(values: np.ndarray, groups: np.ndarray, seed: int = 0, n_boot: int = 1000) -> dict:
    """{"mean", "ci"} of per-row ``values`` with a patient-cluster bootstrap interval."""
    values = np.asarray(values, np.float64)
    lo, hi = cluster_bootstrap(lambda r: float(values[r].mean()), groups, n_boot, seed)
    return {"mean": float(values.mean()), "ci": [lo, hi]}
