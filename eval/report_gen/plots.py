"""Bar chart of the benchmark table (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from eclip_core.atomic import atomic_path
from eval.report_gen.tables import CLINICAL_HEADERS, clinical_value, display_name

#: (title, metrics, y max or None for automatic); CIDEr has its own scale (the oracle scores ~10).
PANELS = (
    ("Report overlap (NLG)", ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L"), 1.05),
    ("CIDEr", ("CIDEr",), None),
    ("Clinical F1 (uncertain -> negative)", ("micro_f1_14", "macro_f1_14", "micro_f1_5", "macro_f1_5"), 1.05),
)


def _value(row: dict, metric: str) -> float | None:
    if metric in CLINICAL_HEADERS:
        return clinical_value(row, "uncertain_as_negative", metric)
    return row["metrics"]["nlg"].get(metric)


def bar_chart(rows: list[dict], path: str | Path, *, title: str = "") -> Path:
    """Grouped bars: one group per metric, one bar per system; missing values (n/a) are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(16, 5.2), gridspec_kw={"width_ratios": [4, 1.3, 4]})
    colors = plt.get_cmap("tab10").colors
    for ax, (panel, metrics, ymax) in zip(axes, PANELS):
        width = 0.8 / max(len(rows), 1)
        x = np.arange(len(metrics))
        for i, row in enumerate(rows):
            vals = [_value(row, m) for m in metrics]
            xs = [x[j] + (i - (len(rows) - 1) / 2) * width for j, v in enumerate(vals) if v is not None]
            label = f"{display_name(row)} (n={row['metrics']['n_studies']})"
            ax.bar(xs, [v for v in vals if v is not None], width, label=label, color=colors[i % len(colors)])
        ax.set_xticks(x, [CLINICAL_HEADERS.get(m, m) for m in metrics])
        ax.set_title(panel)
        if ymax is not None:
            ax.set_ylim(0, ymax)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("score")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(rows), 4), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95 if title else 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
