"""Label boost: re-rank or filter retrieved reports by how well their labels agree with the image's.

The image side predicts which CheXpert observations are present (:mod:`rag_report.retrieval.label_classifiers`);
each candidate report carries the labels of its own text. Agreement is the Jaccard index of the two
positive sets ("No Finding" counts as an observation, so two normal studies agree fully):

* ``rerank``: candidates are ordered by ``similarity + weight * agreement``;
* ``filter``: only candidates whose agreement is the best in the pool are kept, in similarity order, and
  the rest follow in similarity order, so the evidence is never empty;
* ``off``: similarity order (the paper's retrieval).

>>> pred = frozenset({"Cardiomegaly"})
>>> cands = [("a", 0.9, {"No Finding": 1.0}), ("b", 0.5, {"Cardiomegaly": 1.0}), ("c", 0.4, {"Edema": 1.0})]
>>> order = boost_order([c[1] for c in cands], [positive_set(c[2]) for c in cands], pred, "rerank", 1.0)
>>> [cands[i][0] for i in order]
['b', 'a', 'c']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eclip_core.labels import CHEXPERT_OBSERVATIONS, POSITIVE
from rag_report.errors import RagReportError

LABEL_BOOST_MODES = ("off", "filter", "rerank")


def check_label_boost(mode: str) -> str:
    """``mode`` when it is a label boost mode, else RagReportError listing them (the one check of it).

    >>> check_label_boost("rerank")
    'rerank'
    """
    if mode not in LABEL_BOOST_MODES:
        raise RagReportError(f"label_boost must be one of {LABEL_BOOST_MODES}, got {mode!r}")
    return mode


@dataclass
class LabelBoost:
    """How predicted labels shape retrieval: ``mode`` (off / filter / rerank) and the rerank ``weight``."""

    mode: str = "rerank"
    weight: float = 1.0

    def __post_init__(self) -> None:
        check_label_boost(self.mode)
        if not self.weight >= 0:
            raise RagReportError(f"label boost weight must be >= 0, got {self.weight}")

    @property
    def active(self) -> bool:
        return self.mode != "off"


def positive_set(labels: Mapping[str, Any] | None) -> frozenset[str]:
    """Observations a label dict marks positive (1.0).

    >>> sorted(positive_set({"Edema": 1.0, "Pneumothorax": 0.0, "Atelectasis": -1.0, "Fracture": None}))
    ['Edema']
    """
    out = set()
    for name, value in (labels or {}).items():
        try:
            if value is not None and float(value) == POSITIVE:
                out.add(name)
        except (TypeError, ValueError):
            continue
    return frozenset(out)


def predicted_set(
    predicted: np.ndarray | Iterable[bool], observations: Sequence[str] = CHEXPERT_OBSERVATIONS
) -> frozenset[str]:
    """A boolean row [14] of predicted observations -> their names."""
    return frozenset(name for name, on in zip(observations, np.asarray(predicted).reshape(-1)) if on)


def agreement(report_positives: frozenset[str], predicted: frozenset[str]) -> float:
    """Jaccard index of two positive sets; 1.0 when both are empty.

    >>> agreement(frozenset({"Edema", "Cardiomegaly"}), frozenset({"Edema"}))
    0.5
    """
    union = report_positives | predicted
    return 1.0 if not union else len(report_positives & predicted) / len(union)


def boost_order(
    similarities: Sequence[float],
    report_positives: Sequence[frozenset[str]],
    predicted: frozenset[str],
    mode: str,
    weight: float = 1.0,
) -> list[int]:
    """Positions of the candidates in boosted order (see the module docstring); stable on ties."""
    check_label_boost(mode)
    sims = np.asarray(similarities, dtype=np.float64)
    by_similarity = sorted(range(len(sims)), key=lambda i: -sims[i])
    if mode == "off" or not len(sims):
        return by_similarity
    agree = np.array([agreement(p, predicted) for p in report_positives])
    if mode == "rerank":
        score = sims + weight * agree
        return sorted(range(len(sims)), key=lambda i: -score[i])
    best = agree.max()
    return [i for i in by_similarity if agree[i] == best] + [i for i in by_similarity if agree[i] != best]
