"""Markdown of the real-image suite's result (eval.report_gen.real_suite)."""

from __future__ import annotations

from typing import Any

from eval.report_gen.real_summary import held_out_splits, reproduce_lines, step_words, summary_lines
from eval.report_gen.real_towers import TOWER_LR, TOWERS

COVID = "COVID-19 vs other"


def _auc(cell: dict | None) -> str:
    if not cell:
        return "n/a"
    lo, hi = cell["ci"]
    return f"{cell['auroc']:.3f} ({lo:.2f}-{hi:.2f})"


def _recall(ret: dict | None, k: int) -> str:
    if not ret:
        return "n/a"
    cell = ret[f"R@{k}"]
    lo, hi = cell["ci"]
    return f"{cell['mean']:.3f} ({lo:.2f}-{hi:.2f}) vs {ret[f'chance@{k}']:.3f}"


def _tower_lrs() -> str:
    return ", ".join(f"{t}: {lr:g}" for t, lr in TOWER_LR.items())


def _kept(run: dict) -> str:
    if not run.get("best_step"):
        return ""
    trained = run.get("steps_trained")  # fewer than the steps asked: stopped early (val patience)
    return f" (step {run['best_step']} kept" + (f" of {trained})" if trained else ")")


def _held_out(cfg: dict, validation: dict) -> str:
    splits, where = held_out_splits(cfg)
    text = f"held-out = {where}"
    if "val" not in splits:
        # Runs from before the suite recorded its validation kept the lowest val loss.
        metric = {"loss": "lowest val loss", "recall": "best val recall"}[validation.get("val_metric", "loss")]
        text += f" (each trained tower keeps its step with the {metric}, `rag-report train`'s default)"
    return text


def render_markdown(result: dict[str, Any]) -> str:
    from eval.report_gen.tables import portable_paths

    cfg, data = result["config"], result["data"]
    command = portable_paths(result["command"])
    held_out = _held_out(cfg, result.get("validation") or {})
    steps = step_words(result)
    lines = [
        f"# Image towers on real X-rays ({steps} training steps of batch {cfg['batch_size']})",
        "",
        *summary_lines(result),
        "",
        f"Measured on: {result.get('machine', 'a CPU')} (scores do not depend on the machine); "
        f"{result['created'][:10]}.",
        "",
        *reproduce_lines(result, command),
        "",
        "## Per tower and seed",
        "",
        f"Command: `{command}`",
        "",
        f"Data: {data['n']} frontal X-rays of {data['patients']} patients (splits {data['splits']}, patient-"
        f"disjoint). Trained towers: {steps} steps of batch {cfg['batch_size']}, lr {cfg['lr']} "
        f"({_tower_lrs()}), text tower locked except its projection, on the train split only; {held_out}. AUROC with a 95 % "
        "patient-bootstrap interval; R@k image->note on the held-out rows (a hit: a top-k note is the query's "
        "own text) against its exact chance.",
        "",
        "| tower | seed | probe CV held-out: COVID-19 vs other | probe CV all rows | probe train -> held-out "
        "| R@1 | R@5 | R@10 | typicality warnings |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        if "not_run" in run:
            lines.append(f"| {run['description']} | - | not run: {run['not_run']} | | | | | | |")
            continue
        ret = run.get("retrieval_heldout")
        typ = run.get("typicality_warning_rate")
        lines.append(
            f"| {run['description']} | {run['seed']}{_kept(run)} | {_auc(run['probe_cv_heldout'].get(COVID))} | "
            f"{_auc(run['probe_cv_all'].get(COVID))} | {_auc(run['probe_train_to_heldout'].get(COVID))} | "
            f"{_recall(ret, 1)} | {_recall(ret, 5)} | {_recall(ret, 10)} | "
            f"{'n/a' if typ is None else f'{typ:.2f}'} |"
        )
    others = sorted({t for r in result["runs"] for t in r.get("probe_cv_heldout", {}) if t != COVID})
    if others:
        lines += ["", "Other probe tasks (CV on held-out rows):", ""]
        for run in result["runs"]:
            for t in others:
                lines.append(f"- {run['description']} (seed {run['seed']}), {t}: {_auc(run['probe_cv_heldout'][t])}")
    absent = [t for t in TOWERS if t not in cfg["towers"]]
    if absent:
        lines += ["", "Not in this run: " + "; ".join(f"{TOWERS[t][0]} (`--towers {t}`)" for t in absent) + "."]
    skipped = sorted({s for r in result["runs"] for s in r.get("skipped", [])})
    if skipped:
        lines += ["", "Not scored (counts): " + "; ".join(skipped) + "."]
    unnamed = data["licences"].get("(none named)", 0)
    lines += [
        "",
        "Images per licence (the `license` column of the collection's metadata.csv; each X-ray's own licence, doi "
        f"and url are in its manifest row's `meta`; {unnamed} X-rays name none, and their terms are those of the "
        "publication their url points to): "
        + ", ".join(f"{k}: {v}" for k, v in sorted(data["licences"].items()))
        + ".",
    ]
    return "\n".join(lines) + "\n"
