"""The embedding suite's results: mean ± std over seeds, paired differences with CLIP seed by seed, the
Markdown page and the 2-D projection picture of image and report embeddings.

>>> runs = [{"variant": "clip", "seed": 0, "metrics": {"i2t_R@1": 0.25}},
...         {"variant": "eclip", "seed": 0, "metrics": {"i2t_R@1": 0.5}}]
>>> paired_vs_clip(runs)["eclip"]["i2t_R@1"]
{'mean': 0.25, 'std': None, 'higher': 1, 'n': 1}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eval.report_gen.embedding_variants import METRIC_ORDER, VARIANTS


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
    "zero-shot: class embedding = mean of the prompt embeddings (prompts in eval/report_gen/embedding_variants.py), "
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
