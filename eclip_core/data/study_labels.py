"""Per-study CheXpert label rows for label-aware training and the label classifiers.

A study's labels come from its manifest ``labels`` column where that is filled (a user's curated labels
win); otherwise from :func:`eclip_core.labeler.label_report` on its findings + impression, the same
labeler the benchmark scores drafts with.

>>> from eclip_core.data.manifest import Study
>>> rows = study_label_rows([Study("a", ["a.png"], "train", findings="Small left pleural effusion."),
...                          Study("b", ["b.png"], "train", labels={"Cardiomegaly": 1.0})])
>>> positive_targets(rows)[:, [2, 10]].tolist()     # Cardiomegaly, Pleural Effusion
[[0.0, 1.0], [1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eclip_core.data.manifest import Study
from eclip_core.labels import CHEXPERT_OBSERVATIONS, POSITIVE, UNCERTAIN


def study_labels(study: Study) -> dict[str, float | None]:
    """The study's labels: its manifest's where filled, else the labeler's on its findings + impression.

    >>> study_labels(Study("a", ["a.png"], "train", findings="Small left pleural effusion."))["Pleural Effusion"]
    1.0
    """
    from eclip_core.labeler import label_report

    return dict(study.labels) if study.labels else label_report(study.report_text)


def study_label_rows(studies: Sequence[Study]) -> np.ndarray:
    """[n, 14] float rows in CHEXPERT_OBSERVATIONS order: 1 / 0 / -1, NaN = not mentioned."""
    from eclip_core.labeler import labels_to_row

    out = np.full((len(studies), len(CHEXPERT_OBSERVATIONS)), np.nan)
    for i, study in enumerate(studies):
        out[i] = labels_to_row(study_labels(study))
    return out


def positive_targets(rows: np.ndarray) -> np.ndarray:
    """1.0 where a row is positive, else 0.0 (uncertain and not mentioned count as negative)."""
    return (np.asarray(rows) == POSITIVE).astype(np.float64)


def uncertain_mask(rows: np.ndarray) -> np.ndarray:
    """True where a label is uncertain (the auxiliary label loss leaves those entries out)."""
    return np.asarray(rows) == UNCERTAIN
