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


def test_page_rows_per_size_with_tuned_recall(tmp_path):
    import faiss
    from threadpoolctl import threadpool_limits

    from eval.bench.search.retrieval import main

    out = tmp_path / "retrieval.md"
    argv = ["--sizes", "2000", "3000", "--hnsw-max-size", "2500", "--queries", "20", "--dim", "32"]
    argv += ["--train-sample", "2000", "--overhead-size", "200", "--out", str(out)]
    omp_threads = faiss.omp_get_max_threads()
    with threadpool_limits(limits=None):  # restores the BLAS threads the benchmark sets for itself
        assert main(argv) == 0
    faiss.omp_set_num_threads(omp_threads)
    page = out.read_text(encoding="utf-8")
    assert f"Command: `python -m eval.bench.search.retrieval {' '.join(argv)}`" in page
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in page.splitlines() if line.startswith("| 2,000")]
    rows += [
        [c.strip() for c in line.strip("|").split("|")] for line in page.splitlines() if line.startswith("| 3,000")
    ]
    methods = [(r[0], r[1].split(" ")[0] + " " + r[1].split(" ")[1]) for r in rows]
    assert methods == [
        ("2,000", "numpy matmul"),
        ("2,000", "FAISS IndexFlatIP"),
        ("2,000", "FAISS HNSWFlat"),  # HNSW only up to --hnsw-max-size
        ("2,000", "FAISS IVF-PQ"),
        ("3,000", "numpy matmul"),
        ("3,000", "FAISS IndexFlatIP"),
        ("3,000", "FAISS IVF-PQ"),
    ]
    for r in rows:
        recall = float(r[7])
        assert recall == 1.0 if r[1].startswith(("numpy", "FAISS IndexFlatIP")) else recall >= 0.95
    assert all(r[6] == "1.00x" for r in rows if r[1].startswith("numpy"))  # the baseline of the speed-ups
    assert "## LlamaIndex retriever overhead (200 reports, flat index)" in page
    assert "| raw faiss index.search (k=10) |" in page and page.count("| EClipRetriever") == 3
