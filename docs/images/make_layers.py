"""Draws docs/images/layers.png: the package layers and the path of one X-ray through them.

    python docs/images/make_layers.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

LAYERS = [  # (name, what, colour)
    ("eval", "benchmark harness, metrics, bench/ by stage", "#e8e1f5"),
    ("apps", "Gradio page: upload, draft, evidence, checks, SR/FHIR downloads", "#e1eef8"),
    ("rag_report  top", "cli, batch + handoff/, pipeline, bundle", "#fdebd3"),
    ("rag_report  middle", "index/, retrieval/, drafting/, llm/", "#fdebd3"),
    ("rag_report  bottom", "errors, protocols, report, formats/ (SR, FHIR), paths", "#fdebd3"),
    ("eclip_core", "model, towers, heatmap, losses, train, labeler, data (image IO, DICOM)", "#dff2e1"),
]
PATH = [  # (layer index, step)
    (5, "1 read + check the X-ray (image_io, dicom_views)"),
    (5, "2 embed it (EClip image tower)"),
    (3, "3 predict 14 findings (label classifiers)"),
    (3, "4 nearest reports (index) + label boost"),
    (3, "5 draft (top1 | grounded | free) -> hygiene -> checker"),
    (4, "6 DraftReport -> JSON, DICOM SR, FHIR"),
    (2, "7 pipeline / cli / batch / app hand it to the user"),
]


def main(out: Path = Path(__file__).with_name("layers.png")) -> None:
    fig, ax = plt.subplots(figsize=(11, 6.2), dpi=110)
    ax.set_xlim(0, 11)
    ax.set_ylim(0, len(LAYERS) + 0.3)
    ax.axis("off")
    for i, (name, what, colour) in enumerate(LAYERS):
        y = len(LAYERS) - 1 - i
        ax.add_patch(FancyBboxPatch((0.1, y + 0.1), 5.4, 0.8, boxstyle="round,pad=0.02", fc=colour, ec="#555"))
        ax.text(0.25, y + 0.62, name, fontsize=11, weight="bold", va="center")
        ax.text(0.25, y + 0.32, what, fontsize=8.5, va="center", color="#333")
    ax.annotate("", xy=(5.75, 0.2), xytext=(5.75, len(LAYERS) - 0.2), arrowprops=dict(arrowstyle="->", color="#555"))
    ax.text(5.85, len(LAYERS) / 2, "imports point\ndown only\n(lint-imports\nin CI)", fontsize=8, va="center")
    ax.text(6.9, len(LAYERS) + 0.05, "one X-ray, step by step", fontsize=10, weight="bold")
    for n, (layer, step) in enumerate(PATH):
        y = len(LAYERS) - 0.35 - n * 0.8
        ax.text(6.9, y, step, fontsize=8.5, va="center",
                bbox=dict(boxstyle="round,pad=0.25", fc=LAYERS[layer][2], ec="#888"))
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
