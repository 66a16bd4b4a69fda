"""``python -m eval.report_gen --suite tower``: which image tower learns most in the default's CPU budget.

Every variant trains on the manifest's train split with the SAME compute budget as the default bundle's
paper eCLIP run (``reference``: eclip-small, 224 px ViT, 300 steps of batch 32), once per seed, and is
scored on the val split. The budget is turned into steps per variant by :func:`calibrate`: one training
step of each variant (plain and with an expert batch, mixed at the curriculum's mean injection rate) is
timed in this process, interleaved over rounds, in single-thread CPU time (robust to other load on the
machine), and ``steps = reference_steps * cost(reference) / cost(variant)``.

Scores on val (:func:`evaluate_variant`): label classifiers over the frozen image embeddings (fitted on
train, :mod:`rag_report.retrieval.label_classifiers`), their AUROC per observation; cross-modal retrieval
(label-P@5, R@5) and clinical F1 of the top-1 report with and without label boost.

>>> cfg = TowerSuiteConfig(seeds=[0], variants=["vit224"])
>>> cfg.validate().variants
['vit224']
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.bench.page import write_page
from eval.report_gen.tower_budget import budget
from eval.report_gen.tower_variants import BUDGET_PAIRS, SAME_STEPS_AS, VARIANTS, TowerSuiteConfig, train_config
from rag_report.paths import rag_report_home

log = logging.getLogger(__name__)


def suite_home() -> Path:
    """Where the suite caches its calibration and its trained runs."""
    return rag_report_home() / "eval" / "tower"


# ---------------------------------------------------------------------------------------------- training
def run_dir(cfg: TowerSuiteConfig, manifest: str, variant: str, seed: int, steps: int) -> Path:
    key = json.dumps(
        {
            "manifest": str(Path(manifest).resolve()),
            "defs": VARIANTS[variant][1:],
            "steps": steps,
            "batch": cfg.batch_size,
            "lr": cfg.lr,
            "seed": seed,
        },
        sort_keys=True,
    )
    return suite_home() / f"{variant}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def train_variant(cfg: TowerSuiteConfig, manifest: str, variant: str, seed: int, steps: int) -> tuple[Path, float]:
    """Train (or reuse the cached) model of one variant and seed; returns (model dir, train seconds)."""
    from eclip_core.train import train

    out = run_dir(cfg, manifest, variant, seed, steps)
    info_path = out / "suite_run.json"
    if (out / "model" / "config.json").is_file() and info_path.is_file():
        return out / "model", float(json.loads(info_path.read_text())["train_seconds"])
    t0 = time.perf_counter()
    result = train(train_config(cfg, manifest, variant, seed, steps, out))
    seconds = time.perf_counter() - t0
    info_path.write_text(json.dumps({"train_seconds": seconds, "final_loss": result.final_loss, "steps": steps}))
    return Path(result.model_dir), seconds


# ---------------------------------------------------------------------------------------------- scoring
def evaluate_variant(
    model_dir: Path, manifest: str, cfg: TowerSuiteConfig, label_weight: float = 1.0
) -> dict[str, Any]:
    """Val-split scores of one trained model, through the product's own index and pipeline.

    The index (with its label classifiers) is built from the train split only, thresholds cross-validated
    on train, so the val split stays unseen until it is scored here.
    """
    from eclip_core.data.manifest import read_manifest
    from eclip_core.data.study_labels import positive_targets, study_label_rows
    from eclip_core.labels import CHEXPERT_OBSERVATIONS
    from eclip_core.model import EClip
    from eclip_core.text import join_report
    from eval.report_gen.scoring import clinical_scores, label_precision_at_k
    from rag_report.index import ReportIndex, is_current_index
    from rag_report.pipeline import PipelineConfig, ReportPipeline

    studies = read_manifest(manifest)
    train = [s for s in studies if s.split == "train" and s.report_text]
    val = sorted((s for s in studies if s.split == cfg.eval_split and s.report_text), key=lambda s: s.study_id)
    index_dir = Path(model_dir).parent / "index"
    if not is_current_index(index_dir):
        model = EClip.from_pretrained(model_dir).eval()
        ReportIndex.build(model, train, index_dir, progress=cfg.progress, corpus_name="tower suite train split")
    out: dict[str, Any] = {"n_eval": len(val)}
    pipes = {
        boost: ReportPipeline(
            PipelineConfig(
                model_dir=str(model_dir),
                index_dir=str(index_dir),
                mode="top1",
                label_boost=boost,
                label_weight=label_weight,
            ),
            progress=False,
        )
        for boost in ("off", "rerank")
    }
    pipe = pipes["rerank"]
    vectors = [pipe.embed(s.image_paths[0]) for s in val]
    probs = np.array([pipe.predict_labels(v, s.image_paths[0]) for v, s in zip(vectors, val)])
    truth = positive_targets(study_label_rows(val))
    from sklearn.metrics import roc_auc_score

    aurocs = {}
    for j, name in enumerate(CHEXPERT_OBSERVATIONS):
        if truth[:, j].sum() >= 10 and truth[:, j].sum() < len(val):
            aurocs[name] = float(roc_auc_score(truth[:, j], probs[:, j]))
    out["auroc"] = aurocs
    out["auroc_mean"] = float(np.mean(list(aurocs.values()))) if aurocs else None
    refs = [s.report_text for s in val]
    ref_labels = [
        dict(zip(CHEXPERT_OBSERVATIONS, (None if np.isnan(v) else float(v) for v in row)))
        for row in study_label_rows(val)
    ]
    for boost, p in pipes.items():
        texts, retrieved = [], []
        for v, pr in zip(vectors, probs):
            reports = p.retrieve(v, mode="top1", probabilities=pr if boost != "off" else None, k=5)
            d = p.draft(reports, "top1")
            texts.append(join_report(d.findings, d.impression))
            retrieved.append([r.labels for r in reports])
        clin = clinical_scores(refs, texts)["uncertain_as_negative"]
        out[f"top1_{boost}"] = {
            **{c: clin.get(c) for c in ("micro_f1_5", "macro_f1_14", "micro_f1_14")},
            "distinct": len(set(texts)),
            "label_p@5": label_precision_at_k(ref_labels, retrieved, 5),
        }
    return out


# ---------------------------------------------------------------------------------------------- the suite
#: (label, path into an evaluation dict) of the table's columns.
COLUMNS = (
    ("classifier AUROC", ("auroc_mean",)),
    ("boost top-1 micro-F1(5)", ("top1_rerank", "micro_f1_5")),
    ("boost top-1 macro-F1(14)", ("top1_rerank", "macro_f1_14")),
    ("boost top-1 micro-F1(14)", ("top1_rerank", "micro_f1_14")),
    ("boost distinct", ("top1_rerank", "distinct")),
    ("plain top-1 micro-F1(5)", ("top1_off", "micro_f1_5")),
    ("plain top-1 macro-F1(14)", ("top1_off", "macro_f1_14")),
    ("plain label-P@5", ("top1_off", "label_p@5")),
)


def _get(d: dict, path: tuple[str, ...]) -> float | None:
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def selection_score(evaluation: dict) -> float:
    """What "wins on val" means: label-boosted top-1 micro-F1(5) + macro-F1(14) (the two clinical floors)."""
    return float(
        (_get(evaluation, ("top1_rerank", "micro_f1_5")) or 0.0)
        + (_get(evaluation, ("top1_rerank", "macro_f1_14")) or 0.0)
    )


def run_tower_suite(cfg: TowerSuiteConfig) -> dict[str, Any]:
    """Calibrate the budget, train every (variant, seed) not cached, score each on val, write the table."""
    import datetime as _dt

    from eclip_core.atomic import atomic_path

    cfg.validate()
    manifest = cfg.manifest
    if manifest is None:
        from eclip_core.data.phantom import build_phantom_dataset

        manifest = str(build_phantom_dataset(progress=cfg.progress, cache_dir=rag_report_home()))
    cal = budget(cfg, manifest, suite_home())
    runs = []
    for variant in cfg.variants:
        for seed in cfg.seeds:
            steps = cal["steps"][variant]
            model_dir, seconds = train_variant(cfg, manifest, variant, seed, steps)
            cache = model_dir.parent / f"tower_eval_{cfg.eval_split}.json"
            if cache.is_file():
                evaluation = json.loads(cache.read_text())
            else:
                evaluation = evaluate_variant(model_dir, manifest, cfg)
                with atomic_path(cache) as tmp:
                    tmp.write_text(json.dumps(evaluation))
            runs.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "steps": steps,
                    "train_seconds": seconds,
                    "model_dir": str(model_dir),
                    "eval": evaluation,
                }
            )
            log.info("%s seed %d: %s", variant, seed, {c: _get(evaluation, p) for c, p in COLUMNS})
    summary = {}
    for variant in cfg.variants:
        mine = [r["eval"] for r in runs if r["variant"] == variant]
        summary[variant] = {label: _mean_std([_get(e, path) for e in mine]) for label, path in COLUMNS}
        summary[variant]["selection"] = _mean_std([selection_score(e) for e in mine])
    winner = max(cfg.variants, key=lambda v: summary[v]["selection"][0])
    result = {
        "command": cfg.command,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        "calibration": {
            k: cal[k] for k in ("cost_ratio", "steps", "reference", "reference_steps", "mean_expert_rate", "given")
        },
        "runs": runs,
        "summary": summary,
        "winner": winner,
    }
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{cfg.name}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    write_page(out / f"{cfg.name}.md", render_markdown(result), echo=False)
    result["outputs"] = {"json": str(out / f"{cfg.name}.json"), "markdown": str(out / f"{cfg.name}.md")}
    return result


def _mean_std(values: list) -> tuple[float | None, float | None, int]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None, 0
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else None, len(vals)


def _fmt(ms: tuple) -> str:
    mean, std, n = ms
    if mean is None:
        return "n/a"
    digits = 0 if mean > 20 else 3
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "") + ("" if n == 3 else f" (n={n})")


def render_markdown(result: dict) -> str:
    cfg, cal = result["config"], result["calibration"]
    from eval.report_gen.tables import portable_paths

    lines = [
        "# Image tower study: what learns most in the default's CPU budget (val split)",
        "",
        f"Command: `{portable_paths(result['command'])}`",
        "",
        budget_words(cfg, cal) + f" Mean ± std over seeds {cfg['seeds']} (n says when fewer ran); val "
        "split; clinical F1 with uncertain -> negative; the index and label classifiers are fitted on the train "
        "split only (thresholds cross-validated on train).",
        "",
        "| variant | steps | " + " | ".join(c for c, _ in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for variant in cfg["variants"]:
        s = result["summary"][variant]
        mark = " **(winner)**" if variant == result["winner"] else ""
        lines.append(
            f"| {VARIANTS[variant][0]}{mark} | {cal['steps'][variant]} | "
            + " | ".join(_fmt(s[c]) for c, _ in COLUMNS)
            + " |"
        )
    lines += [
        "",
        f"Winner (highest mean label-boosted top-1 micro-F1(5) + macro-F1(14) on val): `{result['winner']}`.",
        "",
    ]
    for other, variant in SAME_STEPS_AS.items():
        lines += paired_lines(result.get("runs", []), variant, other)
    for variant, other in BUDGET_PAIRS.items():
        lines += paired_lines(result.get("runs", []), variant, other, basis="same compute budget")
    return "\n".join(lines) + "\n"


def budget_words(cfg: dict, cal: dict) -> str:
    """The page's sentence on where each row's step count comes from (calibrated, given, or both)."""
    given = [v for v in cfg["variants"] if v in cal.get("given", [])]
    calibrated = (
        f"the compute of {cal['reference_steps']} steps of `{cal['reference']}` at batch {cfg['batch_size']} "
        "(CPU time per step: forward and backward on one thread plus the preparation of the step's batch, "
        f"measured in one process, expert batches at the curriculum's mean rate {cal['mean_expert_rate']}), "
        "turned into steps per variant"
    )
    if not given:
        return f"Budget: {calibrated}."
    named = ", ".join(f"`{v}`" for v in given)
    if len(given) == len(cfg["variants"]):
        return f"Budget: the steps given on the command line (`--variant-steps`) for {named}; nothing calibrated."
    return f"Budget: {calibrated}; the steps of {named} given on the command line (`--variant-steps`)."


def paired_differences(runs: list[dict], variant: str, other: str) -> dict[str, list[float]]:
    """Per column, ``variant - other`` on each seed both ran (same steps, same seed: a paired comparison)."""
    by_seed = {(r["variant"], r["seed"]): r["eval"] for r in runs}
    seeds = sorted(s for v, s in by_seed if v == variant and (other, s) in by_seed)
    out: dict[str, list[float]] = {}
    for label, path in COLUMNS:
        pairs = [(_get(by_seed[(variant, s)], path), _get(by_seed[(other, s)], path)) for s in seeds]
        out[label] = [float(a) - float(b) for a, b in pairs if a is not None and b is not None]
    return out


def paired_lines(runs: list[dict], variant: str, other: str, basis: str = "same steps") -> list[str]:
    """The paired table of ``variant`` against ``other`` (empty when no seed has both); ``basis``: what the
    two share besides the seed."""
    diffs = paired_differences(runs, variant, other)
    if not any(diffs.values()):
        return []
    n = max(len(d) for d in diffs.values())
    lines = [
        f"Paired by seed ({n} seed{'s' if n > 1 else ''}, {basis}): {VARIANTS[variant][0]} minus {VARIANTS[other][0]}.",
        "",
        "| measure | mean difference | per seed | seeds ahead |",
        "|---|---|---|---|",
    ]
    for label, d in diffs.items():
        if not d:
            continue
        digits = 0 if label.endswith("distinct") else 3
        per_seed = ", ".join(f"{x:+.{digits}f}" for x in d)
        lines.append(f"| {label} | {np.mean(d):+.{digits}f} | {per_seed} | {sum(x > 0 for x in d)}/{len(d)} |")
    return [*lines, ""]
