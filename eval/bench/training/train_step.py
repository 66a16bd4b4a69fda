"""Benchmark: time of one training step (plain CLIP vs eCLIP without / with an expert batch) and the
embedding throughput of a model, measured in one process; writes Markdown to docs/perf/train_step.md.

    python -m eval.bench.training.train_step --model eclip-small --batch-size 16 --repeats 5

Steps run interleaved (every variant once per round, in a new seeded order each round) on the same
model and the same pre-made batch, so machine load affects all variants alike; each variant's ratio to
the CLIP step is taken within a round and summarised by the median over rounds with a bootstrap interval
(eval.bench.stats), in wall time and in CPU time. Data loading is excluded (measured separately per sample).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

from eclip_core.runtime import setup_offline  # noqa: E402

setup_offline()  # before any Hugging Face library is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402

from eclip_core.config import EClipConfig, TrainConfig  # noqa: E402
from eclip_core.cpu_memory import keep_freed_memory  # noqa: E402
from eclip_core.losses import ClipLoss  # noqa: E402
from eclip_core.model import EClip  # noqa: E402
from eclip_core.patch_embed import PatchConv2d  # noqa: E402
from eclip_core.training.optim import build_optimizer  # noqa: E402
from eclip_core.training.step import train_step  # noqa: E402
from eval.bench.page import write_page  # noqa: E402
from eval.bench.stats import paired_ratio  # noqa: E402

REPORTS = [
    "The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Cardiomegaly with mild pulmonary vascular congestion. Small bilateral pleural effusions. No focal consolidation.",
    "Stable right lower lobe opacity likely atelectasis. No pneumothorax. Degenerative changes of the thoracic spine.",
    "Endotracheal tube terminates 4 cm above the carina. Left basilar consolidation concerning for pneumonia.",
]


def synthetic_batch(model: EClip, b: int, be: int, rng: np.random.Generator) -> dict:
    """A training batch of ``b`` random images with report-like texts, ``be`` of them with expert maps."""
    s = model.image_size
    # Two sentences groups per report: ~40 words, about the length of an Open-I findings + impression.
    texts = [REPORTS[i % len(REPORTS)] + " " + REPORTS[(i + 1) % len(REPORTS)] + f" Study {i}." for i in range(b)]
    return {
        "images": _grey(b, s),
        "tokens": model.tokenize(texts),
        "inject": True,
        "lam": 0.4,
        "expert_images": _grey(be, s),
        "expert_heatmaps": torch.rand(be, 1, s, s),
        "expert_tokens": model.tokenize(texts[:be]),
    }


def _grey(n: int, size: int) -> torch.Tensor:
    """Grey images repeated to 3 channels, as the transforms hand X-rays to the model."""
    return torch.randn(n, 1, size, size).repeat(1, 3, 1, 1)


def _plain_conv(fast: torch.nn.Conv2d) -> torch.nn.Conv2d:
    """A stock Conv2d sharing ``fast``'s parameters (the CPU conv kernel, for the before/after rows)."""
    conv = torch.nn.Conv2d(
        fast.in_channels, fast.out_channels, fast.kernel_size, stride=fast.stride, bias=fast.bias is not None
    )
    conv.weight, conv.bias = fast.weight, fast.bias
    return conv


BEFORE = " [before: conv kernel, no text cache]"
EVERY_CHANNEL = " [before: every channel of the grey images embedded]"
IMAGE_SPACE = " [before: mixed images through the ViT]"
PRECOMPUTED = "eCLIP step, expert batch, its ViT rows precomputed (diagnostic: all but the processor)"


def _minor_faults() -> int:
    """Minor page faults of this process so far (0 where getrusage is unavailable)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):
        return 0


class _Autocast:
    """The three calls train_step makes on an accelerate.Accelerator, for a forward under autocast in
    ``dtype`` (bf16; fp16 would also need a gradient scaler, which training gets from accelerate)."""

    def __init__(self, device_type: str, dtype: torch.dtype):
        self.device_type, self.dtype = device_type, dtype

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, params, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


#: A timed variant: (batch, priming loss, fast patch embedding + text cache, mixup in token space, grey images
#: embedded from one channel).
Variant = tuple[dict, bool, bool, bool, bool]
EXPERT = "eCLIP step, expert batch (B/2 mixed pairs)"


def measure_steps(
    model_name: str,
    batch_size: int,
    repeats: int,
    lock_text: bool,
    seed: int = 0,
    keep_memory: bool = True,
    before_rows: bool = True,
    device: str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> dict:
    """Median wall / CPU time of each step variant and its paired ratio to the CLIP step, interleaved, on one
    model and one pre-made batch.

    Variants run as training runs them (patch embedding as a matmul, frozen text features cached: the
    steady state after the first epoch, when every report has been seen) and, for the rows tagged
    ``BEFORE``, with the stock CPU conv kernel and no text cache; ratios are to the CLIP step of the
    same setup. ``device`` "cuda" times on the GPU (synchronised around each step; CPU time is then the
    host's and says little), ``autocast_dtype`` (e.g. torch.bfloat16) runs the forward under autocast.
    """
    dev = torch.device(device)
    if keep_memory:
        keep_freed_memory()  # as eclip_core.train does on the CPU: no per-step page faults in any variant
    torch.manual_seed(seed)
    cfg = TrainConfig(model=EClipConfig(name=model_name, lock_text=lock_text), batch_size=batch_size)
    model = EClip(cfg.model).to(dev).train()
    opt = build_optimizer(model, cfg)
    batch, plain, big = _step_batches(model, cfg, seed, dev)
    setup = _StepSetup(model)
    variants = _variants(batch, plain, big, before_rows)
    setup.fixed_rows = _precomputed_rows(model, batch, variants)
    mixed = _Autocast(dev.type, autocast_dtype) if autocast_dtype else None
    times, cpu, faults = _time_rounds(setup, opt, cfg, variants, repeats, seed, dev, mixed)
    setup.restore()

    def base(k: str) -> str:
        return "CLIP step" + next((tag for tag in (BEFORE, EVERY_CHANNEL) if k.endswith(tag)), "")

    return {
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "cpu_median_s": {k: statistics.median(v) for k, v in cpu.items()},
        "faults": {k: statistics.median(v) for k, v in faults.items()},
        # per-round ratios: each round runs every variant once, so the load of that round cancels
        "ratio": {k: paired_ratio(v, times[base(k)]) for k, v in times.items()},
        "cpu_ratio": {k: paired_ratio(v, cpu[base(k)]) for k, v in cpu.items()},
        "text_cache": setup.cached,
        "kept_memory": keep_memory and keep_freed_memory(),
        "params": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def _step_batches(model: EClip, cfg: TrainConfig, seed: int, dev: torch.device) -> tuple[dict, dict, dict]:
    """(expert batch, the same without its expert half, a plain batch of B + B/2) on ``dev``."""
    batch = synthetic_batch(model, cfg.batch_size, cfg.effective_expert_batch_size, np.random.default_rng(seed))
    plain = {k: v for k, v in batch.items() if not k.startswith("expert")} | {"inject": False}
    big = synthetic_batch(model, cfg.batch_size + cfg.effective_expert_batch_size, 1, np.random.default_rng(seed))
    big = {k: v for k, v in big.items() if not k.startswith("expert")} | {"inject": False}
    batch, plain, big = ({k: v.to(dev) if torch.is_tensor(v) else v for k, v in b.items()} for b in (batch, plain, big))
    return batch, plain, big


def _variants(batch: dict, plain: dict, big: dict, before_rows: bool) -> dict[str, Variant]:
    """The timed step variants by row name (without ``before_rows``: only the steps as training runs them)."""
    variants = {
        "CLIP step": (plain, False, True, True, True),
        "CLIP step at the enlarged batch B + B/2 (cost floor of an expert step)": (big, False, True, True, True),
        "eCLIP step, no expert batch": (plain, False, True, True, True),
        EXPERT: (batch, False, True, True, True),
        "eCLIP cold-start step (priming loss)": (plain, True, True, True, True),
        EXPERT + IMAGE_SPACE: (batch, False, True, False, True),
        PRECOMPUTED: (batch, False, True, True, True),
        "CLIP step" + EVERY_CHANNEL: (plain, False, True, True, False),
        EXPERT + EVERY_CHANNEL: (batch, False, True, True, False),
        "CLIP step" + BEFORE: (plain, False, False, False, False),
        EXPERT + BEFORE: (batch, False, False, False, False),
    }
    if before_rows:
        return variants
    # Big backbones: each step costs seconds, so only the steps as training runs them.
    return {
        k: v for k, v in variants.items() if not k.endswith((BEFORE, IMAGE_SPACE, EVERY_CHANNEL)) and k != PRECOMPUTED
    }


def _precomputed_rows(model: EClip, batch: dict, variants: dict[str, Variant]) -> torch.Tensor | None:
    """The expert step's ViT rows, made once for the PRECOMPUTED row (dropped from ``variants`` when the
    model is no ViT and has no rows to precompute)."""
    if PRECOMPUTED not in variants:
        return None
    with torch.no_grad():  # that row then times all but the processor
        fixed_rows = model.mixed_patch_embeddings(batch["expert_images"], batch["expert_heatmaps"], batch["lam"])
    if fixed_rows is None:
        variants.pop(PRECOMPUTED)
    return fixed_rows


class _StepSetup:
    """The model and the switches a variant sets on it (patch embedding kernel, text cache, mixup space,
    grey collapse, precomputed rows); :meth:`restore` puts them back as training runs them."""

    def __init__(self, model: EClip) -> None:
        self.model = model
        self.visual = model.clip.visual
        self.fast_conv = getattr(self.visual, "conv1", None)
        self.slow_conv = _plain_conv(self.fast_conv) if isinstance(self.fast_conv, torch.nn.Conv2d) else self.fast_conv
        self.cached = model.enable_text_feature_cache()
        self.patch_convs = [m for m in model.modules() if isinstance(m, PatchConv2d)]
        self.text_cache = model._text_cache
        self.fixed_rows: torch.Tensor | None = None

    def apply(self, name: str, fast: bool, token_space: bool, grey: bool) -> None:
        model = self.model
        for conv in self.patch_convs:
            conv.collapse_grey = grey
        if name == PRECOMPUTED:
            rows = self.fixed_rows
            model.mixed_patch_embeddings = lambda *args, **kwargs: rows  # shadows the method
        else:
            model.__dict__.pop("mixed_patch_embeddings", None)
        model.token_space_mixup = token_space
        self.visual.conv1 = self.fast_conv if fast else self.slow_conv
        model._text_cache = self.text_cache if fast else None

    def restore(self) -> None:
        self.visual.conv1, self.model._text_cache, self.model.token_space_mixup = self.fast_conv, self.text_cache, True
        self.model.__dict__.pop("mixed_patch_embeddings", None)
        for conv in self.patch_convs:
            conv.collapse_grey = True


def _time_rounds(
    setup: _StepSetup,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    variants: dict[str, Variant],
    repeats: int,
    seed: int,
    dev: torch.device,
    mixed: _Autocast | None,
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[int]]]:
    """Wall seconds, CPU seconds and minor page faults of every variant's step, ``repeats`` rounds after one
    warm-up round (allocators, text cache), each round in a new seeded order."""
    model, loss_fn = setup.model, ClipLoss()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    faults: dict[str, list[int]] = {k: [] for k in variants}
    order = np.random.default_rng(seed)
    for r in range(repeats + 1):
        # A new order each round: a step's time depends a little on the step before it (allocator, caches).
        for name in order.permutation(list(variants)):
            b, prime, fast, token_space, grey = variants[name]
            setup.apply(name, fast, token_space, grey)
            sync()
            t0, c0, f0 = time.perf_counter(), time.process_time(), _minor_faults()
            train_step(
                model,
                opt,
                loss_fn,
                b,
                prime=prime,
                priming_weight=cfg.priming_weight,
                grad_clip=cfg.grad_clip,
                accelerator=mixed,
                device=dev,
            )
            model.clamp_logit_scale_()
            sync()
            if r:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                faults[name].append(_minor_faults() - f0)
    return times, cpu, faults


def measure_embedding(model_name: str, n_images: int, n_reports: int) -> dict:
    model = EClip.from_config(model_name)
    rng = np.random.default_rng(0)
    images = [rng.random((512, 512)).astype(np.float32) for _ in range(n_images)]
    reports = [
        REPORTS[i % len(REPORTS)] + " " + REPORTS[(i + 1) % len(REPORTS)] + f" Comparison study {i}."
        for i in range(n_reports)
    ]
    model.embed_images(images[:4], progress=False)  # warm-up
    t0 = time.perf_counter()
    model.embed_images(images, batch_size=32, progress=False)
    t_img = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.embed_texts(reports, batch_size=64, progress=False)
    t_txt = time.perf_counter() - t0
    t0 = time.perf_counter()
    for im in images[:32]:
        model.preprocess(im, train=True)
    t_pre = (time.perf_counter() - t0) / 32
    return {"images_per_s": n_images / t_img, "reports_per_s": n_reports / t_txt, "train_preprocess_ms": 1000 * t_pre}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m eval.bench.training.train_step " + " ".join(argv if argv is not None else sys.argv[1:])
    steps = measure_steps(
        args.model,
        args.batch_size,
        args.repeats,
        args.lock_text,
        keep_memory=args.keep_freed_memory,
        before_rows=args.before_rows,
    )
    emb = measure_embedding(args.model, args.n_images, args.n_reports)
    lines = _header(args, command) + _step_table(args, steps) + _step_notes(args, steps) + _embedding_table(args, emb)
    write_page(args.out, lines)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="eclip-small")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--lock-text", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--keep-freed-memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="raise glibc's malloc thresholds as training does (--no-keep-freed-memory: glibc defaults)",
    )
    p.add_argument(
        "--before-rows",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the earlier implementations (tagged [before: ...])",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--n-images", type=int, default=128)
    p.add_argument("--n-reports", type=int, default=512)
    p.add_argument("--out", default="docs/perf/train_step.md")
    return p


def _header(args: argparse.Namespace, command: str) -> list[str]:
    """Title, command and machine of the page."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        f"# Training step and embedding throughput: {args.model}, {torch.get_num_threads()} thread"
        f"{'s' if torch.get_num_threads() > 1 else ''}",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared), "
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, load average at start "
        f"{load:.1f}. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
    ]


def _step_table(args: argparse.Namespace, steps: dict) -> list[str]:
    """The training-step section: how it was timed, then one row per step variant with its verdict."""
    lines = [
        f"## One training step: `{args.model}`, batch {args.batch_size}, text tower "
        f"{'locked except projection' if args.lock_text else 'trained'}",
        "",
        f"Parameters: {steps['params'] / 1e6:.1f} M, trainable {steps['trainable'] / 1e6:.1f} M. "
        f"{args.repeats} rounds (each variant once per round, in a new seeded order) after one warm-up round; "
        "same model and batch. The CPU is shared with other jobs, so a ratio is taken within each round (both "
        "steps under the same load) and the table gives the median of those per-round ratios with a 95 % "
        "bootstrap interval over rounds. CPU time (of this process) leaves out the time the process waited "
        "for a core; wall time includes it. A target is *met* when the whole CPU-time interval is at or under "
        "it, *missed* when all of it is over, and *at the target* when the interval contains it. "
        + (
            "glibc's malloc keeps freed memory (`eclip_core.cpu_memory`, as training does on the CPU); the last "
            "column is the median count of minor page faults per step."
            if steps["kept_memory"]
            else "glibc's malloc defaults (`--no-keep-freed-memory`): freed activations go back to the kernel; the last "
            "column is the median count of minor page faults per step."
        ),
        "",
        "| step | median wall (s) | ratio to CLIP, wall | median CPU (s) | ratio to CLIP, CPU time | target | verdict "
        "| page faults / step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    targets = {"eCLIP step, no expert batch": 1.05, "eCLIP step, expert batch (B/2 mixed pairs)": 1.6}
    for name, t in steps["median_s"].items():
        target = targets.get(name)
        verdict = steps["cpu_ratio"][name].verdict(target) if target else ""
        lines.append(
            f"| {name} | {t:.3f} | {steps['ratio'][name]} | {steps['cpu_median_s'][name]:.3f} | "
            f"{steps['cpu_ratio'][name]} | {f'<= {target}x' if target else ''} | {verdict} | "
            f"{steps['faults'][name]:.0f} |"
        )
    return lines


def _step_notes(args: argparse.Namespace, steps: dict) -> list[str]:
    """What the rows time: the expert step's floor, how training runs a step, the tagged earlier rows."""
    return [
        "",
        "The expert step encodes B + B/2 images and texts (the enlarged batch the method prescribes) and runs "
        "the heatmap processor on B/2 images; a plain CLIP step at batch B + B/2 is therefore its floor, and "
        "the difference between the two rows is the processor and mixup. The cold-start step adds the "
        "processor on the B main images for the priming loss (only during the first 10 % of steps)."
        + (
            " The diagnostic row runs the expert step with its ViT patch-embedding rows made beforehand, so "
            "everything but the heatmap processor: the expert step's excess over it is the processor's cost."
            if PRECOMPUTED in steps["median_s"]
            else ""
        ),
        "",
        "Rows without a tag run as `eclip_core.train` runs them: the ViT and processor patch embeddings as "
        "one matmul over unfolded patches (`eclip_core.patch_embed`: same weights, same outputs), the mixed "
        "expert images entering the ViT as patch embeddings (`EClip.mixed_patch_embeddings`: the processor's "
        "linear tail composed with the ViT's patch embedding, same numbers), the images grey X-rays repeated to "
        "3 channels as the transforms make them, patch-embedded from one channel with the kernels summed over "
        "channels (`PatchConv2d.grey`, same numbers) and, "
        f"with a locked Hugging Face text tower, each report's frozen text features cached "
        f"({'on' if steps['text_cache'] else 'not applicable to this model'}; the steady state once every "
        "report has been seen, i.e. after the first epoch)."
        + (
            " The row tagged `[before: mixed images through the ViT]` makes the mixed images and encodes them as "
            "images (`EClip.mix_expert`, the spec read literally); its ratio is to the same CLIP step. Rows tagged "
            "`[before: every channel of the grey images embedded]` embed all 3 channels, CLIP and eCLIP alike; "
            "ratio against the CLIP step of that setup. Rows tagged "
            "`[before: conv kernel, no text cache]` run the same model with the stock CPU conv kernel, image-space "
            "mixup and no cache, their ratio against the CLIP step of that setup."
            if args.before_rows
            else " Earlier implementations were not timed in this run (`--no-before-rows`)."
        ),
        "",
    ]


def _embedding_table(args: argparse.Namespace, emb: dict) -> list[str]:
    """The embedding-throughput section."""
    return [
        f"## Embedding throughput: `{args.model}` (inference mode, includes preprocessing of 512x512 inputs)",
        "",
        "| what | throughput |",
        "|---|---|",
        f"| images | {emb['images_per_s']:.1f} images/s |",
        f"| reports | {emb['reports_per_s']:.1f} reports/s |",
        f"| train-time preprocessing (crop + CLAHE-like, per image) | {emb['train_preprocess_ms']:.1f} ms |",
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())
