"""Warm generate_report latency on the default bundle, split into load/embed/retrieve/generate, and the
peak memory of a warm pipeline.

    python -m eval.bench.serving.pipeline --n 12 --mode grounded --out docs/perf/pipeline.md
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np

from eval.bench.page import write_page

STAGES = ("load", "embed", "retrieve", "generate", "total")


def main(argv: list[str] | None = None) -> int:
    from eclip_core.runtime import setup_offline

    setup_offline()
    args = _parser().parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from eclip_core.data.manifest import read_manifest
    from rag_report.bundle import default_bundle
    from rag_report.pipeline import PipelineConfig, ReportPipeline

    bundle = default_bundle(build=True, progress=False)
    tests = [s for s in read_manifest(bundle.manifest_path) if s.split == "test"][: args.n + 1]
    t0 = time.perf_counter()
    pipe = ReportPipeline(PipelineConfig(quantization=args.quantization), progress=False)
    pipe.llm()  # load the LLM too: a warm pipeline holds everything
    load_s = time.perf_counter() - t0
    rows = [(mode, stage_percentiles(pipe, tests, mode)) for mode in args.modes]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    cmd = "python -m eval.bench.serving.pipeline " + " ".join(argv if argv is not None else sys.argv[1:])
    model = bundle.config.train.model
    towers = f"{model.image_weights} image tower at {model.image_size} px, " if model.image_weights else ""
    setup = (
        f"Bundle {bundle.root.name}: {model.name}, {towers}{len(pipe.index)} indexed train reports, LLM "
        f"`{pipe.llm().id}`; {args.n} held-out test images (own study excluded), after one warm-up call per mode."
    )
    write_page(args.out, page_lines(cmd, setup, rows, load_s, peak_mb))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=12, help="test images (after one warm-up call)")
    p.add_argument("--modes", nargs="+", default=["grounded", "consensus", "top1"])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--quantization",
        choices=("auto", "nf4", "int8", "none"),
        default="auto",
        help="LLM weights (default auto: rag_report.llm.precision)",
    )
    p.add_argument("--out", default="docs/perf/pipeline.md")
    return p


def stage_percentiles(pipe, tests: list, mode: str) -> dict[str, tuple[float, float]]:
    """(p50, p95) ms per stage of ``generate`` over ``tests[1:]`` (own study excluded), after a warm-up on ``tests[0]``."""
    pipe.generate(tests[0].image_paths[0], mode=mode)  # warm-up
    timings = [pipe.generate(s.image_paths[0], mode=mode, exclude_study_ids=[s.study_id]).timings_ms for s in tests[1:]]
    return {
        k: (float(np.percentile([t[k] for t in timings], 50)), float(np.percentile([t[k] for t in timings], 95)))
        for k in STAGES
    }


def page_lines(
    cmd: str, setup: str, rows: list[tuple[str, dict[str, tuple[float, float]]]], load_s: float, peak_mb: float
) -> list[str]:
    """The page: one row of stage p50s per mode, the load time and the warm process's peak memory."""
    import torch

    lines = [
        "# Warm pipeline latency and memory (default bundle)",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared; load average {os.getloadavg()[0]:.1f} when written), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        setup,
        "",
        "| mode | load p50 | embed p50 | retrieve p50 | generate p50 | total p50 | total p95 | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, st in rows:
        target = "p50 <= 2500 ms" if mode == "grounded" else ""
        lines.append(
            f"| {mode} | " + " | ".join(f"{st[k][0]:.0f}" for k in STAGES) + f" | {st['total'][1]:.0f} | {target} |"
        )
    lines += [
        "",
        f"Pipeline load (eCLIP + index + LLM, cold process): {load_s:.1f} s. "
        f"Peak resident memory of the warm pipeline process (ru_maxrss): **{peak_mb:.0f} MB** (target <= 3 GB).",
        "",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
