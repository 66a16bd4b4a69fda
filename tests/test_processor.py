"""Heatmap processor: shapes, gradient flow, the mask/random variants, heatmap scaling."""

import pytest
import torch

from eclip_core.errors import ConfigError
from eclip_core.heatmap.processor import HeatmapProcessor, normalize_heatmaps, random_heatmaps


def test_mha_shapes_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    proc = HeatmapProcessor("mha", dim=64, heads=8, patch_size=16)
    images = torch.randn(3, 3, 64, 96, requires_grad=True)
    heat = torch.rand(3, 1, 64, 96)
    out = proc(images, heat)
    assert out.shape == images.shape
    out.square().mean().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    for name, p in proc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_spec_structure_patch_conv_attention_unpatch():
    proc = HeatmapProcessor()  # spec defaults
    assert proc.patch_embed.kernel_size == (16, 16) and proc.patch_embed.stride == (16, 16)
    assert proc.patch_embed.out_channels == 256 and proc.attn.num_heads == 8
    assert proc.unpatch.kernel_size == (16, 16) and proc.unpatch.out_channels == 3
    assert proc(torch.randn(1, 3, 224, 224), torch.rand(1, 1, 224, 224)).shape == (1, 3, 224, 224)


def test_queries_come_from_the_heatmap_masked_image():
    torch.manual_seed(0)
    proc = HeatmapProcessor("mha", dim=32, heads=4).eval()
    img = torch.randn(1, 3, 32, 32)
    a = proc(img, torch.ones(1, 1, 32, 32))
    b = proc(img, torch.zeros(1, 1, 32, 32).index_fill_(2, torch.arange(16), 1.0))
    assert not torch.allclose(a, b)  # the heatmap changes the output


def test_mask_variant_is_heatmap_times_image_without_parameters():
    proc = HeatmapProcessor("mask")
    img, heat = torch.randn(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    heat[:, :, 0, 0] = 1.0  # max already 1 -> scaling is identity
    assert torch.allclose(proc(img, heat), heat * img)
    assert len(list(proc.parameters())) == 0 and not proc.has_parameters


def test_random_variant_ignores_the_given_heatmap():
    torch.manual_seed(0)
    proc = HeatmapProcessor("random", dim=32, heads=4).eval()
    img = torch.randn(2, 3, 32, 32)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = proc(img, torch.ones(2, 1, 32, 32), generator=g1)
    b = proc(img, torch.zeros(2, 1, 32, 32), generator=g2)
    assert torch.allclose(a, b)


def test_heatmap_scaling_per_sample_and_per_batch():
    h = torch.zeros(2, 1, 4, 4)
    h[0, 0, 0, 0], h[1, 0, 0, 0] = 2.0, 0.5
    s = normalize_heatmaps(h, "sample")
    assert s[0].max() == 1.0 and s[1].max() == 1.0
    b = normalize_heatmaps(h, "batch")
    assert b[0].max() == 1.0 and b[1].max() == 0.25
    assert normalize_heatmaps(torch.zeros(1, 1, 2, 2)).abs().sum() == 0  # no NaN on empty maps
    r = random_heatmaps((3, 1, 16, 16), torch.Generator().manual_seed(0))
    assert r.shape == (3, 1, 16, 16) and torch.allclose(r.flatten(1).amax(1), torch.ones(3))


def test_bad_arguments_raise():
    with pytest.raises(ConfigError):
        HeatmapProcessor("cnn")
    with pytest.raises(ValueError):
        HeatmapProcessor(dim=32, heads=4)(torch.randn(1, 3, 30, 30), torch.rand(1, 1, 30, 30))


@pytest.mark.parametrize("variant", ["mha", "random"])
# patch 16, colour: 24 rows < 768 patch pixels, in-projections applied after the conv; patch 4: folded into it
@pytest.mark.parametrize("patch", [16, 4])
@pytest.mark.parametrize("grey", [False, True])  # grey: one channel's patches and the channel-summed kernel
def test_matches_the_stock_layers_of_the_spec_outputs_and_gradients(variant, patch, grey):
    """The composed forward (attention without out_proj, then one map for out_proj -> linear -> transposed
    conv) against the spec built from stock torch layers on the same parameters, in float64."""
    torch.manual_seed(0)
    proc = HeatmapProcessor(variant, dim=32, heads=4, patch_size=patch).double()
    images = torch.randn(2, 1 if grey else 3, 48, 64, dtype=torch.double).expand(2, 3, 48, 64).contiguous()
    assert (proc.patch_embed.grey(images).shape[1] == 1) == grey
    heat = torch.rand(2, 1, 48, 64, dtype=torch.double)
    g = torch.randn(2, 3, 48, 64, dtype=torch.double)

    def stock():
        h = (
            random_heatmaps(tuple(heat.shape), torch.Generator().manual_seed(3)).double()
            if variant == "random"
            else normalize_heatmaps(heat)
        )
        conv = torch.nn.Conv2d(3, 32, patch, patch).double()
        conv.weight, conv.bias = proc.patch_embed.weight, proc.patch_embed.bias
        p = conv(images).flatten(2).transpose(1, 2)
        q = conv(h * images).flatten(2).transpose(1, 2)
        out = proc.linear(proc.attn(q, p, p, need_weights=False)[0])  # nn.MultiheadAttention as shipped
        return proc.unpatch(out.transpose(1, 2).reshape(2, 32, 48 // patch, 64 // patch))  # stock ConvTranspose2d

    expected = stock()
    (expected * g).sum().backward()
    ref_grads = {n: p.grad.clone() for n, p in proc.named_parameters()}
    proc.zero_grad()
    got = proc(images, heat, generator=torch.Generator().manual_seed(3))
    (got * g).sum().backward()
    assert torch.allclose(got, expected, atol=1e-10)
    for name, p in proc.named_parameters():
        assert torch.allclose(p.grad, ref_grads[name], atol=1e-7), name  # sdpa kernels differ ~1e-9


def test_mask_variant_has_no_attention_stage():
    with pytest.raises(ConfigError, match="no attention"):
        HeatmapProcessor("mask").attend(torch.randn(1, 3, 32, 32), torch.rand(1, 1, 32, 32))
