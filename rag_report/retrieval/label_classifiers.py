"""Label classifiers over frozen eCLIP image embeddings (the "LaB-classifiers" of LaB-RAG).

One logistic regression per CheXpert observation, fitted on the indexed corpus's X-ray embeddings (with
its tiles' embeddings for ``views="image+tiles"``, :mod:`rag_report.retrieval.image_views`) against its
report-derived labels (positive = 1; uncertain and not mentioned = 0), on standardised features.
Each observation's decision threshold maximises F1 on the validation split (or, without one, on 5-fold
out-of-fold predictions of the corpus). A threshold whose F1 does not beat that of predicting every image
positive by ``MIN_F1_GAIN`` is refused (with a handful of validation positives, the F1-optimal threshold of
a classifier without skill is often near 0, which would call the finding on most images), and the
observation falls back to its prior: never predicted when fewer than half the images have it (every rare
finding), on every image when more do (often "No Finding"). Observations with too few positives to fit keep
their base rate as a constant probability and are never predicted positive.

They belong to one eCLIP checkpoint and one corpus, so they live in the index folder
(``label_classifiers.json``) and are refused for another checkpoint.

>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(200, 8)).astype("float32")
>>> y = np.full((200, 14), np.nan); y[:, 2] = (x[:, 0] > 0.5).astype(float)   # Cardiomegaly <- feature 0
>>> clf = LabelClassifiers.fit(x, y, checkpoint_hash="abc")
>>> bool(clf.predict(x)[:, 2].mean() > 0.2), clf.fitted[2], clf.fitted[0]
(True, True, False)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from eclip_core.labels import CHEXPERT_OBSERVATIONS
from rag_report.errors import IndexMismatchError, RagReportError
from rag_report.protocols import LabelClassifiersLike

log = logging.getLogger(__name__)

FILE_NAME = "label_classifiers.json"
FORMAT_VERSION = 1
#: Fewer positives than this in the corpus: the observation keeps a constant base-rate probability.
MIN_POSITIVES = 5
#: A threshold's F1 must beat predicting every image positive (F1 = 2p / (1 + p), p the prevalence) by this.
MIN_F1_GAIN = 0.05
#: Inverse L2 strength of the logistic regressions: 0.1 beat 0.5 in 5-fold cross-validated AUROC on the
#: default bundle's train split, with and without tiles.
DEFAULT_C = 0.1


@dataclass
class LabelClassifiers:
    """Per-observation logistic regressions on standardised embeddings, with F1-optimal thresholds."""

    checkpoint_hash: str
    mean: np.ndarray  # [F] feature mean of the fitting set (F = D, or 2D with tiles)
    scale: np.ndarray  # [F] feature std of the fitting set
    coef: np.ndarray  # [L, F]
    intercept: np.ndarray  # [L]
    thresholds: np.ndarray  # [L] probability at or above which an observation is predicted
    fitted: list[bool]  # False: constant base rate (too few positives)
    observations: tuple[str, ...] = CHEXPERT_OBSERVATIONS
    n_positive: list[int] = field(default_factory=list)
    threshold_source: str = "val"  # "val" or "cross-validation"
    views: str = "image"  # what the features are (rag_report.retrieval.image_views.CLASSIFIER_VIEWS)
    validation: dict[str, Any] = field(default_factory=dict)  # per-observation AUROC / F1 where thresholds were set

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        label_rows: np.ndarray,
        *,
        checkpoint_hash: str,
        val_embeddings: np.ndarray | None = None,
        val_label_rows: np.ndarray | None = None,
        C: float = DEFAULT_C,
        seed: int = 0,
        views: str = "image",
    ) -> LabelClassifiers:
        """Fit on ``embeddings`` [n, F] (the features of ``views``) with ``label_rows`` [n, 14] (1 / 0 / -1 /
        NaN per observation).

        Thresholds come from ``val_*`` when given and they hold a positive of the observation, else from
        5-fold out-of-fold probabilities on the fitting set; one without skill (module docstring) is
        refused (``validation[name]["refused"]``).
        """
        x = np.asarray(embeddings, dtype=np.float64)
        y = np.asarray(label_rows) == 1.0
        if x.ndim != 2 or y.shape != (len(x), len(CHEXPERT_OBSERVATIONS)):
            raise RagReportError(
                f"label classifiers need embeddings [n, D] and label rows [n, 14], got {x.shape} "
                f"and {np.shape(label_rows)}"
            )
        mean, scale = x.mean(0), x.std(0) + 1e-6
        z = (x - mean) / scale
        zv, yv = None, None
        if val_embeddings is not None and val_label_rows is not None and len(val_embeddings) > 0:
            zv = (np.asarray(val_embeddings, dtype=np.float64) - mean) / scale
            yv = np.asarray(val_label_rows) == 1.0
        n_obs, dim = y.shape[1], x.shape[1]
        coef, intercept = np.zeros((n_obs, dim)), np.zeros(n_obs)
        thresholds, fitted, validation = np.full(n_obs, np.inf), [False] * n_obs, {}
        sources = set()
        for j, name in enumerate(CHEXPERT_OBSERVATIONS):
            pos = int(y[:, j].sum())
            if pos < MIN_POSITIVES or pos > len(y) - MIN_POSITIVES:
                rate = (pos + 0.5) / (len(y) + 1.0)
                intercept[j] = np.log(rate / (1 - rate))
                continue

            def make() -> LogisticRegression:
                return LogisticRegression(C=C, max_iter=2000, random_state=seed)

            model = make().fit(z, y[:, j])
            coef[j], intercept[j], fitted[j] = model.coef_[0], model.intercept_[0], True
            if zv is not None and yv is not None and yv[:, j].any():
                scores, truth = model.predict_proba(zv)[:, 1], yv[:, j]
                sources.add("val")
            else:
                scores, truth = _out_of_fold(make, z, y[:, j], seed), y[:, j]
                sources.add("cross-validation")
            thresholds[j], validation[name] = _threshold(scores, truth)
        return cls(
            checkpoint_hash=checkpoint_hash,
            mean=mean,
            scale=scale,
            coef=coef,
            intercept=intercept,
            thresholds=thresholds,
            fitted=fitted,
            n_positive=[int(v) for v in y.sum(0)],
            threshold_source="+".join(sorted(sources)) or "none",
            validation=validation,
            views=views,
        )

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities [n, 14] (or [14] for one embedding [D]) of each observation being positive."""
        x = np.asarray(embeddings, dtype=np.float64)
        one = x.ndim == 1
        x = np.atleast_2d(x)
        if x.shape[1] != len(self.mean):
            raise RagReportError(f"embeddings have dim {x.shape[1]}, the label classifiers dim {len(self.mean)}")
        logits = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        p = 1.0 / (1.0 + np.exp(-logits))
        return p[0] if one else p

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Boolean [n, 14] (or [14]): probability at or above each observation's threshold."""
        return self.predict_proba(embeddings) >= self.thresholds

    def as_dict(self, probabilities: np.ndarray) -> dict[str, float]:
        """One row of probabilities as {observation: probability}."""
        return {name: float(p) for name, p in zip(self.observations, np.asarray(probabilities).reshape(-1))}

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        data = asdict(self)
        for key in ("mean", "scale", "coef", "intercept"):
            data[key] = np.asarray(data[key]).tolist()
        data["thresholds"] = [None if not np.isfinite(t) else float(t) for t in self.thresholds]
        data["observations"] = list(self.observations)
        data["format_version"] = FORMAT_VERSION
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> LabelClassifiers:
        data = json.loads(text)
        if data.pop("format_version", None) != FORMAT_VERSION:
            raise RagReportError("label classifiers file has an unknown format version; rebuild the index")
        for key in ("mean", "scale", "coef", "intercept"):
            data[key] = np.asarray(data[key], dtype=np.float64)
        data["thresholds"] = np.asarray([np.inf if t is None else t for t in data["thresholds"]], dtype=np.float64)
        data["observations"] = tuple(data["observations"])
        return cls(**data)

    @classmethod
    def load(cls, path: str | os.PathLike, checkpoint_hash: str | None = None) -> LabelClassifiers:
        """Read ``label_classifiers.json``; refuse it for another eCLIP checkpoint than ``checkpoint_hash``."""
        path = Path(path)
        try:
            clf = cls.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RagReportError(
                f"label classifiers {path} are unreadable ({exc}); rebuild the index with `rag-report index`"
            ) from exc
        if checkpoint_hash is not None and clf.checkpoint_hash != checkpoint_hash:
            raise IndexMismatchError(
                f"label classifiers {path} were fitted on eCLIP checkpoint {clf.checkpoint_hash}, "
                f"not {checkpoint_hash}; rebuild the index with this model"
            )
        if tuple(clf.observations) != CHEXPERT_OBSERVATIONS:
            raise RagReportError(f"label classifiers {path} use another observation list; rebuild the index")
        return clf


def _out_of_fold(make: Callable[[], LogisticRegression], z: np.ndarray, truth: np.ndarray, seed: int) -> np.ndarray:
    """5-fold (fewer with fewer positives) out-of-fold probabilities of a classifier made by ``make``."""
    scores = np.zeros(len(truth))
    folds = StratifiedKFold(n_splits=min(5, int(truth.sum())), shuffle=True, random_state=seed)
    for tr, te in folds.split(z, truth):
        scores[te] = make().fit(z[tr], truth[tr]).predict_proba(z[te])[:, 1]
    return scores


def _threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[float, dict[str, Any]]:
    """The F1-optimal threshold of ``scores`` against ``truth`` (the prior's decision when it has no skill,
    module docstring) and its validation record."""
    threshold, f1 = best_f1_threshold(scores, truth)
    prevalence = float(truth.mean())
    refused = f1 < 2 * prevalence / (1 + prevalence) + MIN_F1_GAIN
    if refused:  # the prior's decision: a probability is never below 0, never at or above inf
        threshold = 0.0 if prevalence >= 0.5 else np.inf
    record = {
        "auroc": _auroc(scores, truth),
        "f1": f1,
        "positives": int(truth.sum()),
        "n": int(len(truth)),
        "refused": bool(refused),
    }
    return threshold, record


def best_f1_threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``scores >= threshold`` against boolean ``truth``.

    >>> best_f1_threshold(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, True, False, True]))
    (0.4, 1.0)
    """
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    if not truth.any():
        return float("inf"), 0.0
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order]
    tp = np.cumsum(t)
    predicted = np.arange(1, len(s) + 1)
    f1 = 2 * tp / (predicted + t.sum())
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # a threshold takes every score tied with it
    f1 = np.where(last_of_tie, f1, -1.0)
    best = int(np.argmax(f1))
    return float(s[best]), float(f1[best])


def _auroc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return None
    return float(roc_auc_score(truth, scores))


if TYPE_CHECKING:  # mypy checks here that the classes implement the protocols their readers use

    def _implements(classifiers: LabelClassifiers) -> LabelClassifiersLike:
        return classifiers
