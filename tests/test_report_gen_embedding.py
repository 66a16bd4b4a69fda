"""The embedding suite end to end on a tiny synthetic dataset (eclip-tiny, a few steps, one seed)."""

from __future__ import annotations

import json
import math

import pytest

from eclip_core.data.manifest import Study, read_manifest, write_manifest
from eclip_core.errors import ConfigError


@pytest.fixture(scope="module")
def blob_manifest(tmp_path_factory):
    from eclip_core.training.synthetic import make_blob_dataset

    root = tmp_path_factory.mktemp("blobs")
    train = read_manifest(make_blob_dataset(root / "train", n=48, size=64, seed=0, split="train"))
    test = read_manifest(make_blob_dataset(root / "test", n=24, size=64, seed=1, split="test"))
    studies = train + [
        Study(
            f"t{s.study_id}",
            s.image_paths,
            "test",
            s.findings,
            s.impression,
            labels={"Cardiomegaly": 1.0} if i % 2 else {"No Finding": 1.0},
        )
        for i, s in enumerate(test)
    ]
    path = root / "manifest.jsonl"
    write_manifest(studies, path)
    return path


@pytest.mark.slow
def test_embedding_suite_writes_tables_and_picture(blob_manifest, tmp_path, monkeypatch):
    from eval.report_gen.embedding_suite import EmbeddingSuiteConfig, run_embedding_suite
    from eval.report_gen.embedding_variants import METRIC_ORDER

    monkeypatch.setenv("RAG_REPORT_HOME", str(tmp_path / "home"))
    cfg = EmbeddingSuiteConfig(
        manifest=str(blob_manifest),
        steps=2,
        batch_size=8,
        seeds=[0],
        variants=["eclip", "clip"],
        out_dir=str(tmp_path / "out"),
        progress=False,
        command="pytest",
    )
    result = run_embedding_suite(cfg)
    assert [r["variant"] for r in result["runs"]] == ["clip", "eclip"]
    data = json.loads((tmp_path / "out" / "embedding.json").read_text())
    assert set(data["summary"]) == {"clip", "eclip"}
    for variant in ("clip", "eclip"):
        cell = data["summary"][variant]["i2t_R@10"]
        assert cell["n"] == 1 and 0.0 <= cell["mean"] <= 1.0 and cell["std"] is None
        gap = data["summary"][variant]["modality_gap"]["mean"]
        assert 0.0 <= gap <= 2.0
    md = (tmp_path / "out" / "embedding.md").read_text()
    assert "Command: `pytest`" in md and "(1 seed)" in md and "+priming = full eCLIP" in md
    for metric in METRIC_ORDER:
        assert metric in md
    png = tmp_path / "out" / "embedding_modality_gap.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Cached: a second run reuses the trained models (same dirs) and gives the same numbers.
    again = run_embedding_suite(cfg)
    assert [r["model_dir"] for r in again["runs"]] == [r["model_dir"] for r in result["runs"]]
    r0, r1 = result["runs"][0]["metrics"], again["runs"][0]["metrics"]
    assert all(
        (r0[m] is None and r1[m] is None) or math.isclose(r0[m], r1[m], abs_tol=1e-6) for m in METRIC_ORDER if m in r0
    )


def test_embedding_suite_rejects_unknown_variant():
    from eval.report_gen.embedding_suite import EmbeddingSuiteConfig

    with pytest.raises(ConfigError, match="unknown variant"):
        EmbeddingSuiteConfig(variants=["clip", "bogus"]).validate()


def test_cli_flags_reach_the_suite_config(monkeypatch, tmp_path):
    import eval.report_gen.embedding_suite as suite
    from eval.report_gen.cli import main

    seen = {}

    def fake_suite(cfg):
        seen["cfg"] = cfg
        md = tmp_path / "e.md"
        md.write_text("table")
        return {"outputs": {"markdown": str(md)}}

    monkeypatch.setattr(suite, "run_embedding_suite", fake_suite)
    main(
        [
            "--suite",
            "embedding",
            "--model-config",
            "eclip-small",
            "--lock-text",
            "--train-lr",
            "3e-4",
            "--num-workers",
            "1",
            "--steps",
            "300",
            "--seeds",
            "0",
            "1",
            "--variants",
            "clip",
            "eclip",
            "--no-progress",
        ]
    )
    cfg = seen["cfg"]
    assert (cfg.model, cfg.lock_text, cfg.lr, cfg.num_workers, cfg.steps, cfg.seeds, cfg.variants) == (
        "eclip-small",
        True,
        3e-4,
        1,
        300,
        [0, 1],
        ["clip", "eclip"],
    )
    assert "--lock-text" in cfg.command


@pytest.mark.slow
def test_runs_from_an_earlier_result_join_the_table_and_a_different_budget_is_refused(
    blob_manifest, tmp_path, monkeypatch
):
    from eval.report_gen.embedding_suite import EmbeddingSuiteConfig, run_embedding_suite

    monkeypatch.setenv("RAG_REPORT_HOME", str(tmp_path / "home"))
    cfg = EmbeddingSuiteConfig(
        manifest=str(blob_manifest),
        steps=2,
        batch_size=8,
        seeds=[0],
        variants=["clip"],
        out_dir=str(tmp_path / "out"),
        progress=False,
        command="pytest",
    )
    earlier = {
        "config": cfg.to_dict(),
        "manifest": str(blob_manifest),
        "runs": [
            {"variant": "clip", "seed": 1, "train_seconds": None, "metrics": {"i2t_R@10": 0.5}},
            {"variant": "eclip", "seed": 0, "train_seconds": 12.0, "metrics": {"i2t_R@10": 0.25}},
            {"variant": "clip", "seed": 0, "train_seconds": 1.0, "metrics": {"i2t_R@10": -1.0}},  # trained here: loses
        ],
    }
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    cfg.include_runs = [str(tmp_path / "earlier.json")]
    result = run_embedding_suite(cfg)
    assert [(r["variant"], r["seed"]) for r in result["runs"]] == [("clip", 0), ("clip", 1), ("eclip", 0)]
    own = result["runs"][0]["metrics"]["i2t_R@10"]
    assert 0.0 <= own <= 1.0 and "source" not in result["runs"][0]
    clip = result["summary"]["clip"]["i2t_R@10"]
    assert clip["n"] == 2 and math.isclose(clip["mean"], (own + 0.5) / 2)
    assert result["summary"]["eclip"]["i2t_R@10"]["mean"] == 0.25
    md = (tmp_path / "out" / "embedding.md").read_text()
    assert "earlier.json" in md and "| clip | 1 | n/a |" in md
    # The zero-shot count comes from the run made here, not from an included run without it.
    assert result["sizes"]["zero_shot"] == result["runs"][0]["metrics"]["zero_shot_n"] > 0

    earlier["config"]["steps"] = 300
    (tmp_path / "other.json").write_text(json.dumps(earlier))
    cfg.include_runs = [str(tmp_path / "other.json")]
    with pytest.raises(ConfigError, match="steps: 300 there, 2 here"):
        run_embedding_suite(cfg)
    (tmp_path / "bad.json").write_text("[1, 2]")
    cfg.include_runs = [str(tmp_path / "bad.json")]
    with pytest.raises(ConfigError, match="bad.json"):
        run_embedding_suite(cfg)


def test_paired_differences_with_clip_by_seed():
    from eval.report_gen.embedding_tables import paired_vs_clip

    runs = [{"variant": "clip", "seed": s, "metrics": {"i2t_R@10": v}} for s, v in ((0, 0.10), (1, 0.30), (2, 0.20))]
    runs += [{"variant": "eclip", "seed": s, "metrics": {"i2t_R@10": v}} for s, v in ((0, 0.15), (1, 0.32), (2, 0.19))]
    runs += [{"variant": "mask", "seed": 5, "metrics": {"i2t_R@10": 0.5}}]  # no CLIP run of seed 5: left out
    cell = paired_vs_clip(runs)["eclip"]["i2t_R@10"]
    # differences +0.05, +0.02, -0.01: mean 0.02, sample std 0.03, higher in 2 of 3 seeds
    assert (
        math.isclose(cell["mean"], 0.02) and math.isclose(cell["std"], 0.03) and (cell["higher"], cell["n"]) == (2, 3)
    )
    assert "mask" not in paired_vs_clip(runs)
    assert paired_vs_clip(runs)["eclip"]["alignment"] == {"mean": None, "std": None, "higher": 0, "n": 0}
