"""The summary table and reproduction section at the top of the real-image suite's page
(eval.report_gen.real_suite): the targets of the suite answered from its runs.

>>> runs = [{"tower": "a", "seed": 0, "description": "A", "probe_cv_all": {COVID: {"auroc": 0.7, "ci": [0.6, 0.8]}}}]
>>> best_probe(runs)[:2]
(0.7, 'A')
"""

from __future__ import annotations

import numpy as np

COVID = "COVID-19 vs other"
#: The suite's rows that the third target compares: `rag-report train`'s default tower vs ``--image-weights none``.
DEFAULT_TOWER, SCRATCH_TOWER = "lite0_locked", "scratch_resnet"
PROBE_TARGET, RECALL_TARGET = 0.80, 2.0


def _by_tower(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        if "not_run" not in run:
            out.setdefault(run["tower"], []).append(run)
    return out


def best_probe(runs: list[dict]) -> tuple[float, str, str, list[float], int] | None:
    """(AUROC, tower description, which probe, CI of its first seed, seeds) of the tower whose COVID-19 probe, mean
    over seeds, is highest (CV on all rows where the tower never saw them, else CV on the held-out rows)."""
    best = None
    for group in _by_tower(runs).values():
        key = "probe_cv_all" if group[0].get("probe_cv_all", {}).get(COVID) else "probe_cv_heldout"
        cells = [r[key][COVID] for r in group if r.get(key, {}).get(COVID)]
        if cells:
            mean = float(np.mean([c["auroc"] for c in cells]))
            if best is None or mean > best[0]:
                best = (mean, group[0]["description"], key, cells[0]["ci"], len(cells))
    return best


def _recall(group: list[dict]) -> tuple[float, float] | None:
    rets = [r["retrieval_heldout"] for r in group if r.get("retrieval_heldout")]
    if not rets:
        return None
    return float(np.mean([x["R@10"]["mean"] for x in rets])), float(np.mean([x["chance@10"] for x in rets]))


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"


def held_out_splits(cfg: dict | None) -> tuple[list[str], str]:
    """The held-out splits of a run's config and their words ("the val and test splits")."""
    splits = (cfg or {}).get("heldout_splits") or ["val", "test"]
    return splits, "the " + " and ".join(splits) + (" splits" if len(splits) > 1 else " split")


def step_words(result: dict) -> str:
    """The training steps asked, as words: "up to N" when val patience may stop a tower earlier."""
    steps = (result.get("config") or {})["steps"]
    return f"up to {steps}" if (result.get("validation") or {}).get("val_patience") else str(steps)


def _steps(result: dict) -> str:
    cfg = result.get("config") or {}
    return f"{step_words(result)} steps of batch {cfg['batch_size']}" if "steps" in cfg else "the suite's steps"


def summary_lines(result: dict) -> list[str]:
    """The question | answer table of the page's top."""
    data, runs = result["data"], result["runs"]
    towers = _by_tower(runs)
    rows = []
    best = best_probe(runs)
    if best:
        auc, desc, key, (lo, hi), n = best
        where = "5-fold CV on all rows" if key == "probe_cv_all" else "CV on the held-out rows"
        met = "met" if auc >= PROBE_TARGET else "not met"
        ci = f"95 % CI {lo:.2f}-{hi:.2f}" if n == 1 else f"mean of {n} seeds; first seed's 95 % CI {lo:.2f}-{hi:.2f}"
        rows.append(
            f"| best linear-probe AUROC, COVID-19 vs other (target >= {PROBE_TARGET:.2f}) | {auc:.3f} ({ci}): "
            f"{desc}, patient-grouped {where}; {met} |"
        )
    recalls = {t: _recall(g) for t, g in towers.items()}
    recalls = {t: r for t, r in recalls.items() if r}
    if recalls:
        t = max(recalls, key=lambda k: recalls[k][0] / recalls[k][1])
        r10, chance = recalls[t]
        n = len(towers[t])
        met = "met" if r10 >= RECALL_TARGET * chance else "not met"
        rows.append(
            f"| best image->note R@10 after training (target >= {RECALL_TARGET:g}x chance) | {r10:.3f} (mean of {n} "
            f"seed{'s' if n > 1 else ''}, {towers[t][0]['description']}) vs chance {chance:.3f} "
            f"({r10 / chance:.1f}x); {met} |"
        )
    if DEFAULT_TOWER in towers and SCRATCH_TOWER in towers:
        d, s = towers[DEFAULT_TOWER], towers[SCRATCH_TOWER]
        parts, wins = [], []
        for key, label in (
            ("probe_train_to_heldout", "probe fitted on train, scored on held-out"),
            ("probe_cv_heldout", "grouped-CV probe on held-out"),
        ):
            a = [r[key][COVID]["auroc"] for r in d if r.get(key, {}).get(COVID)]
            b = [r[key][COVID]["auroc"] for r in s if r.get(key, {}).get(COVID)]
            if a and b:
                parts.append(f"{label}: {_ms(a)} vs {_ms(b)}")
                wins.append(np.mean(a) > np.mean(b))
        a = [r["retrieval_heldout"]["R@10"]["mean"] for r in d if r.get("retrieval_heldout")]
        b = [r["retrieval_heldout"]["R@10"]["mean"] for r in s if r.get("retrieval_heldout")]
        if a and b:
            parts.append(f"R@10 {_ms(a)} vs {_ms(b)} (chance {recalls.get(DEFAULT_TOWER, (0, 0))[1]:.3f})")
            wins.append(np.mean(a) > np.mean(b))
        verdict = (
            "higher mean on every measure (met)" if wins and all(wins) else "not higher on every measure (not met)"
        )
        rows.append(
            f"| `rag-report train`'s default tower vs the same run with `--image-weights none` ({_steps(result)}; "
            f"{len(d)} vs {len(s)} seeds; "
            f"mean ± sd) | {'; '.join(parts)}; {verdict} |"
        )
    rated = [r for r in runs if r.get("typicality_warning_rate") is not None]
    rates = [r["typicality_warning_rate"] for r in rated]
    trained = [r["typicality_warning_rate"] for r in rated if r["tower"] != "bundle"]
    bundle = [r["typicality_warning_rate"] for r in rated if r["tower"] == "bundle"]
    if rates:
        rows.append(
            "| typicality warnings on held-out X-rays | "
            + (
                f"{min(trained):.0%}-{max(trained):.0%} for the towers trained here (index of the train split)"
                if trained
                else ""
            )
            + ("; " if trained and bundle else "")
            + (f"{bundle[0]:.0%} for the default bundle (its phantom index)" if bundle else "")
            + " |"
        )
    others = sorted({t for r in runs for t in r.get("probe_cv_heldout", {}) if t != COVID})
    skipped = sorted({s.split(" (")[0] for r in runs for s in r.get("skipped", [])})
    if others or skipped:
        rows.append(
            "| viral / bacterial pneumonia vs No Finding | "
            + (f"scored: {', '.join(others)}" if others else "")
            + ("; " if others and skipped else "")
            + (f"not scored (too few X-rays or patients per class): {', '.join(skipped)}" if skipped else "")
            + " |"
        )
    splits, where = held_out_splits(result.get("config"))
    held = sum(data["splits"].get(split, 0) for split in splits)
    return [
        f"Summary ({data['n']} frontal X-rays of {data['patients']} patients; held-out = {where}, "
        f"{held} X-rays of {data.get('heldout_patients', '?')} patients that no tower was trained on):",
        "",
        "| question | answer |",
        "|---|---|",
        *rows,
    ]


def reproduce_lines(result: dict, command: str) -> list[str]:
    """How to get the data and rerun the page (the clone's commit when the images are in a git clone)."""
    commit = result["data"].get("clone_commit")
    data = result["data"]
    lines = [
        "## How to reproduce",
        "",
        "The data: a git clone of the June-2020 fork of the COVID-19 image data collection (about 300 MB)"
        + (f", at commit {commit}." if commit else " (the images were not in a git clone: commit unknown)."),
        "The manifest keeps the patients listed in a file (one patient id a line): train, tune and choose on those;",
        "patients left out of the file stay held out for an independent check and are used for nothing here.",
        "",
        "```",
        "git clone https://github.com/s-mostafa-a/covid-chestxray-dataset",
    ]
    if commit:
        lines.append(f"git -C covid-chestxray-dataset checkout {commit}")
    lines += [
        "python -m eclip_core.data.builders covid --root covid-chestxray-dataset --patients dev_patients.txt "
        f"--out {result['config']['manifest']}",
        command,
        "```",
        "",
        f"The builder keeps the frontal X-rays (PA, AP, AP Supine) with clinical notes: {data['n']} X-rays of "
        f"{data['patients']} patients. Splits are patient-disjoint (seeded hash of the patient id): "
        + ", ".join(f"{k} {v}" for k, v in data["splits"].items())
        + " X-rays.",
    ]
    return lines
