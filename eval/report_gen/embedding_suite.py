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

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eclip_core.errors import ConfigError
from eclip_core.labels import CHEXPERT_OBSERVATIONS, COMMON_FIVE
from eclip_core.paths import rag_report_home
from eval.bench.page import write_page

log = logging.getLogger(__name__)

#: The ablation ladder as TrainConfig overrides (what each rung adds is written next to it).
_ALWAYS_INJECT = dict(cold_frac=0.0, warm_end_frac=0.0, cool_end_frac=0.0, p_start=1.0, p_peak=1.0, p_floor=1.0)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "clip": ("CLIP (no expert data)", {"method": "clip"}),
    "mask": ("+mask (E*I, eCLIP schedule)", {"method": "mask"}),
    "mha": ("+MHA (naive: expert every step, no mixup/curriculum/priming)", {"method": "naive", "priming_weight": 0.0}),
    "mixup": (
        "+mixup (expert every step, no curriculum/priming)",
        {"method": "eclip", "priming_weight": 0.0, **_ALWAYS_INJECT},
    ),
    "curriculum": ("+curriculum (no priming)", {"method": "eclip", "priming_weight": 0.0}),
    "eclip": ("+priming = full eCLIP", {"method": "eclip"}),
    "random": ("random heatmaps (control)", {"method": "random"}),
}
PROBE_FRACTIONS = (0.01, 0.1, 1.0)
METRIC_ORDER = (
    "zero_shot_macro_f1_5",
    "zero_shot_accuracy_5",
    "i2t_R@1",
    "i2t_R@5",
    "i2t_R@10",
    "label_precision@5",
    "alignment",
    "uniformity",
    "modality_gap",
    "probe_auroc_1%",
    "probe_auroc_10%",
    "probe_auroc_100%",
)
ZERO_SHOT_PROMPTS: dict[str, list[str]] = {
    "Atelectasis": ["Atelectasis.", "There is atelectasis.", "Subsegmental atelectasis in the lung base."],
    "Cardiomegaly": ["Cardiomegaly.", "The heart is enlarged.", "Heart size is enlarged."],
    "Consolidation": ["Consolidation.", "There is airspace consolidation.", "Focal consolidation in the lung."],
    "Edema": ["Pulmonary edema.", "There is pulmonary edema.", "Interstitial edema."],
    "Pleural Effusion": ["Pleural effusion.", "There is a pleural effusion.", "Small pleural effusion."],
}


@dataclass
class EmbeddingSuiteConfig:
    """Budget and inputs of the embedding suite (``None`` manifest: the phantom default data)."""

    #: Study manifest (None: the default bundle's phantom data).
    manifest: str | None = None
    #: Model config name of every run (eclip-tiny, eclip-small, ...).
    model: str = "eclip-tiny"
    #: Freeze the text tower except its projection (as the default bundle does).
    lock_text: bool = False
    #: Training steps per run.
    steps: int = 200
    #: Training batch size.
    batch_size: int = 32
    #: Learning rate.
    lr: float = 5e-4
    #: One run per seed and variant.
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    #: Ablation variants to train.
    variants: list[str] = field(default_factory=lambda: list(VARIANTS), metadata={"choices": tuple(VARIANTS)})
    #: Split the embeddings are scored on.
    eval_split: str = "test"
    #: At most this many studies of that split (None = all).
    max_eval: int | None = field(default=None, metadata={"none": ("none", "all", "0"), "metavar": "N|all"})
    #: Linear probe trained on at most this many train studies (seeded subset; None = all).
    max_probe_train: int | None = field(default=1000, metadata={"none": ("none", "all")})
    #: k of label precision@k.
    k: int = 5
    #: Data-loader processes per training run (the weights do not depend on it).
    num_workers: int = 0
    out_dir: str = "runs/embedding"
    name: str = "embedding"
    progress: bool = True
    #: The command line that produced the run (filled in by the CLI).
    command: str = field(default="", metadata={"cli": False})
    #: Result JSON files of earlier runs of this suite (another machine, an earlier cache) whose per-run
    #: metrics join this table; their budget must equal this one. Runs trained here take precedence.
    include_runs: list[str] = field(default_factory=list)

    def validate(self) -> EmbeddingSuiteConfig:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ConfigError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
        self.variants = [v for v in VARIANTS if v in self.variants]
        if not self.seeds:
            raise ConfigError("give at least one seed")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return None, None
    # One seed has no spread to report: None, printed as the bare value (not a misleading "± 0.000").
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else None


def summarise(runs: list[dict]) -> dict[str, dict[str, dict[str, float | None]]]:
    """variant -> metric -> {mean, std, n} over seeds."""
    out: dict[str, dict] = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        these = [r for r in runs if r["variant"] == variant]
        out[variant] = {}
        for metric in METRIC_ORDER:
            mean, std = _mean_std([r["metrics"].get(metric) for r in these])
            out[variant][metric] = {"mean": mean, "std": std, "n": len(these)}
    return out


def paired_vs_clip(runs: list[dict]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """variant -> metric -> {mean, std, higher, n} of (variant - CLIP) over the seeds both have.

    Runs of one seed share their data order and initialisation, so seed-to-seed spread (which is large at
    small budgets) cancels in the paired difference; ``higher`` counts the seeds where the variant is above.
    """
    clip = {r["seed"]: r["metrics"] for r in runs if r["variant"] == "clip"}
    out: dict[str, dict] = {}
    for variant in dict.fromkeys(r["variant"] for r in runs if r["variant"] != "clip"):
        these = {r["seed"]: r["metrics"] for r in runs if r["variant"] == variant and r["seed"] in clip}
        if not these:
            continue
        out[variant] = {}
        for metric in METRIC_ORDER:
            diffs = [
                m[metric] - clip[s][metric]
                for s, m in these.items()
                if m.get(metric) is not None and clip[s].get(metric) is not None
            ]
            mean, std = _mean_std(diffs)
            out[variant][metric] = {"mean": mean, "std": std, "higher": sum(d > 0 for d in diffs), "n": len(diffs)}
    return out


def _paired(cell: dict) -> str:
    if cell["mean"] is None:
        return "n/a"
    spread = "" if cell["std"] is None else f" ± {cell['std']:.3f}"
    return f"{cell['mean']:+.3f}{spread} ({cell['higher']}/{cell['n']})"


def _pm(cell: dict) -> str:
    if cell["mean"] is None:
        return "n/a"
    if cell["std"] is None:
        return f"{cell['mean']:.3f} (1 seed)"
    return f"{cell['mean']:.3f} ± {cell['std']:.3f}"


def render_markdown(result: dict) -> str:
    cfg, summary = result["config"], result["summary"]
    from eval.report_gen.tables import portable_paths

    head = ["variant"] + list(METRIC_ORDER)
    lines = [f"# Embedding suite: eCLIP vs CLIP and the ablation ladder ({cfg['eval_split']} split)", ""]
    if result.get("simulated"):
        lines += [
            "> Phantom (simulated) radiographs with real Open-I report text: numbers do not transfer to real images.",
            "",
        ]
    lines += [
        f"Command: `{portable_paths(result['command'])}`",
        "",
        f"Budget per run (same for every variant): model `{cfg['model']}` (lock_text={cfg['lock_text']}), "
        f"{cfg['steps']} steps, batch {cfg['batch_size']}, lr {cfg['lr']}; seeds {cfg['seeds']}; "
        f"{result['sizes']['train']} train studies ({result['sizes']['expert']} with expert gaze), "
        f"{result['sizes']['eval']} {cfg['eval_split']} studies; zero-shot on {result['sizes']['zero_shot']} "
        "studies positive for exactly one of the 5 common observations. Mean ± std (ddof=1) over seeds.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for variant, cells in summary.items():
        lines.append("| " + " | ".join([VARIANTS[variant][0]] + [_pm(cells[m]) for m in METRIC_ORDER]) + " |")
    paired = result.get("paired_vs_clip") or {}
    if paired:
        lines += [
            "",
            "## Paired with CLIP, seed by seed",
            "",
            "Difference variant - CLIP over the seeds both ran (same data order and initialisation per "
            "seed), mean ± std, and in how many seeds the variant is higher (for alignment and uniformity "
            "lower is better).",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for variant, cells in paired.items():
            lines.append("| " + " | ".join([VARIANTS[variant][0]] + [_paired(cells[m]) for m in METRIC_ORDER]) + " |")
    lines += ["", "## Definitions", ""] + [f"- {d}" for d in result["definitions"]]
    lines += [
        "",
        "## Per run",
        "",
        "| variant | seed | train s | " + " | ".join(METRIC_ORDER) + " |",
        "|" + "---|" * (len(METRIC_ORDER) + 3),
    ]
    for r in result["runs"]:
        vals = [("n/a" if r["metrics"].get(m) is None else f"{r['metrics'][m]:.3f}") for m in METRIC_ORDER]
        secs = r.get("train_seconds")
        secs = "n/a" if secs is None or not np.isfinite(secs) else f"{secs:.0f}"
        lines.append(f"| {r['variant']} | {r['seed']} | {secs} | " + " | ".join(vals) + " |")
    sources = sorted({r["source"] for r in result["runs"] if r.get("source")})
    if sources:
        lines += [
            "",
            "Runs not trained by this command come from: "
            + ", ".join(f"`{s}`" for s in sources)
            + " (their budget checked equal to this one).",
        ]
    if result.get("picture"):
        lines += ["", f"Modality gap picture: `{result['picture']}`"]
    return "\n".join(lines) + "\n"


def projection_plot(
    embeddings: dict[str, dict[str, np.ndarray]],
    path: Path,
    gaps: dict[str, float],
    title: str = "Image and report embeddings, joint PCA (test split, seed 0)",
) -> Path:
    """PCA (fit jointly on image + report embeddings of each model) to 2-D, models side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eclip_core.atomic import atomic_path

    fig, axes = plt.subplots(
        1, len(embeddings), figsize=(6 * len(embeddings), 5.4), squeeze=False, sharex=True, sharey=True
    )
    for ax, (name, emb) in zip(axes[0], embeddings.items()):
        both = np.concatenate([emb["image"], emb["text"]])
        centred = both - both.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
        n = len(emb["image"])
        for a, b in zip(xy[:n][:60], xy[n:][:60]):  # pair lines for a few studies
            ax.plot([a[0], b[0]], [a[1], b[1]], color="grey", alpha=0.15, lw=0.6)
        ax.scatter(xy[:n, 0], xy[:n, 1], s=7, alpha=0.6, label="images", color="tab:blue")
        ax.scatter(xy[n:, 0], xy[n:, 1], s=7, alpha=0.6, label="reports", color="tab:orange")
        ax.set_title(f"{name}: modality gap {gaps.get(name, float('nan')):.3f}")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


DEFINITIONS = [
    "zero-shot: class embedding = mean of the prompt embeddings (prompts in eval/report_gen/embedding_suite.py), "
    "5-way over studies positive for exactly one of Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion; "
    "macro-F1 and accuracy.",
    "i2t R@k: a test image's own report among the k most similar test reports.",
    "label_precision@5: image -> test reports, share of the top 5 whose set of positive observations equals "
    "the image's (eclip_core.quality.label_precision_at_k, mode exact; the study's own report is included).",
    "alignment (paired image/report, alpha 2) and uniformity (of the image embeddings, t 2) after Wang & Isola "
    "(lower is better for both); modality gap = distance between the image and report embedding centroids "
    "(Liang et al.); all from eclip_core.quality.",
    "probe_auroc_X%: one logistic regression per observation on frozen image embeddings, trained on a seeded "
    "X % of the probe's train studies (a seeded subset of at most max_probe_train); macro AUROC over "
    "observations with both classes in the subset and in test.",
    "Labels: the manifest's (CheXpert-style labeler over the real report text); uncertain counts as negative.",
]


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

        manifest = str(build_phantom_dataset(progress=cfg.progress))
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
