"""Choosing k diverse reports from a candidate pool: k-means (as in the eCLIP paper), MMR, de-duplication.

The paper's recipe: take the top 100 reports by similarity, cluster their embeddings into k clusters,
and keep, for each cluster, the report nearest its centroid, so the LLM sees k different kinds of
report instead of k near-copies of one.

All functions take unit vectors and return positions into the pool (ints), never reorder the input.

>>> import numpy as np
>>> pool = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]], dtype=np.float32)
>>> sorted(kmeans_select(pool, 2, seed=0))
[0, 2]
>>> mmr_select(np.array([1, 0], dtype=np.float32), pool, 2, lambda_=0.3)
[0, 2]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from eclip_core.text import normalize_report_text
from rag_report.errors import RagReportError

_NON_WORD = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=1 << 16)
def dedupe_key(text: str) -> str:
    """The identity of a report's text for duplicate removal: normalised, lower-cased, punctuation-free.
    Cached: every query de-duplicates its candidate pool, and the pools draw on one corpus.

    >>> dedupe_key("Heart  normal. No effusion") == dedupe_key("heart normal, no effusion.")
    True
    """
    return _NON_WORD.sub(" ", normalize_report_text(text).lower()).strip()


def dedupe_positions(texts: Iterable[str]) -> list[int]:
    """Positions of the first occurrence of each distinct text (input order kept)."""
    seen: set[str] = set()
    keep = []
    for i, t in enumerate(texts):
        key = dedupe_key(t)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep


def _kmeans_pp_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centers = [x[rng.integers(len(x))]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        # All remaining points coincide with a centre: any choice is as good as another.
        idx = rng.integers(len(x)) if total <= 0 else rng.choice(len(x), p=d2 / total)
        centers.append(x[idx])
        d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    return np.stack(centers)


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Seeded Lloyd k-means with k-means++ init -> (centroids [k, D], assignment [n]).

    Small and deterministic on purpose: the pool is ~100 points, so a few ms of numpy beats sklearn's
    thread start-up, and the same seed gives the same clusters on every machine.
    """
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    centers = _kmeans_pp_init(x, k, rng)
    assign = np.full(len(x), -1)
    x2 = (x * x).sum(1)[:, None]
    for _ in range(iters):
        # |x - c|^2 via one matrix product (the pool is ~100 x D; no n x k x D temporary)
        d2 = np.maximum(x2 - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :], 0.0)
        new = d2.argmin(1)
        if np.array_equal(new, assign):
            break
        assign = new
        for c in range(k):
            members = x[assign == c]
            if len(members):
                centers[c] = members.mean(0)
            else:
                # Empty cluster: restart it at the point worst served by its current centre.
                far = d2[np.arange(len(x)), assign].argmax()
                centers[c] = x[far]
                assign[far] = c
    return centers, assign


def kmeans_select(vectors: np.ndarray, k: int, *, seed: int = 0) -> list[int]:
    """Cluster the pool into k clusters; for each, the position of the member nearest its centroid.

    Returns min(k, n) distinct positions (cluster order). With k >= n every position is returned.
    """
    n = len(vectors)
    if k >= n:
        return list(range(n))
    x = np.asarray(vectors, dtype=np.float64)
    centers, assign = kmeans(x, k, seed=seed)
    picked: list[int] = []
    for c in range(k):
        members = np.flatnonzero(assign == c)
        if len(members) == 0:
            continue
        d2 = ((x[members] - centers[c]) ** 2).sum(1)
        picked.append(int(members[d2.argmin()]))
    # Duplicate vectors can leave fewer non-empty clusters than k: top up by pool order.
    for i in range(n):
        if len(picked) >= k:
            break
        if i not in picked:
            picked.append(i)
    return picked


def mmr_select(query: np.ndarray, vectors: np.ndarray, k: int, *, lambda_: float = 0.5) -> list[int]:
    """Maximal marginal relevance: greedily pick argmax lambda*sim(q, d) - (1-lambda)*max_s sim(d, s).

    lambda_=1 is plain similarity order; smaller values trade relevance for diversity.
    """
    v = np.asarray(vectors, dtype=np.float64)
    n = len(v)
    if n == 0:
        return []
    rel = v @ np.asarray(query, dtype=np.float64)
    sims = v @ v.T
    picked = [int(rel.argmax())]
    redundancy = sims[picked[0]].copy()
    while len(picked) < min(k, n):
        score = lambda_ * rel - (1.0 - lambda_) * redundancy
        score[picked] = -np.inf
        nxt = int(score.argmax())
        picked.append(nxt)
        redundancy = np.maximum(redundancy, sims[nxt])
    return picked


def diversify(
    method: str | None, query: np.ndarray, vectors: np.ndarray, k: int, *, seed: int = 0, mmr_lambda: float = 0.5
) -> list[int]:
    """Dispatch: "kmeans", "mmr" or None (the first k). Positions into the pool."""
    if method is None or method == "none":
        return list(range(min(k, len(vectors))))
    if method == "kmeans":
        return kmeans_select(vectors, k, seed=seed)
    if method == "mmr":
        return mmr_select(query, vectors, k, lambda_=mmr_lambda)
    raise RagReportError(f"unknown diversify method {method!r}; choose 'kmeans', 'mmr' or None")
