"""eCLIP objective: symmetric InfoNCE with a learnable temperature, and the processor's priming loss.

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
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` [n, D] from all ranks along dim 0, keeping the autograd graph (n equal on every rank)."""
    rank, world = _dist_info()
    if world == 1:
        return x
    return _AllGather.apply(x)


class ClipLoss(nn.Module):
    """L = 1/2 [CE(S, diag) + CE(S^T, diag)], S = logit_scale * v t^T over the (global) batch.

    ``logit_scale`` is the multiplier 1/tau (already exponentiated), as open_clip models return it.
    """

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: torch.Tensor) -> torch.Tensor:
        if image_features.shape != text_features.shape:
            raise ValueError(f"image and text features differ in shape: {tuple(image_features.shape)} vs "
                             f"{tuple(text_features.shape)}")
        rank, world = _dist_info()
        n = image_features.shape[0]
        all_img, all_txt = gather_with_grad(image_features), gather_with_grad(text_features)
        logits_per_image = logit_scale * image_features @ all_txt.T
        logits_per_text = logit_scale * text_features @ all_img.T
        labels = torch.arange(n, device=image_features.device) + rank * n
        return 0.5 * (F.cross_entropy(logits_per_image.float(), labels)
                      + F.cross_entropy(logits_per_text.float(), labels))


def priming_loss(processor: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """MSE(H(I, 1), I) in normalised pixel space: pushes the heatmap processor towards the identity map."""
    ones = torch.ones((images.shape[0], 1, *images.shape[-2:]), dtype=images.dtype, device=images.device)
    return F.mse_loss(processor(images, ones, randomize=False).float(), images.float())
