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


# ---------------------------------------------------------------------------- label-aware terms
def _soft_targets_by_hand(pos, weight, temp):
    """(1 - w) I + w softmax_j(cos(y_i, y_j) / T), one-hot soft part for rows without positives."""
    n = len(pos)
    out = []
    for i in range(n):
        ni = math.sqrt(sum(x * x for x in pos[i]))
        if ni == 0:
            soft = [1.0 if j == i else 0.0 for j in range(n)]
        else:
            cos = []
            for j in range(n):
                nj = math.sqrt(sum(x * x for x in pos[j]))
                cos.append(sum(a * b for a, b in zip(pos[i], pos[j])) / (ni * nj) if nj else 0.0)
            z = [math.exp(c / temp) for c in cos]
            soft = [x / sum(z) for x in z]
        out.append([(1 - weight) * (1.0 if j == i else 0.0) + weight * soft[j] for j in range(n)])
    return out


def test_soft_target_loss_equals_hand_computation_3x3():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    t = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    pos = [[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # row 3: no positive label
    scale, weight, temp = 10.0, 0.4, 0.5
    targets = _soft_targets_by_hand(pos, weight, temp)
    sim = [[sum(a * b for a, b in zip(vi, tj)) for tj in t.tolist()] for vi in v.tolist()]

    def soft_ce(m):
        total = 0.0
        for i, row in enumerate(m):
            z = [scale * x for x in row]
            lse = math.log(sum(math.exp(x) for x in z))
            total += -sum(targets[i][j] * (z[j] - lse) for j in range(len(z)))
        return total / len(m)

    expected = 0.5 * (soft_ce(sim) + soft_ce([list(col) for col in zip(*sim)]))
    got = ClipLoss(soft_weight=weight, soft_temperature=temp)(v, t, torch.tensor(scale), torch.tensor(pos))
    assert abs(float(got) - expected) < 1e-5
    assert abs(float(got) - float(ClipLoss()(v, t, torch.tensor(scale)))) > 1e-3  # the term matters


def test_soft_targets_rows_sum_to_one_and_equal_labels_share_mass():
    from eclip_core.losses import soft_label_targets

    pos = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    got = soft_label_targets(pos, pos, 0, 1.0, 0.05)
    torch.testing.assert_close(got.sum(1), torch.ones(4))
    assert abs(float(got[0, 0]) - float(got[0, 1])) < 1e-6 and float(got[0, 2]) < 1e-6
    assert got[3].tolist() == [0.0, 0.0, 0.0, 1.0]
    # weight 0 is the one-hot target of the paper's loss
    assert soft_label_targets(pos, pos, 0, 0.0, 0.05).tolist() == torch.eye(4).tolist()


def test_soft_weight_zero_is_the_paper_loss_exactly():
    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=-1)
    pos = (torch.rand(5, 14, generator=g) > 0.7).float()
    assert torch.equal(ClipLoss(0.0)(v, t, torch.tensor(7.0), pos), ClipLoss()(v, t, torch.tensor(7.0)))


def test_label_loss_equals_hand_computation_3x3():
    from eclip_core.losses import label_loss

    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0], [1.0, 1.0, 1.0]])
    nan = float("nan")
    rows = torch.tensor([[1.0, 0.0, nan], [-1.0, 1.0, 0.0], [nan, -1.0, 1.0]])

    def bce(z, y):
        p = 1 / (1 + math.exp(-z))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    terms = []
    for i in range(3):
        for j in range(3):
            r = rows[i, j].item()
            if r == -1.0:
                continue  # uncertain: left out
            terms.append(bce(logits[i, j].item(), 1.0 if r == 1.0 else 0.0))  # NaN (not mentioned) = negative
    assert abs(float(label_loss(logits, rows)) - sum(terms) / len(terms)) < 1e-6
