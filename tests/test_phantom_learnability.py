"""The phantom learnability study end to end on a small drawn data set: which kinds are scored, their
counts, AUROC on the test split, and the page that reports them."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from eclip_core.data.manifest import Study, write_manifest
from eval import phantom_learnability as PL


def _study(i: int, split: str, kinds: list[str]) -> Study:
    return Study(f"s{i}", [f"{i}.png"], split, findings="Lungs clear.", meta={"finding_kinds": kinds})


def test_kinds_are_scored_by_their_test_and_train_positives():
    train = [_study(i, "train", ["a", "b"] if i < 6 else ["a"]) for i in range(10)]
    test = [_study(10 + i, "test", ["a", "b", "c"] if i < 2 else ["a"]) for i in range(4)]
    kinds = PL.finding_kinds(train + test, train, test, min_test=2)
    # a: 4 test / 10 train; b: 2 test / 6 train (= 3 x 2, enough); c: 2 test / 0 train (too few in train)
    assert kinds.scored == ["a", "b"] and kinds.rare == ["c"]
    assert (kinds.all["a"], kinds.train["b"], kinds.test["c"]) == (14, 6, 2)
    assert PL.targets(test[1:3], ["c", "a"]).tolist() == [[1.0, 1.0], [0.0, 1.0]]


@pytest.fixture
def blob_manifest(tmp_path):
    """48 train / 24 test grey images; "blob" studies carry a bright square, "rare" is drawn on two."""
    rng = np.random.default_rng(0)
    studies = []
    for i in range(72):
        split = "train" if i < 48 else "test"
        kinds = (["blob"] if i % 2 else []) + (["rare"] if i in (50, 51) else [])
        pixels = rng.integers(0, 60, size=(32, 32)).astype(np.uint8)
        if "blob" in kinds:
            pixels[8:24, 8:24] = 230
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        studies.append(Study(f"s{i}", [str(tmp_path / f"{i}.png")], split, meta={"finding_kinds": kinds}))
    write_manifest(studies, tmp_path / "phantom" / "manifest.jsonl")
    return tmp_path / "phantom" / "manifest.jsonl"


def test_page_scores_a_learnable_kind_and_lists_the_rare_one(blob_manifest, tmp_path):
    out = tmp_path / "results" / "phantom.md"
    argv = ["--manifest", str(blob_manifest), "--input", "32", "--epochs", "6", "--batch", "16"]
    argv += ["--min-test", "5", "--threads", "1", "--out", str(out)]
    assert PL.main(argv) == 0
    page = out.read_text(encoding="utf-8")
    assert "Data: phantom (72 studies; 48 train / 24 test by the R2Gen split), images resized to 32 px." in page
    row = re.search(r"^\| blob \| 36 \| 24 \| 12 \| ([0-9.]+) \| (yes|NO) \|$", page, flags=re.MULTILINE)
    assert row is not None, page
    assert float(row.group(1)) >= 0.85 and row.group(2) == "yes"  # a bright square is easy to see
    assert f"Mean AUROC over the 1 scored kinds: {float(row.group(1)):.3f}. 1/1 reach 0.85." in page
    assert "Rare kinds (fewer than 5 test positives; not scored): rare 2 (test 2)." in page
