"""Golden-output regression: the paper's eCLIP objective on a tiny run trains to pinned numbers.

tests/golden/paper_run.json was written before the label-aware loss terms existed; with those terms off
(the paper preset) the same run must give the same per-step losses and final embeddings.
"""

import json
from pathlib import Path

import numpy as np

from tests.golden.paper_run import run

GOLDEN = Path(__file__).parent / "golden" / "paper_run.json"


def test_paper_objective_reproduces_the_pinned_tiny_run():
    want = json.loads(GOLDEN.read_text())
    got = run()
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["image_embeddings"], want["image_embeddings"], atol=2e-5)
    np.testing.assert_allclose(got["text_embeddings"], want["text_embeddings"], atol=2e-5)
