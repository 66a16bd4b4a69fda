"""Training checkpoints: one folder, replaced crash-safely, holding everything needed to resume.

A save killed at any instant leaves a complete previous or new checkpoint (:mod:`eclip_core.safe_dir`);
:func:`find_checkpoint` puts it back in place before a resume.

Layout of ``<output_dir>/checkpoint``: ``model/`` (EClip.save_pretrained), ``training_state.pt``
(optimizer, scheduler, step, RNG states, counters) and ``train_config.json``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eclip_core.atomic import atomic_dir
from eclip_core.errors import CheckpointError
from eclip_core.safe_dir import recover_dir
from eclip_core.save_errors import check_written, nested_nbytes, saving

STATE_NAME = "training_state.pt"


def rng_states() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def save_checkpoint(
    path: Path, model, optimizer, scheduler, step: int, train_config: dict, counters: dict[str, Any]
) -> None:
    """Write the resume folder atomically (a crash mid-write leaves the previous checkpoint intact)."""
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_states(),
        "counters": counters,
    }
    needed = nested_nbytes(model.state_dict()) + nested_nbytes(state)  # the weights, the optimizer state
    with saving("the training checkpoint", path, needed), atomic_dir(path, validate=is_checkpoint_dir) as tmp:
        model.save_pretrained(tmp / "model")
        torch.save(state, tmp / STATE_NAME)
        check_written(tmp / STATE_NAME, nested_nbytes(state))
        (tmp / "train_config.json").write_text(json.dumps(train_config, indent=2), encoding="utf-8")


def is_checkpoint_dir(folder: Path) -> bool:
    """Whether ``folder`` holds every file of a checkpoint."""
    return all((folder / name).is_file() for name in ("model/model.safetensors", "model/config.json", STATE_NAME))


def find_checkpoint(path: Path) -> Path | None:
    """The checkpoint folder to resume from: ``path``, after finishing a save that a kill interrupted (the
    newest complete version is moved back in place); None when there is none anywhere."""
    found = recover_dir(path, is_checkpoint_dir)
    return found if found.is_dir() else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[int, dict[str, Any]]:
    """Restore weights, optimizer, scheduler and RNG from ``path``; returns (step, counters)."""
    from safetensors.torch import load_file

    weights, state_file = path / "model" / "model.safetensors", path / STATE_NAME
    if not weights.is_file() or not state_file.is_file():
        raise CheckpointError(
            f"checkpoint {path} is incomplete (need model/model.safetensors and {STATE_NAME}); "
            "restore it, or delete it to train from step 0"
        )
    try:
        model.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
    except Exception as exc:  # shape or key mismatch: a checkpoint of another model config
        raise CheckpointError(f"checkpoint {path} does not match this run's model config ({exc})") from exc
    try:
        # weights_only=False: the state holds numpy RNG state (a tuple with an ndarray); the file is our own.
        state = torch.load(state_file, map_location="cpu", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_states(state["rng"])
    except Exception as exc:  # truncated file, another optimizer: torch and pickle raise many types
        raise CheckpointError(
            f"checkpoint {path}: {STATE_NAME} is unreadable or does not match this run "
            f"({type(exc).__name__}: {exc}); delete {path} to train from step 0"
        ) from exc
    return int(state["step"]), dict(state.get("counters", {}))
