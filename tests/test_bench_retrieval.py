"""The retrieval benchmark's report-like corpus: a seeded smoothed bootstrap of reference vectors."""

import numpy as np

from eval.bench.search.retrieval import ReportLikeData, recall_at, unit_vectors


def _reference(n=300, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((5, dim))  # five tight clusters, like near-identical normal reports
    x = centres[rng.integers(0, 5, n)] + 0.05 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_zero_bandwidth_resamples_the_reference_rows():
    ref = _reference()
    data = ReportLikeData(ref, ref[:3], bandwidth=0.0, source="test")
    x = data.corpus(1000, seed=1)
    nearest = (x @ ref.T).max(axis=1)
    assert x.shape == (1000, 16) and np.allclose(nearest, 1.0, atol=1e-5)
    assert np.array_equal(x, data.corpus(1000, seed=1))  # seeded
    assert not np.array_equal(x, data.corpus(1000, seed=2))


def test_noise_keeps_unit_norm_and_the_cluster_structure():
    ref = _reference()
    x = ReportLikeData(ref, ref[:3], bandwidth=0.5, source="test").corpus(2000, seed=0, chunk=700)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # Every synthetic vector stays far closer to some reference vector than random directions do.
    assert (x @ ref.T).max(axis=1).min() > (unit_vectors(2000, 16, 3) @ ref.T).max(axis=1).mean()


def test_recall_at_counts_the_shared_neighbours():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 2, 9], [4, 5, 6]])
    assert recall_at(found, truth) == (2 / 3 + 1) / 2
