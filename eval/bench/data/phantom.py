"""Benchmark: build time of the phantom data set (all Open-I studies) and per-study cost breakdown.

Writes docs/perf/phantom.md. Run from the repository root:

    python -m eval.bench.data.phantom [--size 256] [--subset 200]

Baseline in the same process: a single-process build of a subset; the full build's per-study cost
is reported as a ratio against it (parallel speed-up), and the parts of one study (render, PNG,
gaze) as ratios of the whole.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from eval.bench.page import write_page


def _time(fn, n: int = 1) -> float:
    """CPU seconds of this process (immune to other users of the shared CPU)."""
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n


def _build_timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its worker processes) of one build."""
    r0s, r0c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    r1s, r1c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in ((r0s, r1s), (r0c, r1c)))
    return wall, cpu


@dataclass
class StudyCosts:
    """CPU seconds of the parts of one study (over a sample of 50), and of the first Open-I load."""

    load: float  # loading the Open-I reports, first time
    findings: float  # MeSH + labeler, per study
    render: float
    png: float
    gaze: float


@dataclass
class Builds:
    """Wall and CPU seconds of the builds: a 1-worker subset (the baseline), the full build, a cached rebuild."""

    subset_wall: float
    subset_cpu: float
    full_wall: float
    full_cpu: float
    full_studies: int
    cached_wall: float
    load_before: float
    load_after: float


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--subset", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="docs/perf/phantom.md")
    a = p.parse_args(argv)
    parts = study_costs(a.size)
    builds = time_builds(a.size, a.subset, a.workers)
    cmd = "python -m eval.bench.data.phantom " + " ".join(argv if argv is not None else sys.argv[1:])
    write_page(a.out, page_lines(cmd, a.size, a.subset, a.workers, parts, builds))
    return 0


def study_costs(size: int) -> StudyCosts:
    """The parts of one study timed in this process on 50 Open-I reports spread over the corpus."""
    from eclip_core.data.openi import load_openi_reports
    from eclip_core.data.phantom.findings import study_findings
    from eclip_core.data.phantom.gaze_sim import simulate_fixations
    from eclip_core.data.phantom.render import render_study
    from eclip_core.text import join_report

    t_load = _time(load_openi_reports)
    reports = [r for r in load_openi_reports() if r.has_text]
    sample = reports[:: max(len(reports) // 50, 1)][:50]
    fs = [study_findings(r.mesh, join_report(r.findings, r.impression)) for r in sample]
    t_find = _time(lambda: [study_findings(r.mesh, join_report(r.findings, r.impression)) for r in sample]) / len(
        sample
    )
    results = []
    t_render = _time(lambda: results.extend(render_study(r.uid, f, size=size) for r, f in zip(sample, fs))) / len(
        sample
    )
    t_png = _time(
        lambda: [
            Image.fromarray(x.to_array(8)).save(io.BytesIO(), format="PNG", compress_level=1)
            for x in results[: len(sample)]
        ]
    ) / len(sample)
    t_gaze = _time(lambda: [simulate_fixations(x, r.uid) for x, r in zip(results, sample)]) / len(sample)
    return StudyCosts(t_load, t_find, t_render, t_png, t_gaze)


def time_builds(size: int, subset: int, workers: int) -> Builds:
    """Build a ``subset`` on one worker, everything on ``workers``, then again from the cache, in a temporary folder."""
    from eclip_core.data.manifest import read_manifest
    from eclip_core.data.phantom.build import build_phantom_dataset

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        w_sub1, t_sub1 = _build_timed(
            lambda: build_phantom_dataset(
                Path(tmp) / "s1", size=size, limit=subset, workers=1, progress=False, force=True
            )
        )
        w_full, c_full = _build_timed(
            lambda: build_phantom_dataset(Path(tmp) / "full", size=size, workers=workers, progress=False, force=True)
        )
        n_full = len(read_manifest(Path(tmp) / "full" / "manifest.csv"))
        w_cached, _ = _build_timed(
            lambda: build_phantom_dataset(Path(tmp) / "full", size=size, workers=workers, progress=False)
        )
    return Builds(w_sub1, t_sub1, w_full, c_full, n_full, w_cached, load_before, os.getloadavg()[0])


def page_lines(cmd: str, size: int, subset: int, workers: int, parts: StudyCosts, b: Builds) -> list[str]:
    """The page: the full build against the 180 s budget and the 1-worker baseline, then each part of a study."""
    per1 = b.subset_cpu / subset
    perf = b.full_cpu / b.full_studies
    projected = b.full_cpu / workers
    return [
        "# Phantom data set build (eclip_core.data.phantom)",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs (load average "
        f"{b.load_before:.1f} before, {b.load_after:.1f} after), Python {platform.python_version()}; "
        f"{size} px, 8-bit PNG. CPU seconds are this job's own (immune to the other jobs); wall seconds "
        "are what the shared machine gave; the projected wall time is CPU seconds / workers.",
        "",
        "| what | value | ratio |",
        "|---|---|---|",
        f"| full build, {b.full_studies} studies, {workers} workers: CPU | {b.full_cpu:.1f} CPU-s | |",
        f"| full build: projected wall on {workers} idle cores | {projected:.1f} s | "
        f"{projected / 180:.2f} of the 180 s budget |",
        f"| full build: measured wall (shared machine) | {b.full_wall:.1f} s | {b.full_wall / 180:.2f} of the budget |",
        f"| per study, full build | {perf * 1000:.1f} CPU-ms | {perf / per1:.2f}x the 1-worker baseline |",
        f"| per study, 1 worker ({subset}-study subset, baseline) | {per1 * 1000:.1f} CPU-ms | 1.00 |",
        f"| render only (per study) | {parts.render * 1000:.1f} CPU-ms | {parts.render / per1:.2f} of baseline |",
        f"| PNG encode (per study) | {parts.png * 1000:.1f} CPU-ms | {parts.png / per1:.2f} of baseline |",
        f"| gaze simulation (per gaze study) | {parts.gaze * 1000:.1f} CPU-ms | {parts.gaze / per1:.2f} of baseline |",
        f"| findings: MeSH + labeler (per study) | {parts.findings * 1000:.1f} CPU-ms | "
        f"{parts.findings / per1:.2f} of baseline |",
        f"| load 3,955 Open-I reports (first, uncached) | {parts.load:.2f} CPU-s | |",
        f"| cached rebuild (complete marker found) | {b.cached_wall:.2f} s wall | "
        f"{b.cached_wall / max(b.full_wall, 1e-9):.4f} of a build |",
        "",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
