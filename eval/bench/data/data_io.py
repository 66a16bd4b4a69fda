"""Benchmark: image loading, gaze heatmaps and quality metrics, as ratios against plain baselines.

    python -m eval.bench.data.data_io [--out docs/perf/data_io.md] [--repeats 5]

Baselines run in the same process: Pillow decode + numpy scaling for PNG/JPEG, pydicom
``pixel_array`` for DICOM, ``scipy.ndimage.gaussian_filter`` on the full-resolution count map
for the EGD-CXR recipe (the official implementation), and a per-fixation full-grid loop for REFLACX.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from eclip_core.data.dicom import write_test_dicom
from eclip_core.data.image_io import load_image
from eclip_core.heatmap.gaze import egd_heatmap, reflacx_heatmap
from eclip_core.quality import retrieval_recall, uniformity
from eval.bench.page import write_page

ROOT = Path(__file__).resolve().parents[3]
FIDELITY: dict[str, float] = {}
NOTES = [
    "Notes:",
    "- The CPU is shared with other jobs: single timings vary by up to ~2x between runs; ratios in one run are",
    "  the comparable numbers.",
    "- DICOM: the baseline only unpacks stored values; ours adds rescale, windowing, MONOCHROME1 inversion",
    "  and float32 output (~0.06 s for 5 M pixels).",
    "- Heatmaps take the subsampled ('fast') path only when there are more fixations than subsampled",
    "  columns; with 200 REFLACX fixations at 60 px/degree both rows are the exact computation.",
    "- retrieval_recall selects the top k per row by partial sort (argpartition), not a full sort.",
    "",
]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def synthetic_xray(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    body = np.exp(-(((xx - w / 2) / (0.35 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2))
    return np.clip(body + 0.05 * rng.normal(size=(h, w)), 0, 1)


def bench_images(tmp: Path, repeats: int) -> list[tuple[str, float, float]]:
    rows = []
    img = synthetic_xray(2500, 2000)
    Image.fromarray((img * 255).astype(np.uint8)).save(tmp / "a8.png")
    Image.fromarray((img * 65535).astype(np.uint16)).save(tmp / "a16.png")
    Image.fromarray((img * 255).astype(np.uint8)).save(tmp / "a.jpg", quality=95)
    px12 = (img * 4095).astype(np.uint16)
    write_test_dicom(tmp / "raw.dcm", px12, bits_stored=12, photometric="MONOCHROME1", window=(2048, 4096))
    write_test_dicom(
        tmp / "rle.dcm",
        px12,
        bits_stored=12,
        photometric="MONOCHROME1",
        window=(2048, 4096),
        transfer_syntax="1.2.840.10008.1.2.5",
    )
    write_test_dicom(
        tmp / "j2k.dcm",
        px12,
        bits_stored=12,
        photometric="MONOCHROME1",
        window=(2048, 4096),
        transfer_syntax="1.2.840.10008.1.2.4.90",
    )
    import pydicom

    def pil(path, scale):
        return lambda: np.asarray(Image.open(path), dtype=np.float32) / scale

    def dcm(path):
        return lambda: pydicom.dcmread(path).pixel_array

    for label, path, base in (
        ("PNG 8-bit 2500x2000", "a8.png", pil(tmp / "a8.png", 255.0)),
        ("PNG 16-bit 2500x2000", "a16.png", pil(tmp / "a16.png", 65535.0)),
        ("JPEG 8-bit 2500x2000", "a.jpg", pil(tmp / "a.jpg", 255.0)),
        ("DICOM uncompressed 12-bit, MONOCHROME1 + window", "raw.dcm", dcm(tmp / "raw.dcm")),
        ("DICOM RLE Lossless", "rle.dcm", dcm(tmp / "rle.dcm")),
        ("DICOM JPEG 2000 Lossless", "j2k.dcm", dcm(tmp / "j2k.dcm")),
    ):
        ours = best_of(lambda path=path: load_image(tmp / path), repeats)
        rows.append((label, ours, best_of(base, repeats)))
    return rows


def bench_heatmaps(repeats: int) -> list[tuple[str, float, float]]:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    h, w = 2500, 2000
    pts = np.c_[rng.uniform(0, w, 150), rng.uniform(0, h, 150)]

    def official():
        m = np.zeros((h, w))
        for x, y in pts:
            m[int(y), int(x)] += 1
        m = gaussian_filter(m, 150.0)
        return m / m.max()

    t = time.perf_counter()
    ref = official()
    official_t = time.perf_counter() - t
    FIDELITY["EGD fast path vs official (max abs diff, peak = 1)"] = float(np.abs(egd_heatmap(pts, (h, w)) - ref).max())
    FIDELITY["EGD exact path vs official (max abs diff, peak = 1)"] = float(
        np.abs(egd_heatmap(pts, (h, w), exact=True) - ref).max()
    )
    rows = [
        (
            "EGD-CXR 150 fixations, 2500x2000 map (fast path)",
            best_of(lambda: egd_heatmap(pts, (h, w)), repeats),
            official_t,
        ),
        (
            "EGD-CXR 150 fixations, 2500x2000 map (exact path)",
            best_of(lambda: egd_heatmap(pts, (h, w), exact=True), repeats),
            official_t,
        ),
        (
            "EGD-CXR 150 fixations, 224x224 map",
            best_of(lambda: egd_heatmap(pts, (224, 224), original_shape=(h, w)), repeats),
            official_t,
        ),
    ]
    n = 200
    fix = pd.DataFrame(
        {
            "timestamp_start_fixation": np.arange(n) * 0.3,
            "timestamp_end_fixation": np.arange(n) * 0.3 + 0.25,
            "x_position": rng.uniform(0, w, n),
            "y_position": rng.uniform(0, h, n),
            "angular_resolution_x_pixels_per_degree": 60.0,
            "angular_resolution_y_pixels_per_degree": 60.0,
            "xmin_shown_from_image": 0,
            "ymin_shown_from_image": 0,
            "xmax_shown_from_image": w,
            "ymax_shown_from_image": h,
        }
    )

    def naive():
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        m = np.zeros((h, w), np.float32)
        for _, r in fix.iloc[:20].iterrows():  # 20 fixations, scaled up by n/20 below
            m += np.exp(-((xx - r.x_position) ** 2 + (yy - r.y_position) ** 2) / (2 * 60.0**2))
        return m

    naive_t = best_of(naive, 1) * n / 20
    fast, exact = reflacx_heatmap(fix, (h, w)), reflacx_heatmap(fix, (h, w), exact=True)
    FIDELITY["REFLACX fast path vs exact (max abs diff / peak)"] = float(np.abs(fast - exact).max() / exact.max())
    rows.append(
        (
            "REFLACX 200 fixations, 2500x2000 map (fast path)",
            best_of(lambda: reflacx_heatmap(fix, (h, w)), repeats),
            naive_t,
        )
    )
    rows.append(
        (
            "REFLACX 200 fixations, 2500x2000 map (exact path)",
            best_of(lambda: reflacx_heatmap(fix, (h, w), exact=True), repeats),
            naive_t,
        )
    )
    return rows


def bench_quality(repeats: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    n, d = 5000, 512
    x, t = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    ids = [str(i) for i in range(n)]

    def naive():  # full argsort of the whole similarity matrix, both directions
        s = x @ t.T
        np.argsort(-s, axis=1)
        np.argsort(-s.T, axis=1)

    return [
        (
            f"retrieval_recall i2t+t2i, {n}x{n}, dim {d}",
            best_of(lambda: retrieval_recall(x, t, ids, ids), 1),
            best_of(naive, 1),
        ),
        (f"uniformity, {n} x dim {d} (4096-sample cap)", best_of(lambda: uniformity(x), 1), float("nan")),
    ]


def _wrap(text: str) -> str:
    # MIMIC-style hard wrapping at 70 columns with a leading space on continuation lines.
    return "\n ".join(textwrap.wrap(text, 70, break_on_hyphens=False, break_long_words=False))


#: Report layouts seen in MIMIC-CXR and other archives: (name, text(findings, impression, indication),
#: expected findings, expected impression). Expected values use the same wrapped-and-joined text.
SECTION_TEMPLATES = [
    (
        "FINDINGS:/IMPRESSION: headings on their own lines",
        lambda f, i, ind: f"FINDINGS:\n{f}\n\nIMPRESSION:\n{i}",
        "f",
        "i",
    ),
    ("Title-case 'Findings:'/'Impression:' inline", lambda f, i, ind: f"Findings: {f}\nImpression: {i}", "f", "i"),
    ("headings without colons", lambda f, i, ind: f"FINDINGS\n{f}\nIMPRESSION\n{i}", "f", "i"),
    (
        "INDICATION + FINDINGS + CONCLUSION",
        lambda f, i, ind: f"FINAL REPORT\nINDICATION: {ind}\n\nFINDINGS: {f}\n\nCONCLUSION: {i}",
        "f",
        "i",
    ),
    (
        "MIMIC layout, wrapped at 70 columns",
        lambda f, i, ind: (
            f"                FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n \n INDICATION:  {ind}\n \n"
            f" TECHNIQUE:  PA and lateral\n \n FINDINGS:\n \n {_wrap(f)}\n \n IMPRESSION:\n \n {_wrap(i)}\n"
        ),
        "f",
        "i",
    ),
    ("no headings (fallback: last paragraph = impression)", lambda f, i, ind: f"{_wrap(f)}\n\n{_wrap(i)}", "", "i"),
    (
        "combined FINDINGS AND IMPRESSION",
        lambda f, i, ind: f"COMPARISON: None.\nFINDINGS AND IMPRESSION: {f} {i}",
        "f i",
        "",
    ),
    (
        "WET READ + FINAL REPORT + RECOMMENDATION(S)",
        lambda f, i, ind: (
            f"WET READ: ___ 3:12 PM\n  no acute process\n\nFINAL REPORT\nFINDINGS: {f}\nIMPRESSION: {i}\n"
            "RECOMMENDATION(S): follow-up as clinically indicated."
        ),
        "f",
        "i",
    ),
]


def bench_sectioning() -> tuple[int, list[tuple[str, float, int]], list[str]]:
    """Exact recovery of findings/impression from real Open-I report text laid out 8 ways."""
    from eclip_core.data.builders.sectioning import section_report
    from eclip_core.data.openi import load_openi_reports

    def norm(t: str) -> str:
        return re.sub(r"\s+", " ", t).strip()

    reports = [r for r in load_openi_reports() if r.findings and r.impression]
    rows, failures = [], []
    for name, make, want_f, want_i in SECTION_TEMPLATES:
        ok = 0
        for r in reports:
            f, i = norm(r.findings), norm(r.impression)
            got = section_report(make(f, i, r.indication or "cough"))
            exp_f = {"f": f, "": "", "f i": f"{f} {i}"}[want_f]
            exp_i = {"i": i, "": ""}[want_i]
            if norm(got.findings) == exp_f and norm(got.impression) == exp_i:
                ok += 1
            elif len(failures) < 3:
                failures.append(f"{name}: {r.uid}")
        rows.append((name, ok / len(reports), len(reports) - ok))
    return len(reports), rows, failures


def write_sectioning_results(path: Path) -> None:
    n, rows, failures = bench_sectioning()
    lines = [
        "# Report sectioning on real report text",
        "",
        "Command: `python -m eval.bench.data.data_io --sectioning`  ",
        f"Data: the {n} real Open-I reports (torchxrayvision 1.5.7) that have both FINDINGS and IMPRESSION,",
        "each written out in eight free-text layouts; a report counts as correct when",
        "`eclip_core.data.builders.sectioning.section_report` returns exactly its findings and impression",
        "(whitespace-normalised). No MIMIC-CXR text is available offline, so the layouts imitate it.",
        "",
        "| layout | exact recovery | failures |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {acc:.4f} | {bad} |" for name, acc, bad in rows]
    lines += [
        "",
        "First failures: " + (", ".join(failures) if failures else "none"),
        "",
        "(CXR2415's source IMPRESSION embeds a second copy of the whole report, with its own FINDINGS: and",
        "IMPRESSION: headings; once wrapped onto lines, the sectioner splits it there.)",
        "",
    ]
    write_page(path, lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "perf" / "data_io.md"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--sectioning",
        action="store_true",
        help="only score report sectioning on real Open-I text (writes docs/results/data_io.md)",
    )
    args = ap.parse_args(argv)
    if args.sectioning:
        write_sectioning_results(ROOT / "docs" / "results" / "data_io.md")
        return 0
    with tempfile.TemporaryDirectory() as d:
        images = bench_images(Path(d), args.repeats)
    heat = bench_heatmaps(args.repeats)
    qual = bench_quality(args.repeats)
    lines = [
        "# Data IO, heatmaps and quality metrics: performance",
        "",
        f"Command: `python -m eval.bench.data.data_io --repeats {args.repeats}`  ",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {sys.version.split()[0]}, "
        "shared 2-core CPU; best of N runs, seconds; ratio = ours / baseline (lower is better).",
        "",
    ]
    for title, rows, base in (
        (
            "load_image (float32 [0,1] output, full pipeline)",
            images,
            "Pillow decode + scale / pydicom pixel_array (no LUTs)",
        ),
        (
            "Expert heatmaps",
            heat,
            "scipy gaussian_filter on the count map (EGD, official) / per-fixation full-grid Gaussians (REFLACX)",
        ),
        ("Quality metrics", qual, "full argsort of the similarity matrix"),
    ):
        lines += [
            f"## {title}",
            "",
            f"Baseline: {base}.",
            "",
            "| case | ours (s) | baseline (s) | ratio |",
            "|---|---:|---:|---:|",
        ]
        for label, ours, b in rows:
            ratio = ours / b if b == b and b > 0 else float("nan")
            lines.append(f"| {label} | {ours:.4f} | {b:.4f} | {ratio:.3f} |")
        lines.append("")
    lines += ["## Heatmap fidelity", "", "| comparison | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2e} |" for k, v in FIDELITY.items()] + [""]
    lines += NOTES
    write_page(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
