"""Benchmark: what keeping freed memory (eclip_core.cpu_memory) buys on the CPU; writes Markdown.

    python -m eval.bench.training.cpu_memory --rounds 5 --out docs/perf/cpu_memory.md

glibc's malloc settings are per process and fixed once memory has been handed out, so each measurement
runs in a fresh child process, with glibc's defaults or with ``keep_freed_memory()``; the two alternate
round by round (which goes first alternates too) and each round's ratio is taken within the round. A child
embeds synthetic 512 x 512 images with eclip-small and runs plain CLIP training steps (batch 16, text
tower locked, frozen text features cached), one intra-op thread, and reports CPU time and minor page faults.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from eval.bench.page import write_page
from eval.bench.stats import paired_ratio

CHILD = r"""
import json, resource, sys, time
mode, n_images, n_steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode == "keep":
    from eclip_core.cpu_memory import keep_freed_memory
    assert keep_freed_memory()
import numpy as np, torch
from eclip_core.config import EClipConfig, TrainConfig
from eclip_core.losses import ClipLoss
from eclip_core.model import EClip
from eclip_core.training.optim import build_optimizer
from eclip_core.training.step import train_step
from eval.bench.training.train_step import synthetic_batch
torch.set_num_threads(1)
torch.manual_seed(0)

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

out = {}
model = EClip.from_config("eclip-small").eval()
rng = np.random.default_rng(0)
images = [rng.random((512, 512)).astype(np.float32) for _ in range(n_images)]
model.embed_images(images[:32], batch_size=32, progress=False)  # warm-up
f0, c0 = faults(), time.process_time()
model.embed_images(images, batch_size=32, progress=False)
out["embed_images_per_cpu_s"] = n_images / (time.process_time() - c0)
out["embed_faults_per_image"] = (faults() - f0) / n_images

cfg = TrainConfig(model=EClipConfig(name="eclip-small", lock_text=True), batch_size=16)
model = EClip(cfg.model).train()
model.enable_text_feature_cache()
opt, loss_fn = build_optimizer(model, cfg), ClipLoss()
batch = {k: v for k, v in synthetic_batch(model, 16, 1, np.random.default_rng(0)).items() if not k.startswith("expert")}
batch["inject"] = False
for _ in range(2):  # warm-up: allocator, text cache
    train_step(model, opt, loss_fn, batch, prime=False, priming_weight=0.1, grad_clip=1.0)
times, step_faults = [], []
for _ in range(n_steps):
    f0, c0 = faults(), time.process_time()
    train_step(model, opt, loss_fn, batch, prime=False, priming_weight=0.1, grad_clip=1.0)
    times.append(time.process_time() - c0)
    step_faults.append(faults() - f0)
out["train_step_cpu_s"] = sorted(times)[len(times) // 2]
out["train_faults_per_step"] = sorted(step_faults)[len(step_faults) // 2]
print(json.dumps(out))
"""


def run_child(mode: str, n_images: int, n_steps: int) -> dict:
    from eclip_core.runtime import offline_env

    env = offline_env(OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(n_images), str(n_steps)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
    )
    if done.returncode:
        raise RuntimeError(f"benchmark child ({mode}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--n-images", type=int, default=96)
    p.add_argument("--n-steps", type=int, default=5)
    p.add_argument("--out", default="docs/perf/cpu_memory.md")
    args = p.parse_args(argv)
    command = "python -m eval.bench.training.cpu_memory " + " ".join(argv if argv is not None else sys.argv[1:])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    runs: dict[str, list[dict]] = {"default": [], "keep": []}
    for r in range(args.rounds):
        for mode in ("default", "keep") if r % 2 == 0 else ("keep", "default"):
            runs[mode].append(run_child(mode, args.n_images, args.n_steps))
            print(f"round {r + 1}/{args.rounds} {mode}: {runs[mode][-1]}", file=sys.stderr)

    def col(mode: str, key: str) -> list[float]:
        return [run[key] for run in runs[mode]]

    speed_embed = paired_ratio(col("keep", "embed_images_per_cpu_s"), col("default", "embed_images_per_cpu_s"))
    speed_step = paired_ratio(col("default", "train_step_cpu_s"), col("keep", "train_step_cpu_s"))
    med = {m: {k: statistics.median(col(m, k)) for k in runs[m][0]} for m in runs}
    lines = [
        "# Keeping freed memory on the CPU (glibc malloc thresholds)",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared), glibc "
        f"{platform.libc_ver()[1]}, load average at start {load:.1f}. Date: "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"{args.rounds} rounds; each round runs one child process with glibc's defaults and one with "
        "`eclip_core.cpu_memory.keep_freed_memory()` (order alternating), one intra-op thread each. A child "
        f"embeds {args.n_images} synthetic 512 x 512 images with eclip-small (batch 32) and times "
        f"{args.n_steps} plain CLIP training steps (eclip-small, batch 16, after 2 warm-up steps; median). "
        "Speed-ups are medians of per-round ratios with 95 % bootstrap intervals; times are CPU time.",
        "",
        "| measure | glibc defaults (median) | keep freed memory (median) |",
        "|---|---|---|",
        f"| embedding, images per CPU-second | {med['default']['embed_images_per_cpu_s']:.1f} | "
        f"{med['keep']['embed_images_per_cpu_s']:.1f} |",
        f"| embedding, minor page faults per image | {med['default']['embed_faults_per_image']:.0f} | "
        f"{med['keep']['embed_faults_per_image']:.0f} |",
        f"| training step, CPU s | {med['default']['train_step_cpu_s']:.3f} | {med['keep']['train_step_cpu_s']:.3f} |",
        f"| training step, minor page faults | {med['default']['train_faults_per_step']:.0f} | "
        f"{med['keep']['train_faults_per_step']:.0f} |",
        "",
        f"Speed-up from keeping freed memory: embedding {speed_embed}, training step {speed_step}.",
        "",
    ]
    write_page(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
