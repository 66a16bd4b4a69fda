"""The phantom-build benchmark's page: budget and baseline ratios from the timings (numbers by hand), and the
per-study parts timed for real."""

from __future__ import annotations

from eval.bench.data import phantom as P


def test_page_ratios_against_the_budget_and_the_one_worker_baseline():
    parts = P.StudyCosts(load=1.5, findings=0.002, render=0.01, png=0.005, gaze=0.004)
    builds = P.Builds(
        subset_wall=5.0,
        subset_cpu=4.0,  # 200 studies: 20 CPU-ms each, the baseline
        full_wall=150.0,
        full_cpu=120.0,  # 4,000 studies: 30 CPU-ms each, 1.50x the baseline; 60 s projected on 2 cores
        full_studies=4000,
        cached_wall=0.3,
        load_before=1.0,
        load_after=2.0,
    )
    lines = P.page_lines("python -m eval.bench.data.phantom", 256, 200, 2, parts, builds)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert "| 60.0 s | 0.33 of the 180 s budget |" in rows["full build: projected wall on 2 idle cores"]
    assert "| 150.0 s | 0.83 of the budget |" in rows["full build: measured wall (shared machine)"]
    assert "| 30.0 CPU-ms | 1.50x the 1-worker baseline |" in rows["per study, full build"]
    assert "| 20.0 CPU-ms | 1.00 |" in rows["per study, 1 worker (200-study subset, baseline)"]
    assert "| 10.0 CPU-ms | 0.50 of baseline |" in rows["render only (per study)"]
    assert "| 0.30 s wall | 0.0020 of a build |" in rows["cached rebuild (complete marker found)"]
    assert "(load average 1.0 before, 2.0 after)" in lines[3]


def test_study_parts_are_timed_in_cpu_seconds():
    parts = P.study_costs(64)
    assert all(v > 0 for v in (parts.findings, parts.render, parts.png, parts.gaze))
    assert parts.render < 5 and parts.png < 5  # seconds per study at 64 px: a sanity bound, not a benchmark
