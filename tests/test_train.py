"""Training: a real short run learns, kill-and-resume is exact, bad rows are skipped, the CLI works."""

import json
import logging

import numpy as np
import pytest
import torch

from eclip_core.config import EClipConfig, TrainConfig
from eclip_core.data.manifest import read_manifest, write_manifest
from eclip_core.errors import ManifestError
from eclip_core.model import EClip
from eclip_core.train import config_from_args, main, train
from eclip_core.training.synthetic import make_blob_dataset


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return make_blob_dataset(tmp_path_factory.mktemp("blobs"), n=100, size=64, expert_fraction=0.3, seed=0)


def _tiny(**kw):
    return EClipConfig(name="eclip-tiny", clahe_p=0.0, crop_scale_min=0.9, **kw)


@pytest.mark.slow
def test_short_training_lowers_loss_and_beats_chance_on_r5(blobs, tmp_path):
    cfg = TrainConfig(
        manifest=str(blobs),
        output_dir=str(tmp_path / "run"),
        steps=70,
        batch_size=32,
        lr=1e-3,
        warmup_frac=0.05,
        weight_decay=0.0,
        model=_tiny(),
        progress=False,
        log_every=10,
    )
    result = train(cfg)
    assert result.steps == 70 and result.n_train == 100 and result.n_expert > 10
    assert result.expert_steps > 5  # the curriculum injected expert batches
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10]) - 0.5
    assert (result.model_dir / "metrics.jsonl").is_file() and (result.model_dir / "train_config.json").is_file()

    model = EClip.from_pretrained(result.model_dir)
    assert model.checkpoint_hash == result.checkpoint_hash
    studies = read_manifest(blobs)
    texts = sorted({s.report_text for s in studies})  # 18 distinct findings
    v = model.embed_images([s.image_paths[0] for s in studies], progress=False)
    t = model.embed_texts(texts, progress=False)
    sim = v @ t.T
    gold = np.array([texts.index(s.report_text) for s in studies])
    rank = (sim > sim[np.arange(len(studies)), gold][:, None]).sum(1)
    r5, chance = (rank < 5).mean(), 5 / len(texts)
    assert r5 > chance + 0.25, (r5, chance)


def _resume_cfg(blobs, out, steps=6, **kw):
    return TrainConfig(
        manifest=str(blobs),
        output_dir=str(out),
        steps=steps,
        batch_size=4,
        lr=1e-3,
        method="eclip",
        p_start=1.0,
        p_peak=1.0,
        p_floor=1.0,
        cold_frac=0.17,
        checkpoint_every=3,
        model=EClipConfig(name="eclip-tiny"),
        progress=False,
        validate_images=False,
        log_every=1,
        **kw,
    )


def _kill_at(kill_step):
    def on_step(step, record):
        if step == kill_step:
            raise KeyboardInterrupt("simulated kill")

    return on_step


@pytest.mark.slow
def test_kill_and_resume_reaches_the_same_weights(blobs, tmp_path):
    full = train(_resume_cfg(blobs, tmp_path / "full"))
    assert full.expert_steps == 5  # every step after the 1-step cold start injects

    with pytest.raises(KeyboardInterrupt):
        train(_resume_cfg(blobs, tmp_path / "part"), on_step=_kill_at(5))
    resumed = train(_resume_cfg(blobs, tmp_path / "part", resume=True))
    assert resumed.start_step == 3 and resumed.steps == 6
    a = EClip.from_pretrained(full.model_dir).state_dict()
    b = EClip.from_pretrained(resumed.model_dir).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert full.checkpoint_hash == resumed.checkpoint_hash
    import json

    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))  # records of the killed run's step 4-5 replaced, not duplicated


def _with_bad_rows(blobs, tmp_path):
    studies = read_manifest(blobs)[:20]
    studies[3].image_paths = [str(tmp_path / "missing.png")]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    studies[5].image_paths = [str(corrupt)]
    manifest = tmp_path / "bad.csv"
    write_manifest(studies, manifest)
    return manifest


def test_bad_rows_are_skipped_with_one_warning(blobs, tmp_path, caplog):
    manifest = _with_bad_rows(blobs, tmp_path)
    cfg = TrainConfig(
        manifest=str(manifest),
        output_dir=str(tmp_path / "r"),
        steps=2,
        batch_size=4,
        model=EClipConfig(name="eclip-tiny"),
        progress=False,
    )
    with caplog.at_level(logging.WARNING, logger="eclip_core.train"):
        result = train(cfg)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "eclip_core.train"]
    assert len(warnings) == 1 and "2 of 20" in warnings[0].getMessage()
    assert "missing.png" in warnings[0].getMessage()
    assert result.n_train == 18 and result.bad_rows == 2
    with pytest.raises(ManifestError, match="fail_on_bad_rows"):
        train(TrainConfig(**{**cfg.to_dict(), "model": cfg.model, "fail_on_bad_rows": True}))


def test_cli_config_file_and_flags(blobs, tmp_path):
    (tmp_path / "t.yaml").write_text(f"manifest: {blobs}\nsteps: 50\nmodel:\n  name: eclip-tiny\n")
    cfg = config_from_args(
        [
            "--config",
            str(tmp_path / "t.yaml"),
            "--steps",
            "2",
            "--model-lock-text",
            "--expert-batch-size",
            "none",
            "--preset",
            "ref",
        ]
    )
    assert (cfg.steps, cfg.model.name, cfg.model.lock_text, cfg.expert_batch_size, cfg.priming_weight) == (
        2,
        "eclip-tiny",
        True,
        None,
        0.3,
    )
    rc = main(
        [
            "--manifest",
            str(blobs),
            "--output-dir",
            str(tmp_path / "cli"),
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--model",
            "eclip-tiny",
            "--method",
            "clip",
            "--no-progress",
            "--no-validate-images",
        ]
    )
    assert rc == 0 and (tmp_path / "cli" / "model" / "model.safetensors").is_file()
    assert main(["--manifest", str(tmp_path / "nope.csv"), "--output-dir", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_bf16_mixed_precision_trains_with_expert_batches(blobs, tmp_path):
    # The autocast path accelerate uses on CUDA (bf16/fp16), exercised here with CPU bf16.
    cfg = _resume_cfg(blobs, tmp_path / "bf16", mixed_precision="bf16")
    result = train(cfg)
    assert result.steps == 6 and result.expert_steps == 5
    assert all(np.isfinite(result.losses))
    state = EClip.from_pretrained(result.model_dir).state_dict()
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())  # master weights fp32
    torch.manual_seed(cfg.seed)
    init = EClip(cfg.model).state_dict()
    assert not torch.equal(init["clip.visual.conv1.weight"], state["clip.visual.conv1.weight"])


def _small_cfg(blobs, out, **kw):
    return TrainConfig(
        manifest=str(blobs),
        output_dir=str(out),
        steps=4,
        batch_size=4,
        lr=1e-3,
        method="eclip",
        p_start=1.0,
        p_peak=1.0,
        p_floor=1.0,
        cold_frac=0.25,
        checkpoint_every=2,
        model=EClipConfig(name="eclip-small", lock_text=True, clahe_p=0.0),
        progress=False,
        validate_images=False,
        log_every=1,
        **kw,
    )


@pytest.mark.slow
def test_text_feature_cache_trains_like_the_tower_and_resumes_exactly(blobs, tmp_path):
    store = tmp_path / "text-store"
    cached = train(_small_cfg(blobs, tmp_path / "cached", text_feature_cache_dir=str(store)))
    uncached = train(_small_cfg(blobs, tmp_path / "uncached", cache_text_features=False))
    np.testing.assert_allclose(cached.losses, uncached.losses, atol=1e-4)
    assert [p.name.startswith("text-features-") for p in store.iterdir()] == [True]  # kept for the next run
    again = train(_small_cfg(blobs, tmp_path / "again", text_feature_cache_dir=str(store)))
    np.testing.assert_allclose(again.losses, cached.losses, atol=1e-4)  # read back: the same numbers

    with pytest.raises(KeyboardInterrupt):
        train(_small_cfg(blobs, tmp_path / "part"), on_step=_kill_at(3))
    resumed = train(_small_cfg(blobs, tmp_path / "part", resume=True))
    assert resumed.start_step == 2 and resumed.checkpoint_hash == cached.checkpoint_hash


def test_heatmap_cache_returns_the_loaded_maps_and_evicts_oldest(blobs):
    from eclip_core.data.expert_heatmap import load_expert_heatmap
    from eclip_core.training.data import HeatmapCache

    experts = [s for s in read_manifest(blobs) if s.has_expert][:3]
    shape = (64, 64)
    one_map_mb = np.zeros(shape, np.float32).nbytes / 2**20
    cache = HeatmapCache(max_mb=2.5 * one_map_mb)  # room for two maps
    for s in experts + experts[:1]:
        got = cache.get(s, shape)
        np.testing.assert_array_equal(got, load_expert_heatmap(s, shape))
    assert (cache.hits, cache.misses) == (0, 4)  # the first map was evicted by the third
    got = cache.get(experts[2], shape)
    got[:] = -1  # a caller editing its copy leaves the cached map intact
    np.testing.assert_array_equal(cache.get(experts[2], shape), load_expert_heatmap(experts[2], shape))
    assert cache.hits == 2 and cache.used <= cache.max_bytes


@pytest.mark.slow
def test_a_data_loader_worker_gives_the_same_weights(blobs, tmp_path):
    inline = train(_resume_cfg(blobs, tmp_path / "w0", steps=4))
    worker = train(_resume_cfg(blobs, tmp_path / "w1", steps=4, num_workers=1))
    assert inline.expert_steps == worker.expert_steps > 0
    assert inline.checkpoint_hash == worker.checkpoint_hash


@pytest.mark.slow
def test_label_terms_train_the_label_head_on_manifest_labels(blobs, tmp_path):
    """The manifest's own labels win over the labeler: "Cardiomegaly" here marks the LARGE blobs (the
    reports all say "opacity"), and the auxiliary head learns to tell them apart from the pixels."""
    from sklearn.metrics import roc_auc_score

    studies = read_manifest(blobs)
    for s in studies:
        s.labels = {"Cardiomegaly": 1.0 if s.meta["class"] % 2 else 0.0, "Lung Opacity": 1.0}
    labelled = tmp_path / "labelled.csv"
    write_manifest(studies, labelled)
    cfg = TrainConfig(
        manifest=str(labelled),
        output_dir=str(tmp_path / "run"),
        steps=60,
        batch_size=16,
        lr=2e-3,
        warmup_frac=0.05,
        weight_decay=0.0,
        model=_tiny(),
        progress=False,
        log_every=1,
        label_loss_weight=1.0,
        soft_target_weight=0.5,
    )
    result = train(cfg)
    records = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    label_losses = [r["label_loss"] for r in records]
    assert all(x is not None for x in label_losses)
    assert np.mean(label_losses[-10:]) < np.mean(label_losses[:10]) - 0.1

    model = EClip.from_pretrained(result.model_dir).eval()
    assert model.label_head is not None and model.config.label_head
    v = torch.from_numpy(model.embed_images([s.image_paths[0] for s in studies], progress=False))
    with torch.no_grad():
        logits = model.label_logits(v).numpy()
    big = np.array([s.meta["class"] % 2 for s in studies])
    assert roc_auc_score(big, logits[:, 2]) > 0.8  # column 2 = Cardiomegaly


def test_paper_objective_has_no_label_head(blobs, tmp_path):
    cfg = TrainConfig(
        manifest=str(blobs), output_dir=str(tmp_path / "run"), steps=2, batch_size=4, model=_tiny(), progress=False
    )
    assert not cfg.uses_labels
    model = EClip.from_pretrained(train(cfg).model_dir)
    assert model.label_head is None
    with pytest.raises(Exception, match="no label head"):
        model.label_logits(torch.zeros(1, model.embed_dim))
