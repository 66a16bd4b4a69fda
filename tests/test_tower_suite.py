"""The tower suite's bookkeeping: budget -> steps, the selection rule, the table (independent numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eclip_core.errors import ConfigError
from eval.report_gen import tower_budget as B
from eval.report_gen import tower_suite as T
from eval.report_gen import tower_variants as V


def test_variants_keep_the_paper_objective_reachable():
    # Every label-aware variant differs from its backbone's paper variant only by the label terms.
    for _name, (_, _model, train) in V.VARIANTS.items():
        assert set(train) <= {"label_loss_weight", "soft_target_weight", "soft_target_temperature", "lr", "method"}
    assert V.VARIANTS["vit224"][2] == {} and V.VARIANTS["cnn128"][2] == {}
    cfg = V.train_config(V.TowerSuiteConfig(), "m.csv", "cnn128_aux_soft", 0, 10, Path("x"))
    assert cfg.method == "eclip" and cfg.label_loss_weight > 0 and cfg.soft_target_weight > 0
    paper = V.train_config(V.TowerSuiteConfig(), "m.csv", "cnn128", 0, 10, Path("x"))
    assert paper.label_loss_weight == 0 and paper.soft_target_weight == 0 and not paper.uses_labels


def test_pretrained_rows_lock_the_trunk_and_pair_eclip_with_clip():
    locked = V.train_config(V.TowerSuiteConfig(lr=3e-4), "m.csv", "lite0_224_locked", 0, 10, Path("x"))
    assert locked.model.image_weights == "efficientnet-lite0" and locked.model.lock_image
    assert locked.model.image_size == 224 and locked.lr == 1e-3 and locked.uses_labels
    tuned = V.train_config(V.TowerSuiteConfig(lr=3e-4), "m.csv", "lite0_128_tuned", 0, 10, Path("x"))
    assert not tuned.model.lock_image and tuned.lr == 3e-4 and tuned.model.image_size == 128
    paper = V.train_config(V.TowerSuiteConfig(), "m.csv", "lite0_224_locked_paper", 1, 10, Path("x"))
    clip = V.train_config(V.TowerSuiteConfig(), "m.csv", "lite0_224_locked_clip", 1, 10, Path("x"))
    assert (paper.method, clip.method) == ("eclip", "clip")
    assert not paper.uses_labels and not clip.uses_labels
    # the pair differs only in the objective
    a, b = paper.to_dict(), clip.to_dict()
    assert {k for k in a if a[k] != b[k]} == {"method"}


def test_selection_and_summary_by_hand():
    ev = {"top1_rerank": {"micro_f1_5": 0.5, "macro_f1_14": 0.25}, "auroc_mean": 0.9}
    assert T.selection_score(ev) == pytest.approx(0.75)
    assert T.selection_score({}) == 0.0
    mean, std, n = T._mean_std([0.1, 0.2, None, 0.3])
    assert (round(mean, 6), round(std, 6), n) == (0.2, 0.1, 3)
    assert T._mean_std([None]) == (None, None, 0)


def test_markdown_marks_the_winner_and_states_the_budget():
    variants = ["vit224", "cnn128"]
    summary = {v: {c: (0.5 if v == "cnn128" else 0.1, 0.01, 3) for c, _ in T.COLUMNS} for v in variants}
    for v in variants:
        summary[v]["selection"] = (1.0 if v == "cnn128" else 0.2, 0.0, 3)
    result = {
        "command": "python -m eval.report_gen --suite tower",
        "config": V.TowerSuiteConfig(variants=variants).to_dict(),
        "calibration": {
            "cost_ratio": {"vit224": 1.0, "cnn128": 0.25},
            "steps": {"vit224": 300, "cnn128": 1200},
            "reference": "vit224",
            "reference_steps": 300,
            "mean_expert_rate": V.MEAN_EXPERT_RATE,
        },
        "summary": summary,
        "winner": "cnn128",
    }
    md = T.render_markdown(result)
    assert "**(winner)**" in md.split("ResNet 128 px")[1].split("\n")[0]
    assert "| 1200 |" in md and "300 steps of `vit224`" in md
    assert "0.500 ± 0.010" in md


def test_calibration_steps_do_not_depend_on_which_variants_are_asked_for(tmp_path, monkeypatch):
    # Costs by hand: a cnn128 step costs a quarter of the reference's, a vit128 step half; data is free.
    cost = {v: (0.25 if v.startswith("cnn") else 0.5 if v.startswith("vit128") else 1.0) for v in V.VARIANTS}
    cost["lite0_224_locked_clip"] = 0.1  # no expert batches: cheaper, but it trains its pair's steps
    calls = []

    def fake_step_costs(names, batch_size, rounds):
        calls.append(list(names))
        return {v: {"plain": [cost[v]] * rounds, "expert": [cost[v]] * rounds} for v in names}

    def fake_data_costs(names, manifest, batch_size, rounds):
        return {v: {"plain": [0.0] * rounds, "expert": [0.0] * rounds} for v in names}

    monkeypatch.setattr(B, "step_costs", fake_step_costs)
    monkeypatch.setattr(B, "data_costs", fake_data_costs)
    alone = B.calibrate(V.TowerSuiteConfig(variants=["cnn128"], calibration_rounds=3), "m.csv", tmp_path)
    together = B.calibrate(V.TowerSuiteConfig(variants=["vit128", "cnn128"], calibration_rounds=3), "m.csv", tmp_path)
    assert alone["steps"] == together["steps"]
    assert alone["steps"]["cnn128"] == 1200 and alone["steps"]["vit128"] == 600 and alone["steps"]["vit224"] == 300
    assert alone["steps"]["lite0_224_locked_clip"] == alone["steps"]["lite0_224_locked_paper"]
    assert calls == [sorted(V.VARIANTS)]  # calibrated once, every variant; the second call reads the cache
    assert len(list(tmp_path.glob("calibration-*.json"))) == 1  # in the folder it was given


def test_given_steps_replace_the_calibrated_ones_and_skip_calibration_when_all_are_given(tmp_path, monkeypatch):
    def fake_calibrate(cfg, manifest, cache_dir):
        calls.append(cfg.variants)
        steps = {v: 1000 for v in V.VARIANTS}
        return {
            "cost_ratio": {},
            "steps": steps,
            "reference": "vit224",
            "reference_steps": 300,
            "mean_expert_rate": 0.2,
        }

    calls: list = []
    monkeypatch.setattr(B, "calibrate", fake_calibrate)
    mixed = V.TowerSuiteConfig(variants=["cnn128", "lite0_128_tuned"], variant_steps=["lite0_128_tuned=310"])
    b = B.budget(mixed.validate(), "m.csv", tmp_path)
    assert b["steps"]["lite0_128_tuned"] == 310 and b["steps"]["cnn128"] == 1000 and b["given"] == ["lite0_128_tuned"]
    assert len(calls) == 1
    page = T.budget_words(mixed.to_dict(), b)
    assert "calibrat" not in page.split(";")[1] and "`lite0_128_tuned` given" in page and "300 steps of" in page
    whole = V.TowerSuiteConfig(variants=["cnn128"], variant_steps=["cnn128=959"])
    b = B.budget(whole.validate(), "m.csv", tmp_path)
    assert b["steps"]["cnn128"] == 959 and len(calls) == 1  # nothing calibrated
    assert T.budget_words(whole.to_dict(), b).endswith("for `cnn128`; nothing calibrated.")


@pytest.mark.parametrize("item", ["cnn128", "cnn128=0", "cnn128=ten", "resnet=10"])
def test_malformed_variant_steps_are_refused_with_the_expected_form(item):
    with pytest.raises(ConfigError, match="NAME=N"):
        V.TowerSuiteConfig(variants=["cnn128"], variant_steps=[item]).validate()


def test_variant_steps_is_a_flag_of_the_benchmark_command():
    from eval.report_gen.cli import configs_from_args

    suite, cfg = configs_from_args(["--suite", "tower", "--variants", "cnn128", "--variant-steps", "cnn128=959"])
    assert suite == "tower" and cfg.given_steps() == {"cnn128": 959}


def _run(variant: str, seed: int, plain_f1: float) -> dict:
    return {"variant": variant, "seed": seed, "eval": {"top1_off": {"micro_f1_5": plain_f1}}}


def test_paired_differences_match_seeds_and_skip_unpaired_ones():
    runs = [
        _run("lite0_224_locked_paper", 0, 0.40),
        _run("lite0_224_locked_clip", 0, 0.30),
        _run("lite0_224_locked_paper", 1, 0.35),
        _run("lite0_224_locked_clip", 1, 0.45),
        _run("lite0_224_locked_paper", 2, 0.50),  # its CLIP twin did not run: no pair
    ]
    d = T.paired_differences(runs, "lite0_224_locked_paper", "lite0_224_locked_clip")
    assert d["plain top-1 micro-F1(5)"] == pytest.approx([0.10, -0.10])
    assert d["classifier AUROC"] == []  # not scored in these runs
    lines = T.paired_lines(runs, "lite0_224_locked_paper", "lite0_224_locked_clip")
    row = next(line for line in lines if line.startswith("| plain top-1 micro-F1(5)"))
    assert row == "| plain top-1 micro-F1(5) | +0.000 | +0.100, -0.100 | 1/2 |"
    assert "2 seeds" in lines[0]
    assert T.paired_lines(runs[:1], "lite0_224_locked_paper", "lite0_224_locked_clip") == []


def test_the_page_pairs_a_pretrained_tower_with_the_scratch_resnet_on_their_common_seeds():
    runs = [_run("cnn128_aux_soft", 0, 0.50), _run("lite0_128_tuned", 0, 0.56), _run("lite0_128_tuned", 1, 0.6)]
    result = {
        "command": "c", "config": {"batch_size": 32, "seeds": [0, 1], "variants": ["cnn128_aux_soft", "lite0_128_tuned"]},
        "calibration": {"steps": {"cnn128_aux_soft": 959, "lite0_128_tuned": 310}, "reference": "vit224",
                        "reference_steps": 300, "mean_expert_rate": 0.2225},
        "summary": {v: {c: (None, None, 0) for c, _ in T.COLUMNS} for v in ("cnn128_aux_soft", "lite0_128_tuned")},
        "winner": "lite0_128_tuned", "runs": runs,
    }  # fmt: skip
    page = T.render_markdown(result)
    assert "Paired by seed (1 seed, same compute budget): EfficientNet-Lite0 ImageNet 128 px, fine-tuned minus" in page
    assert "| plain top-1 micro-F1(5) | +0.060 | +0.060 | 1/1 |" in page
    assert "same steps" not in page.split("Paired by seed")[1]
