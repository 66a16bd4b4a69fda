"""Embedding-quality metrics against values computed by hand on tiny configurations."""

from __future__ import annotations

import numpy as np
import pytest

from eclip_core.quality import (
    QualityInputError,
    alignment,
    class_embeddings,
    label_precision_at_k,
    linear_probe,
    modality_gap,
    retrieval_recall,
    uniformity,
    zero_shot_classify,
)


def at(*degrees: float) -> np.ndarray:
    """Unit vectors in the plane at the given angles: cosine similarity = cos(angle difference)."""
    r = np.deg2rad(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1)


def test_zero_shot_prompt_ensemble():
    prompts = {"A": np.array([[1.0, 0.0], [0.8, 0.6]]), "B": np.array([[0.0, 2.0]])}
    names, cls = class_embeddings(prompts)
    # mean of the normalised prompts (0.9, 0.3), re-normalised
    np.testing.assert_allclose(cls[0], np.array([0.9, 0.3]) / np.hypot(0.9, 0.3))
    images = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # third: cos A 0.822 > cos B 0.8
    res = zero_shot_classify(images, prompts, ["A", "B", "B"])
    assert res.predictions.tolist() == [0, 1, 0]
    assert res.accuracy == pytest.approx(2 / 3)
    # A: tp 1, fp 1, fn 0 -> F1 2/3; B: tp 1, fp 0, fn 1 -> F1 2/3
    assert res.per_class_f1 == pytest.approx({"A": 2 / 3, "B": 2 / 3})
    assert res.macro_f1 == pytest.approx(2 / 3)
    assert zero_shot_classify(images, prompts, [0, 1, 1]).accuracy == pytest.approx(2 / 3)
    with pytest.raises(QualityInputError, match="without prompts"):
        zero_shot_classify(images, prompts, ["A", "C", "B"])


def test_retrieval_recall_hand_computed():
    images, texts = at(0, 90, 180), at(10, 100, 20, 200)
    r = retrieval_recall(images, texts, ["a", "b", "c"], ["a", "a", "b", "c"], ks=(1, 2, 3))
    # i2t: image b's nearest text is a's (100 deg), its own (20 deg) comes second.
    assert r["i2t_R@1"] == pytest.approx(2 / 3) and r["i2t_R@2"] == 1.0
    # t2i: text a2 (100 deg) ranks images b, c, a; text b (20 deg) ranks a, b.
    assert r["t2i_R@1"] == pytest.approx(0.5) and r["t2i_R@2"] == pytest.approx(0.75) and r["t2i_R@3"] == 1.0
    with pytest.raises(QualityInputError):
        retrieval_recall(images, texts, ["a", "b"], ["a", "a", "b", "c"])


def test_label_precision_at_k():
    docs = at(0, 30, 90)
    queries = at(5, 80)
    doc_labels = np.array([[1, 0], [1, 1], [-1, 1]], dtype=float)
    q_labels = np.array([[1, np.nan], [0, 1]])
    # q0 retrieves d0 (match), d1 (extra positive); q1 retrieves d2 (match: -1 is not positive), d1.
    assert label_precision_at_k(queries, docs, q_labels, doc_labels, k=2) == pytest.approx(0.5)
    assert label_precision_at_k(queries, docs, q_labels, doc_labels, k=2, mode="any") == pytest.approx(1.0)
    # Excluding the query's own study (q0 = d0's study): q0 now gets d1, d2 -> 0 matches.
    got = label_precision_at_k(queries, docs, q_labels, doc_labels, k=2, query_ids=["x", "y"], doc_ids=["x", "u", "v"])
    assert got == pytest.approx(0.25)


def test_alignment_uniformity_gap():
    x, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 3.0], [0.0, 1.0]])
    assert alignment(x, y) == pytest.approx(1.0)  # ||x0 - y0||^2 = 2, ||x1 - y1||^2 = 0
    assert alignment(x, y, alpha=1) == pytest.approx(np.sqrt(2) / 2)
    assert uniformity(np.eye(3)) == pytest.approx(-4.0)  # every pair at squared distance 2
    assert uniformity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)
    assert modality_gap(np.array([[1.0, 0.0], [2.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 5.0]])) == pytest.approx(
        np.sqrt(2)
    )
    assert modality_gap(x, x) == 0.0


def test_linear_probe_multiclass_and_multilabel():
    rng = np.random.default_rng(0)
    centres = np.array([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    y = np.repeat([0, 1, 2], 60)
    x = centres[y] + rng.normal(size=(180, 3))
    res = linear_probe(x[::2], y[::2], x[1::2], y[1::2], class_names=["a", "b", "c"])
    assert res.auroc > 0.99 and set(res.per_class) == {"a", "b", "c"} and res.n_train == 90
    few = linear_probe(x[::2], y[::2], x[1::2], y[1::2], fraction=0.1, seed=1)
    assert few.n_train == 9 and few.auroc > 0.9  # 3 per class still separates clusters
    noise = linear_probe(
        rng.normal(size=(200, 5)), rng.integers(0, 2, 200), rng.normal(size=(200, 5)), rng.integers(0, 2, 200)
    )
    assert 0.35 < noise.auroc < 0.65
    # Multi-label: column 0 learnable, with uncertain/NaN entries left out; column 1 constant -> skipped.
    lab = np.stack([(x[:, 0] > 2).astype(float), np.ones(180)], axis=1)
    lab[:10, 0] = np.nan
    lab[10:20, 0] = -1
    ml = linear_probe(x[::2], lab[::2], x[1::2], lab[1::2])
    assert ml.per_class["0"] > 0.95 and ml.skipped == ["1"]
    with pytest.raises(QualityInputError, match="fraction"):
        linear_probe(x, y, x, y, fraction=0)
