"""Training checkpoints: one folder, replaced atomically, holding everything needed to resume.

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

STATE_NAME = "training_state.pt"


def rng_states() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def save_checkpoint(path: Path, model, optimizer, scheduler, step: int, train_config: dict,
                    counters: dict[str, Any]) -> None:
    """Write the resume folder atomically (a crash mid-write leaves the previous checkpoint intact)."""
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_states(),
        "counters": counters,
    }
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp / "model")
        torch.save(state, tmp / STATE_NAME)
        (tmp / "train_config.json").write_text(json.dumps(train_config, indent=2), encoding="utf-8")


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[int, dict[str, Any]]:
    """Restore weights, optimizer, scheduler and RNG from ``path``; returns (step, counters)."""
    from safetensors.torch import load_file

    weights, state_file = path / "model" / "model.safetensors", path / STATE_NAME
    if not weights.is_file() or not state_file.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete (need model/model.safetensors and {STATE_NAME})")
    try:
        model.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
    except Exception as exc:  # shape or key mismatch: a checkpoint of another model config
        raise CheckpointError(f"checkpoint {path} does not match this run's model config ({exc})") from exc
    # weights_only=False: the state holds numpy RNG state (a tuple with an ndarray); the file is our own.
    state = torch.load(state_file, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_states(state["rng"])
    return int(state["step"]), dict(state.get("counters", {}))
