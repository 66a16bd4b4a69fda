"""The tower suite's budget: one training step of each variant timed in this process (model step and batch
preparation, single-thread CPU time, interleaved over rounds), turned into steps per variant that cost the
same as the reference's run. :func:`calibrate` caches the result in the folder it is given.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.report_gen.tower_variants import (
    MEAN_EXPERT_RATE,
    SAME_STEPS_AS,
    VARIANTS,
    TowerSuiteConfig,
    model_config,
    train_config,
)


def data_costs(
    variants: list[str], manifest: str, batch_size: int, rounds: int, seed: int = 0
) -> dict[str, dict[str, list[float]]]:
    """CPU seconds to prepare one step's batch per variant: {variant: {"plain": [...], "expert": [...]}}
    ("expert": the extra expert batch of half the size). Real manifest rows through the training data path
    (image decoding, augmentation at the variant's input size, heatmaps, tokenization), on one torch thread
    as in a data-loader process; variants interleaved within each round."""
    import torch

    from eclip_core.data.manifest import read_manifest
    from eclip_core.model import EClip
    from eclip_core.training.data import StepBatches, StepPlanner

    studies = [s for s in read_manifest(manifest, split="train") if s.report_text]
    expert = [s for s in studies if s.has_expert]
    streams = {}
    for v in variants:
        tc = train_config(TowerSuiteConfig(batch_size=batch_size), manifest, v, seed, 10, Path("unused"))
        tc.p_start = tc.p_peak = tc.p_floor = 1.0  # every planned step with experts injects a batch
        tc.cold_frac = tc.warm_end_frac = tc.cool_end_frac = 0.0
        model = EClip(model_config(v))
        planner = StepPlanner(tc, len(studies), len(expert))
        streams[v] = (
            planner,
            StepBatches(
                planner, studies, expert, model.transform, model.tokenize, 0, rounds + 1, with_labels=tc.uses_labels
            ),
        )
    out: dict[str, dict[str, list[float]]] = {v: {"plain": [], "expert": []} for v in variants}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(rounds + 1):
            for v in variants:
                planner, data = streams[v]
                planner.n_expert = 0  # no expert rows: a plain batch
                t0 = time.process_time()
                data[i]
                t1 = time.process_time()
                planner.n_expert = len(expert)
                data[i]
                t2 = time.process_time()
                if i:  # the first round warms caches (heatmaps, tokenizer)
                    out[v]["plain"].append(t1 - t0)
                    out[v]["expert"].append(max(0.0, (t2 - t1) - (t1 - t0)))
    finally:
        torch.set_num_threads(threads)
    return out


def step_costs(variants: list[str], batch_size: int, rounds: int, seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Single-thread CPU seconds of one training step per variant: {variant: {"plain": [...], "expert": [...]}}.

    Every variant runs once per round (plain step, then a step with an expert batch of half the size), in a
    new seeded order each round, on synthetic grey images and reports of Open-I length.
    """
    import torch

    from eclip_core.config import TrainConfig
    from eclip_core.losses import ClipLoss
    from eclip_core.model import EClip
    from eclip_core.training.optim import build_optimizer
    from eclip_core.training.step import train_step
    from eval.bench.training.train_step import synthetic_batch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    state = {}
    try:
        for v in variants:
            torch.manual_seed(seed)
            tc = TrainConfig(model=model_config(v), **{"lr": 3e-4, **VARIANTS[v][2]})
            model_cfg = model_config(v)
            model_cfg.label_head = tc.label_loss_weight > 0
            model = EClip(model_cfg).train()
            model.enable_text_feature_cache()
            opt = build_optimizer(model, tc)
            batch = synthetic_batch(model, batch_size, max(1, batch_size // 2), rng)
            if tc.uses_labels:
                g = torch.Generator().manual_seed(seed)
                batch["labels"] = (torch.rand(batch_size, 14, generator=g) > 0.8).float()
                batch["expert_labels"] = batch["labels"][: max(1, batch_size // 2)]
            plain = {k: x for k, x in batch.items() if not k.startswith("expert")}
            plain["inject"] = False
            loss = ClipLoss(tc.soft_target_weight, tc.soft_target_temperature)
            state[v] = (model, opt, loss, tc.label_loss_weight, {"plain": plain, "expert": batch})
            for b in (plain, batch):  # warm-up: text cache, allocator
                train_step(
                    model,
                    opt,
                    loss,
                    b,
                    prime=False,
                    priming_weight=0.0,
                    grad_clip=1.0,
                    label_loss_weight=tc.label_loss_weight,
                )
        times: dict[str, dict[str, list[float]]] = {v: {"plain": [], "expert": []} for v in variants}
        for _ in range(rounds):
            order = list(variants)
            rng.shuffle(order)
            for v in order:
                model, opt, loss, w, batches = state[v]
                for kind in ("plain", "expert"):
                    t0 = time.process_time()
                    train_step(
                        model,
                        opt,
                        loss,
                        batches[kind],
                        prime=False,
                        priming_weight=0.0,
                        grad_clip=1.0,
                        label_loss_weight=w,
                    )
                    times[v][kind].append(time.process_time() - t0)
        return times
    finally:
        torch.set_num_threads(threads)


def calibrate(cfg: TowerSuiteConfig, manifest: str, cache_dir: Path) -> dict[str, Any]:
    """Steps per variant for the reference's budget (cached in ``cache_dir``, the suite's under $RAG_REPORT_HOME).

    A step's cost is its CPU time: the model's forward and backward (one thread) plus the preparation of
    its batch (what the data-loader process spends), each with an expert batch at the curriculum's mean
    rate. Ratios to the reference are taken within each calibration round (median over rounds). Every
    variant is calibrated whichever ones ``cfg`` asks for, so a variant trains the same steps (and reuses the
    same cached runs) whether it is run alone or beside others.
    """
    names = sorted(VARIANTS)
    key = hashlib.sha256(
        json.dumps(
            {
                "v": names,
                "b": cfg.batch_size,
                "r": cfg.calibration_rounds,
                "data": 1,
                "defs": {n: VARIANTS[n][1:] for n in names},
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:10]
    path = Path(cache_dir) / f"calibration-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    times = step_costs(names, cfg.batch_size, cfg.calibration_rounds)
    data = data_costs(names, manifest, cfg.batch_size, cfg.calibration_rounds)
    cost = {}
    for v in names:
        t, d = times[v], data[v]
        cost[v] = [
            p + MEAN_EXPERT_RATE * (e - p) + dp + MEAN_EXPERT_RATE * de
            for p, e, dp, de in zip(t["plain"], t["expert"], d["plain"], d["expert"])
        ]
    ratio = {v: statistics.median(a / b for a, b in zip(cost[v], cost[cfg.reference_variant])) for v in names}
    steps = {v: max(1, round(cfg.reference_steps / ratio[v])) for v in names}
    steps.update({v: steps[other] for v, other in SAME_STEPS_AS.items()})
    out = {
        "times": times,
        "data_times": data,
        "cost_ratio": ratio,
        "steps": steps,
        "reference": cfg.reference_variant,
        "reference_steps": cfg.reference_steps,
        "mean_expert_rate": MEAN_EXPERT_RATE,
    }
    from eclip_core.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    return out


def budget(cfg: TowerSuiteConfig, manifest: str, cache_dir: Path) -> dict[str, Any]:
    """Steps per variant: those ``cfg.variant_steps`` gives, the rest from :func:`calibrate` (not run when
    every variant of ``cfg`` is given). ``"given"`` lists the variants whose steps were given; a variant
    that trains another's steps (SAME_STEPS_AS) follows a count given for that other.

    >>> cfg = TowerSuiteConfig(variants=["cnn128", "lite0_224_locked_paper", "lite0_224_locked_clip"],
    ...                        variant_steps=["cnn128=959", "lite0_224_locked_paper=294"])
    >>> b = budget(cfg, "unused.csv", Path("unused"))
    >>> b["steps"]["lite0_224_locked_clip"], b["given"], b["cost_ratio"]
    (294, ['cnn128', 'lite0_224_locked_clip', 'lite0_224_locked_paper'], {})
    """
    given = cfg.given_steps()
    given.update({v: given[other] for v, other in SAME_STEPS_AS.items() if other in given and v not in given})
    if all(v in given for v in cfg.variants):
        cal: dict[str, Any] = {
            "cost_ratio": {},
            "steps": {},
            "reference": cfg.reference_variant,
            "reference_steps": cfg.reference_steps,
            "mean_expert_rate": MEAN_EXPERT_RATE,
        }
    else:
        cal = dict(calibrate(cfg, manifest, cache_dir))
    cal["steps"] = {**cal["steps"], **given}
    cal["given"] = sorted(given)
    return cal
