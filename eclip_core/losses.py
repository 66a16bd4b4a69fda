"""eCLIP objective: symmetric InfoNCE with a learnable temperature, and the processor's priming loss;
plus two optional label-aware terms (off in the paper's objective): soft contrastive targets from label
similarity (MedCLIP's semantic matching idea) and an auxiliary multi-label loss.

:class:`ClipLoss` gathers embeddings from every process (with gradient, through
``torch.distributed.nn.functional.all_gather``) when torch.distributed is initialised, so the
negatives of a step are the whole global batch, as open_clip does; each rank scores its own rows
against all columns (the "local loss" form, whose gradient summed over ranks equals the full loss's).

>>> import torch
>>> v = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
>>> loss = ClipLoss()(v, v, logit_scale=torch.tensor(100.0))
>>> float(loss) < 1e-3
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _AllGather(torch.autograd.Function):
    """all_gather whose backward sums the incoming gradients over ranks and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, world = _dist_info()
        ctx.rank, ctx.n = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        torch.distributed.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad, op=torch.distributed.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` [n, D] from all ranks along dim 0, keeping the autograd graph (n equal on every rank)."""
    rank, world = _dist_info()
    if world == 1:
        return x
    return _AllGather.apply(x)


class ClipLoss(nn.Module):
    """L = 1/2 [CE(S, diag) + CE(S^T, diag)], S = logit_scale * v t^T over the (global) batch.

    ``logit_scale`` is the multiplier 1/tau (already exponentiated), as open_clip models return it.
    With ``positives`` ([n, L] 0/1 label rows of this rank's pairs) and ``soft_weight`` > 0, the one-hot
    targets become :func:`soft_label_targets` (pairs whose reports carry the same findings are not pushed
    apart as negatives); ``soft_weight`` = 0 is the paper's loss, computed exactly as without labels.
    """

    def __init__(self, soft_weight: float = 0.0, soft_temperature: float = 0.1) -> None:
        super().__init__()
        self.soft_weight, self.soft_temperature = float(soft_weight), float(soft_temperature)

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        positives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if image_features.shape != text_features.shape:
            raise ValueError(
                f"image and text features differ in shape: {tuple(image_features.shape)} vs "
                f"{tuple(text_features.shape)}"
            )
        rank, world = _dist_info()
        n = image_features.shape[0]
        all_img, all_txt = gather_with_grad(image_features), gather_with_grad(text_features)
        logits_per_image = logit_scale * image_features @ all_txt.T
        logits_per_text = logit_scale * text_features @ all_img.T
        labels = torch.arange(n, device=image_features.device) + rank * n
        if self.soft_weight > 0 and positives is not None:
            all_pos = gather_with_grad(positives.float())
            labels = soft_label_targets(positives.float(), all_pos, rank * n, self.soft_weight, self.soft_temperature)
        return 0.5 * (
            F.cross_entropy(logits_per_image.float(), labels) + F.cross_entropy(logits_per_text.float(), labels)
        )


def soft_label_targets(
    positives: torch.Tensor, all_positives: torch.Tensor, offset: int, weight: float, temperature: float
) -> torch.Tensor:
    """Soft contrastive targets [n, N]: (1 - w) one-hot + w softmax_j(cos(y_i, y_j) / T).

    ``positives`` are this rank's 0/1 label rows [n, L], ``all_positives`` the global batch's [N, L] (row
    ``offset + i`` is row i's own pair). A row with no positive label has no label evidence: its soft part
    stays one-hot. Each row sums to 1.

    >>> y = torch.tensor([[1., 0.], [1., 0.], [0., 1.]])
    >>> soft_label_targets(y, y, 0, 1.0, 1e-3)[0].tolist()   # the two identical rows share the mass
    [0.5, 0.5, 0.0]
    """
    norm_i = positives.norm(dim=1, keepdim=True)
    norm_j = all_positives.norm(dim=1, keepdim=True)
    cos = (positives @ all_positives.T) / (norm_i * norm_j.T).clamp_min(1e-12)
    eye = torch.zeros_like(cos)
    eye[torch.arange(cos.shape[0]), torch.arange(cos.shape[0]) + offset] = 1.0
    soft = torch.softmax(cos / temperature, dim=1)
    soft = torch.where(norm_i > 0, soft, eye)
    return (1.0 - weight) * eye + weight * soft


def label_loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Auxiliary multi-label loss: mean binary cross-entropy over the labelled entries.

    ``rows`` [n, L] hold labels as 1 / 0 / -1 / NaN (positive, negative, uncertain, not mentioned). Targets
    are 1 for positive, 0 for negative and not mentioned; uncertain entries are left out.

    >>> rows = torch.tensor([[1.0, float("nan"), -1.0]])
    >>> round(float(label_loss(torch.zeros(1, 3), rows)), 4)   # two entries at logit 0: ln 2
    0.6931
    """
    targets = (rows == 1.0).float()
    keep = (rows != -1.0).float()
    bce = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
    return (bce * keep).sum() / keep.sum().clamp_min(1.0)


def priming_loss(processor: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """MSE(H(I, 1), I) in normalised pixel space: pushes the heatmap processor towards the identity map."""
    ones = torch.ones((images.shape[0], 1, *images.shape[-2:]), dtype=images.dtype, device=images.device)
    return F.mse_loss(processor(images, ones, randomize=False).float(), images.float())
