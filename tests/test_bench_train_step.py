"""The training-step benchmark end to end on a tiny model: every variant timed, ratios to its CLIP base, one page."""

from __future__ import annotations

import re

from eval.bench.training import train_step as T


def _rows(page: str) -> dict[str, list[str]]:
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 8 and cells[0] != "step":
            rows[cells[0]] = cells[1:]
    return rows


def test_page_times_every_variant_against_its_clip_base(tmp_path, capsys):
    out = tmp_path / "perf" / "train_step.md"
    args = ["--model", "eclip-tiny", "--batch-size", "4", "--repeats", "2", "--n-images", "4", "--n-reports", "8"]
    assert T.main([*args, "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert capsys.readouterr().out == page  # echoed as written
    assert page.startswith("# Training step and embedding throughput: eclip-tiny")
    assert f"Command: `python -m eval.bench.training.train_step {' '.join(args)} --out {out}`" in page
    rows = _rows(page)
    expected = {
        "CLIP step",
        "CLIP step at the enlarged batch B + B/2 (cost floor of an expert step)",
        "eCLIP step, no expert batch",
        T.EXPERT,
        "eCLIP cold-start step (priming loss)",
        T.EXPERT + T.IMAGE_SPACE,
        T.PRECOMPUTED,
        "CLIP step" + T.EVERY_CHANNEL,
        T.EXPERT + T.EVERY_CHANNEL,
        "CLIP step" + T.BEFORE,
        T.EXPERT + T.BEFORE,
    }
    assert set(rows) == expected
    for base in ("CLIP step", "CLIP step" + T.EVERY_CHANNEL, "CLIP step" + T.BEFORE):  # each setup's own base
        assert rows[base][1].startswith("1.000x") and rows[base][3].startswith("1.000x")
    assert rows[T.EXPERT][4] == "<= 1.6x" and rows[T.EXPERT][5] in {"met", "missed", "at the target"}
    assert rows["eCLIP step, no expert batch"][4] == "<= 1.05x"
    assert "Earlier implementations were not timed" not in page
    assert re.search(r"\| images \| [0-9.]+ images/s \|", page) and re.search(
        r"\| reports \| [0-9.]+ reports/s \|", page
    )


def test_without_before_rows_only_the_steps_training_runs(tmp_path):
    steps = T.measure_steps("eclip-tiny", 4, 1, True, before_rows=False, keep_memory=False)
    assert set(steps["median_s"]) == {
        "CLIP step",
        "CLIP step at the enlarged batch B + B/2 (cost floor of an expert step)",
        "eCLIP step, no expert batch",
        T.EXPERT,
        "eCLIP cold-start step (priming loss)",
    }
    assert steps["text_cache"] in (True, False) and steps["trainable"] <= steps["params"]
    assert all(f >= 0 for f in steps["faults"].values())
