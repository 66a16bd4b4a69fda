"""Validation during training (``val_every`` / ``keep_best``): the scores, the step kept, resume, bad settings."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import _kill_at

from eclip_core.config import EClipConfig, TrainConfig
from eclip_core.data.manifest import read_manifest, write_manifest
from eclip_core.errors import ConfigError
from eclip_core.model import EClip
from eclip_core.train import train
from eclip_core.training.synthetic import make_blob_dataset
from eclip_core.training.validation import ValScorer, score_embeddings


def test_score_counts_shared_reports_once_and_ranks_against_them():
    # X-rays 0 and 1 share report "a"; X-ray 1 lies nearer "b", so it ranks its own report second.
    images = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # rows 0 and 1 are report "a"
    s = score_embeddings(images, texts, ["a", "a", "b"], logit_scale=5.0, step=3)
    assert s.n == 3 and s.step == 3
    assert s.recall == {1: pytest.approx(2 / 3), 5: 1.0, 10: 1.0}
    logits = 5.0 * images.numpy() @ np.array([[1.0, 0.0], [0.0, 1.0]]).T  # candidates: "a", "b"
    own = np.array([0, 0, 1])
    expected = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(3), own])
    assert s.loss == pytest.approx(expected, rel=1e-5)
    assert s.record() == {
        "step": 3, "val_loss": s.loss, "val_n": 3, "val_R@1": s.recall[1], "val_R@5": 1.0, "val_R@10": 1.0,
        "val_recall_se": pytest.approx(1 / 9),  # per-row mean recalls 1, 2/3, 1
    }  # fmt: skip


@pytest.fixture(scope="module")
def blobs_with_val(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blobs_val")
    studies = read_manifest(make_blob_dataset(folder, n=60, size=64, expert_fraction=0.3, seed=1))
    for s in studies[40:]:
        s.split = "val"
    write_manifest(studies, folder / "with_val.csv")
    return folder / "with_val.csv"


def _cfg(manifest, out, **kw):
    base = dict(
        manifest=str(manifest), output_dir=str(out), steps=6, batch_size=8, lr=3e-3, method="eclip", cold_frac=0.17,
        model=EClipConfig(name="eclip-tiny", clahe_p=0.0), progress=False, validate_images=False, log_every=1,
        val_every=2, keep_best=True,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _val_rows(path):
    return [r for r in map(json.loads, path.read_text().splitlines()) if "val_loss" in r]


@pytest.mark.slow
def test_the_model_kept_is_the_logged_step_with_the_lowest_val_loss(blobs_with_val, tmp_path):
    result = train(_cfg(blobs_with_val, tmp_path / "run"))
    logged = _val_rows(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in logged] == [2, 4, 6] and all(r["val_n"] == 20 for r in logged)
    assert result.val == logged
    best = min(logged, key=lambda r: r["val_loss"])
    assert result.best_step == best["step"]
    # Scored again from the saved folder, by a scorer built here: the same loss as the kept step's row.
    saved = EClip.from_pretrained(result.model_dir)
    again = ValScorer(saved, read_manifest(blobs_with_val, split="val")).score(saved, step=0)
    assert again.loss == pytest.approx(best["val_loss"], abs=1e-5)
    assert saved.checkpoint_hash == result.checkpoint_hash


@pytest.mark.slow
def test_without_keep_best_the_last_step_is_saved_and_validation_changes_no_weight(blobs_with_val, tmp_path):
    plain = train(_cfg(blobs_with_val, tmp_path / "plain", val_every=0, keep_best=False))
    scored = train(_cfg(blobs_with_val, tmp_path / "scored", keep_best=False))
    assert scored.best_step is None and len(scored.val) == 3 and plain.val == []
    assert plain.checkpoint_hash == scored.checkpoint_hash  # scoring leaves the training run untouched


@pytest.mark.slow
def test_a_resumed_run_keeps_the_same_step_as_an_uninterrupted_one(blobs_with_val, tmp_path):
    full = train(_cfg(blobs_with_val, tmp_path / "full", checkpoint_every=3))
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(blobs_with_val, tmp_path / "part", checkpoint_every=3), on_step=_kill_at(5))
    resumed = train(_cfg(blobs_with_val, tmp_path / "part", checkpoint_every=3, resume=True))
    assert resumed.start_step == 3 and resumed.best_step == full.best_step
    assert resumed.checkpoint_hash == full.checkpoint_hash
    assert [r["step"] for r in _val_rows(tmp_path / "part" / "metrics.jsonl")] == [2, 4, 6]
    a = EClip.from_pretrained(full.model_dir).state_dict()
    b = EClip.from_pretrained(resumed.model_dir).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_validation_needs_rows_that_do_not_train():
    with pytest.raises(ConfigError, match="do not train"):
        TrainConfig(val_every=10, val_split="train").validate()


@pytest.mark.slow
def test_a_manifest_without_val_rows_trains_with_a_warning(tmp_path, caplog):
    manifest = make_blob_dataset(tmp_path / "blobs", n=16, size=64, expert_fraction=0.0, seed=2)
    with caplog.at_level(logging.WARNING):
        result = train(_cfg(manifest, tmp_path / "run", steps=2))
    assert result.best_step is None and result.val == []
    assert any("training without validation and keeps the last step" in r.message for r in caplog.records)
    # keep_best alone (val_every 0, e.g. `rag-report train --val-every 0`): the last step, as without it.
    alone = train(_cfg(manifest, tmp_path / "alone", steps=2, val_every=0))
    assert alone.best_step is None and alone.checkpoint_hash == result.checkpoint_hash


class _ScriptedScorer:
    """Val losses (and R@10s) given in advance (a stand-in for scoring a model)."""

    def __init__(self, losses, r10=None, se=None):
        self.losses, self.r10 = iter(losses), iter(r10 or [0.0] * len(losses))
        self.se = iter(se or [0.0] * len(losses))

    def score(self, model, step):
        from eclip_core.training.validation import ValScore

        recall = {1: 0.0, 5: 0.0, 10: next(self.r10)}
        return ValScore(step=step, loss=next(self.losses), recall=recall, n=2, recall_se=next(self.se))


def test_keep_best_restores_the_weights_of_the_lowest_loss_step_not_the_last(tiny_model, tmp_path):
    from eclip_core.training.validation import Validation

    model = EClip(tiny_model.config)
    scale = model.clip.logit_scale
    cfg = TrainConfig(val_every=2, steps=6, keep_best=True)
    validation = Validation(_ScriptedScorer([2.0, 1.0, 3.0]), cfg, tmp_path / "best")
    for step in (2, 4, 6):
        with torch.no_grad():
            scale.fill_(float(step))  # the weights "at" this step
        validation.run(model, step)
    assert validation.restore_best(model) == 4
    assert float(scale.detach()) == 4.0

    # A run resumed from step 3 drops the step-4 weights (saved after its checkpoint); from step 5 it keeps them.
    rows = [r.record() for r in validation.scores]

    def resumed_at(step):
        earlier = [r for r in rows if r["step"] <= step]
        return Validation(_ScriptedScorer([]), cfg, tmp_path / "best", start_step=step, earlier=earlier)

    kept = resumed_at(5)
    assert (kept.best["step"], kept.best["val_loss"]) == (4, 1.0) and kept.since_best == 0
    assert kept.restore_best(model) == 4
    assert (resumed_at(3).best["step"], resumed_at(3).best["val_loss"]) == (2, 2.0)  # step 4 is trained again
    assert not (tmp_path / "best").exists()


def test_patience_counts_scorings_since_the_lowest_val_loss():
    from eclip_core.training.validation import Validation

    cfg = TrainConfig(val_every=1, steps=9, val_patience=2)
    validation = Validation(_ScriptedScorer([3.0, 2.0, 2.5, 1.0, 1.5, 1.2]), cfg, Path("unused"))
    exhausted = []
    for step in range(1, 7):
        validation.run(None, step)
        exhausted.append(validation.exhausted)
    assert exhausted == [False, False, False, False, False, True]
    assert (validation.best["step"], validation.best["val_loss"]) == (4, 1.0)


def test_by_recall_the_step_kept_has_the_highest_mean_recall_and_a_tie_keeps_the_earlier(tiny_model, tmp_path):
    from eclip_core.training.validation import Validation

    model = EClip(tiny_model.config)
    scale = model.clip.logit_scale
    # The loss rises at every scoring while R@10 climbs to 0.6 at step 3, ties it at step 4, then falls.
    cfg = TrainConfig(val_every=1, steps=9, keep_best=True, val_metric="recall", val_patience=3)
    validation = Validation(_ScriptedScorer([1.0, 1.5, 2.0, 2.5, 3.0, 3.5], [0.3, 0.3, 0.6, 0.6, 0.45, 0.3]), cfg,
                            tmp_path / "best")  # fmt: skip
    exhausted = []
    for step in range(1, 7):
        with torch.no_grad():
            scale.fill_(float(step))
        validation.run(model, step)
        exhausted.append(validation.exhausted)
    assert exhausted == [False, False, False, False, False, True]  # steps 4, 5, 6 are not above step 3
    assert validation.best["step"] == 3 and validation.best["merit"] == pytest.approx(0.2)
    assert validation.restore_best(model) == 3 and float(scale.detach()) == 3.0
    # By loss the same scores keep the first step.
    by_loss = Validation(
        _ScriptedScorer([1.0, 1.5, 2.0], [0.3, 0.3, 0.6]), TrainConfig(val_every=1, steps=3), Path("x")
    )
    for step in range(1, 4):
        by_loss.run(None, step)
    assert by_loss.best["step"] == 1


def test_by_recall_a_later_step_must_beat_the_kept_one_by_more_than_its_standard_error():
    from eclip_core.training.validation import Validation

    # Mean recalls (R@10 / 3) 0.10, 0.13, 0.16, 0.30; the kept step's standard error 0.05: step 2 is within
    # noise of step 1, step 3 beats step 1 by 0.06 > 0.05 and is kept with its own margin 0.01, step 4 beats that.
    scorer = _ScriptedScorer([1.0] * 5, [0.3, 0.39, 0.48, 0.9, 0.9], se=[0.05, 0.05, 0.01, 0.02, 0.0])
    validation = Validation(scorer, TrainConfig(val_every=1, steps=5, val_metric="recall"), Path("unused"))
    kept = []
    for step in range(1, 6):
        validation.run(None, step)
        kept.append(validation.best["step"])
    assert kept == [1, 1, 3, 4, 4]


def test_recall_standard_error_by_hand():
    from eclip_core.training.validation import score_embeddings

    # X-ray 0 finds its own report first, X-rays 1 and 2 second (of 3 candidates: always within 5 and 10):
    # per-row mean recalls 1, 2/3, 2/3; their sd sqrt(1/27) over sqrt(3) rows = 1/9.
    s = score_embeddings(torch.eye(3), torch.eye(3)[[0, 2, 1]], ["a", "b", "c"], logit_scale=10.0, step=1)
    assert s.recall == {1: pytest.approx(1 / 3), 5: 1.0, 10: 1.0}
    assert s.recall_se == pytest.approx(1 / 9) and s.record()["val_recall_se"] == pytest.approx(1 / 9)


def test_an_unknown_val_metric_is_refused():
    with pytest.raises(ConfigError, match="val_metric"):
        TrainConfig(val_metric="auroc").validate()


@pytest.mark.slow
def test_training_stops_once_patience_runs_out_and_saves_the_best_step(blobs_with_val, tmp_path, monkeypatch):
    from eclip_core.training import validation as V

    losses = iter([1.0, 0.5, 0.7, 0.9, 1.1, 1.3])  # best at step 2, then three scorings without a lower loss
    monkeypatch.setattr(V.ValScorer, "score", lambda self, model, step: V.ValScore(step, next(losses), {1: 0.0}, 20))
    result = train(_cfg(blobs_with_val, tmp_path / "run", steps=10, val_every=1, val_patience=3))
    assert result.steps == 5 and result.best_step == 2
    assert [r["step"] for r in result.val] == [1, 2, 3, 4, 5]
    best = EClip.from_pretrained(tmp_path / "run" / "best")
    assert best.checkpoint_hash == result.checkpoint_hash == EClip.from_pretrained(result.model_dir).checkpoint_hash
