"""Benchmark: what an image tower costs the default bundle's index, per X-ray embedded, measured in one process;
writes Markdown to docs/perf/tower_cost.md.

    python -m eval.bench.serving.tower_cost --rounds 5 --out docs/perf/tower_cost.md

The index embeds every train and val X-ray of the phantom corpus once (the label classifiers' "image" view,
the bundle's), or six times with the "image+tiles" view (the X-ray and its five tiles). Each round embeds the
same batch once with every tower (in a new seeded order), so machine load affects all alike; each tower's ratio
to the bundle's tower is taken within a round and summarised by the median over rounds with a bootstrap
interval (eval.bench.stats). The bundle's packaged EfficientNet-Lite0 learns more per training second on the
phantoms than the small ResNet from scratch (docs/results/tower.md); this page says what each costs the first run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from dataclasses import dataclass

from eclip_core.runtime import setup_offline  # noqa: E402

setup_offline()  # before any Hugging Face library is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402

from eclip_core.config import EClipConfig  # noqa: E402
from eclip_core.model import EClip  # noqa: E402
from eval.bench.page import write_page  # noqa: E402
from eval.bench.stats import paired_ratio  # noqa: E402
from rag_report.bundle import default_training  # noqa: E402
from rag_report.cli_train import DEFAULT_IMAGE_WEIGHTS, PRETRAINED_TOWER_DEFAULTS  # noqa: E402
from rag_report.retrieval.image_views import image_tiles  # noqa: E402

#: Forward passes per X-ray with the "image+tiles" view: the image and its tiles.
PASSES_WITH_TILES = 1 + len(image_tiles(np.zeros((2, 2), np.float32)))
#: X-rays the default bundle's index embeds: the phantom corpus's train (2,780) and val (384) studies, fixed
#: by the installed Open-I reports and the shipped split table (eclip_core.data.phantom.split).
BUNDLE_XRAYS = 3164


@dataclass(frozen=True)
class Tower:
    """A timed image tower: its label and model config."""

    label: str
    config: EClipConfig


_BUNDLE_TOWER = default_training().model
TOWERS = (
    Tower("EfficientNet-Lite0 ImageNet 128 px (the default bundle's tower)", _BUNDLE_TOWER),
    Tower("ResNet 128 px from scratch (`eclip-resnet16`)", dataclasses.replace(_BUNDLE_TOWER, image_weights=None)),
    Tower(
        "EfficientNet-Lite0 ImageNet 224 px (`rag-report train` default)",
        dataclasses.replace(_BUNDLE_TOWER, image_weights=DEFAULT_IMAGE_WEIGHTS, **PRETRAINED_TOWER_DEFAULTS),
    ),
)


def measure(rounds: int, batch_size: int, seed: int = 0) -> list[dict]:
    """Seconds per X-ray (one forward pass, no gradients) of every tower in :data:`TOWERS`, interleaved."""
    models = [EClip(t.config).eval() for t in TOWERS]
    batches = [torch.randn(batch_size, 1, m.image_size, m.image_size).repeat(1, 3, 1, 1) for m in models]
    times: list[list[float]] = [[] for _ in TOWERS]
    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        for m, x in zip(models, batches, strict=True):  # warm-up
            m.encode_image(x)
        for _ in range(rounds):
            for i in rng.permutation(len(TOWERS)):
                start = time.process_time()
                models[i].encode_image(batches[i])
                times[i].append((time.process_time() - start) / batch_size)
    base = times[0]
    return [
        {
            "tower": t.label,
            "params_m": sum(p.numel() for p in m.clip.visual.parameters()) / 1e6,
            "image_size": m.image_size,
            "ms": 1000 * float(np.median(ts)),
            "ratio": paired_ratio(ts, base),
        }
        for t, m, ts in zip(TOWERS, models, times, strict=True)
    ]


def index_minutes(ms: float, passes: int) -> float:
    """CPU minutes the bundle's index spends in the image tower at ``ms`` per pass and ``passes`` per X-ray.

    >>> round(index_minutes(12.0, 1), 2)
    0.63
    """
    return ms / 1000 * passes * BUNDLE_XRAYS / 60


def render(rows: list[dict], command: str, rounds: int, batch_size: int, threads: int) -> list[str]:
    lines = [
        "# Image tower cost in the default bundle's index",
        "",
        f"Command: `{command}`",
        "",
        f"Measured on: {platform.machine()}, {os.cpu_count()} CPU cores (shared), torch {torch.__version__}, "
        f"{threads} intra-op thread(s); {time.strftime('%Y-%m-%d')}.",
        "",
        "| image tower | px | image-tower parameters (M) | CPU ms per X-ray (one pass) | ratio to the bundle's tower "
        "| index CPU time, image view | with tiles |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        image, tiles = index_minutes(r["ms"], 1), index_minutes(r["ms"], PASSES_WITH_TILES)
        lines.append(
            f"| {r['tower']} | {r['image_size']} | {r['params_m']:.1f} | {r['ms']:.1f} | {r['ratio']} "
            f"| {image:.1f} CPU-min | {tiles:.1f} CPU-min |"
        )
    lines += [
        "",
        f"{rounds} rounds of a batch of {batch_size} random grey images, each tower once per round in a new "
        "seeded order, after one warm-up pass; CPU time of this process, no gradients. The ratio is the median "
        "of per-round ratios with a 95 % bootstrap interval over rounds. Index CPU time: the time per pass "
        f'times the {BUNDLE_XRAYS:,} X-rays the index embeds, once each with the "image" view of the label '
        f'classifiers (the bundle\'s) or {PASSES_WITH_TILES} times with "image+tiles" (the X-ray and its five '
        "tiles); data loading and the rest of the build left out.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench.serving.tower_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default: 5)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per timed pass (default: 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    parser.add_argument("--out", default="docs/perf/tower_cost.md", help="Markdown page to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(args.rounds, args.batch_size)
    command = "python -m eval.bench.serving.tower_cost " + " ".join(argv if argv is not None else sys.argv[1:])
    write_page(args.out, render(rows, command.strip(), args.rounds, args.batch_size, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
