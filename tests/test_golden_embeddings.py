"""Golden-output regression: an untrained eclip-tiny under a fixed seed embeds fixed images and texts to
the vectors pinned in tests/golden/eclip_tiny_embeddings.json (generator: tests/golden/eclip_tiny_embeddings.py).
"""

import json

import numpy as np
import pytest

from tests.golden.eclip_tiny_embeddings import GOLDEN, IMAGE_SHAPES, MODEL, SEED, TEXTS, run

ATOL = 1e-5


@pytest.fixture(scope="module")
def pinned_and_now():
    return json.loads(GOLDEN.read_text()), run()


def test_golden_file_describes_the_current_inputs(pinned_and_now):
    want, _ = pinned_and_now
    assert (want["model"], want["seed"], want["texts"]) == (MODEL, SEED, TEXTS)
    assert want["image_shapes"] == [list(s) for s in IMAGE_SHAPES]


@pytest.mark.parametrize("kind", ["image", "text"])
def test_eclip_tiny_embeddings_match_the_pinned_vectors(pinned_and_now, kind):
    want, got = pinned_and_now
    pinned = np.asarray(want[f"{kind}_embeddings"])
    now = np.asarray(got[f"{kind}_embeddings"])
    assert pinned.shape == now.shape == (4, 64)
    np.testing.assert_allclose(now, pinned, rtol=0, atol=ATOL)
    np.testing.assert_allclose(got[f"{kind}_norms"], want[f"{kind}_norms"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(want[f"{kind}_norms"], 1.0, atol=1e-4)  # the towers L2-normalise


def test_pinned_vectors_are_distinct(pinned_and_now):
    """Four different inputs give four different vectors (a constant output would pin nothing)."""
    want, _ = pinned_and_now
    for kind in ("image", "text"):
        vectors = np.asarray(want[f"{kind}_embeddings"])
        gram = vectors @ vectors.T
        assert np.all(gram[~np.eye(4, dtype=bool)] < 1.0 - 1e-4), kind
