"""Pretrained image towers from local weight files (eclip_core.towers), each format from a file written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from eclip_core.config import EClipConfig
from eclip_core.model import EClip
from eclip_core.towers import (
    BUILTIN_WEIGHTS,
    WeightsError,
    grey_kernel,
    make_grey_conv,
    read_state_dict,
)


def _tiny(**kw) -> EClip:
    torch.manual_seed(0)
    return EClip(EClipConfig(name="eclip-tiny", **kw)).eval()


def _grey_batch(size: int = 64, n: int = 2) -> torch.Tensor:
    g = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))
    return torch.cat([g, g, g], dim=1)


def _features_match(model: EClip, reference: nn.Module, size: int = 64) -> None:
    """The tower's pooled trunk features on a grey image equal the reference network's on it replicated in RGB."""
    x = _grey_batch(size)
    reference.eval()
    with torch.no_grad():
        want = reference(x)
        got = model.clip.visual.trunk(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------- grey first convolution
def test_grey_adaptation_equals_summing_the_rgb_kernels_float64():
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=True).double()
    w = conv.weight.detach().clone()
    reference = nn.Conv2d(3, 5, 3, padding=1, bias=True).double()
    reference.load_state_dict(conv.state_dict())
    make_grey_conv(conv)
    assert conv.in_channels == 1 and conv.weight.shape == (5, 1, 3, 3)
    assert torch.equal(conv.weight, w[:, 0:1] + w[:, 1:2] + w[:, 2:3])
    assert torch.equal(grey_kernel(w), w[:, 0:1] + w[:, 1:2] + w[:, 2:3]) and grey_kernel(w).dtype == torch.float64
    # timm's adaptation (float32 internally) gives the same kernels
    torch.testing.assert_close(timm.models.adapt_input_conv(1, w).double(), conv.weight.detach(), rtol=1e-6, atol=1e-7)
    g = torch.rand(2, 1, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        replicated = reference(torch.cat([g, g, g], dim=1))
        torch.testing.assert_close(conv(g), replicated, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(conv(torch.cat([g, g, g], dim=1)), replicated, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------- the packaged EfficientNet-Lite0
def test_packaged_efficientnet_lite0_classifies_the_coffee_photo_as_espresso():
    skimage_data = pytest.importorskip("skimage.data")
    model = _tiny(image_weights="efficientnet-lite0", image_size=224)
    assert model.config.image_tower == "tf_efficientnet_lite0"
    assert (model.config.image_mean, model.config.image_std) == (0.5, 0.5)
    photo = skimage_data.coffee().astype(np.float32) / 255.0
    x = model.preprocess(photo)[None]  # the product's transform: grey, resized, (x - 0.5) / 0.5
    head = read_state_dict(BUILTIN_WEIGHTS["efficientnet-lite0"].path())  # the ImageNet head the tower drops
    with torch.no_grad():
        probs = (model.clip.visual.trunk(x) @ head["_fc.weight"].T + head["_fc.bias"]).softmax(-1)[0]
    espresso = 967  # ImageNet class index
    assert int(probs.argmax()) == espresso and float(probs[espresso]) > 0.5


# ---------------------------------------------------------------------- each file format
def test_timm_state_dict_as_safetensors(tmp_path):
    torch.manual_seed(3)
    source = timm.create_model("test_efficientnet")  # ImageNet-style head included: dropped on load
    path = tmp_path / "test_efficientnet.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = _tiny(image_tower="test_efficientnet", image_weights=str(path))
    source.reset_classifier(0)
    _features_match(model, source)


def test_torchvision_resnet_pth_with_dataparallel_prefix(tmp_path):
    torch.manual_seed(4)
    source = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, path)
    model = _tiny(image_tower="resnet18", image_weights=str(path))
    assert model.config.image_mean == pytest.approx(0.449, abs=1e-3)  # ImageNet, averaged over RGB
    source.fc = nn.Identity()
    _features_match(model, source)


def test_torchvision_densenet_chexnet_style_checkpoint(tmp_path):
    # CheXNet's files: {"state_dict": {"module.densenet121.features...norm.1.weight", "...classifier.0.weight"}}
    torch.manual_seed(5)
    source = torchvision.models.densenet121()
    source.classifier = nn.Sequential(nn.Linear(1024, 14), nn.Sigmoid())
    legacy = {}
    for k, v in source.state_dict().items():
        for part in ("norm1", "relu1", "conv1", "norm2", "relu2", "conv2"):
            k = k.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.") if "denselayer" in k else k
        legacy["module.densenet121." + k] = v
    path = tmp_path / "chexnet.pth.tar"
    torch.save({"epoch": 10, "state_dict": legacy}, path)
    model = _tiny(image_tower="densenet121", image_weights=str(path))
    source.classifier = nn.Identity()
    _features_match(model, source)


def test_open_clip_visual_tower_from_a_whole_clip_checkpoint(tmp_path):
    donor = _tiny()
    path = tmp_path / "clip.pth"
    torch.save(donor.clip.state_dict(), path)  # visual.* and text keys: the visual part is used
    torch.manual_seed(123)
    model = EClip(EClipConfig(name="eclip-tiny", image_weights=str(path))).eval()
    for k, v in donor.clip.visual.state_dict().items():
        assert torch.equal(model.clip.visual.state_dict()[k], v), k
    assert not torch.equal(model.clip.text_projection, donor.clip.text_projection)  # only the image tower
    assert model.config.image_mean == pytest.approx(0.4493, abs=1e-3)  # CLIP's normalisation, averaged
    x = torch.stack([model.preprocess(np.random.default_rng(0).random((70, 60), dtype=np.float32))])
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(x), donor.encode_image(x))


# ---------------------------------------------------------------------- refusals
def test_wrong_architecture_is_refused_with_the_key_names(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file(torchvision.models.resnet18().state_dict(), str(path))
    with pytest.raises(WeightsError) as err:
        _tiny(image_tower="densenet121", image_weights=str(path))
    message = str(err.value)
    missing, unexpected = message.split("unexpected keys: ")
    assert "missing keys: features.conv0.weight, features.norm0.weight" in missing
    assert "bn1.num_batches_tracked" in unexpected and "(+" in unexpected  # long lists are cut, with a count


def test_one_missing_and_one_unexpected_key_are_named(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    del state["layer4.1.bn2.running_var"]
    state["layer5.extra.weight"] = torch.zeros(3)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"missing keys: layer4\.1\.bn2\.running_var; unexpected keys: layer5"):
        _tiny(image_tower="resnet18", image_weights=str(path))


def test_shape_mismatch_is_refused(tmp_path):
    state = timm.create_model("test_efficientnet").state_dict()
    state["conv_head.weight"] = state["conv_head.weight"][:-1]
    path = tmp_path / "short.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(WeightsError, match=r"shape mismatches.*conv_head\.weight"):
        _tiny(image_tower="test_efficientnet", image_weights=str(path))


def test_a_pickle_that_is_not_a_state_dict_is_refused(tmp_path):
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(2), torch.ones(2)], listed)
    with pytest.raises(WeightsError, match="not a state dict"):
        read_state_dict(listed)
    module = tmp_path / "module.pth"
    torch.save(torchvision.models.resnet18(), module)  # a whole pickled model: weights_only refuses it
    with pytest.raises(WeightsError, match="weights-only"):
        _tiny(image_tower="resnet18", image_weights=str(module))
    with pytest.raises(WeightsError, match="not a file"):
        read_state_dict(tmp_path / "absent.pth")


def test_model_pretrained_refuses_a_checkpoint_with_other_keys(tmp_path):
    donor = _tiny()
    whole = tmp_path / "whole.pth"
    torch.save(donor.clip.state_dict(), whole)
    loaded = _tiny(pretrained=str(whole))
    assert loaded.checkpoint_hash == donor.checkpoint_hash  # a whole checkpoint of this model: every weight
    timm_file = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), timm_file)
    with pytest.raises(WeightsError, match=r"missing keys: .*visual\..*unexpected keys: conv1\.weight"):
        _tiny(pretrained=str(timm_file))


def test_builtin_weights_with_another_tower_are_refused():
    from eclip_core.errors import ConfigError

    with pytest.raises(ConfigError, match="tf_efficientnet_lite0"):
        _tiny(image_tower="resnet18", image_weights="efficientnet-lite0")
    with pytest.raises(ConfigError, match="not a timm architecture"):
        _tiny(image_tower="no_such_net")


# ---------------------------------------------------------------------- checkpoints and training
def test_checkpoint_records_the_normalisation_and_round_trips(tmp_path):
    model = _tiny(image_weights="efficientnet-lite0")
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["eclip_config"]
    assert (saved["image_mean"], saved["image_std"], saved["image_tower"]) == (0.5, 0.5, "tf_efficientnet_lite0")
    again = EClip.from_pretrained(tmp_path / "m")
    assert again.checkpoint_hash == model.checkpoint_hash and again.transform.mean == 0.5
    image = np.random.default_rng(0).random((80, 70), dtype=np.float32)
    np.testing.assert_allclose(
        again.embed_images([image], progress=False), model.embed_images([image], progress=False), atol=1e-6
    )


def test_eclip_trains_a_pretrained_timm_tower(tmp_path):
    """The expert-mixup forward and the losses run through a timm tower (image-space mixup, grey stem)."""
    model = _tiny(image_tower="test_efficientnet").train()
    images, heat = _grey_batch(64, 4), torch.rand(2, 1, 64, 64)
    out = model(images, model.tokenize(["a"] * 4), images[:2], heat, model.tokenize(["b"] * 2), lam=0.7)
    assert out["image_features"].shape == (6, 64)
    out["image_features"].sum().backward()
    assert model.clip.visual.trunk.conv_stem.weight.grad is not None


def test_rag_report_train_starts_from_the_pretrained_tower_unless_told_otherwise(tmp_path):
    from eclip_core.train import config_from_args
    from rag_report.cli_train import settle_tower_defaults, train_defaults, train_parser

    def parse_all(*flags: str):
        argv = ["--manifest", "m.csv", *flags]
        cfg = config_from_args(argv, parser=train_parser(True), defaults=train_defaults(argv, cpu=True))
        return settle_tower_defaults(cfg, argv, cpu=True)

    def parse(*flags: str):
        return parse_all(*flags).model

    assert parse().image_weights == "efficientnet-lite0" and parse().name == "eclip-resnet16"
    assert parse("--image-weights", "none").image_weights is None  # the model's own tower from scratch
    assert parse("--model-pretrained", "whole.pth").image_weights is None  # a whole checkpoint: no tower default
    assert config_from_args(["--manifest", "m.csv"]).model.image_weights is None  # python -m eclip_core.train
    resolved = EClip(parse("--model", "eclip-tiny")).config
    assert (resolved.image_tower, resolved.image_mean) == ("tf_efficientnet_lite0", 0.5)
    # The pretrained tower: trunk locked at 224 px, projections at lr 1e-3; from scratch: whole, own size, 3e-4.
    default, scratch = parse_all(), parse_all("--image-weights", "none")
    assert (default.model.lock_image, default.model.image_size, default.lr) == (True, 224, 1e-3)
    assert (scratch.model.lock_image, scratch.model.image_size, scratch.lr) == (False, None, 3e-4)
    unlocked = parse_all("--no-model-lock-image")
    assert (unlocked.model.lock_image, unlocked.model.image_size, unlocked.lr) == (False, 224, 3e-4)
    assert parse_all("--lr", "0.01").lr == 0.01


def test_lock_image_trains_the_projection_and_keeps_the_trunk_and_its_batchnorm_statistics():
    model = _tiny(image_tower="test_efficientnet", lock_image=True).train()
    trunk, head = model.clip.visual.trunk, model.clip.visual.head
    assert not trunk.training and head.training  # BatchNorm of the trunk keeps its statistics
    assert not any(p.requires_grad for p in trunk.parameters())
    assert all(p.requires_grad for p in head.parameters())
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    proj_before = [p.detach().clone() for p in head.parameters()]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    images = _grey_batch(64, 4)
    out = model(images, model.tokenize(["a", "b", "c", "d"]))
    (out["image_features"] @ out["text_features"].T).diagonal().sum().neg().backward()
    opt.step()
    for k, v in trunk.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(p, q) for p, q in zip(head.parameters(), proj_before, strict=True))


def test_lock_image_needs_a_timm_tower():
    from eclip_core.errors import ConfigError

    with pytest.raises(ConfigError, match="lock_image"):
        _tiny(lock_image=True)
