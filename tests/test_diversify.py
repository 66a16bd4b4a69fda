"""Diversification: k-means picks the member nearest each centroid, MMR trades relevance for novelty."""

from __future__ import annotations

import numpy as np
import pytest

from rag_report.errors import RagReportError
from rag_report.retrieval.diversify import dedupe_key, dedupe_positions, diversify, kmeans_select, mmr_select


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _clustered(seed: int = 0, n_clusters: int = 5, per: int = 20, dim: int = 32, spread: float = 0.05):
    rng = np.random.default_rng(seed)
    centers = _unit(rng.normal(size=(n_clusters, dim)))
    labels = np.repeat(np.arange(n_clusters), per)
    x = _unit(centers[labels] + spread * rng.normal(size=(len(labels), dim)))
    perm = rng.permutation(len(x))  # clusters interleaved, as a similarity ranking would mix them
    return x[perm], labels[perm]


def test_kmeans_returns_member_nearest_each_true_cluster_mean():
    x, labels = _clustered()
    picked = kmeans_select(x, 5, seed=0)
    expected = set()
    for c in range(5):
        members = np.flatnonzero(labels == c)
        mean = x[members].mean(0)
        expected.add(int(members[((x[members] - mean) ** 2).sum(1).argmin()]))
    assert set(picked) == expected
    assert sorted(labels[picked].tolist()) == [0, 1, 2, 3, 4]  # one report per cluster


def test_kmeans_is_seeded_and_handles_small_pools():
    x, _ = _clustered(seed=3)
    assert kmeans_select(x, 5, seed=7) == kmeans_select(x, 5, seed=7)
    assert kmeans_select(x[:3], 5) == [0, 1, 2]
    same = np.repeat(x[:1], 10, axis=0)  # identical vectors: still k distinct positions
    got = kmeans_select(same, 4)
    assert len(got) == 4 and len(set(got)) == 4


def test_mmr_prefers_a_distinct_item_over_near_duplicates():
    q = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    pool = _unit(
        np.array(
            [
                [1.0, 0.02, 0.0],  # best
                [1.0, 0.03, 0.0],  # near-copy of the best
                [1.0, 0.04, 0.0],  # near-copy of the best
                [0.6, 0.0, 0.8],  # less relevant but different
            ],
            dtype=np.float32,
        )
    )
    assert np.argsort(-(pool @ q))[:2].tolist() == [0, 1]  # plain ranking takes the copy
    assert mmr_select(q, pool, 2, lambda_=0.5) == [0, 3]
    assert mmr_select(q, pool, 2, lambda_=1.0) == [0, 1]  # lambda 1 = plain similarity order


def test_dedupe_key_ignores_case_spacing_and_punctuation():
    texts = [
        "Heart normal. No effusion.",
        "heart  normal,  no effusion",
        "Heart enlarged.",
        "HEART NORMAL. NO EFFUSION",
    ]
    assert dedupe_positions(texts) == [0, 2]
    assert dedupe_key("Lungs clear") != dedupe_key("Lungs not clear")


def test_diversify_dispatch():
    x, _ = _clustered()
    assert diversify(None, x[0], x, 3) == [0, 1, 2]
    assert len(diversify("mmr", x[0], x, 4)) == 4
    with pytest.raises(RagReportError, match="unknown diversify"):
        diversify("random", x[0], x, 3)
