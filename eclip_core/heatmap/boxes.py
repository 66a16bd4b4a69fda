"""Bounding boxes -> expert heatmaps (NIH BBox_List_2017, VinDr-CXR, EGD-CXR bounding_boxes.csv).

Each box paints its area with weight 1; overlapping boxes add up; an optional Gaussian blur
(sigma in original pixels) softens the edges; the map is scaled to max 1. Pixels partly covered by
a box get the covered fraction, computed exactly and separably (a box is the outer product of two
1-D coverage profiles), so a map can be rendered at any resolution without resampling artefacts.

>>> m = boxes_heatmap([(2, 2, 6, 4)], (8, 8))
>>> float(m.sum()), float(m.max()), m[3, 3].item(), m[0, 0].item()
(8.0, 1.0, 1.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from eclip_core.errors import EClipError
from eclip_core.heatmap.gaze import check_shape, max_scale

#: Accepted column layouts, each mapped to (x_min, y_min, x_max, y_max) or (x, y, w, h).
_CORNER_LAYOUTS = (("x_min", "y_min", "x_max", "y_max"), ("xmin", "ymin", "xmax", "ymax"), ("x1", "y1", "x2", "y2"))
_SIZE_LAYOUTS = (("Bbox [x", "y", "w", "h]"), ("x", "y", "w", "h"), ("Bbox_x", "Bbox_y", "Bbox_w", "Bbox_h"))


def boxes_from_frame(df: pd.DataFrame) -> np.ndarray:
    """(N, 4) array of (x_min, y_min, x_max, y_max) from a VinDr / EGD / NIH style table.

    Rows without coordinates (VinDr "No finding") are dropped.

    >>> boxes_from_frame(pd.DataFrame({"Bbox [x": [1.0], "y": [2.0], "w": [3.0], "h]": [4.0]})).tolist()
    [[1.0, 2.0, 4.0, 6.0]]
    """
    cols = [str(c).strip() for c in df.columns]
    df = df.set_axis(cols, axis=1)
    for layout in _CORNER_LAYOUTS:
        if all(c in cols for c in layout):
            a = df[list(layout)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
            break
    else:
        for layout in _SIZE_LAYOUTS:
            if all(c in cols for c in layout):
                s = df[list(layout)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
                a = np.stack([s[:, 0], s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 3]], axis=1)
                break
        else:
            raise EClipError(
                f"box table has no known coordinate columns; expected one of "
                f"{[list(x) for x in _CORNER_LAYOUTS + _SIZE_LAYOUTS]}, got {cols}"
            )
    return a[np.isfinite(a).all(axis=1)]


def _coverage(n_target: int, n_orig: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[N, n_target] fraction of each target pixel's span (in original px) inside [lo, hi)."""
    scale = n_orig / n_target
    left = np.arange(n_target) * scale
    right = left + scale
    cov = np.minimum(right[None, :], hi[:, None]) - np.maximum(left[None, :], lo[:, None])
    return np.clip(cov, 0.0, None) / scale


def boxes_heatmap(
    boxes: pd.DataFrame | Iterable[Sequence[float]],
    image_shape: Sequence[int],
    *,
    original_shape: Sequence[int] | None = None,
    sigma: float = 0.0,
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """Render boxes into an HxW float32 map with max 1 (all zeros when no box is inside).

    ``boxes``: a table (see :func:`boxes_from_frame`) or (x_min, y_min, x_max, y_max) tuples in
    pixels of the original image (``original_shape``, default ``image_shape``). ``sigma``: optional
    Gaussian blur in original pixels. ``weights``: per-box weight (default 1), e.g. a certainty.
    """
    h, w = check_shape(image_shape)
    oh, ow = check_shape(original_shape or image_shape)
    a = (
        boxes_from_frame(boxes)
        if isinstance(boxes, pd.DataFrame)
        else np.asarray(list(boxes), np.float64).reshape(-1, 4)
    )
    wts = np.ones(len(a)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if len(wts) != len(a):
        raise ValueError(f"weights has {len(wts)} entries for {len(a)} boxes")
    x0, x1 = np.minimum(a[:, 0], a[:, 2]), np.maximum(a[:, 0], a[:, 2])
    y0, y1 = np.minimum(a[:, 1], a[:, 3]), np.maximum(a[:, 1], a[:, 3])
    m = (_coverage(h, oh, y0, y1) * wts[:, None]).T @ _coverage(w, ow, x0, x1)
    if sigma > 0 and m.any():
        from scipy.ndimage import gaussian_filter

        m = gaussian_filter(m, sigma=(sigma * h / oh, sigma * w / ow))
    return max_scale(m, "boxes")
