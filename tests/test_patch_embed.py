"""PatchConv2d: the matmul form of a kernel = stride conv gives the conv's outputs and gradients."""

import pytest
import torch
from torch import nn

from eclip_core.patch_embed import PatchConv2d, is_patch_conv, use_patch_matmul


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("size", [(64, 64), (70, 53)])  # 70 x 53: trailing pixels a conv ignores
def test_matches_conv_outputs_and_gradients(bias, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 12, kernel_size=16, stride=16, bias=bias).double()
    fast = PatchConv2d.from_conv(conv)
    x1 = torch.randn(2, 3, *size, dtype=torch.double, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    g = torch.randn(2, 12, size[0] // 16, size[1] // 16, dtype=torch.double)

    (conv(x1) * g).sum().backward()
    w_grad = conv.weight.grad.clone()
    b_grad = conv.bias.grad.clone() if bias else None
    conv.zero_grad()
    out = fast(x2)
    (out * g).sum().backward()

    assert out.shape == (2, 12, size[0] // 16, size[1] // 16)
    assert torch.allclose(out, conv(x1), atol=1e-12)
    assert torch.allclose(x2.grad, x1.grad, atol=1e-12)
    assert torch.allclose(fast.weight.grad, w_grad, atol=1e-12)
    if bias:
        assert torch.allclose(fast.bias.grad, b_grad, atol=1e-12)


def test_shares_parameters_and_state_dict_keys():
    conv = nn.Conv2d(3, 8, 4, 4)
    fast = PatchConv2d.from_conv(conv)
    assert fast.weight is conv.weight and fast.bias is conv.bias
    assert list(fast.state_dict()) == list(conv.state_dict())


def test_only_patch_convs_are_swapped():
    assert not is_patch_conv(nn.Conv2d(3, 8, 3, stride=2, padding=1))
    assert not is_patch_conv(nn.Conv2d(3, 8, 4, stride=2))
    holder = nn.Module()
    holder.a, holder.b = nn.Conv2d(3, 8, 4, 4), nn.Conv2d(3, 8, 3, 1, 1)
    assert use_patch_matmul(holder, "a") and isinstance(holder.a, PatchConv2d)
    assert not use_patch_matmul(holder, "b") and type(holder.b) is nn.Conv2d
    with pytest.raises(ValueError, match="not a patch conv"):
        PatchConv2d.from_conv(holder.b)


def test_eclip_vit_uses_it_with_unchanged_checkpoint_layout():
    import open_clip

    from eclip_core.model import EClip, model_config

    model = EClip.from_config("eclip-tiny")
    assert isinstance(model.clip.visual.conv1, PatchConv2d)
    assert isinstance(model.heatmap_processor.patch_embed, PatchConv2d)
    cfg = model_config("eclip-tiny")
    plain = open_clip.CLIP(**cfg)
    ours = {k[len("clip.") :] for k in model.state_dict() if k.startswith("clip.")}
    assert ours == set(plain.state_dict())


def _grey(b, h, w, dtype=torch.double):
    """A grey image repeated to 3 channels, as the transforms make X-rays (a copy, not a stride-0 view)."""
    return torch.randn(b, 1, h, w, dtype=dtype).repeat(1, 3, 1, 1)


@pytest.mark.parametrize("bias", [True, False])
def test_grey_input_uses_one_channel_with_the_conv_outputs_and_weight_gradients(bias):
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 12, kernel_size=8, stride=8, bias=bias).double()
    fast = PatchConv2d.from_conv(conv)
    x = _grey(2, 40, 24)
    assert fast.grey(x).shape == (2, 1, 40, 24) and fast.weight_for(1).shape == (12, 64)
    g = torch.randn(2, 12, 5, 3, dtype=torch.double)
    (conv(x) * g).sum().backward()
    ref = {n: p.grad.clone() for n, p in conv.named_parameters()}
    conv.zero_grad()
    out = fast(x)
    (out * g).sum().backward()
    assert torch.allclose(out, conv(x), atol=1e-12)
    for name, p in fast.named_parameters():  # every channel's kernel gets its own (equal) gradient
        assert torch.allclose(p.grad, ref[name], atol=1e-12), name


def test_grey_is_only_taken_when_every_channel_is_equal_and_no_input_gradient_is_needed():
    fast = PatchConv2d(3, 4, kernel_size=4, stride=4)
    grey = _grey(2, 8, 8, torch.float32)
    assert fast.grey(grey).shape[1] == 1
    assert fast.grey(torch.ones(2, 1, 8, 8).expand(2, 3, 8, 8)).shape[1] == 1  # a stride-0 view
    almost = grey.clone()
    almost[1, 2, 7, 7] += 1e-3  # one pixel of one channel of one image differs
    assert fast.grey(almost) is almost
    needs_grad = grey.clone().requires_grad_(True)
    assert fast.grey(needs_grad) is needs_grad  # channels 2 and 3 would get no input gradient
    stock = nn.Conv2d(3, 4, kernel_size=4, stride=4)
    stock.weight, stock.bias = fast.weight, fast.bias
    x, ref = (needs_grad.detach().clone().requires_grad_(True) for _ in range(2))
    fast(x).sum().backward()
    stock(ref).sum().backward()
    assert torch.allclose(x.grad, ref.grad) and (x.grad[:, 1:] != 0).any()  # every channel gets its gradient
    fast.collapse_grey = False
    assert fast.grey(grey) is grey
    with pytest.raises(ValueError, match="cannot embed 2-channel"):
        fast.weight_for(2)
