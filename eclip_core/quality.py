"""Embedding-space quality of an image-text model, from embedding arrays alone (numpy + sklearn).

* Zero-shot classification with prompt ensembles: a class embedding is the (re-normalised) mean
  of its prompts' embeddings; an image gets the class of highest cosine; accuracy and macro-F1.
* Cross-modal retrieval R@k, image->text and text->image: a hit when any of the top k items has
  the query's study id (one study may have several images or reports).
* Label-precision@k: the share of the k retrieved reports whose positive finding labels match
  the query's (``mode="exact"``: the same set of positive observations; ``"any"``: at least one
  shared positive, or both without positives).
* Alignment (mean ||x_i - y_i||^alpha of paired embeddings), uniformity
  (log E exp(-t ||x_i - x_j||^2) over distinct pairs; Wang & Isola 2020) and the modality gap
  (distance between the two modalities' mean embeddings; Liang et al. 2022). Inputs are
  L2-normalised first.
* Linear probe: logistic regression on standardised embeddings trained with a given fraction of
  the training labels; AUROC (macro over classes / label columns).

>>> import numpy as np
>>> img = np.eye(3); txt = np.eye(3)
>>> retrieval_recall(img, txt, ["a", "b", "c"], ["a", "b", "c"], ks=(1,))
{'i2t_R@1': 1.0, 't2i_R@1': 1.0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from eclip_core.errors import EClipError


class QualityInputError(EClipError, ValueError):
    """Embeddings, ids or labels passed to a quality metric have inconsistent shapes or values."""


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); zero rows stay zero.

    >>> l2_normalize(np.array([[3.0, 4.0]])).tolist()
    [[0.6, 0.8]]
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise QualityInputError(f"embeddings must be a 2-D array [n, dim], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise QualityInputError("embeddings contain NaN or infinite values")
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


# ------------------------------------------------------------------------------------ zero-shot
def class_embeddings(
    prompt_embeddings: Mapping[str, np.ndarray] | Sequence[np.ndarray],
) -> tuple[list[str], np.ndarray]:
    """(class names, [C, D] class embeddings): each the normalised mean of its normalised prompts."""
    if isinstance(prompt_embeddings, Mapping):
        names, groups = list(prompt_embeddings.keys()), list(prompt_embeddings.values())
    else:
        groups = list(prompt_embeddings)
        names = [str(i) for i in range(len(groups))]
    if not groups:
        raise QualityInputError("no classes given for zero-shot classification")
    rows = []
    for name, g in zip(names, groups):
        g = np.asarray(g, dtype=np.float64)
        g = g[None, :] if g.ndim == 1 else g
        if g.shape[0] == 0:
            raise QualityInputError(f"class {name!r} has no prompt embeddings")
        rows.append(l2_normalize(g).mean(axis=0))
    return names, l2_normalize(np.stack(rows))


@dataclass
class ZeroShotResult:
    """Zero-shot classification outcome."""

    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]
    predictions: np.ndarray
    scores: np.ndarray
    class_names: list[str]


def zero_shot_classify(
    image_embeddings: np.ndarray,
    prompt_embeddings: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    y_true: Sequence[int] | Sequence[str],
) -> ZeroShotResult:
    """Classify images by their nearest class embedding; ``y_true`` as class indices or class names.

    Macro-F1 averages the F1 of every class (a class never predicted and never true is left out).
    """
    names, cls = class_embeddings(prompt_embeddings)
    x = l2_normalize(image_embeddings)
    if x.shape[1] != cls.shape[1]:
        raise QualityInputError(f"image embeddings have dim {x.shape[1]}, prompt embeddings {cls.shape[1]}")
    y = np.asarray(y_true)
    if y.dtype.kind in "USO":
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted({str(v) for v in y if str(v) not in index})
        if unknown:
            raise QualityInputError(f"y_true has labels without prompts: {unknown[:5]}")
        y = np.array([index[str(v)] for v in y])
    y = y.astype(int)
    if len(y) != len(x):
        raise QualityInputError(f"{len(x)} image embeddings but {len(y)} labels")
    scores = x @ cls.T
    pred = scores.argmax(axis=1)
    per_class = {}
    for c, name in enumerate(names):
        tp = int(np.sum((pred == c) & (y == c)))
        fp = int(np.sum((pred == c) & (y != c)))
        fn = int(np.sum((pred != c) & (y == c)))
        if tp + fp + fn == 0:
            continue
        per_class[name] = 2 * tp / (2 * tp + fp + fn)
    return ZeroShotResult(
        float(np.mean(pred == y)), float(np.mean(list(per_class.values()))), per_class, pred, scores, names
    )


# ------------------------------------------------------------------------------------ retrieval
def _topk(sim: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values, best first (ties: lower index first)."""
    k = min(k, sim.shape[1])
    if k >= sim.shape[1] // 2:
        return np.argsort(-sim, axis=1, kind="stable")[:, :k]
    # Partial selection (O(n) per row), then order only the k selected.
    part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(sim, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1)


def retrieval_hits(
    queries: np.ndarray, docs: np.ndarray, q_ids: np.ndarray, d_ids: np.ndarray, ks: Sequence[int], chunk: int = 2048
) -> dict[int, np.ndarray]:
    """Per query and k: whether one of its k nearest docs (by dot product) has the query's id.

    >>> q = np.eye(3)
    >>> hits = retrieval_hits(q, q[[1, 0, 2]], np.array(["a", "b", "c"]), np.array(["b", "a", "x"]), ks=(1,))
    >>> hits[1].tolist()
    [True, True, False]
    """
    kmax = max(ks)
    parts: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    for s in range(0, len(queries), chunk):
        top = _topk(queries[s : s + chunk] @ docs.T, kmax)
        match = d_ids[top] == q_ids[s : s + chunk, None]
        for k in ks:
            parts[k].append(match[:, :k].any(axis=1))
    return {k: np.concatenate(parts[k]) if parts[k] else np.zeros(0, bool) for k in ks}


def _recall(queries: np.ndarray, docs: np.ndarray, q_ids: np.ndarray, d_ids: np.ndarray, ks: Sequence[int]):
    return {k: float(hit.mean()) for k, hit in retrieval_hits(queries, docs, q_ids, d_ids, ks).items()}


def retrieval_recall(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    image_study_ids: Sequence[str],
    text_study_ids: Sequence[str],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Image->text and text->image recall@k; a hit is a retrieved item of the query's study."""
    x, t = l2_normalize(image_embeddings), l2_normalize(text_embeddings)
    xi, ti = np.asarray(image_study_ids, dtype=object), np.asarray(text_study_ids, dtype=object)
    if len(xi) != len(x) or len(ti) != len(t):
        raise QualityInputError(
            f"ids do not match embeddings: {len(x)} images / {len(xi)} ids, {len(t)} texts / {len(ti)} ids"
        )
    if x.shape[1] != t.shape[1]:
        raise QualityInputError(f"image dim {x.shape[1]} != text dim {t.shape[1]}")
    i2t, t2i = _recall(x, t, xi, ti, ks), _recall(t, x, ti, xi, ks)
    out = {f"i2t_R@{k}": i2t[k] for k in ks}
    out.update({f"t2i_R@{k}": t2i[k] for k in ks})
    return out


def label_precision_at_k(
    query_embeddings: np.ndarray,
    doc_embeddings: np.ndarray,
    query_labels: np.ndarray,
    doc_labels: np.ndarray,
    k: int = 5,
    mode: str = "exact",
    query_ids: Sequence[str] | None = None,
    doc_ids: Sequence[str] | None = None,
) -> float:
    """Mean share of the top-k retrieved documents whose positive labels match the query's.

    Labels are [n, L] arrays in the CheXpert convention (1 positive; 0, -1, NaN not positive).
    With ``query_ids``/``doc_ids``, documents of the query's own study are not retrieved.
    """
    q, d = l2_normalize(query_embeddings), l2_normalize(doc_embeddings)
    ql = np.nan_to_num(np.asarray(query_labels, dtype=np.float64), nan=0.0) == 1.0
    dl = np.nan_to_num(np.asarray(doc_labels, dtype=np.float64), nan=0.0) == 1.0
    if ql.shape != (len(q), dl.shape[1]) or dl.shape[0] != len(d):
        raise QualityInputError(f"label shapes {ql.shape} / {dl.shape} do not match embeddings {q.shape} / {d.shape}")
    if mode not in ("exact", "any"):
        raise QualityInputError(f"mode must be 'exact' or 'any', got {mode!r}")
    sim = q @ d.T
    if query_ids is not None and doc_ids is not None:
        same = np.asarray(query_ids, dtype=object)[:, None] == np.asarray(doc_ids, dtype=object)[None, :]
        sim = np.where(same, -np.inf, sim)
    top = _topk(sim, k)
    got = dl[top]  # [n, k, L]
    want = ql[:, None, :]
    if mode == "exact":
        match = (got == want).all(axis=2)
    else:
        match = (got & want).any(axis=2) | (~got.any(axis=2) & ~want.any(axis=2))
    return float(match.mean())


# ------------------------------------------------------------------------------- geometry
def alignment(x: np.ndarray, y: np.ndarray, alpha: float = 2.0) -> float:
    """Mean ||x_i - y_i||^alpha over paired, normalised embeddings (lower = better aligned)."""
    a, b = l2_normalize(x), l2_normalize(y)
    if a.shape != b.shape:
        raise QualityInputError(f"paired embeddings differ in shape: {a.shape} vs {b.shape}")
    return float(np.mean(np.linalg.norm(a - b, axis=1) ** alpha))


def uniformity(x: np.ndarray, t: float = 2.0, max_samples: int = 4096, seed: int = 0) -> float:
    """log mean over distinct pairs of exp(-t ||x_i - x_j||^2) (lower = more uniform).

    Above ``max_samples`` rows a seeded random subset is used (the pair count is quadratic).
    """
    a = l2_normalize(x)
    if len(a) < 2:
        raise QualityInputError("uniformity needs at least 2 embeddings")
    if len(a) > max_samples:
        a = a[np.random.default_rng(seed).choice(len(a), max_samples, replace=False)]
    sq = np.clip(2.0 - 2.0 * (a @ a.T), 0.0, None)
    iu = np.triu_indices(len(a), k=1)
    v = -t * sq[iu]
    m = v.max()
    return float(m + np.log(np.mean(np.exp(v - m))))


def modality_gap(x: np.ndarray, y: np.ndarray) -> float:
    """||mean(normalised x) - mean(normalised y)||: how far apart the two modalities' clouds sit."""
    a, b = l2_normalize(x), l2_normalize(y)
    if a.shape[1] != b.shape[1]:
        raise QualityInputError(f"dims differ: {a.shape[1]} vs {b.shape[1]}")
    return float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))


# ------------------------------------------------------------------------------- linear probe
@dataclass
class ProbeResult:
    """Linear-probe AUROC: macro over evaluable classes / label columns, and each of them."""

    auroc: float
    per_class: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    skipped: list[str] = field(default_factory=list)


def _subsample(y: np.ndarray, fraction: float, rng: np.random.Generator, stratify: bool) -> np.ndarray:
    n = len(y)
    if not 0 < fraction <= 1:
        raise QualityInputError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(n)
    if not stratify:
        return np.sort(rng.choice(n, max(1, int(round(fraction * n))), replace=False))
    keep = []
    for c in np.unique(y):  # at least one example of every class
        idx = np.flatnonzero(y == c)
        keep.extend(rng.choice(idx, max(1, int(round(fraction * len(idx)))), replace=False))
    return np.sort(np.array(keep))


def _fit(x: np.ndarray, y: np.ndarray, C: float, max_iter: int, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed)).fit(x, y)


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    fraction: float = 1.0,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 2000,
    class_names: Sequence[str] | None = None,
) -> ProbeResult:
    """Logistic-regression probe trained on ``fraction`` of the training labels; test AUROC.

    ``train_y``/``test_y``: 1-D class indices (multi-class, one-vs-rest AUROC per class) or [n, L]
    label matrices (one binary probe per column; NaN and -1 entries are left out). Columns or
    classes with a single class in train or test cannot be scored and are listed in ``skipped``.
    """
    from sklearn.metrics import roc_auc_score

    xtr, xte = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    ytr, yte = np.asarray(train_y), np.asarray(test_y)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise QualityInputError(f"{len(xtr)}/{len(xte)} embeddings but {len(ytr)}/{len(yte)} labels")
    rng = np.random.default_rng(seed)
    result = ProbeResult(float("nan"))
    if ytr.ndim == 1:
        idx = _subsample(ytr, fraction, rng, stratify=True)
        result.n_train = len(idx)
        classes = np.unique(ytr[idx])
        if len(classes) < 2:
            raise QualityInputError("the probe's training subset has a single class")
        model = _fit(xtr[idx], ytr[idx], C, max_iter, seed)
        proba = model.predict_proba(xte)
        for j, c in enumerate(model.classes_):
            name = class_names[int(c)] if class_names is not None else str(c)
            pos = yte == c
            if pos.all() or not pos.any():
                result.skipped.append(name)
                continue
            result.per_class[name] = float(roc_auc_score(pos, proba[:, j]))
    else:
        idx = _subsample(np.zeros(len(ytr)), fraction, rng, stratify=False)
        result.n_train = len(idx)
        for j in range(ytr.shape[1]):
            name = class_names[j] if class_names is not None else str(j)
            col_tr, col_te = ytr[idx, j].astype(np.float64), yte[:, j].astype(np.float64)
            mtr, mte = np.isin(col_tr, (0.0, 1.0)), np.isin(col_te, (0.0, 1.0))
            if len(np.unique(col_tr[mtr])) < 2 or len(np.unique(col_te[mte])) < 2:
                result.skipped.append(name)
                continue
            model = _fit(xtr[idx][mtr], col_tr[mtr].astype(int), C, max_iter, seed)
            result.per_class[name] = float(roc_auc_score(col_te[mte].astype(int), model.predict_proba(xte[mte])[:, 1]))
    if result.per_class:
        result.auroc = float(np.mean(list(result.per_class.values())))
    return result
