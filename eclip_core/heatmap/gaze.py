"""Radiologist eye gaze -> expert heatmaps, with the two datasets' official recipes.

EGD-CXR (Karargyris et al. 2021): one count per fixation at (X_ORIGINAL, Y_ORIGINAL) on the
original image grid, then a Gaussian filter with sigma = 150 px (scipy's default ``reflect``
border), scaled to max 1.

REFLACX (Bigolin Lanfredi et al. 2022): per fixation a 2-D Gaussian with sigma = 1 degree of
visual angle (``angular_resolution_{x,y}_pixels_per_degree`` px), kept only inside the region shown
on screen (``{x,y}{min,max}_shown_from_image``), weighted by the fixation's duration, then the map
is normalised to sum 1.

How it is computed (fast, and exact where it matters). A count map filtered by a Gaussian is a sum
of Gaussians centred on the counted pixels, and every term here is separable, so a map is
``Py.T @ diag(w) @ Px`` with one 1-D profile per fixation and axis, evaluated directly at the
centres of the *requested* grid's pixels mapped into original-image coordinates. The EGD border
reflection is reproduced by adding each fixation's mirror images about both edges, and kernels
are cut at 4 sigma like scipy's; the result matches ``scipy.ndimage.gaussian_filter`` on the
original grid to float32 precision and is much faster than filtering the full-resolution count map
(both measured in docs/perf/data_io.md). When the requested grid has more than ~6 pixels per sigma (e.g.
a full-resolution 2,500 px map) and there are more fixations than subsampled columns, the map is computed on every
f-th row/column (f = sigma_px // 6) and filled in by bilinear interpolation (error < 0.5 % of the
peak), so its cost no longer grows with the number of fixations. REFLACX's shown-region cut is
applied exactly after that fill-in, per group of fixations sharing a region (more than 8 distinct
regions: everything is rendered exactly on the full grid).

>>> import pandas as pd
>>> fix = pd.DataFrame({"X_ORIGINAL": [500.0], "Y_ORIGINAL": [450.0]})
>>> h = egd_heatmap(fix, (1000, 1000))
>>> h.shape, float(h.max()), np.unravel_index(h.argmax(), h.shape)
((1000, 1000), 1.0, (np.int64(450), np.int64(500)))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eclip_core.errors import FixationsError

log = logging.getLogger(__name__)

#: Every column of the EGD-CXR fixations.csv / eye_gaze.csv (data-sources.md).
EGD_COLUMNS: tuple[str, ...] = (
    "SESSION_ID",
    "MEDIA_ID",
    "DICOM_ID",
    "CNT",
    "Time (in secs)",
    "TIMETICK(f=10000000)",
    "FPOGX",
    "FPOGY",
    "FPOGS",
    "FPOGD",
    "FPOGID",
    "FPOGV",
    "BPOGX",
    "BPOGY",
    "BPOGV",
    "LPCX",
    "LPCY",
    "LPD",
    "LPS",
    "LPV",
    "RPCX",
    "RPCY",
    "RPD",
    "RPS",
    "RPV",
    "BKID",
    "BKDUR",
    "BKPMIN",
    "LPMM",
    "LPMMV",
    "RPMM",
    "RPMMV",
    "SACCADE_MAG",
    "SACCADE_DIR",
    "VID_FRAME",
    "X_ORIGINAL",
    "Y_ORIGINAL",
)
#: Columns the heatmap recipe needs; always required.
EGD_REQUIRED: tuple[str, ...] = ("DICOM_ID", "FPOGX", "FPOGY", "FPOGD", "X_ORIGINAL", "Y_ORIGINAL")

#: Every column of a REFLACX main_data/<id>/fixations.csv that the recipe or validation uses.
REFLACX_REQUIRED: tuple[str, ...] = (
    "timestamp_start_fixation",
    "timestamp_end_fixation",
    "x_position",
    "y_position",
    "angular_resolution_x_pixels_per_degree",
    "angular_resolution_y_pixels_per_degree",
    "xmin_shown_from_image",
    "ymin_shown_from_image",
    "xmax_shown_from_image",
    "ymax_shown_from_image",
)
REFLACX_COLUMNS: tuple[str, ...] = REFLACX_REQUIRED + ("pupil_area_normalized", "window_width", "window_level")

EGD_SIGMA = 150.0
_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default kernel radius, in sigmas
_SAMPLES_PER_SIGMA = 6.0
_MAX_REGION_GROUPS = 8  # distinct REFLACX shown regions rendered the fast way


# ----------------------------------------------------------------------------------------- readers
def _read_csv(path: str | os.PathLike, kind: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FixationsError(f"{kind} fixations file {path} does not exist")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise FixationsError(f"{kind} fixations file {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise FixationsError(f"{kind} fixations file {path} is not a readable CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _validate(df: pd.DataFrame, required: Sequence[str], numeric: Sequence[str], path: Any, kind: str) -> pd.DataFrame:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise FixationsError(
            f"{path}: not a {kind} fixations file: missing column(s) {missing}; "
            f"it has {list(df.columns)[:20]}{' ...' if len(df.columns) > 20 else ''}"
        )
    for col in numeric:
        converted = pd.to_numeric(df[col], errors="coerce")
        bad = converted.isna() & df[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise FixationsError(f"{path}: column {col!r} must be numeric; row {row + 2} has {df[col].iloc[row]!r}")
        df[col] = converted
    return df


def read_egd_fixations(path: str | os.PathLike, *, strict: bool = False) -> pd.DataFrame:
    """Read an EGD-CXR fixations.csv / eye_gaze.csv (or a per-image slice of it).

    Requires :data:`EGD_REQUIRED` (all of :data:`EGD_COLUMNS` when ``strict``); raises
    :class:`FixationsError` listing the missing columns or the first non-numeric coordinate.
    ``DICOM_ID`` is read as text.
    """
    df = _read_csv(path, "EGD-CXR")
    df = _validate(df, EGD_COLUMNS if strict else EGD_REQUIRED, ("X_ORIGINAL", "Y_ORIGINAL", "FPOGD"), path, "EGD-CXR")
    df["DICOM_ID"] = df["DICOM_ID"].astype(str)
    return df


def read_reflacx_fixations(path: str | os.PathLike, *, strict: bool = False) -> pd.DataFrame:
    """Read a REFLACX ``main_data/<id>/fixations.csv``; raises :class:`FixationsError` like the EGD reader."""
    df = _read_csv(path, "REFLACX")
    required = REFLACX_COLUMNS if strict else REFLACX_REQUIRED
    return _validate(df, required, REFLACX_REQUIRED, path, "REFLACX")


# -------------------------------------------------------------------------------- separable maths
def pixel_centres(n_target: int, n_orig: float) -> np.ndarray:
    """Original-grid coordinates of the centres of ``n_target`` pixels spanning ``n_orig`` pixels."""
    return (np.arange(n_target) + 0.5) * (float(n_orig) / n_target) - 0.5


def _gauss(grid: np.ndarray, centres: np.ndarray, sigma: np.ndarray | float, truncate: float | None) -> np.ndarray:
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), centres.shape)[:, None]
    d = (grid[None, :] - centres[:, None]) / sigma
    g = np.exp(-0.5 * d * d)
    if truncate is not None:
        g[np.abs(d) > truncate] = 0.0
    return g


def _sample_positions(n: int, step: int) -> np.ndarray:
    pos = np.arange(0, n, step)
    return pos if pos[-1] == n - 1 else np.append(pos, n - 1)


def _interp_matrix(samples: np.ndarray, n: int) -> np.ndarray:
    """[n, len(samples)] linear-interpolation weights from sampled positions to every index 0..n-1."""
    idx = np.arange(n, dtype=np.float64)
    hi = np.clip(np.searchsorted(samples, idx, side="right"), 1, len(samples) - 1)
    lo = hi - 1
    t = (idx - samples[lo]) / (samples[hi] - samples[lo])
    a = np.zeros((n, len(samples)))
    a[np.arange(n), lo] = 1.0 - t
    a[np.arange(n), hi] += t
    return a


def render_separable(
    profile_y, profile_x, weights: np.ndarray, shape: tuple[int, int], sigma_px: float, exact: bool = False
) -> np.ndarray:
    """Sum over items of ``w_i * py_i(y) * px_i(x)`` on an HxW grid (float32).

    ``profile_y(rows) -> [N, len(rows)]`` evaluates each item's 1-D profile at the given target rows
    (likewise ``profile_x``). ``sigma_px`` is the smallest feature width in target pixels; when it
    spans more than ~6 pixels and there are more items than subsampled columns, the map is computed
    on a subsampled grid and bilinearly filled in (cost H*W*columns instead of H*W*items).
    """
    h, w = shape
    n = len(weights)
    step = 1 if exact else max(1, int(sigma_px // _SAMPLES_PER_SIGMA))
    if step > 1 and len(_sample_positions(w, step)) >= n:
        step = 1  # few items: the direct product is the cheaper one, and exact
    rows, cols = _sample_positions(h, step), _sample_positions(w, step)
    # float32: the maps are max- or sum-scaled afterwards, and BLAS runs twice as fast.
    py = profile_y(rows).astype(np.float32)
    px = profile_x(cols).astype(np.float32)
    coarse = (py * weights.astype(np.float32)[:, None]).T @ px
    if step == 1:
        return coarse
    # Bilinear fill-in as two small matrix products (BLAS), far cheaper than per-pixel indexing.
    ay = _interp_matrix(rows.astype(np.float64), h).astype(np.float32)
    ax = _interp_matrix(cols.astype(np.float64), w).astype(np.float32)
    return (ay @ coarse) @ ax.T


def max_scale(m: np.ndarray, what: str) -> np.ndarray:
    peak = float(m.max()) if m.size else 0.0
    if peak <= 0:
        log.warning("%s: no fixation or box falls inside the image; returning an all-zero map", what)
        return np.zeros(m.shape, np.float32)
    return (m / peak).astype(np.float32)


def check_shape(image_shape: Sequence[int]) -> tuple[int, int]:
    if len(image_shape) < 2 or int(image_shape[0]) <= 0 or int(image_shape[1]) <= 0:
        raise ValueError(f"image_shape must be (height, width) with positive sizes, got {tuple(image_shape)}")
    return int(image_shape[0]), int(image_shape[1])


# ---------------------------------------------------------------------------------------- EGD-CXR
def egd_heatmap(
    fixations: pd.DataFrame | np.ndarray,
    image_shape: Sequence[int],
    sigma: float = EGD_SIGMA,
    *,
    original_shape: Sequence[int] | None = None,
    exact: bool = False,
) -> np.ndarray:
    """EGD-CXR static heatmap (HxW float32, max 1) on a grid of ``image_shape``.

    ``fixations``: a DataFrame with X_ORIGINAL / Y_ORIGINAL or an (N, 2) array of (x, y), in pixels
    of the original image, whose (height, width) is ``original_shape`` (default ``image_shape``).
    ``sigma`` is in original pixels. Fixations outside the original image are ignored.
    """
    h, w = check_shape(image_shape)
    oh, ow = check_shape(original_shape or image_shape)
    if isinstance(fixations, pd.DataFrame):
        missing = [c for c in ("X_ORIGINAL", "Y_ORIGINAL") if c not in fixations.columns]
        if missing:
            raise FixationsError(f"EGD-CXR fixations lack column(s) {missing}")
        xy = fixations[["X_ORIGINAL", "Y_ORIGINAL"]].to_numpy(dtype=np.float64)
    else:
        xy = np.asarray(fixations, dtype=np.float64).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    # One count per fixation at its integer pixel, as the official count map does.
    ix, iy = np.floor(xy[:, 0]), np.floor(xy[:, 1])
    inside = (ix >= 0) & (ix < ow) & (iy >= 0) & (iy < oh)
    ix, iy = ix[inside], iy[inside]
    if ix.size == 0:
        return max_scale(np.zeros((h, w)), "EGD-CXR fixations")

    def profile(centres: np.ndarray, n_orig: int, n_target: int):
        def f(samples: np.ndarray) -> np.ndarray:
            grid = pixel_centres(n_target, n_orig)[samples]
            # scipy's "reflect" border = mirror images of each point about -0.5 and n - 0.5.
            return (
                _gauss(grid, centres, sigma, _TRUNCATE)
                + _gauss(grid, -1.0 - centres, sigma, _TRUNCATE)
                + _gauss(grid, 2.0 * n_orig - 1.0 - centres, sigma, _TRUNCATE)
            )

        return f

    sigma_px = sigma * min(h / oh, w / ow)
    m = render_separable(profile(iy, oh, h), profile(ix, ow, w), np.ones(ix.size), (h, w), sigma_px, exact)
    return max_scale(m, "EGD-CXR fixations")


# ---------------------------------------------------------------------------------------- REFLACX
def reflacx_heatmap(
    fixations: pd.DataFrame,
    image_shape: Sequence[int],
    *,
    original_shape: Sequence[int] | None = None,
    normalize: str = "sum",
    exact: bool = False,
) -> np.ndarray:
    """REFLACX heatmap (HxW float32): duration-weighted 1-degree Gaussians inside the shown region.

    Each fixation adds ``duration * N(x; x_position, sx) * N(y; y_position, sy)`` (a normalised 2-D
    Gaussian, sx/sy = the angular_resolution_*_pixels_per_degree columns) wherever the pixel lies
    inside that fixation's shown rectangle. ``normalize="sum"`` (the official recipe) scales the map
    to sum 1, ``"max"`` to max 1, ``"none"`` leaves it. Coordinates are original-image pixels.
    """
    h, w = check_shape(image_shape)
    oh, ow = check_shape(original_shape or image_shape)
    df = _validate(fixations.copy(), REFLACX_REQUIRED, REFLACX_REQUIRED, "<fixations>", "REFLACX")
    df = df.dropna(subset=list(REFLACX_REQUIRED))
    dur = (df["timestamp_end_fixation"] - df["timestamp_start_fixation"]).to_numpy(np.float64)
    sx = df["angular_resolution_x_pixels_per_degree"].to_numpy(np.float64)
    sy = df["angular_resolution_y_pixels_per_degree"].to_numpy(np.float64)
    keep = (dur > 0) & (sx > 0) & (sy > 0)
    df, dur, sx, sy = df[keep], dur[keep], sx[keep], sy[keep]
    if len(df) == 0:
        return max_scale(np.zeros((h, w)), "REFLACX fixations")
    cx, cy = df["x_position"].to_numpy(np.float64), df["y_position"].to_numpy(np.float64)
    x0, x1 = df["xmin_shown_from_image"].to_numpy(np.float64), df["xmax_shown_from_image"].to_numpy(np.float64)
    y0, y1 = df["ymin_shown_from_image"].to_numpy(np.float64), df["ymax_shown_from_image"].to_numpy(np.float64)

    def profile(centres, sig, n_orig, n_target, lo=None, hi=None):
        def f(samples: np.ndarray) -> np.ndarray:
            grid = pixel_centres(n_target, n_orig)[samples]
            g = _gauss(grid, centres, sig, None) / (np.sqrt(2 * np.pi) * sig[:, None])
            if lo is not None:
                g = g * ((grid[None, :] >= lo[:, None]) & (grid[None, :] <= hi[:, None]))
            return g

        return f

    sigma_px = float(min(sy.min() * h / oh, sx.min() * w / ow))
    rects = np.stack([x0, x1, y0, y1], axis=1)
    groups = np.unique(rects, axis=0)
    if exact or len(groups) > _MAX_REGION_GROUPS:
        # Many distinct shown regions: mask each fixation's profiles exactly, on the full grid.
        m = render_separable(
            profile(cy, sy, oh, h, y0, y1), profile(cx, sx, ow, w, x0, x1), dur, (h, w), sigma_px, exact=True
        )
    else:
        # Fixations sharing a shown region share its mask, so render each group's smooth sum fast
        # (subsampled) and cut it to the region exactly afterwards: no blur across the region's edge.
        m = np.zeros((h, w))
        gy, gx = pixel_centres(h, oh), pixel_centres(w, ow)
        for gx0, gx1, gy0, gy1 in groups:
            sel = (rects == (gx0, gx1, gy0, gy1)).all(axis=1)
            part = render_separable(
                profile(cy[sel], sy[sel], oh, h), profile(cx[sel], sx[sel], ow, w), dur[sel], (h, w), sigma_px
            )
            m += part * np.outer((gy >= gy0) & (gy <= gy1), (gx >= gx0) & (gx <= gx1))
    if normalize == "none":
        return m.astype(np.float32)
    if normalize == "max":
        return max_scale(m, "REFLACX fixations")
    if normalize != "sum":
        raise ValueError(f"normalize must be 'sum', 'max' or 'none', got {normalize!r}")
    total = float(m.sum())
    if total <= 0:
        return max_scale(m, "REFLACX fixations")
    return (m / total).astype(np.float32)


REFLACX_SENTENCE_LEAD_S = 5.0


def reflacx_sentence_heatmap(
    fixations: pd.DataFrame,
    start: float,
    end: float,
    image_shape: Sequence[int],
    *,
    lead: float = REFLACX_SENTENCE_LEAD_S,
    original_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """REFLACX sentence-level map: fixations from ``lead`` s before the sentence's start to its end
    (timestamps in the transcription's clock, seconds), same Gaussians, normalised to max 1.

    A fixation counts when any part of it falls inside ``[start - lead, end]``.
    """
    df = _validate(fixations.copy(), REFLACX_REQUIRED, REFLACX_REQUIRED, "<fixations>", "REFLACX")
    keep = (df["timestamp_end_fixation"] >= start - lead) & (df["timestamp_start_fixation"] <= end)
    return reflacx_heatmap(df[keep], image_shape, original_shape=original_shape, normalize="max")
