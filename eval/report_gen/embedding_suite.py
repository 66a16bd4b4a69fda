"""``python -m eval.report_gen --suite embedding``: eCLIP vs CLIP and the ablation ladder, over seeds.

Every variant trains with the SAME budget (model config, steps, batch, lr, data) on the manifest's train
split, once per seed, and is scored on the test split with eclip_core.quality: zero-shot macro-F1 on the
5 common observations, image->text R@1/5/10 and label-precision@k, alignment, uniformity, modality gap,
linear-probe AUROC with 1 %, 10 %, 100 % of the train labels. Tables give mean ± std over seeds; a PNG
shows a 2-D projection of image and report embeddings, CLIP beside eCLIP.

>>> cfg = EmbeddingSuiteConfig(steps=50, seeds=[0], variants=["clip", "eclip"])
>>> [v for v in cfg.validate().variants]
['clip', 'eclip']
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from eclip_core.errors import ConfigError
from eclip_core.labels import CHEXPERT_OBSERVATIONS, COMMON_FIVE
from eval.bench.page import write_page
from eval.report_gen.embedding_tables import DEFINITIONS, paired_vs_clip, projection_plot, render_markdown, summarise
from eval.report_gen.embedding_variants import (
    PROBE_FRACTIONS,
    VARIANTS,
    ZERO_SHOT_PROMPTS,
    EmbeddingSuiteConfig,
)
from rag_report.paths import rag_report_home, text_feature_dir

log = logging.getLogger(__name__)


def _run_dir(cfg: EmbeddingSuiteConfig, manifest: str, variant: str, seed: int) -> Path:
    key = json.dumps(
        {
            "manifest": str(Path(manifest).resolve()),
            "model": cfg.model,
            "lock": cfg.lock_text,
            "steps": cfg.steps,
            "batch": cfg.batch_size,
            "lr": cfg.lr,
            "variant": VARIANTS[variant][1],
            "seed": seed,
        },
        sort_keys=True,
    )
    return (
        rag_report_home() / "eval" / "embedding" / f"{variant}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    )


def train_variant(cfg: EmbeddingSuiteConfig, manifest: str, variant: str, seed: int) -> tuple[Path, float]:
    """Train (or reuse the cached) model of one rung and seed; returns (model dir, train seconds)."""
    from eclip_core.config import EClipConfig, TrainConfig
    from eclip_core.train import train

    out = _run_dir(cfg, manifest, variant, seed)
    model_dir = out / "model"
    if (model_dir / "config.json").is_file():
        info = json.loads((out / "suite_run.json").read_text()) if (out / "suite_run.json").is_file() else {}
        return model_dir, float(info.get("train_seconds", float("nan")))
    tc = TrainConfig(
        manifest=str(manifest),
        output_dir=str(out),
        model=EClipConfig(name=cfg.model, lock_text=cfg.lock_text),
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=seed,
        progress=cfg.progress,
        checkpoint_every=max(cfg.steps // 4, 1),
        resume=True,
        num_workers=cfg.num_workers,
        # The suite reads each manifest many times; bad rows are still skipped at load time.
        validate_images=False,
        text_feature_cache_dir=str(text_feature_dir()),
    )
    data = tc.to_dict()
    data.update(VARIANTS[variant][1])
    tc = TrainConfig.from_dict(data)
    t0 = time.perf_counter()
    result = train(tc)
    seconds = time.perf_counter() - t0
    (out / "suite_run.json").write_text(json.dumps({"train_seconds": seconds, "final_loss": result.final_loss}))
    return Path(result.model_dir), seconds


def _label_matrix(studies) -> np.ndarray:
    """[n, 14] with 1 positive, 0 otherwise (uncertain and not mentioned count as negative)."""
    out = np.zeros((len(studies), len(CHEXPERT_OBSERVATIONS)), dtype=np.float32)
    for i, s in enumerate(studies):
        for j, obs in enumerate(CHEXPERT_OBSERVATIONS):
            v = (s.labels or {}).get(obs)
            out[i, j] = 1.0 if v is not None and float(v) == 1.0 else 0.0
    return out


def evaluate_model(model_dir: Path, train_studies, eval_studies, cfg: EmbeddingSuiteConfig) -> tuple[dict, dict]:
    """All quality metrics of one trained model; also returns the embeddings (for the projection plot)."""
    from eclip_core import quality as Q
    from eclip_core.model import EClip

    model = EClip.from_pretrained(model_dir).eval()
    img = model.embed_images([s.image_paths[0] for s in eval_studies], progress=cfg.progress)
    txt = model.embed_texts([s.report_text for s in eval_studies], progress=cfg.progress)
    if cfg.max_probe_train and len(train_studies) > cfg.max_probe_train:
        pick = np.sort(np.random.default_rng(0).choice(len(train_studies), cfg.max_probe_train, replace=False))
        train_studies = [train_studies[i] for i in pick]
    train_img = model.embed_images([s.image_paths[0] for s in train_studies], progress=cfg.progress)
    y_eval, y_train = _label_matrix(eval_studies), _label_matrix(train_studies)
    metrics: dict[str, float | None] = {}

    # Zero-shot over the 5 common observations: studies positive for exactly one of them (5-way).
    five = [CHEXPERT_OBSERVATIONS.index(o) for o in COMMON_FIVE]
    single = np.where(y_eval[:, five].sum(1) == 1)[0]
    metrics["zero_shot_n"] = int(len(single))
    if len(single):
        prompts = {o: model.embed_texts(ZERO_SHOT_PROMPTS[o], progress=False) for o in COMMON_FIVE}
        zs = Q.zero_shot_classify(img[single], prompts, y_eval[single][:, five].argmax(1))
        metrics["zero_shot_macro_f1_5"], metrics["zero_shot_accuracy_5"] = zs.macro_f1, zs.accuracy
    ids = [s.study_id for s in eval_studies]
    metrics.update(
        {k: v for k, v in Q.retrieval_recall(img, txt, ids, ids, ks=(1, 5, 10)).items() if k.startswith("i2t")}
    )
    metrics[f"label_precision@{cfg.k}"] = Q.label_precision_at_k(img, txt, y_eval, y_eval, k=cfg.k, mode="exact")
    metrics["alignment"] = Q.alignment(img, txt)
    metrics["uniformity"] = Q.uniformity(img)
    metrics["modality_gap"] = Q.modality_gap(img, txt)
    for frac in PROBE_FRACTIONS:
        probe = Q.linear_probe(
            train_img, y_train, img, y_eval, fraction=frac, seed=0, class_names=list(CHEXPERT_OBSERVATIONS)
        )
        metrics[f"probe_auroc_{frac:.0%}"] = probe.auroc if np.isfinite(probe.auroc) else None
    return metrics, {"image": img, "text": txt}


def _cached_evaluation(
    model_dir: Path, manifest: str, train_studies, eval_studies, cfg: EmbeddingSuiteConfig
) -> tuple[dict, dict]:
    """evaluate_model, cached next to the model (keyed by every setting that changes the numbers)."""
    key = hashlib.sha256(
        json.dumps(
            {
                "manifest": str(Path(manifest).resolve()),
                "split": cfg.eval_split,
                "max_eval": cfg.max_eval,
                "probe": cfg.max_probe_train,
                "k": cfg.k,
                "n_eval": len(eval_studies),
                "prompts": ZERO_SHOT_PROMPTS,
                "version": 1,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:10]
    base = Path(model_dir).parent / f"suite_eval_{key}"
    metrics_path, emb_path = base.with_suffix(".json"), base.with_suffix(".npz")
    if metrics_path.is_file() and emb_path.is_file():
        with np.load(emb_path) as data:
            return json.loads(metrics_path.read_text()), {"image": data["image"], "text": data["text"]}
    metrics, emb = evaluate_model(model_dir, train_studies, eval_studies, cfg)
    from eclip_core.atomic import atomic_path

    with atomic_path(emb_path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, image=emb["image"], text=emb["text"])
    with atomic_path(metrics_path) as tmp:  # written last: its presence marks a complete cache entry
        tmp.write_text(json.dumps(metrics))
    return metrics, emb


#: Config fields that must agree for runs to share a table.
BUDGET_FIELDS = ("model", "lock_text", "steps", "batch_size", "lr", "eval_split", "max_eval", "max_probe_train", "k")


def load_included_runs(cfg: EmbeddingSuiteConfig, manifest: str) -> list[dict]:
    """Per-run records of earlier suite results (``cfg.include_runs``), checked against this budget."""
    runs = []
    for path in cfg.include_runs:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--include-runs {path}: not a readable suite result JSON ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or "config" not in data:
            raise ConfigError(f"--include-runs {path}: no 'config' and 'runs' (write it with this suite)")
        ours = cfg.to_dict()
        differ = [
            f"{k}: {data['config'].get(k)!r} there, {ours[k]!r} here"
            for k in BUDGET_FIELDS
            if data["config"].get(k) != ours[k]
        ]
        # The same data set built on another machine lives under another root: compare its own folder.
        theirs = str(data.get("manifest", ""))
        if Path(theirs).parts[-2:] != Path(manifest).parts[-2:]:
            differ.append(f"manifest: {theirs!r} there, {manifest!r} here")
        if differ:
            raise ConfigError(
                f"--include-runs {path}: another budget, its runs cannot share this table (" + "; ".join(differ) + ")"
            )
        for run in data["runs"]:
            if run.get("variant") not in VARIANTS or not isinstance(run.get("metrics"), dict):
                raise ConfigError(f"--include-runs {path}: a run without a known variant or metrics: {run}")
            runs.append({**run, "source": run.get("source") or str(path)})
    return runs


def _merge_runs(own: list[dict], included: list[dict]) -> list[dict]:
    """Own runs plus included ones for (variant, seed) pairs not run here, in ladder order then seed."""
    seen = {(r["variant"], r["seed"]) for r in own}
    merged = list(own)
    for run in included:
        if (run["variant"], run["seed"]) not in seen:
            seen.add((run["variant"], run["seed"]))
            merged.append(run)
    order = list(VARIANTS)
    return sorted(merged, key=lambda r: (order.index(r["variant"]), r["seed"]))


def run_embedding_suite(cfg: EmbeddingSuiteConfig) -> dict[str, Any]:
    """Train every variant for every seed (cached), score, write JSON / Markdown / PNG."""
    from eclip_core.atomic import atomic_path
    from eclip_core.data.manifest import read_manifest
    from eval.report_gen.tables import json_default

    cfg.validate()
    t_start = time.perf_counter()
    simulated = cfg.manifest is None
    manifest = cfg.manifest
    if manifest is None:
        from eclip_core.data.phantom import build_phantom_dataset

        manifest = str(build_phantom_dataset(progress=cfg.progress, cache_dir=rag_report_home()))
    studies = read_manifest(manifest)
    simulated = simulated or (bool(studies) and all((s.meta or {}).get("simulated") for s in studies[:50]))
    train_studies = [s for s in studies if s.split == "train"]
    eval_studies = sorted(
        (s for s in studies if s.split == cfg.eval_split and s.report_text.strip()), key=lambda s: s.study_id
    )[: cfg.max_eval or None]
    if not train_studies or not eval_studies:
        raise ConfigError(f"manifest {manifest}: needs train and {cfg.eval_split} studies")
    included = load_included_runs(cfg, manifest)  # fail on a bad file before hours of training
    runs, pictures, gaps = [], {}, {}
    for variant in cfg.variants:
        for seed in cfg.seeds:
            log.info("embedding suite: %s seed %d", variant, seed)
            model_dir, seconds = train_variant(cfg, manifest, variant, seed)
            metrics, emb = _cached_evaluation(model_dir, manifest, train_studies, eval_studies, cfg)
            runs.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "train_seconds": seconds,
                    "model_dir": str(model_dir),
                    "metrics": metrics,
                }
            )
            if seed == cfg.seeds[0] and variant in ("clip", "eclip"):
                label = "CLIP" if variant == "clip" else "eCLIP"
                pictures[label], gaps[label] = emb, metrics["modality_gap"]
    runs = _merge_runs(runs, included)
    out_dir = Path(cfg.out_dir)
    picture = None
    if pictures:
        picture = str(projection_plot(pictures, out_dir / f"{cfg.name}_modality_gap.png", gaps))
    result = {
        "command": cfg.command,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        "manifest": manifest,
        "simulated": simulated,
        "sizes": {
            "train": len(train_studies),
            "expert": sum(s.has_expert for s in train_studies),
            "eval": len(eval_studies),
            # Included runs may predate this count: take it from a run that has it.
            "zero_shot": next((r["metrics"]["zero_shot_n"] for r in runs if "zero_shot_n" in r["metrics"]), 0),
        },
        "variants": {v: {"label": VARIANTS[v][0], "overrides": VARIANTS[v][1]} for v in cfg.variants},
        "definitions": DEFINITIONS,
        "runs": runs,
        "summary": summarise(runs),
        "paired_vs_clip": paired_vs_clip(runs),
        "picture": picture,
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    paths = {"json": out_dir / f"{cfg.name}.json", "markdown": out_dir / f"{cfg.name}.md"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=json_default), encoding="utf-8")
    write_page(paths["markdown"], render_markdown(result), echo=False)
    if picture:
        paths["png"] = Path(picture)
    result["outputs"] = {k: str(v) for k, v in paths.items()}
    return result
