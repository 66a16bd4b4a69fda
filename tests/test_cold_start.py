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


# ---------------------------------------------------------------- training: the same weights, faster
@pytest.fixture(scope="module")
def few_blobs(tmp_path_factory):
    """12 studies: a 6-step run of batch 4 draws every image twice."""
    from eclip_core.training.synthetic import make_blob_dataset

    return make_blob_dataset(tmp_path_factory.mktemp("blobs"), n=12, size=64, expert_fraction=0.3, seed=0)


def _run_cfg(manifest, out, **kw):
    from tests.test_train import _resume_cfg  # eclip-tiny, 6 steps of batch 4, expert batches, checkpoints

    return _resume_cfg(manifest, out, **kw)


def test_image_cache_gives_the_decoded_pixels_exactly(few_blobs):
    from eclip_core.data.image_io import load_image
    from eclip_core.data.manifest import read_manifest
    from eclip_core.training.data import ImageCache, pack_image, unpack_image

    studies = read_manifest(few_blobs)
    cache = ImageCache()
    for s in studies + studies:
        got = cache.get(s)
        want = load_image(s.image_paths[0])
        assert got.dtype == want.dtype and np.array_equal(got, want)
        got[:] = -1  # the caller's copy: the cached pixels stay intact
    assert (cache.hits, cache.misses) == (len(studies), len(studies))
    assert cache.used == sum(load_image(s.image_paths[0]).size for s in studies)  # 8-bit files: one byte a pixel
    odd = np.array([[0.1234567, 1.0]], np.float32)  # not an 8-bit image: kept as it is
    assert pack_image(odd).dtype == np.float32 and np.array_equal(unpack_image(pack_image(odd)), odd)
    full = ImageCache(max_mb=0.0)  # no room: decoded each time, the same pixels
    assert np.array_equal(full.get(studies[0]), load_image(studies[0].image_paths[0])) and full.used == 0


@pytest.mark.slow
def test_cached_images_and_timings_leave_the_weights_unchanged(few_blobs, tmp_path, monkeypatch):
    from eclip_core.train import train
    from eclip_core.training import data

    cached = train(_run_cfg(few_blobs, tmp_path / "cached"))
    monkeypatch.setattr(data, "IMAGE_CACHE_MB", 0.0)  # every draw decoded from its file, as before the cache
    decoded = train(_run_cfg(few_blobs, tmp_path / "decoded"))
    assert cached.checkpoint_hash == decoded.checkpoint_hash
    t = cached.timings
    assert set(t) >= {"setup_s", "data_wait_s", "steps_s", "steps_cpu_s", "checkpoint_s", "save_s"}
    assert 0 < t["steps_s"] and t["setup_s"] + t["data_wait_s"] + t["steps_s"] + t["checkpoint_s"] <= cached.wall_s


_TRAIN_IN_CHILD = """
import sys
from pathlib import Path
from tests.test_cold_start import _run_cfg
from eclip_core.train import train
import torch
torch.set_num_threads(2)
print(train(_run_cfg(Path(sys.argv[1]), Path(sys.argv[2]), num_workers=1)).checkpoint_hash)
"""


@pytest.mark.slow
def test_sleeping_openmp_threads_train_the_same_weights(few_blobs, tmp_path):
    """OMP_WAIT_POLICY=PASSIVE (what building sets, eclip_core.runtime.setup_build_threads) changes how idle
    threads wait, not how the work is split: the same weights as spinning threads, two threads each."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    hashes = {}
    for policy in ("PASSIVE", "ACTIVE"):
        env = {**os.environ, "OMP_WAIT_POLICY": policy, "PYTHONPATH": str(root)}
        env.pop("OMP_NUM_THREADS", None)
        out = subprocess.run(
            [sys.executable, "-c", _TRAIN_IN_CHILD, str(few_blobs), str(tmp_path / policy)],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        hashes[policy] = out.stdout.split()[-1]
    assert hashes["PASSIVE"] == hashes["ACTIVE"] and len(hashes["PASSIVE"]) == 16


def test_build_commands_ask_for_sleeping_threads(tmp_path, monkeypatch):
    from eclip_core.runtime import setup_build_threads
    from rag_report.cli import _builds

    monkeypatch.setenv("RAG_REPORT_HOME", str(tmp_path))
    assert _builds(["build-default"]) and _builds(["generate", "--example"])  # no bundle yet: the first run builds
    assert not _builds(["eval"])
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert setup_build_threads(env) and env == {"OMP_WAIT_POLICY": "ACTIVE"}  # a user's choice is kept
    env = {}
    setup_build_threads(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_cold_start_page_adds_up_the_stages_and_projects_two_cores():
    from eval.bench.serving.cold_start import projected_wall_s, render

    def stage(name, wall, cpu):
        return {"name": name, "wall_s": wall, "cpu_s": cpu}

    run = {
        "command": "rag-report generate --example --quiet",
        "wall_s": 300.0,
        "cpu_s": 500.0,
        "stages": [
            stage("phantom data set", 60.0, 100.0),
            stage("train: text features", 20.0, 40.0),
            stage("train eCLIP", 150.0, 300.0),
            stage("index: fit classifiers", 10.0, 10.0),
            stage("index build", 30.0, 50.0),
        ],
        "load_before": (1.0, 1.0, 1.0),
        "load_after": (1.2, 1.0, 1.0),
        "cpu": "x86_64",
        "cores": 2,
        "nice": 0,
        "date": "2026-12-07",
    }
    # phantom 100/2 + training 300/2 + index (50-10)/2 + its serial fit 10 + the rest (500-450 = 50) on one core
    assert projected_wall_s(run) == pytest.approx(50 + 150 + 20 + 10 + 50)
    page = "\n".join(render(run, baseline=run))
    assert "| everything else (start, imports, pipeline load, draft) | 50.0 | 60.0 | 50.0 | 60.0 | 10 % |" in page
    assert "| &nbsp;&nbsp;train: text features | 40.0 | 20.0 | 40.0 | 20.0 |  |" in page
    assert page.index("| train eCLIP |") < page.index("train: text features") < page.index("| index build |")
    assert "Projected wall on 2 idle cores: **4 min 40 s**" in page
