"""Train eCLIP (or the CLIP / naive / mask / random baselines) on a manifest, with accelerate.

CLI (every flag is a :class:`~eclip_core.config.TrainConfig` field; ``--config`` reads JSON/YAML first,
flags override it)::

    python -m eclip_core.train --manifest data/manifest.csv --output-dir runs/eclip --steps 2000 \\
        --model eclip-small --model-lock-text --method eclip
    accelerate launch --multi_gpu -m eclip_core.train --config train.yaml   # many GPUs / nodes
    torchrun --nproc_per_node 2 -m eclip_core.train --config train.yaml     # several CPU processes

Library:

>>> from eclip_core.config import TrainConfig
>>> # result = train(TrainConfig(manifest="m.csv", output_dir="runs/x", steps=100))
>>> # result.model_dir  -> folder loadable with EClip.from_pretrained

Outputs in ``output_dir``: ``model/`` (final weights + config.json + train_config.json),
``checkpoint/`` (latest resumable state, every ``checkpoint_every`` steps), ``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from eclip_core.cli_config import ConfigParser, deep_update
from eclip_core.config import EClipConfig, TrainConfig
from eclip_core.curriculum import in_cold_start, uses_curriculum
from eclip_core.data.manifest import read_manifest
from eclip_core.errors import ConfigError, EClipError, ManifestError
from eclip_core.losses import ClipLoss
from eclip_core.runtime import setup_offline

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run produced: where, how long, the loss trajectory and row accounting."""

    output_dir: Path
    model_dir: Path
    steps: int
    start_step: int
    losses: list[float] = field(default_factory=list)
    final_loss: float = float("nan")
    checkpoint_hash: str = ""
    n_train: int = 0
    n_expert: int = 0
    bad_rows: int = 0
    expert_steps: int = 0
    wall_s: float = 0.0
    #: Where the run's time went: wall seconds of setup, waiting for batches, optimiser steps (of which
    #: the locked text tower's first pass over each report) and checkpoints, and CPU seconds of the steps.
    timings: dict[str, float] = field(default_factory=dict)
    #: Val scores (``val_every``): one metrics row per scoring; the step saved as the model (``keep_best``).
    val: list[dict] = field(default_factory=list)
    best_step: int | None = None


def _method_model_config(cfg: TrainConfig) -> EClipConfig:
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.label_head = model_cfg.label_head or cfg.label_loss_weight > 0
    if cfg.method in ("mask", "random"):
        model_cfg.processor_variant = cfg.method
    elif model_cfg.processor_variant != "mha":
        logger.info(
            "method %s uses the 'mha' processor; ignoring processor_variant=%s", cfg.method, model_cfg.processor_variant
        )
        model_cfg.processor_variant = "mha"
    return model_cfg


def _prepare_rows(cfg: TrainConfig):
    from eclip_core.training.data import check_rows

    studies = read_manifest(cfg.manifest, split=cfg.split)
    if not studies:
        raise ManifestError(f"manifest {cfg.manifest} has no rows with split={cfg.split!r}")
    checked = check_rows(studies, decode=cfg.validate_images, progress=cfg.progress)
    if checked.bad:
        shown = "; ".join(f"{sid}: {why}" for sid, why in checked.bad[:3])
        msg = (
            f"manifest {cfg.manifest}: {len(checked.bad)} of {len(studies)} {cfg.split} rows are unusable "
            f"(missing or unreadable files) - first: {shown}"
        )
        if cfg.fail_on_bad_rows:
            raise ManifestError(msg + " (fail_on_bad_rows is set)")
        logger.warning("%s. Skipping them.", msg)
    if not checked.good:
        raise ManifestError(f"manifest {cfg.manifest}: no usable {cfg.split} rows left")
    textless = sum(1 for s in checked.good if not s.report_text)
    if textless == len(checked.good):
        raise ManifestError(
            f"manifest {cfg.manifest}: none of the {textless} {cfg.split} rows has report text "
            "(findings and impression are empty); eCLIP learns from image-report pairs: fill them in"
        )
    if textless:
        logger.warning(
            "manifest %s: %d of %d %s rows have no report text (findings and impression empty); they "
            "train against an empty report - fill them in or drop them",
            cfg.manifest,
            textless,
            len(checked.good),
            cfg.split,
        )
    expert = [s for s in checked.good if s.has_expert]
    return checked.good, expert, len(checked.bad)


def _write_jsonl(path: Path, record: dict) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records of steps after the checkpoint (a killed run logged them; the resumed run redoes them),
    and lines a kill cut short (with a warning)."""
    from eclip_core.atomic import atomic_path

    if not path.exists():
        return
    keep, torn = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        if isinstance(record, dict) and record.get("step", 0) <= last_step:
            keep.append(line)
    if torn:
        logger.warning("%s: ignored %d unreadable line(s) (a run killed while writing them)", path, torn)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


def train(cfg: TrainConfig, on_step: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Run (or resume) training as configured; returns a :class:`TrainResult`.

    On the CPU it makes glibc keep freed memory for the whole process (:mod:`eclip_core.cpu_memory`).
    ``on_step(step, record)`` is called after each optimiser step (1-based step) on the main process;
    an exception raised there stops the run like a kill would (the last checkpoint stays valid).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from eclip_core.model import EClip
    from eclip_core.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
    from eclip_core.training.data import StepBatches, StepPlanner, step_seed
    from eclip_core.training.optim import build_optimizer, build_scheduler
    from eclip_core.training.step import train_step
    from eclip_core.training.validation import Validation

    cfg = copy.deepcopy(cfg).validate()
    if not cfg.manifest:
        raise ConfigError("train: no manifest given (TrainConfig.manifest / --manifest)")
    t0 = time.perf_counter()
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state.get("_mixed_precision", cfg.mixed_precision) != cfg.mixed_precision:
        # accelerate keeps one precision per process; a later run in the same process (a notebook, the
        # embedding suite) may ask for another. The process group (PartialState) is kept.
        AcceleratorState._reset_state()
    accelerator = Accelerator(
        # cpu=True without a GPU: otherwise accelerate treats torchrun-launched CPU processes as independent
        # single-process runs (DistributedType.NO) and they silently train on the same data.
        mixed_precision=cfg.mixed_precision,
        cpu=cfg.cpu or not torch.cuda.is_available(),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if accelerator.device.type == "cpu":
        from eclip_core.cpu_memory import keep_freed_memory

        keep_freed_memory()  # steady-state steps reuse their activation pages instead of faulting them in
    out = Path(cfg.output_dir)
    ckpt_dir, metrics_path = out / "checkpoint", out / "metrics.jsonl"
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)

    main_rows, expert_rows, n_bad = _prepare_rows(cfg)
    if cfg.method != "clip" and not expert_rows:
        logger.warning(
            "method %s but the manifest has no expert rows (heatmap/fixations): training is plain CLIP", cfg.method
        )
    torch.manual_seed(cfg.seed)
    model = EClip(_method_model_config(cfg))
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    start_step, counters = 0, {"bad_rows_runtime": 0, "expert_steps": 0}
    if cfg.resume and accelerator.is_main_process:
        find_checkpoint(ckpt_dir)  # a save killed mid-replacement: put its newest complete version in place
    accelerator.wait_for_everyone()
    if cfg.resume and ckpt_dir.is_dir():  # incomplete: load_checkpoint says so rather than restarting silently
        start_step, counters = load_checkpoint(ckpt_dir, model, optimizer, scheduler)
        logger.info("resumed from %s at step %d", ckpt_dir, start_step)
        if accelerator.is_main_process:
            _truncate_metrics(metrics_path, start_step)
    elif cfg.resume:
        # A first run has nothing to resume; traces of an earlier run without its checkpoint deserve a warning.
        earlier_run = metrics_path.is_file() and metrics_path.stat().st_size > 0
        (logger.warning if earlier_run else logger.info)(
            "resume requested but there is no checkpoint in %s; training from step 0", ckpt_dir
        )
    elif accelerator.is_main_process and metrics_path.exists():
        metrics_path.unlink()  # a fresh run owns its metrics file
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    text_store = Path(cfg.text_feature_cache_dir) if cfg.text_feature_cache_dir else None
    if cfg.cache_text_features and raw.enable_text_feature_cache():
        loaded = raw.load_text_feature_cache(text_store) if text_store else 0
        # Every report up front, passes side by side: far cheaper than one at a time as batches first meet them.
        made = raw.precompute_text_features(
            [r.report_text for r in [*main_rows, *expert_rows]], torch.get_num_threads(), cfg.progress
        )
        logger.info("text tower locked: report text features cached (%d stored earlier, %d encoded now)", loaded, made)
        if made and text_store and accelerator.is_main_process:
            raw.save_text_feature_cache(text_store)

    validation = Validation.for_run(cfg, raw, out, start_step) if accelerator.is_main_process else None
    planner = StepPlanner(cfg, len(main_rows), len(expert_rows), accelerator.process_index, accelerator.num_processes)
    data = StepBatches(
        planner,
        main_rows,
        expert_rows,
        raw.transform,
        raw.tokenize,
        start_step,
        cfg.steps,
        fail_on_bad_rows=cfg.fail_on_bad_rows,
        heatmap_cache_mb=cfg.heatmap_cache_mb,
        with_labels=cfg.uses_labels,
    )
    loader = DataLoader(data, batch_size=None, shuffle=False, num_workers=cfg.num_workers, persistent_workers=False)
    loss_fn = ClipLoss(cfg.soft_target_weight, cfg.soft_target_temperature)
    model.train()
    losses: list[float] = []
    bar = tqdm(
        total=cfg.steps,
        initial=start_step,
        desc=f"train {cfg.method}",
        unit="step",
        disable=not (cfg.progress and accelerator.is_local_main_process),
    )
    curriculum = uses_curriculum(cfg)
    gen = torch.Generator()
    step = start_step
    timings = dict.fromkeys(("data_wait_s", "steps_s", "steps_cpu_s", "checkpoint_s", "val_s"), 0.0)
    timings["setup_s"] = time.perf_counter() - t0
    batches = iter(loader)
    try:
        while True:
            wait = time.perf_counter()
            batch = next(batches, None)
            timings["data_wait_s"] += time.perf_counter() - wait
            if batch is None:
                break
            step_wall, step_cpu = time.perf_counter(), time.process_time()
            step = batch["step"] + 1  # 1-based count of optimiser steps done after this one
            torch.manual_seed(batch["torch_seed"])  # dropout etc.: same draws on resume
            gen.manual_seed(step_seed(cfg.seed, 4, step))
            prime = (
                curriculum
                and cfg.priming_weight > 0
                and raw.heatmap_processor.has_parameters
                and in_cold_start(step, cfg.steps, cfg)
            )
            if batch["inject"]:
                counters["expert_steps"] = counters.get("expert_steps", 0) + 1
            try:
                res = train_step(
                    model,
                    optimizer,
                    loss_fn,
                    batch,
                    prime=prime,
                    priming_weight=cfg.priming_weight,
                    grad_clip=cfg.grad_clip,
                    accelerator=accelerator,
                    generator=gen,
                    device=accelerator.device,
                    label_loss_weight=cfg.label_loss_weight,
                )
            except FloatingPointError as exc:
                raise FloatingPointError(f"step {step}: {exc}") from None
            scheduler.step()
            raw.clamp_logit_scale_()
            timings["steps_s"] += time.perf_counter() - step_wall
            timings["steps_cpu_s"] += time.process_time() - step_cpu
            counters["bad_rows_runtime"] = counters.get("bad_rows_runtime", 0) + len(batch["bad"])
            for msg in batch["bad"]:
                logger.debug("skipped unreadable row %s", msg)

            # One tensor, one collective; absent terms ride along as copies of the total and are not logged.
            logged = torch.stack(
                [
                    res.loss,
                    res.clip_loss,
                    res.loss if res.prime_loss is None else res.prime_loss,
                    res.loss if res.label_loss is None else res.label_loss,
                ]
            )
            if accelerator.num_processes > 1:  # each rank's loss covers its own rows: log the global mean
                logged = accelerator.reduce(logged.float(), reduction="mean")
            value, clip_value, prime_value, label_value = (float(x) for x in logged)
            losses.append(value)
            record = {
                "step": step,
                "loss": value,
                "clip_loss": clip_value,
                "prime_loss": prime_value if res.prime_loss is not None else None,
                "label_loss": label_value if res.label_loss is not None else None,
                "temperature": raw.temperature,
                "p_expert": batch["p_expert"],
                "injected": bool(batch["inject"]),
                "lam": batch["lam"] if batch["inject"] else None,
                "lr": scheduler.get_last_lr()[0],
                "elapsed_s": round(time.perf_counter() - t0, 3),
            }
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", tau=f"{record['temperature']:.3f}", p=f"{batch['p_expert']:.2f}")
            if accelerator.is_main_process and (step % max(1, cfg.log_every) == 0 or step == cfg.steps):
                _write_jsonl(metrics_path, record)
            if validation is not None and validation.due(step):
                scored = time.perf_counter()
                _write_jsonl(metrics_path, validation.run(raw, step))
                timings["val_s"] += time.perf_counter() - scored
                if validation.exhausted and accelerator.num_processes == 1:  # one process decides alone
                    logger.info(
                        "val %s not better for %d scorings: stopping at step %d", cfg.val_metric, cfg.val_patience, step
                    )
                    break
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                saved = time.perf_counter()
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    save_checkpoint(ckpt_dir, raw, optimizer, scheduler, step, cfg.to_dict(), counters)
                timings["checkpoint_s"] += time.perf_counter() - saved
            if on_step is not None and accelerator.is_main_process:
                on_step(step, record)
    finally:
        bar.close()

    del batches  # joins the loader's worker processes (their CPU seconds then count as the caller's children)
    accelerator.wait_for_everyone()
    finish = time.perf_counter()
    runtime_bad = counters.get("bad_rows_runtime", 0)
    if runtime_bad:
        logger.warning(
            "%d training samples were unreadable at load time and replaced by the next readable row", runtime_bad
        )
    model_dir, best_step = out / "model", None
    if accelerator.is_main_process:
        if cfg.checkpoint_every:  # the resumable state is the last step's, whichever step the model keeps
            save_checkpoint(ckpt_dir, raw, optimizer, scheduler, step, cfg.to_dict(), counters)
        best_step = validation.restore_best(raw) if validation is not None else None
        extra = {"train_config.json": json.dumps(cfg.to_dict(), indent=2)}
        if metrics_path.exists():
            extra["metrics.jsonl"] = metrics_path.read_text(encoding="utf-8")
        raw.save_pretrained(model_dir, extra_files=extra)
        if cfg.cache_text_features and text_store:
            raw.save_text_feature_cache(text_store)
    result = TrainResult(
        output_dir=out,
        model_dir=model_dir,
        steps=step,
        start_step=start_step,
        losses=losses,
        final_loss=losses[-1] if losses else float("nan"),
        checkpoint_hash=raw.checkpoint_hash,
        n_train=len(main_rows),
        n_expert=len(expert_rows),
        bad_rows=n_bad + runtime_bad,
        expert_steps=counters.get("expert_steps", 0),
        wall_s=time.perf_counter() - t0,
        timings={
            **{k: round(v, 3) for k, v in timings.items()},
            "text_features_s": round(getattr(raw, "text_feature_seconds", 0.0), 3),
            "text_features_cpu_s": round(getattr(raw, "text_feature_cpu_seconds", 0.0), 3),
            "save_s": round(time.perf_counter() - finish, 3),
        },
        val=[v.record() for v in validation.scores] if validation is not None else [],
        best_step=best_step,
    )
    kept = f"the weights of step {best_step} (best val {cfg.val_metric})" if best_step is not None else "the model"
    logger.info(
        "trained %s for %d steps in %.1f s (setup %.1f s, waiting for batches %.1f s, steps %.1f s of which "
        "text features %.1f s, validation %.1f s, checkpoints %.1f s, final save %.1f s); final loss %.4f; %s in %s",
        cfg.method, step, result.wall_s,
        *(result.timings[k] for k in ("setup_s", "data_wait_s", "steps_s", "text_features_s", "val_s")),
        *(result.timings[k] for k in ("checkpoint_s", "save_s")), result.final_loss, kept, model_dir,
    )  # fmt: skip
    return result


# ---------------------------------------------------------------------- CLI
#: Flag names of model fields used most (``--model-*`` is every model field's default spelling).
FLAG_ALIASES = {
    "model.name": ("--model", "--model-name"),
    "model.image_tower": ("--image-tower", "--model-image-tower"),
    "model.image_weights": ("--image-weights", "--model-image-weights"),
    "model.image_weights_format": ("--image-weights-format", "--model-image-weights-format"),
}


def build_parser(shown_defaults: dict[str, str] | None = None) -> ConfigParser:
    """Every TrainConfig field as a flag (``--model-*`` for the model's; ``--model`` is ``--model-name``),
    ``--config``, ``--preset`` (eclip_core.cli_config); ``shown_defaults``: a front end's own defaults for the help."""
    p = ConfigParser(prog="python -m eclip_core.train", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--preset",
        choices=("paper", "ref"),
        default=None,
        help="method constants of the paper or of the reference code (before --config and flags)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_dataclass(TrainConfig, title="training (TrainConfig)", flags=FLAG_ALIASES, shown_defaults=shown_defaults)
    p.add_config_option(help="JSON or YAML TrainConfig file (model: a name or a mapping); flags override it")
    return p


def config_from_args(
    argv: list[str] | None = None, *, parser: ConfigParser | None = None, defaults: dict[str, Any] | None = None
) -> TrainConfig:
    """Flags -> TrainConfig: the preset, then ``defaults`` (a caller's, e.g. `rag-report train`'s CPU
    defaults), then ``--config``, then the flags; ``parser`` replaces :func:`build_parser`'s.

    Raises :class:`~eclip_core.errors.ConfigError` naming the flag or field for a value it does not accept.
    """
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    base = TrainConfig.preset(args.preset or "paper").to_dict()
    deep_update(base, copy.deepcopy(defaults or {}))
    return parser.config(args, TrainConfig, defaults=base)


def main(
    argv: list[str] | None = None,
    *,
    parser: ConfigParser | None = None,
    defaults: dict[str, Any] | None = None,
    around: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    settle: Callable[[TrainConfig], TrainConfig] | None = None,
) -> int:
    """Train from the command line; prints one JSON summary line on stdout (rank 0). ``parser``, ``defaults``
    (:func:`config_from_args`), ``settle`` (the front end's last word on the parsed config) and ``around`` (a
    context the run happens in) are a front end's."""
    setup_offline()
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(  # a no-op where the front end set up logging already
        level=logging.DEBUG if ("-v" in argv or "--verbose" in argv) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = config_from_args(argv, parser=parser, defaults=defaults)  # --help goes to stdout
        cfg = settle(cfg) if settle else cfg
        with around():
            result = train(cfg)
    except EClipError as exc:  # bad config, manifest or checkpoint, a full disk: one line, no traceback
        logging.getLogger("eclip_core.train").error("%s", exc)
        return 2
    summary = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(result).items() if k != "losses"
    }
    if int(os.environ.get("RANK", "0")) == 0:  # one summary line, not one per process
        sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
