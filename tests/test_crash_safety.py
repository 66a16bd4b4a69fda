"""A kill between any two file-system steps of saving a model, a training checkpoint or an index leaves a
complete old or new version that the real loader finds (with the right contents), and the next run removes
what the killed save left. ``--resume`` resumes from a checkpoint a kill left outside ``checkpoint/``."""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import pytest
import torch

from eclip_core.config import EClipConfig, TrainConfig
from eclip_core.data.manifest import Study
from eclip_core.errors import CheckpointError
from eclip_core.model import EClip
from eclip_core.safe_dir import siblings
from eclip_core.train import train
from eclip_core.training.checkpoint import load_checkpoint, save_checkpoint
from eclip_core.training.synthetic import make_blob_dataset
from rag_report.index import ReportIndex


def _kill_matrix(tmp_path, kill_switch, save, load):
    """For every step k of ``save(target, "B")`` over a saved "A": kill before step k, then check that
    ``load(target)`` gives "A" or "B", that nothing is left beside the target, and that saving "C" works."""
    probe = tmp_path / "probe" / "target"
    save(probe, "A")
    kill_switch.arm(probe.parent, None)
    save(probe, "B")
    steps = kill_switch.calls
    kill_switch.disarm()
    assert steps >= 4
    seen = []
    for at in range(1, steps + 1):
        target = tmp_path / f"kill{at}" / "target"
        save(target, "A")
        kill_switch.arm(target.parent, at)
        with pytest.raises(kill_switch.Killed):
            save(target, "B")
        kill_switch.disarm()
        twin = tmp_path / f"twin{at}" / "target"
        shutil.copytree(target.parent, twin.parent)  # the same leftovers, for a next run that saves first
        seen.append(load(target))
        assert seen[-1] in ("A", "B"), at
        assert os.listdir(target.parent) == ["target"], (at, os.listdir(target.parent))  # the load cleaned up
        save(target, "C")
        assert load(target) == "C" and os.listdir(target.parent) == ["target"]
        save(twin, "C")  # the next save, without a load in between, also cleans up
        assert os.listdir(twin.parent) == ["target"] and load(twin) == "C"
    assert seen[0] == "A" and seen[-1] == "B"  # killed early: the old version; late: the new one
    return seen


@pytest.fixture(scope="module")
def two_models():
    torch.manual_seed(0)
    a = EClip.from_config("eclip-tiny")
    b, c = EClip.from_config("eclip-tiny"), EClip.from_config("eclip-tiny")
    with torch.no_grad():
        next(b.parameters()).add_(0.5)
        next(c.parameters()).add_(1.0)
    models = {"A": a, "B": b, "C": c}
    assert len({m.checkpoint_hash for m in models.values()}) == 3
    return models


@pytest.mark.slow
def test_model_save_killed_at_any_step(tmp_path, kill_switch, two_models):
    by_hash = {m.checkpoint_hash: v for v, m in two_models.items()}
    _kill_matrix(
        tmp_path,
        kill_switch,
        lambda target, v: two_models[v].save_pretrained(target),
        lambda target: by_hash[EClip.from_pretrained(target).checkpoint_hash],
    )


@pytest.mark.slow
def test_checkpoint_save_killed_at_any_step(tmp_path, kill_switch, two_models):
    steps = {"A": 3, "B": 6, "C": 9}
    model = two_models["A"]

    def optim():
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    def save(target, v):
        opt, sched = optim()
        save_checkpoint(target, two_models[v], opt, sched, steps[v], {"run": v}, {"expert_steps": steps[v]})

    def load(target):
        from eclip_core.training.checkpoint import find_checkpoint

        found = find_checkpoint(target)
        opt, sched = optim()
        fresh = EClip.from_config("eclip-tiny")
        step, counters = load_checkpoint(found, fresh, opt, sched)
        version = {3: "A", 6: "B", 9: "C"}[step]
        assert counters["expert_steps"] == step and fresh.checkpoint_hash == two_models[version].checkpoint_hash
        assert json.loads((found / "train_config.json").read_text()) == {"run": version}
        return version

    _kill_matrix(tmp_path, kill_switch, save, load)


def _corpus(n: int) -> list[Study]:
    return [Study(f"S{i:02d}", [f"x{i}.png"], "train", findings=f"Finding number {i}.") for i in range(n)]


def test_index_build_killed_at_any_step(tmp_path, kill_switch):
    sizes = {"A": 5, "B": 7, "C": 9}
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(9, 16)).astype(np.float32)
    sample = rng.normal(size=(20, 16)).astype(np.float32)

    def save(target, v):
        n = sizes[v]
        ReportIndex.build_from_vectors(vectors[:n], _corpus(n), target, checkpoint_hash="h", image_sample=sample)

    def load(target):
        index = ReportIndex.load(target)
        n = len(index)
        assert index.study_ids == [s.study_id for s in _corpus(n)]
        _, ids = index.search(vectors[:n], 1, modality="text")
        assert [r[0] for r in ids] == index.study_ids  # each report finds itself: the vectors are whole
        return {5: "A", 7: "B", 9: "C"}[n]

    _kill_matrix(tmp_path, kill_switch, save, load)


# ---------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return make_blob_dataset(tmp_path_factory.mktemp("blobs"), n=40, size=64, expert_fraction=0.3, seed=0)


def _cfg(blobs, out, **kw):
    settings = {
        "steps": 6,
        "checkpoint_every": 2,
        "batch_size": 4,
        "lr": 1e-3,
        "method": "eclip",
        "p_start": 1.0,
        "p_peak": 1.0,
        "p_floor": 1.0,
        "cold_frac": 0.17,
        "progress": False,
        "validate_images": False,
        "log_every": 1,
    }
    return TrainConfig(
        manifest=str(blobs), output_dir=str(out), model=EClipConfig(name="eclip-tiny"), **{**settings, **kw}
    )


@pytest.mark.slow
def test_resume_after_a_kill_between_the_checkpoint_renames(blobs, tmp_path, monkeypatch, caplog):
    full = train(_cfg(blobs, tmp_path / "full"))
    out = tmp_path / "part"
    ckpt = out / "checkpoint"
    real_replace = os.replace
    state = {"aside": 0}

    class Killed(BaseException):
        pass

    def replace(src, dst):
        if state["aside"] == 1:  # the checkpoint save of step 4 has moved the step-2 one aside: die
            raise Killed()
        if str(src) == str(ckpt) and ".checkpoint.old." in str(dst):
            state["aside"] += 1
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Killed):
        train(_cfg(blobs, out))
    monkeypatch.setattr(os, "replace", real_replace)
    assert not ckpt.exists()  # the state the issue describes: two complete checkpoints, both hidden
    assert sorted(s.role for s in siblings(ckpt)) == ["new", "old"]
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 5, "loss": 1.2')  # the kill also cut a metrics line short

    with caplog.at_level(logging.WARNING):
        resumed = train(_cfg(blobs, out, resume=True))
    assert resumed.start_step == 4 and resumed.steps == 6  # from the newest complete checkpoint, not step 0
    assert resumed.checkpoint_hash == full.checkpoint_hash
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))
    assert "unreadable line" in caplog.text
    assert sorted(os.listdir(out)) == ["checkpoint", "metrics.jsonl", "model"]  # nothing hidden left


def test_resume_without_a_checkpoint_warns_and_an_incomplete_one_is_refused(blobs, tmp_path, caplog):
    # A first run has nothing to resume: said at INFO, not as a warning.
    with caplog.at_level(logging.INFO, logger="eclip_core.train"):
        result = train(_cfg(blobs, tmp_path / "fresh", resume=True, steps=2, checkpoint_every=0))
    said = [r for r in caplog.records if "no checkpoint" in r.getMessage()]
    assert result.start_step == 0 and said and all(r.levelno == logging.INFO for r in said)
    # An earlier run's metrics without its checkpoint: a warning.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eclip_core.train"):
        again = train(_cfg(blobs, tmp_path / "fresh", resume=True, steps=2, checkpoint_every=0))
    assert again.start_step == 0 and "no checkpoint" in caplog.text
    broken = tmp_path / "broken"
    (broken / "checkpoint" / "model").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="incomplete"):
        train(_cfg(blobs, broken, resume=True, steps=2))
