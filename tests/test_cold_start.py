"""The default bundle's cold start: stage timing, and the val X-rays embedded once with the same results."""

import subprocess
import sys

import numpy as np
import pytest

from eclip_core.stage_clock import StageClock, children_cpu_seconds, cpu_seconds
from rag_report.index.embedding_memo import EmbeddingMemo


def test_stage_clock_counts_own_and_finished_children_cpu(caplog):
    clock = StageClock()
    with caplog.at_level("INFO", logger="eclip_core.stage_clock"), clock.stage("busy"):
        end = cpu_seconds() + 0.2
        while cpu_seconds() < end:
            pass
    children = children_cpu_seconds()
    with clock.stage("child"):
        subprocess.run(
            [sys.executable, "-c", "import time\nt=time.process_time()+0.3\nwhile time.process_time()<t: pass"]
        )
    busy, child = clock.stages
    assert busy.cpu_s >= 0.2 and busy.wall_s >= 0.2
    assert child.cpu_s >= 0.3 and children_cpu_seconds() - children >= 0.3  # the child's CPU counts once reaped
    assert "stage busy:" in caplog.text and "CPU-s" in caplog.text
    assert [d["name"] for d in clock.as_dicts()] == ["busy", "child"]


class Counting:
    """A real model that counts the images it embeds."""

    def __init__(self, model):
        self.model, self.passes = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def embed_images(self, sources, batch_size=32, progress=False):
        sources = list(sources)
        self.passes += len(sources)
        return self.model.embed_images(sources, batch_size=batch_size, progress=progress)


def test_memo_embeds_each_image_once_with_the_models_vectors(tiny_world):
    from eclip_core.data.image_io import load_image
    from eclip_core.model import EClip

    model = EClip.from_pretrained(tiny_world["model_dir"]).eval()
    paths = [s.image_paths[0] for s in tiny_world["studies"][:10]]
    counting = Counting(model)
    memo = EmbeddingMemo(counting)
    first = memo.embed_images(paths, batch_size=4, progress=False)
    np.testing.assert_array_equal(first, model.embed_images(paths, batch_size=4, progress=False))  # same batches
    again = memo.embed_images(list(reversed(paths)) + paths[:2], batch_size=4, progress=False)
    np.testing.assert_array_equal(again, np.concatenate([first[::-1], first[:2]]))
    assert counting.passes == 10 and (memo.hits, memo.misses) == (12, 10)
    pixels = [load_image(p) for p in paths[:3]]  # arrays: remembered by their pixels, not their path
    arrays = memo.embed_images(pixels + [pixels[0].copy()], batch_size=4, progress=False)
    assert counting.passes == 13
    np.testing.assert_allclose(arrays[:3], first[:3], atol=1e-6)  # the same pixels as the files
    np.testing.assert_array_equal(arrays[3], arrays[0])
    assert memo.checkpoint_hash == model.checkpoint_hash and memo.embed_dim == model.embed_dim


@pytest.fixture(scope="module")
def tiles_index(tiny_world, tmp_path_factory):
    """An index with image+tiles label classifiers over the tiny world (as the bundle builds it)."""
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex

    model = EClip.from_pretrained(tiny_world["model_dir"]).eval()
    studies = tiny_world["studies"]
    train = [s for s in studies if s.split == "train" and s.report_text]
    val = [s for s in studies if s.split != "train" and s.report_text][:12]
    counting = Counting(model)
    memo = EmbeddingMemo(counting)
    clock = StageClock()
    out = tmp_path_factory.mktemp("tiles") / "index"
    ReportIndex.build(memo, train, out, progress=False, val_studies=val, classifier_views="image+tiles", clock=clock)
    return {"model": model, "memo": memo, "counting": counting, "dir": out, "val": val, "clock": clock}


def test_index_build_times_its_passes(tiles_index):
    names = [s.name for s in tiles_index["clock"].stages]
    assert names == [
        "index: reports",
        "index: corpus X-rays",
        "index: corpus tiles",
        "index: val X-rays and tiles",
        "index: fit classifiers",
        "index: image sample",
        "index: FAISS and files",
    ]


def test_the_val_stages_reuse_the_index_builds_val_embeddings_with_the_same_results(tiles_index, tmp_path):
    """Similarity floor and checker thresholds through the memo equal those of the plain model, while the
    val X-rays and their tiles are not embedded again."""
    import shutil

    from rag_report.bundle import _similarity_floor, write_checker_thresholds
    from rag_report.drafting.checker import load_thresholds
    from rag_report.index import ReportIndex

    model, memo, counting, val = (tiles_index[k] for k in ("model", "memo", "counting", "val"))
    index = ReportIndex.load(tiles_index["dir"], model=model)
    before = counting.passes
    floor = _similarity_floor(memo, index, val, progress=False)
    memo_dir, plain_dir = tmp_path / "memo", tmp_path / "plain"
    for folder in (memo_dir, plain_dir):
        shutil.copytree(tiles_index["dir"], folder)
    got = load_thresholds(write_checker_thresholds(memo, ReportIndex.load(memo_dir, model=model), val))
    assert counting.passes == before  # every val X-ray and tile came from the index build
    want = load_thresholds(write_checker_thresholds(model, ReportIndex.load(plain_dir, model=model), val))
    assert floor == pytest.approx(_similarity_floor(model, index, val, progress=False), abs=1e-6)
    assert got.how == want.how
    for mine, theirs in ((got.assert_floor, want.assert_floor), (got.deny_ceiling, want.deny_ceiling)):
        assert set(mine) == set(theirs)
        assert all(abs(mine[name] - value) <= 1e-5 for name, value in theirs.items())
