"""`rag-report train`: eclip_core's training command under its own name, with CPU-sensible defaults.

Every flag is ``python -m eclip_core.train``'s (a :class:`~eclip_core.config.TrainConfig` field). A user's
archive is real X-rays, so the image tower starts from the packaged ImageNet EfficientNet-Lite0
(``--image-weights efficientnet-lite0``) at 224 px with its trunk locked (``--model-lock-image``: only the
projections train, at lr 1e-3 on a CPU; ``--no-model-lock-image`` fine-tunes it); ``--image-weights none`` trains the model config's own tower from
scratch, and ``--image-weights FILE`` (with ``--image-tower``) starts from a weights file. Where no
CUDA device is used (none available, or ``--cpu``), the defaults are the default bundle's, the setting
benchmarked on 2-core CPUs (docs/results/report_gen.md): the text tower locked except its projection (its features are then computed
once per report and cached), lr 3e-4 and one data-loader worker. ``--config`` and flags override them;
``--no-model-lock-text`` trains the whole text tower. On any device the manifest's val split is scored every 50
steps, the step with the best val recall is saved, and training stops after 4 scorings without a better one
(``--val-every 50 --keep-best --val-metric recall --val-patience 4``; a small archive overfits long before
the last step).

>>> cpu_train_defaults()["model"]["lock_text"]
True
>>> train_defaults([], cpu=False)
{'model': {'image_weights': 'efficientnet-lite0', 'lock_image': True, 'image_size': 224}, 'val_every': 50, 'keep_best': True, 'val_metric': 'recall', 'val_patience': 4}
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from eclip_core.runtime import setup_build_threads
from rag_report.cli_io import start_command, stdout_to_stderr
from rag_report.paths import text_feature_dir

PROG = "rag-report train"


def cpu_train_defaults() -> dict[str, Any]:
    """TrainConfig values for a CPU run: the default bundle's (rag_report.bundle.DefaultBundleConfig)."""
    from rag_report.bundle import DefaultBundleConfig

    b = DefaultBundleConfig().train
    return {"model": {"name": b.model.name, "lock_text": b.model.lock_text}, "lr": b.lr, "num_workers": b.num_workers}


#: The image weights `rag-report train` starts from (eclip_core.towers.BUILTIN_WEIGHTS).
DEFAULT_IMAGE_WEIGHTS = "efficientnet-lite0"
#: With the default pretrained tower: its trunk locked (only the projections train), at the weights' own
#: 224 px, at a learning rate for projections (measured on real X-rays: docs/results/real.md).
PRETRAINED_TOWER_DEFAULTS = {"lock_image": True, "image_size": 224}
LOCKED_LR = 1e-3
#: Score the manifest's val split every 50 steps, keep the step with the best val recall and stop after 4
#: scorings without a better one: on a small archive the projections overfit long before 1000 steps, and the
#: val loss, which rises as the model grows confident, bottoms out before training has moved the model
#: (measured on real X-rays: docs/results/real.md).
VALIDATION_DEFAULTS = {"val_every": 50, "keep_best": True, "val_metric": "recall", "val_patience": 4}
_LOCK_FLAGS = ("--model-lock-image", "--no-model-lock-image")


def _given(argv: list[str], *flags: str) -> bool:
    return any(a in flags or a.split("=", 1)[0] in flags for a in argv)


def train_defaults(argv: list[str], cpu: bool) -> dict[str, Any]:
    """TrainConfig values under the flags and ``--config``: the CPU defaults (:func:`cpu_train_defaults`) on a
    CPU, and the pretrained image tower unless a whole checkpoint is given (``--model-pretrained``)."""
    out = {**(cpu_train_defaults() if cpu else {"model": {}}), **VALIDATION_DEFAULTS}
    if not _given(argv, "--model-pretrained"):
        out["model"].update(image_weights=DEFAULT_IMAGE_WEIGHTS, **PRETRAINED_TOWER_DEFAULTS)
        if cpu:
            out["lr"] = LOCKED_LR
    return out


def settle_tower_defaults(cfg, argv: list[str], cpu: bool):
    """Undo the locked-trunk defaults that no longer apply: with no timm tower left to lock (``--image-weights
    none``) the model config's own tower trains whole at its own size; an unlocked tower (also
    ``--no-model-lock-image``) trains at the CPU learning rate. Values given by flag are kept.

    >>> from eclip_core.config import TrainConfig
    >>> cfg = TrainConfig.from_dict({"lr": 1e-3, "model": {"lock_image": True, "image_size": 224}})
    >>> c = settle_tower_defaults(cfg, ["--image-weights", "none"], cpu=True)
    >>> c.model.lock_image, c.model.image_size, c.lr
    (False, None, 0.0003)
    """
    m = cfg.model
    if not (m.image_tower or m.image_weights) and m.lock_image and not _given(argv, *_LOCK_FLAGS):
        m.lock_image = False
        if not _given(argv, "--model-image-size") and m.image_size == PRETRAINED_TOWER_DEFAULTS["image_size"]:
            m.image_size = None
    if cpu and not m.lock_image and not _given(argv, "--lr") and cfg.lr == LOCKED_LR:
        cfg.lr = cpu_train_defaults()["lr"]
    return cfg


def runs_on_cpu(argv: list[str]) -> bool:
    """True when this run will not use CUDA: ``--cpu`` given or no CUDA device visible."""
    if "--cpu" in argv:
        return True
    import torch

    return not torch.cuda.is_available()


def train_parser(cpu: bool):
    """eclip_core.train's parser named `rag-report train`, its help stating the defaults in force."""
    from eclip_core.cli_config import show_default
    from eclip_core.train import build_parser

    defaults = train_defaults([], cpu)
    dotted = {**{f"model.{k}": v for k, v in defaults.pop("model").items()}, **defaults}
    parser = build_parser(shown_defaults={path: show_default(value) for path, value in dotted.items()})
    parser.prog = PROG
    parser.description = "Train eCLIP (or a CLIP / ablation baseline) on a study manifest."
    d = cpu_train_defaults()
    parser.epilog = (
        f"Defaults on this machine ({'CPU' if cpu else 'CUDA'}): "
        + (
            f"text tower locked except its projection (--model-lock-text), --lr {d['lr']:g}, "
            f"--num-workers {d['num_workers']} (the default bundle's CPU setting; --no-model-lock-text "
            "trains the whole text tower)."
            if cpu
            else "those of python -m eclip_core.train."
        )
        + f" The image tower starts from --image-weights {DEFAULT_IMAGE_WEIGHTS} (ImageNet) at 224 px with its trunk"
        + f" locked (--model-lock-image; only the projections train, lr {LOCKED_LR:g} on a CPU;"
        + " --no-model-lock-image fine-tunes it); --image-weights none trains the model's own tower from scratch."
        + f" Every {VALIDATION_DEFAULTS['val_every']} steps the manifest's val split is scored; the step with the"
        + " best val recall is the model saved, and training stops after"
        + f" {VALIDATION_DEFAULTS['val_patience']} scorings without a better one (--val-every, --keep-best,"
        + " --val-metric, --val-patience; --val-every 0 trains every step and keeps the last)."
        + " --config FILE and flags override them."
    )
    # Listed for --help only: taken out of argv before parsing (TrainConfig has no such field).
    parser.add_argument(
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bars or library tables; warnings and errors only",
    )
    return parser


def main(argv: list[str], *, quiet: bool = False, verbose: bool = False) -> int:
    """Run `rag-report train ARGV`; prints one JSON summary line on stdout (rank 0), like eclip_core.train."""
    quiet = quiet or "--quiet" in argv
    verbose = verbose or "-v" in argv or "--verbose" in argv
    argv = [a for a in argv if a != "--quiet"] + (["--no-progress"] if quiet else [])
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    setup_build_threads()  # OpenMP threads sleep while they wait (eclip_core.runtime); before torch loads
    start_command(quiet=quiet, level=level, log_format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from eclip_core.train import main as train_main  # torch: after the switches above

    cpu = runs_on_cpu(argv)
    defaults = {**train_defaults(argv, cpu), "text_feature_cache_dir": str(text_feature_dir())}
    return train_main(
        argv,
        parser=train_parser(cpu),
        defaults=defaults,
        around=stdout_to_stderr,
        settle=lambda cfg: settle_tower_defaults(cfg, argv, cpu),
    )
