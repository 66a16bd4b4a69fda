"""Paired bootstrap of the difference between two systems' drafts of the same studies.

Studies are resampled with replacement (both systems together, so the pairing holds) and each metric is
recomputed on every resample: clinical micro-F1(5) and macro-F1(14) (uncertain -> negative) from the
resampled label counts, BLEU-4 as corpus BLEU from the resampled n-gram counts (pycocoevalcap's "closest"
reference length; equal to its corpus BLEU-4 on the full set), ROUGE-L and CIDEr-D as the mean of their
per-study scores (CIDEr's document frequencies from the full reference set). The interval is the
percentile interval of ``a - b``.

>>> refs = ["Heart is enlarged. No effusion."] * 10 + ["Lungs are clear."] * 10
>>> a = ["The heart is enlarged."] * 10 + ["Lungs are clear."] * 10
>>> out = paired_bootstrap(refs, a, ["Lungs are clear."] * 20, n_boot=200)
>>> out["micro_f1_5"]["diff"] > 0 and out["micro_f1_5"]["low"] > 0
True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from eclip_core.labels import CHEXPERT_OBSERVATIONS

METRICS = ("micro_f1_5", "macro_f1_14", "BLEU-4", "ROUGE-L", "CIDEr")
_FIVE = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
_FIVE_IDX = [CHEXPERT_OBSERVATIONS.index(o) for o in _FIVE]


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu_stats(reference: str, hypothesis: str) -> np.ndarray:
    """Per-study sufficient statistics of corpus BLEU-4: [hyp length, ref length, (matches, total) x 4]."""
    ref, hyp = reference.split(), hypothesis.split()
    out = [len(hyp), len(ref)]
    for n in range(1, 5):
        h = _ngrams(hyp, n)
        r = _ngrams(ref, n)
        out += [sum(min(c, r[g]) for g, c in h.items()), max(len(hyp) - n + 1, 0)]
    return np.asarray(out, dtype=np.float64)


def corpus_bleu4(stats: np.ndarray) -> float:
    """Corpus BLEU-4 from summed :func:`bleu_stats` (pycocoevalcap's smoothing constants)."""
    tiny, small = 1e-15, 1e-9
    s = stats.sum(0)
    hyp_len, ref_len = s[0], s[1]
    log_p = sum(math.log((s[2 + 2 * k] + tiny) / (s[3 + 2 * k] + small)) for k in range(4)) / 4
    bp = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / (hyp_len + tiny))
    return float(bp * math.exp(log_p))


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def _clinical(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    tp, fp, fn = (pred & ref).sum(0), (pred & ~ref).sum(0), (~pred & ref).sum(0)
    tp, fp, fn = tp.astype(float), fp.astype(float), fn.astype(float)
    micro5 = float(_f1(tp[_FIVE_IDX].sum(), fp[_FIVE_IDX].sum(), fn[_FIVE_IDX].sum()))
    return micro5, float(_f1(tp, fp, fn).mean())


def _per_study(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, Any]:
    from pycocoevalcap.cider.cider import Cider

    from eclip_core.labeler import label_reports
    from eval.metrics.nlg import _quiet, _rouge_l, prepare

    gts, res = prepare(hypotheses, references)
    _, rouge = _rouge_l(gts, res)
    _, cider = _quiet(Cider().compute_score, gts, res)
    labels = np.asarray(label_reports(list(hypotheses)), dtype=float) == 1.0
    return {
        "labels": labels,
        "bleu": np.stack([bleu_stats(gts[i][0], res[i][0]) for i in range(len(gts))]),
        "rouge": np.asarray(rouge, dtype=float),
        "cider": np.asarray(cider, dtype=float),
    }


def _scores(d: dict[str, Any], ref: np.ndarray, idx: np.ndarray) -> dict[str, float]:
    micro5, macro14 = _clinical(d["labels"][idx], ref[idx])
    return {
        "micro_f1_5": micro5,
        "macro_f1_14": macro14,
        "BLEU-4": corpus_bleu4(d["bleu"][idx]),
        "ROUGE-L": float(d["rouge"][idx].mean()),
        "CIDEr": float(d["cider"][idx].mean()),
    }


def paired_bootstrap(
    references: Sequence[str],
    a: Sequence[str],
    b: Sequence[str],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per metric of :data:`METRICS`: ``a`` and ``b`` on all studies, their difference ``a - b`` and the
    ``level`` percentile bootstrap interval of the difference (``low``, ``high``)."""
    from eclip_core.labeler import label_reports

    if not (len(references) == len(a) == len(b)) or not references:
        raise ValueError(f"need as many drafts as references, got {len(references)}, {len(a)}, {len(b)}")
    ref = np.asarray(label_reports(list(references)), dtype=float) == 1.0
    da, db = _per_study(references, a), _per_study(references, b)
    n = len(references)
    full = np.arange(n)
    sa, sb = _scores(da, ref, full), _scores(db, ref, full)
    rng = np.random.default_rng(seed)
    diffs = {m: np.empty(n_boot) for m in METRICS}
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        xa, xb = _scores(da, ref, idx), _scores(db, ref, idx)
        for m in METRICS:
            diffs[m][i] = xa[m] - xb[m]
    q = (1 - level) / 2
    return {
        m: {
            "a": sa[m],
            "b": sb[m],
            "diff": sa[m] - sb[m],
            "low": float(np.quantile(diffs[m], q)),
            "high": float(np.quantile(diffs[m], 1 - q)),
        }
        for m in METRICS
    }


def llm_wins(ci: dict[str, dict[str, float]], margin: float = -0.02) -> bool:
    """The rule for drafting with the LLM by default: not worse than top-1 on micro-F1(5) (the lower bound of
    the difference's interval at or above ``margin``) and better on ROUGE-L or CIDEr (its lower bound > 0).

    >>> llm_wins({"micro_f1_5": {"low": -0.01}, "ROUGE-L": {"low": 0.001}, "CIDEr": {"low": -0.1}})
    True
    >>> llm_wins({"micro_f1_5": {"low": -0.05}, "ROUGE-L": {"low": 0.1}, "CIDEr": {"low": 0.1}})
    False
    """
    return ci["micro_f1_5"]["low"] >= margin and (ci["ROUGE-L"]["low"] > 0 or ci["CIDEr"]["low"] > 0)
