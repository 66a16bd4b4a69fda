"""Contact sheet of phantom studies: ``python -m eclip_core.data.phantom.contact_sheet [out.png]``.

About 12 real Open-I studies (a normal one and the main findings), each rendered as its phantom with
the report sentence that describes the finding underneath, and a simulated-gaze heatmap overlay for
a few. Writes docs/images/phantom_examples.png by default.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

import numpy as np

from eclip_core.data.openi import load_openi_reports
from eclip_core.data.phantom.findings import study_findings
from eclip_core.data.phantom.gaze_sim import FILM_PX, simulate_fixations
from eclip_core.data.phantom.render import render_study
from eclip_core.text import join_report, split_sentences

#: (finding kind, words the key sentence should contain, show gaze)
PANELS = (
    ("normal", r"clear|normal", False),
    ("cardiomegaly", r"cardiomegaly|enlarged", False),
    ("effusion", r"effusion", True),
    ("pneumothorax", r"pneumothorax", True),
    ("opacity", r"opacit|consolidation|pneumonia|airspace", False),
    ("atelectasis", r"atelectasis", False),
    ("nodule", r"nodul", True),
    ("granuloma", r"granulom", False),
    ("edema", r"edema|congestion", False),
    ("hyperinflation", r"hyperinfl|emphysema|copd|hyperexpan", False),
    ("scoliosis", r"scoliosis|curvature", False),
    ("pacemaker", r"pacemaker|pacer|defibrillator", False),
)


def pick_studies(reports=None):
    """One (report, findings, key sentence, gaze?) per panel, the first matching study by uid."""
    reports = reports if reports is not None else [r for r in load_openi_reports() if r.has_text]
    chosen, used = [], set()
    for kind, words, gaze in PANELS:
        for r in reports:
            if r.uid in used:
                continue
            text = join_report(r.findings, r.impression)
            fs = study_findings(r.mesh, text)
            kinds = {f.kind for f in fs}
            if kind == "normal":
                ok = r.mesh_major == ["normal"] and not fs
            else:
                ok = kind in kinds and len(kinds) <= 3
            sentences = [
                s
                for s in split_sentences(text)
                if re.search(words, s, re.I) and not re.search(r"\bno\b|without|resolved", s, re.I)
            ]
            if ok and sentences:
                chosen.append((r, fs, sentences[0], gaze, kind))
                used.add(r.uid)
                break
    return chosen


def make_contact_sheet(out: str | Path = "docs/images/phantom_examples.png", size: int = 256) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eclip_core.heatmap.gaze import egd_heatmap

    panels = pick_studies()
    cols = 4
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.2, rows * 3.9), dpi=110)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (rep, fs, sentence, gaze, kind) in zip(axes.ravel(), panels):
        res = render_study(rep.uid, fs, size=size)
        ax.imshow(res.image, cmap="gray", vmin=0, vmax=1)
        if gaze:
            df = simulate_fixations(res, rep.uid, original_size=(FILM_PX, FILM_PX))
            heat = egd_heatmap(df, res.image.shape, original_shape=(FILM_PX, FILM_PX))
            ax.imshow(np.ma.masked_less(heat, 0.3), cmap="inferno", alpha=0.45, vmin=0, vmax=1)
        codes = "; ".join(rep.mesh_major[:2])
        title = f"{rep.uid} - {kind}{' + gaze' if gaze else ''}"
        ax.set_title(title, fontsize=8.5)
        ax.text(
            0.5,
            -0.02,
            "\n".join(textwrap.wrap(f'"{sentence}"', 44)[:3]) + f"\nMeSH: {codes[:46]}",
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=6.8,
        )
    fig.suptitle("Phantom radiographs from real Open-I reports (pixels and gaze SIMULATED)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eclip_core.data.phantom.contact_sheet")
    p.add_argument("out", nargs="?", default="docs/images/phantom_examples.png")
    p.add_argument("--size", type=int, default=256)
    a = p.parse_args(argv)
    print(make_contact_sheet(a.out, a.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
