"""A tiny synthetic image-report dataset whose text states the image content (tests and benchmarks).

Each image is a noisy grey field with one bright blob in one of 3x3 positions and 2 sizes; the report
says where and how big (18 distinct findings). Expert rows get a ``.npy`` heatmap peaking on the blob.

>>> import tempfile
>>> m = make_blob_dataset(tempfile.mkdtemp(), n=4, size=32, progress=False)
>>> m.name
'manifest.csv'
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from eclip_core.data.manifest import Study, write_manifest

ROWS = ("upper", "middle", "lower")
COLS = ("left", "central", "right")
SIZES = ("small", "large")


def blob_image(row: int, col: int, big: bool, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image in [0,1], heatmap with max 1) for a blob at grid cell (row, col)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy = (row + 0.5) / 3 * size + rng.normal(0, size * 0.03)
    cx = (col + 0.5) / 3 * size + rng.normal(0, size * 0.03)
    sigma = size * (0.11 if big else 0.05)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    base = 0.25 + 0.1 * rng.random() + 0.05 * np.sin(xx / size * np.pi)
    img = np.clip(base + 0.6 * blob + rng.normal(0, 0.04, (size, size)), 0, 1).astype(np.float32)
    heat = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (sigma * 1.5) ** 2)).astype(np.float32)
    return img, heat / heat.max()


def blob_report(row: int, col: int, big: bool) -> str:
    return (
        f"There is a {'large' if big else 'small'} bright opacity in the {ROWS[row]} {COLS[col]} region. "
        f"No other findings."
    )


def make_blob_dataset(
    out_dir: str | os.PathLike,
    n: int = 100,
    size: int = 64,
    expert_fraction: float = 0.3,
    seed: int = 0,
    split: str = "train",
    progress: bool = False,
) -> Path:
    """Write ``n`` PNG images (+ heatmaps for ``expert_fraction`` of them) and ``manifest.csv``; return its path."""
    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    studies = []
    for i in range(n):
        cls = i % (len(ROWS) * len(COLS) * len(SIZES))
        row, col, big = cls // 6, (cls // 2) % 3, bool(cls % 2)
        img, heat = blob_image(row, col, big, size, rng)
        path = out / "img" / f"s{i:04d}.png"
        Image.fromarray((img * 255).round().astype(np.uint8)).save(path)
        hpath = None
        if rng.random() < expert_fraction:
            hpath = str(out / "img" / f"s{i:04d}_heat.npy")
            np.save(hpath, heat)
        studies.append(
            Study(
                f"s{i:04d}",
                [str(path)],
                split,
                findings=blob_report(row, col, big),
                heatmap_path=hpath,
                meta={"synthetic": True, "class": cls},
            )
        )
    manifest = out / "manifest.csv"
    write_manifest(studies, manifest)
    return manifest
