"""The warm-pipeline benchmark: stage percentiles from a real (tiny) pipeline, and the page built from them."""

from __future__ import annotations

from eval.bench.serving import pipeline as B


def test_stage_percentiles_of_a_warm_tiny_pipeline(tiny_world, tiny_pipeline_config):
    from rag_report.pipeline import ReportPipeline

    pipe = ReportPipeline(tiny_pipeline_config, progress=False)
    tests = [s for s in tiny_world["studies"] if s.split == "test"][:4]
    stats = B.stage_percentiles(pipe, tests, "consensus")
    assert set(stats) == set(B.STAGES)
    assert all(0 <= p50 <= p95 for p50, p95 in stats.values())
    assert stats["total"][0] >= max(stats[k][0] for k in ("embed", "retrieve", "generate")) - 1e-6


def test_page_rows_per_mode_and_the_memory_target():
    st = {k: (float(i + 1) * 10, float(i + 1) * 20) for i, k in enumerate(B.STAGES)}
    lines = B.page_lines("python -m eval.bench.serving.pipeline --n 2", "Bundle x.", [("grounded", st)], 3.21, 2048.4)
    assert "Command: `python -m eval.bench.serving.pipeline --n 2`" in lines
    assert "| grounded | 10 | 20 | 30 | 40 | 50 | 100 | p50 <= 2500 ms |" in lines
    assert any("cold process): 3.2 s." in line and "**2048 MB** (target <= 3 GB)" in line for line in lines)
