"""The real-image suite (eval.report_gen --suite real): its scores on inputs with known answers, and a run on
a fixture clone of the COVID-19 collection written here."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from test_covid_builder import _clone

from eval.report_gen import real_metrics as rm


def test_chance_recall_matches_counting_every_draw():
    n, m, k = 7, 2, 3
    hits = [any(i < m for i in draw) for draw in itertools.combinations(range(n), k)]
    assert rm.chance_recall(n, m, k) == pytest.approx(np.mean(hits))
    assert rm.chance_recall(10, 1, 10) == 1.0 and rm.chance_recall(10, 1, 1) == pytest.approx(0.1)


def test_recall_counts_a_shared_note_as_a_hit():
    notes = ["a", "a", "b", "c"]
    text = np.eye(4, dtype=np.float32)
    image = text[[1, 0, 3, 2]]  # rows 0/1 swapped (same note "a"); rows 2/3 swapped (different notes)
    r = rm.recall_at_k(image, text, notes, ks=(1, 2))
    assert r["hits@1"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert r["chance@1"].tolist() == pytest.approx([0.5, 0.5, 0.25, 0.25])
    assert r["hits@2"].tolist() == [1.0, 1.0, 0.0, 0.0]  # rank 2 of row 2 is row 0 ("a"), not "b"


def test_grouped_probe_does_not_learn_patients():
    """Features that identify the patient and nothing else: a probe that saw the patient's other X-rays would
    score high; grouped folds keep it near chance."""
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(60), 3)
    y = np.repeat(rng.integers(0, 2, 60), 3)
    x = np.eye(60)[patients] + 0.01 * rng.standard_normal((180, 60))
    grouped = rm.auroc(y, rm.grouped_cv_probe(x, y, patients, folds=5, seed=0))
    assert abs(grouped - 0.5) < 0.2
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    leaky = cross_val_predict(rm._probe(), x, y, cv=folds, method="predict_proba")[:, 1]
    assert rm.auroc(y, leaky) > 0.9  # the same probe with patients split across folds


def test_auroc_interval_brackets_the_estimate():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(40), 2)
    y = np.repeat(rng.integers(0, 2, 40), 2)
    p = y + rng.normal(0, 0.8, 80)
    cell = rm.auroc_with_ci(y, p, groups, seed=0, n_boot=300)
    assert cell["ci"][0] < cell["auroc"] < cell["ci"][1] and cell["patients"] == 40 and cell["n"] == 80


def test_cli_builds_the_real_suite_config():
    from eval.report_gen.cli import configs_from_args
    from eval.report_gen.real_suite import RealSuiteConfig

    suite, cfg = configs_from_args(["--suite", "real", "--manifest", "m.csv", "--towers", "lite0_frozen"])
    assert suite == "real" and isinstance(cfg, RealSuiteConfig) and cfg.towers == ["lite0_frozen"]
    assert cfg.command.startswith("python -m eval.report_gen --suite real")


@pytest.mark.slow
def test_real_suite_on_a_fixture_clone(tmp_path, monkeypatch):
    from eclip_core.data.builders import build_covid_manifest
    from eval.report_gen.real_suite import RealSuiteConfig, run_real_suite

    monkeypatch.setenv("RAG_REPORT_HOME", str(tmp_path / "home"))
    manifest = build_covid_manifest(_clone(tmp_path / "clone"), tmp_path / "covid.csv")
    cfg = RealSuiteConfig(
        manifest=str(manifest), towers=["lite0_frozen", "bundle"], n_boot=50, out_dir=str(tmp_path / "out")
    )
    result = run_real_suite(cfg)
    frozen, bundle = result["runs"]
    covid = frozen["probe_cv_all"]["COVID-19 vs other"]
    assert covid["n"] == 80 and covid["patients"] == 40 and 0.0 <= covid["auroc"] <= 1.0
    assert "retrieval_heldout" not in frozen  # a frozen backbone has no text side
    assert "not built" in bundle["not_run"]
    md = (tmp_path / "out" / "real.md").read_text()
    assert "EfficientNet-Lite0" in md and "CC BY 4.0: 80" in md
    assert json.loads((tmp_path / "out" / "real.json").read_text())["data"]["patients"] == 40


def _trained_suite(tmp_path, monkeypatch, tower: str, **kw):
    """The suite on a fixture clone, one tower trained 2 steps: (config, its run)."""
    from eclip_core.data.builders import build_covid_manifest
    from eval.report_gen.real_suite import RealSuiteConfig, run_real_suite

    monkeypatch.setenv("RAG_REPORT_HOME", str(tmp_path / "home"))
    manifest = build_covid_manifest(_clone(tmp_path / "clone"), tmp_path / "covid.csv")
    cfg = RealSuiteConfig(
        manifest=str(manifest),
        towers=[tower],
        steps=2,
        batch_size=4,
        n_boot=50,
        num_workers=0,
        progress=False,
        out_dir=str(tmp_path / "out"),
        **kw,
    )
    (run,) = run_real_suite(cfg)["runs"]
    return cfg, run


def test_real_suite_trains_and_scores_retrieval(tmp_path, monkeypatch):
    _, run = _trained_suite(tmp_path, monkeypatch, "scratch_resnet")
    ret = run["retrieval_heldout"]
    assert 0.0 <= ret["R@10"]["mean"] <= 1.0 and 0.0 < ret["chance@10"] <= 1.0
    assert run["typicality_warning_rate"] is None or 0.0 <= run["typicality_warning_rate"] <= 1.0


def test_without_val_held_out_towers_keep_their_best_val_step_and_score_test_only(tmp_path, monkeypatch):
    from eclip_core.data.manifest import read_manifest

    cfg, run = _trained_suite(tmp_path, monkeypatch, "scratch_resnet", heldout_splits=["test"])
    assert run["best_step"] == run["steps_trained"] == 2  # scored at its last step (val_every 50 > 2 steps) only
    test_rows = [s for s in read_manifest(cfg.manifest) if s.split == "test" and s.report_text]
    assert run["retrieval_heldout"]["n"] == len(test_rows) > 0
    assert run["probe_train_to_heldout"]["COVID-19 vs other"]["n"] == len(test_rows)
    md = (tmp_path / "out" / "real.md").read_text()
    assert "held-out = the test split (each trained tower keeps its step with the best val recall" in md
    assert "| 0 (step 2 kept of 2) |" in md
    assert "Trained towers: up to 2 steps of batch" in md  # val patience may stop a tower early
    assert f"held-out = the test split, {len(test_rows)} X-rays of" in md


@pytest.mark.slow
def test_locked_lite0_row_trains_only_the_projections(tmp_path, monkeypatch):
    """The `rag-report train` default row: after training, the tower's trunk is still the packaged ImageNet
    EfficientNet-Lite0 (every tensor equal), and retrieval is scored."""
    import torch

    from eclip_core.config import EClipConfig
    from eclip_core.model import EClip
    from eval.report_gen.real_suite import train_tower

    cfg, run = _trained_suite(tmp_path, monkeypatch, "lite0_locked", image_cache_px=0)
    assert 0.0 <= run["retrieval_heldout"]["R@10"]["mean"] <= 1.0
    model_dir, _ = train_tower(cfg, "lite0_locked", 0)  # the cached run
    trained = EClip.from_pretrained(model_dir).clip.visual
    fresh = EClip(EClipConfig(name="eclip-resnet16", image_weights="efficientnet-lite0", image_size=224)).clip.visual
    for (name, a), b in zip(trained.trunk.state_dict().items(), fresh.trunk.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def _run(tower: str, seed: int, auc: float, r10: float, **extra) -> dict:
    cell = {"auroc": auc, "ci": [auc - 0.1, auc + 0.1]}
    run = {"tower": tower, "seed": seed, "description": tower.upper(), "probe_cv_heldout": {"COVID-19 vs other": cell}}
    run["probe_train_to_heldout"] = {"COVID-19 vs other": cell}
    run["retrieval_heldout"] = {"R@10": {"mean": r10, "ci": [0, 1]}, "chance@10": 0.1}
    return {**run, **extra}


def test_summary_answers_the_targets_from_the_runs():
    from eval.report_gen.real_summary import summary_lines

    frozen = {"tower": "lite0_frozen", "seed": 0, "description": "FROZEN", "probe_cv_heldout": {}}
    frozen["probe_cv_all"] = {"COVID-19 vs other": {"auroc": 0.85, "ci": [0.8, 0.9]}}
    runs = [frozen] + [_run("lite0_locked", s, 0.7 + s / 100, 0.2 + s / 100) for s in range(3)]
    runs += [_run("scratch_resnet", s, 0.6, 0.1) for s in range(3)]
    data = {"n": 10, "patients": 5, "heldout_patients": 2, "splits": {"train": 6, "val": 2, "test": 2}}
    text = "\n".join(summary_lines({"data": data, "runs": runs}))
    assert "| 0.850 (95 % CI 0.80-0.90): FROZEN, patient-grouped 5-fold CV on all rows; met |" in text
    assert "0.210 (mean of 3 seeds, LITE0_LOCKED) vs chance 0.100 (2.1x); met" in text
    assert "probe fitted on train, scored on held-out: 0.710 ± 0.010 vs 0.600 ± 0.000" in text
    assert "higher mean on every measure (met)" in text and "4 X-rays of 2 patients" in text
    runs[-1]["retrieval_heldout"]["R@10"]["mean"] = 2.0  # scratch now retrieves better on average
    assert "(not met)" in "\n".join(summary_lines({"data": data, "runs": runs}))


def test_clone_commit_is_the_git_head_of_the_images_clone(tmp_path):
    import subprocess

    from eclip_core.data.builders import build_covid_manifest
    from eval.report_gen.real_suite import clone_commit

    root = _clone(tmp_path / "clone", n_patients=4)
    manifest = build_covid_manifest(root, tmp_path / "covid.csv")
    assert clone_commit(str(manifest)) is None  # not a git clone
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert clone_commit(str(manifest)) == head and len(head) == 40


def test_a_manifest_rebuilt_unchanged_keeps_its_caches_and_a_changed_one_does_not(tmp_path, monkeypatch):
    import os

    from eval.report_gen.real_suite import RealSuiteConfig, downsized_manifest, score_path

    monkeypatch.setenv("RAG_REPORT_HOME", str(tmp_path / "home"))
    manifest = tmp_path / "covid.csv"
    manifest.write_text("study_id,image_path,split,findings\n")
    cfg = RealSuiteConfig(manifest=str(manifest), towers=["lite0_locked"])
    before = (downsized_manifest(str(manifest), 64, False), score_path(cfg, "lite0_locked", 0))
    os.utime(manifest, ns=(1, 1))  # rebuilt: same bytes, another time
    assert (downsized_manifest(str(manifest), 64, False), score_path(cfg, "lite0_locked", 0)) == before
    manifest.write_text("study_id,image_path,split,findings\ns1,a.png,train,x\n")
    assert score_path(cfg, "lite0_locked", 0) != before[1]


def test_scores_are_cached_per_validation_setting_of_the_trained_towers(tmp_path, monkeypatch):
    from eclip_core.training import validation as V
    from eval.report_gen import real_suite
    from eval.report_gen.real_suite import RealSuiteConfig, score_path

    monkeypatch.setenv("RAG_REPORT_HOME", str(tmp_path / "home"))
    manifest = tmp_path / "covid.csv"
    manifest.write_text("study_id,image_path,split,findings\n")
    test_only = RealSuiteConfig(manifest=str(manifest), heldout_splits=["test"])
    before = {t: score_path(test_only, t, 0) for t in ("lite0_locked", "lite0_frozen")}
    monkeypatch.setattr(real_suite, "VALIDATION_DEFAULTS", {"val_every": 7, "keep_best": True})
    assert score_path(test_only, "lite0_locked", 0) != before["lite0_locked"]  # another val cadence
    monkeypatch.setattr(real_suite, "VALIDATION_DEFAULTS", {"val_every": 7, "val_metric": "recall"})
    changed = score_path(test_only, "lite0_locked", 0)
    monkeypatch.setitem(V.SELECTION_RULES, "recall", "another rule")
    assert score_path(test_only, "lite0_locked", 0) != changed  # another selection rule
    assert score_path(test_only, "lite0_frozen", 0) == before["lite0_frozen"]  # trains not: unchanged
    both = RealSuiteConfig(manifest=str(manifest), heldout_splits=["val", "test"])  # val scored: no selection
    assert score_path(both, "lite0_locked", 0) != before["lite0_locked"]
