"""Markdown of the real-image suite's result (eval.report_gen.real_suite)."""

from __future__ import annotations

from typing import Any

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


def render_markdown(result: dict[str, Any]) -> str:
    from eval.report_gen.tables import portable_paths

    cfg, data = result["config"], result["data"]
    lines = [
        "# Image towers on real X-rays",
        "",
        f"Command: `{portable_paths(result['command'])}`",
        "",
        f"Data: {data['n']} frontal X-rays of {data['patients']} patients (splits {data['splits']}, patient-"
        f"disjoint). Trained towers: {cfg['steps']} steps of batch {cfg['batch_size']}, lr {cfg['lr']}, text tower "
        "locked except its projection, on the train split only; held-out = val + test splits. AUROC with a 95 % "
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
            f"| {run['description']} | {run['seed']} | {_auc(run['probe_cv_heldout'].get(COVID))} | "
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
    skipped = sorted({s for r in result["runs"] for s in r.get("skipped", [])})
    if skipped:
        lines += ["", "Not scored (counts): " + "; ".join(skipped) + "."]
    lines += ["", "Images per licence: " + ", ".join(f"{k}: {v}" for k, v in sorted(data["licences"].items())) + "."]
    return "\n".join(lines) + "\n"
