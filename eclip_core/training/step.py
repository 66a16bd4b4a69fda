"""One optimisation step of the eCLIP objective (shared by the training loop and the benchmark)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from eclip_core.losses import ClipLoss
from eclip_core.losses import label_loss as label_bce


@dataclass
class StepOutput:
    loss: torch.Tensor
    clip_loss: torch.Tensor
    prime_loss: torch.Tensor | None
    label_loss: torch.Tensor | None = None


def train_step(
    model,
    optimizer,
    loss_fn: ClipLoss,
    batch: dict,
    *,
    prime: bool,
    priming_weight: float,
    grad_clip: float,
    accelerator=None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    label_loss_weight: float = 0.0,
) -> StepOutput:
    """Forward (main pairs + optional mixed expert pairs), loss, backward, clip, optimiser step.

    ``batch`` holds images [B,3,H,W], tokens [B,L] and, when an expert batch is injected ("inject"),
    expert_images, expert_heatmaps, expert_tokens and lam; with the label-aware terms also label rows
    ``labels`` [B,14] (and ``expert_labels``). L_main = L_clip (soft targets when ``loss_fn`` has them)
    + ``label_loss_weight`` * L_label; during the cold start (``prime``) the loss is (1 - w) L_main +
    w L_prime. The caller steps the scheduler and clamps the temperature.
    """
    kwargs = dict(
        images=batch["images"].to(device), tokens=batch["tokens"].to(device), prime=prime, generator=generator
    )
    if batch.get("inject"):
        kwargs.update(
            expert_images=batch["expert_images"].to(device),
            expert_heatmaps=batch["expert_heatmaps"].to(device),
            expert_tokens=batch["expert_tokens"].to(device),
            lam=batch["lam"],
        )
    autocast = accelerator.autocast() if accelerator is not None else torch.autocast("cpu", enabled=False)
    rows = None
    if "labels" in batch:
        rows = batch["labels"] if not batch.get("inject") else torch.cat([batch["labels"], batch["expert_labels"]])
        rows = rows.to(device)
    with autocast:
        out = model(**kwargs)
        positives = None if rows is None else (rows == 1.0).float()
        clip_loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"], positives)
        main_loss, aux = clip_loss, None
        if label_loss_weight > 0:
            aux = label_bce(out["label_logits"], rows)
            main_loss = clip_loss + label_loss_weight * aux
        prime_loss = out.get("prime_loss") if prime else None
        loss = main_loss if prime_loss is None else (1 - priming_weight) * main_loss + priming_weight * prime_loss
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {float(loss)} (lower the lr or train in fp32)")
    optimizer.zero_grad(set_to_none=True)
    if accelerator is not None:
        accelerator.backward(loss)
        if grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    else:
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return StepOutput(
        loss.detach(),
        clip_loss.detach(),
        None if prime_loss is None else prime_loss.detach(),
        None if aux is None else aux.detach(),
    )
