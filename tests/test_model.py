"""EClip: encoders, preprocessing, mixup endpoint, text locking, save/load, configs."""

import json

import numpy as np
import pytest
import torch

from eclip_core.config import EClipConfig, TrainConfig
from eclip_core.errors import CheckpointError, ConfigError
from eclip_core.model import EClip
from eclip_core.model_configs import list_model_configs
from eclip_core.patch_embed import PatchConv2d
from eclip_core.transforms import ImageTransform, clahe


def _images(n=3, h=80, w=70, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((h, w)).astype(np.float32) for _ in range(n)]


def test_named_configs_are_registered_with_open_clip():
    import open_clip

    assert {"eclip-tiny", "eclip-small"} <= set(list_model_configs())
    assert {"eclip-tiny", "eclip-small"} <= set(open_clip.list_models())
    with pytest.raises(ConfigError, match="unknown model config"):
        EClip.from_config("no-such-model")


def test_encoders_are_l2_normalised(tiny_model):
    x = torch.stack([tiny_model.preprocess(im) for im in _images()])
    v = tiny_model.encode_image(x)
    t = tiny_model.encode_text(["left upper blob", "right lower blob", "normal"])
    assert v.shape == t.shape == (3, tiny_model.embed_dim)
    assert torch.allclose(v.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(t.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert abs(tiny_model.temperature - 0.07) < 1e-6


def test_preprocess_eval_is_deterministic_and_normalised(tiny_model):
    img = np.full((100, 60), 0.58 + 0.26, np.float32)  # one std above the mean everywhere
    a, b = tiny_model.preprocess(img), tiny_model.preprocess(img)
    assert a.shape == (3, tiny_model.image_size, tiny_model.image_size) and torch.equal(a, b)
    assert torch.allclose(a, torch.ones_like(a), atol=1e-5)


def test_preprocessed_batches_take_the_grey_patch_embedding(tiny_model):
    """The transforms repeat a grey X-ray to 3 channels; a batch of them is embedded from one channel."""
    rng = np.random.default_rng(0)
    batch = torch.stack(
        [tiny_model.preprocess(rng.random((90, 70), dtype=np.float32), train=train) for train in (False, True)]
    )
    conv = tiny_model.clip.visual.conv1
    assert conv.grey(batch).shape == (2, 1, tiny_model.image_size, tiny_model.image_size)
    with torch.no_grad():
        fast = tiny_model.encode_image(batch)
        conv.collapse_grey = False
        try:
            every_channel = tiny_model.encode_image(batch)
        finally:
            conv.collapse_grey = True
    assert torch.allclose(fast, every_channel, atol=1e-5)


def test_train_transform_crops_image_and_heatmap_together():
    t = ImageTransform(size=32, clahe_p=0.0)
    img = np.zeros((64, 64), np.float32)
    img[:32] = 1.0  # top half bright
    heat = img.copy()  # heatmap = the same pattern
    for seed in range(5):
        x, h = t(img, heatmap=heat, train=True, rng=np.random.default_rng(seed))
        pix = x[0] * t.std + t.mean
        assert torch.allclose(pix, h[0], atol=1e-5)  # same geometry for both


def test_clahe_keeps_range_and_raises_local_contrast():
    rng = np.random.default_rng(0)
    img = (0.45 + 0.05 * rng.random((64, 64))).astype(np.float32)  # low contrast
    out = clahe(img, clip_limit=2.0, tiles=4)
    assert out.shape == img.shape and out.min() >= 0 and out.max() <= 1
    assert out.std() > 2 * img.std()
    # Monotone within a tile region: brighter input pixels never get darker outputs there.
    flat_in, flat_out = img[:16, :16].ravel(), out[:16, :16].ravel()
    order = np.argsort(flat_in)
    assert np.all(np.diff(flat_out[order]) >= -0.05)


def test_mixup_lambda_one_gives_the_original_embedding(tiny_model):
    x = torch.stack([tiny_model.preprocess(im) for im in _images()])
    heat = torch.rand(3, 1, tiny_model.image_size, tiny_model.image_size)
    with torch.no_grad():
        mixed = tiny_model.mix_expert(x, heat, lam=1.0)
        assert torch.allclose(tiny_model.encode_image(mixed), tiny_model.encode_image(x), atol=1e-6)
        zero = tiny_model.mix_expert(x, heat, lam=0.0)
        assert torch.allclose(zero, tiny_model.heatmap_processor(x, heat), atol=1e-6)


def test_save_load_identical_embeddings_and_hash(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"model.safetensors", "config.json"}
    loaded = EClip.from_pretrained(tmp_path / "m")
    assert loaded.checkpoint_hash == tiny_model.checkpoint_hash and len(tiny_model.checkpoint_hash) == 16
    ims, texts = _images(4), ["a", "small bright opacity", "no findings", "large"]
    np.testing.assert_array_equal(
        loaded.embed_images(ims, progress=False), tiny_model.embed_images(ims, progress=False)
    )
    np.testing.assert_array_equal(
        loaded.embed_texts(texts, progress=False), tiny_model.embed_texts(texts, progress=False)
    )
    other = EClip.from_config("eclip-tiny")
    assert other.checkpoint_hash != tiny_model.checkpoint_hash


def test_from_pretrained_errors(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match="missing"):
        EClip.from_pretrained(tmp_path)
    tiny_model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model_cfg"]["embed_dim"] = 32
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        EClip.from_pretrained(tmp_path / "m")


def test_lock_text_freezes_all_but_projection():
    m = EClip(EClipConfig(name="eclip-tiny", lock_text=True))
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert "clip.text_projection" in trainable
    assert not any(n.startswith("clip.transformer.") or n.startswith("clip.token_embedding") for n in trainable)
    assert any(n.startswith("clip.visual.") for n in trainable)


def test_config_files_and_validation(tmp_path):
    (tmp_path / "c.yaml").write_text("steps: 7\nmethod: mask\nmodel:\n  name: eclip-tiny\n  lock_text: true\n")
    cfg = TrainConfig.from_file(tmp_path / "c.yaml")
    assert (cfg.steps, cfg.method, cfg.model.name, cfg.model.lock_text) == (7, "mask", "eclip-tiny", True)
    (tmp_path / "c.json").write_text(json.dumps({"stepz": 3}))
    with pytest.raises(ConfigError, match="stepz"):
        TrainConfig.from_file(tmp_path / "c.json")
    with pytest.raises(ConfigError):
        TrainConfig(method="siglip").validate()
    ref = TrainConfig.preset("ref")
    assert (ref.mixup_alpha, ref.priming_weight, ref.p_floor, ref.model.heatmap_norm) == (0.2, 0.3, 0.05, "batch")
    assert (TrainConfig().processor_lr_mult, EClipConfig().temperature_init) == (2.0, 0.07)
    assert EClipConfig().logit_scale_bounds == pytest.approx((np.log(0.5), np.log(100.0)))


def test_logit_scale_is_clamped():
    m = EClip.from_config("eclip-tiny")
    with torch.no_grad():
        m.clip.logit_scale.fill_(10.0)
    m.clamp_logit_scale_()
    assert abs(m.temperature - 0.01) < 1e-6


def test_eclip_small_uses_the_packaged_minilm_and_trims_padding_exactly():
    from eclip_core.model import model_config

    raw = model_config("eclip-small")
    assert raw["text_cfg"]["hf_model_name"].startswith("pkg:")  # resolved at run time, never a fixed path
    m = EClip.from_config("eclip-small").eval()
    assert (m.image_size, m.embed_dim) == (224, 256)
    tok = m.tokenize(["Heart size normal.", "The lungs are clear without focal consolidation or effusion."])
    with torch.no_grad():
        trimmed = m.encode_text(tok)
        full = torch.nn.functional.normalize(m.clip.encode_text(tok), dim=-1)
    assert m._trim_padding(tok).shape[1] < tok.shape[1]
    assert torch.allclose(trimmed, full, atol=1e-5)


def test_frozen_text_feature_cache_matches_the_tower_and_skips_repeats():
    m = EClip(EClipConfig(name="eclip-small", lock_text=True)).train()
    reports = [
        "Heart size normal. Lungs clear.",
        "Small left pleural effusion. No pneumothorax.",
        "Cardiomegaly with mild vascular congestion and a much longer sentence about the spine.",
    ]
    tok = m.tokenize(reports + reports[:1])  # a repeat inside the batch
    reference = m.encode_text(tok)
    (reference * torch.arange(1.0, 5.0)[:, None]).sum().backward()
    proj_grad = m.clip.text.proj.weight.grad.clone()
    m.zero_grad()

    calls = []
    m.clip.text.transformer.register_forward_hook(lambda *a: calls.append(1))
    assert m.enable_text_feature_cache()
    cached = m.encode_text(tok)
    (cached * torch.arange(1.0, 5.0)[:, None]).sum().backward()
    assert torch.allclose(cached, reference, atol=1e-5)
    assert torch.allclose(m.clip.text.proj.weight.grad, proj_grad, atol=1e-4)
    assert len(calls) == 3  # one pass per distinct report
    m.encode_text(m.tokenize(reports[::-1]))
    assert len(calls) == 3  # all seen: projection only


def test_text_feature_cache_persists_for_the_same_tower(tmp_path):
    """Saved features come back bit for bit in a new model with the same frozen tower (no transformer
    pass), and are ignored by a model whose tower weights differ."""
    reports = ["Heart size normal. Lungs clear.", "Small left pleural effusion. No pneumothorax."]
    first = EClip(EClipConfig(name="eclip-small", lock_text=True)).eval()
    assert first.enable_text_feature_cache()
    want = first.encode_text(first.tokenize(reports))
    saved = first.save_text_feature_cache(tmp_path)
    assert saved is not None and saved.is_file()

    torch.manual_seed(1)  # another projection: the cache holds the tower's output, before the projection
    second = EClip(EClipConfig(name="eclip-small", lock_text=True)).eval()
    second.clip.text.proj.load_state_dict(first.clip.text.proj.state_dict())
    assert second.enable_text_feature_cache() and second.load_text_feature_cache(tmp_path) == 2
    calls = []
    second.clip.text.transformer.register_forward_hook(lambda *a: calls.append(1))
    assert torch.equal(second.encode_text(second.tokenize(reports)), want) and not calls

    third = EClip(EClipConfig(name="eclip-small", lock_text=True)).eval()
    with torch.no_grad():
        next(third.clip.text.transformer.parameters()).add_(1.0)  # a different frozen tower
    assert third.enable_text_feature_cache() and third.load_text_feature_cache(tmp_path) == 0


def test_text_feature_cache_needs_a_locked_hf_tower():
    assert not EClip(EClipConfig(name="eclip-tiny", lock_text=True)).enable_text_feature_cache()  # open_clip tower
    assert not EClip(EClipConfig(name="eclip-small", lock_text=False)).enable_text_feature_cache()  # trained tower


@pytest.mark.parametrize("variant", ["mha", "random"])
@pytest.mark.parametrize("grey", [False, True])
def test_token_space_mixup_equals_encoding_the_mixed_images(variant, grey):
    """The expert forward through patch embeddings gives the image-space path's features and gradients;
    grey images (one channel repeated, as the transforms make X-rays) give them with one-channel patch
    embeddings too, against every channel embedded."""
    torch.manual_seed(0)
    model = (
        EClip(EClipConfig(name="eclip-tiny", processor_variant=variant, processor_dim=32, processor_heads=4))
        .double()
        .train()
    )
    s = model.image_size

    def images(n):
        return (
            torch.randn(n, 1, s, s, dtype=torch.double).repeat(1, 3, 1, 1)
            if grey
            else torch.randn(n, 3, s, s, dtype=torch.double)
        )

    batch = dict(
        images=images(3),
        tokens=model.tokenize(["a", "b", "c"]),
        expert_images=images(2),
        expert_heatmaps=torch.rand(2, 1, s, s, dtype=torch.double),
        expert_tokens=model.tokenize(["d", "e"]),
        lam=0.3,
    )
    convs = [m for m in model.modules() if isinstance(m, PatchConv2d)]
    assert len(convs) == 2 and all((c.grey(batch["expert_images"]).shape[1] == 1) == grey for c in convs)
    runs = {}
    for fast, collapse in ((True, True), (False, True), (True, False), (False, False)):
        model.token_space_mixup = fast
        for conv in convs:
            conv.collapse_grey = collapse
        model.zero_grad()
        out = model(**batch, generator=torch.Generator().manual_seed(5))
        assert out["image_features"].shape == (5, model.embed_dim)
        (out["image_features"] @ out["text_features"].t()).diagonal().sum().backward()
        runs[fast, collapse] = (
            out["image_features"].detach(),
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        )
    feat_ref, grad_ref = runs.pop((False, False))  # image space, every channel: the spec read literally
    assert any(n.startswith("heatmap_processor.") for n in grad_ref)
    for feat, grad in runs.values():
        assert torch.allclose(feat, feat_ref, atol=1e-10)
        assert grad.keys() == grad_ref.keys()
        for name in grad_ref:
            assert torch.allclose(grad[name], grad_ref[name], atol=1e-7), name
    model.token_space_mixup = True
    assert model.mixed_patch_embeddings(batch["expert_images"], batch["expert_heatmaps"], 0.3) is not None


def test_token_space_mixup_does_not_apply_to_the_mask_processor():
    model = EClip(EClipConfig(name="eclip-tiny", processor_variant="mask"))
    s = model.image_size
    assert model.mixed_patch_embeddings(torch.randn(1, 3, s, s), torch.rand(1, 1, s, s), 0.5) is None
