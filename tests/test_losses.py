"""Contrastive loss against a hand computation; the priming loss teaches the processor identity."""
import math

import torch

from eclip_core.heatmap.processor import HeatmapProcessor
from eclip_core.losses import ClipLoss, priming_loss



def test_clip_loss_equals_hand_computation_3x3():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    t = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    scale = 10.0
    sim = [[sum(a * b for a, b in zip(vi, tj)) for tj in t.tolist()] for vi in v.tolist()]

    def ce_rows(m):
        total = 0.0
        for i, row in enumerate(m):
            z = [scale * x for x in row]
            total += -(z[i] - math.log(sum(math.exp(x) for x in z)))
        return total / len(m)

    expected = 0.5 * (ce_rows(sim) + ce_rows([list(col) for col in zip(*sim)]))
    got = ClipLoss()(v, t, torch.tensor(scale))
    assert abs(float(got) - expected) < 1e-5


def test_clip_loss_gradient_reaches_logit_scale():
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    v = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    ClipLoss()(v, t, log_scale.exp()).backward()
    assert log_scale.grad is not None and log_scale.grad != 0


def test_priming_loss_falls_on_a_short_run():
    torch.manual_seed(0)
    proc = HeatmapProcessor("mha", dim=64, heads=8, patch_size=16)
    opt = torch.optim.Adam(proc.parameters(), lr=3e-3)
    images = torch.randn(8, 3, 32, 32)
    first = priming_loss(proc, images).item()
    for _ in range(60):
        loss = priming_loss(proc, images)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = priming_loss(proc, images).item()
    assert last < 0.5 * first, (first, last)


def test_priming_loss_is_zero_for_the_mask_variant():
    assert float(priming_loss(HeatmapProcessor("mask"), torch.randn(2, 3, 16, 16))) == 0.0
