"""Simulated radiologist eye gaze in the EGD-CXR ``fixations.csv`` format.

A reading is a global survey (both lungs top to bottom, costophrenic angles, heart, mediastinum and
hila, below the diaphragm, bones) followed by dwells on each rendered finding. The dwell time on a
finding grows with its subtlety (small, faint findings hold the eye longer than an obvious pacemaker),
fixations land inside the finding's region with saccade noise, and a normal study gets the survey
only. ``X_ORIGINAL`` / ``Y_ORIGINAL`` are pixel coordinates of the phantom on an ``original_size``
grid: by default the rendered image's own grid; the builder uses a nominal film of
:data:`FILM_PX` pixels (the phantom scaled up), so EGD-CXR's official recipe (Gaussian sigma = 150
original pixels, made for ~2,500 px films) gives maps of the same relative extent as on real data.
``FPOGX`` / ``FPOGY`` are fractions of a 1920 x 1080 screen showing the image fitted to its height.

>>> from eclip_core.data.phantom.findings import Finding
>>> from eclip_core.data.phantom.render import render_study
>>> r = render_study("CXR5", [Finding("nodule", side="right", location="upper")], size=64)
>>> df = simulate_fixations(r, "CXR5")
>>> list(df.columns) == list(EGD_COLUMNS), bool((df["FPOGD"] > 0).all())
(True, True)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from eclip_core.atomic import atomic_path
from eclip_core.data.phantom.anatomy import uid_rng
from eclip_core.heatmap.gaze import EGD_COLUMNS

SCREEN = (1920, 1080)
#: Nominal film size (pixels) the builder writes gaze coordinates on; real EGD-CXR films are ~2,500-3,000 px.
FILM_PX = 2500

#: How hard each kind is to see (0 obvious .. 1 subtle), before its size/severity.
SUBTLETY = {
    "nodule": 0.85,
    "granuloma": 0.75,
    "hilar_calcification": 0.7,
    "fracture": 0.95,
    "pneumothorax": 0.85,
    "atelectasis": 0.65,
    "opacity": 0.55,
    "mass": 0.45,
    "effusion": 0.5,
    "edema": 0.55,
    "cardiomegaly": 0.35,
    "mediastinum": 0.5,
    "aorta": 0.45,
    "aortic_calcification": 0.6,
    "hyperinflation": 0.35,
    "low_volumes": 0.35,
    "elevated_diaphragm": 0.4,
    "scoliosis": 0.3,
    "spine_degenerative": 0.6,
    "hiatal_hernia": 0.6,
    "sternotomy": 0.15,
    "pacemaker": 0.1,
    "central_line": 0.3,
    "tube": 0.3,
    "clips": 0.2,
}


def _survey_points(r) -> list[tuple[float, float, float]]:
    """(x, y, weight) in normalised units along a typical systematic read."""
    g = r.geometry
    a = g.a
    pts: list[tuple[float, float, float]] = []
    for side in ("right", "left"):
        for loc in ("upper", "middle", "lower"):
            x, y = g.lung_point(side, loc)
            pts.append((x, y, 1.0))
        x, y = g.costophrenic_point(side)
        pts.append((x, y - 0.02, 0.8))
    hx = g.med_x + 0.25 * g.heart_width()
    pts += [(hx, 0.5 * (a.heart_top + a.dome_left), 1.0), (g.med_x, a.heart_top - 0.12, 0.7)]
    pts += [(*g.hilum("right"), 0.6), (*g.hilum("left"), 0.6), (g.med_x, 0.2, 0.4)]
    pts += [(g.dome_apex_x("left"), a.dome_left + 0.06, 0.4), (g.med_x + 0.2, 0.14, 0.3), (g.med_x - 0.2, 0.14, 0.3)]
    return pts


def subtlety(kind: str, severity: float, mask_fraction: float) -> float:
    """0..1: higher for subtle kinds, milder grades and smaller regions."""
    base = SUBTLETY.get(kind, 0.5)
    small = np.clip(1.0 - mask_fraction / 0.05, 0.0, 1.0)
    return float(np.clip(base * (1.15 - 0.4 * severity) * (0.75 + 0.25 * small), 0.05, 1.0))


def simulate_fixations(
    result,
    uid: str,
    seed: int = 0,
    dicom_id: str | None = None,
    session_id: int = 1,
    original_size: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """EGD-CXR fixation rows for one rendered study (a :class:`render.RenderResult`).

    Deterministic in (uid, seed, findings). Dwell on each finding ~ 0.6 + 3.0 * subtlety seconds.
    ``original_size`` (height, width): the grid of X/Y_ORIGINAL (default: the image's own).
    """
    rng = uid_rng(uid, seed, 4)
    h, w = result.image.shape
    noise = 0.012  # saccade landing noise, fraction of the image
    fix: list[tuple[float, float, float]] = []  # (x_norm, y_norm, duration s)
    for x, y, wt in _survey_points(result):
        for _ in range(1 + int(rng.random() < 0.35 * wt)):
            fix.append((x + rng.normal(0, 0.03), y + rng.normal(0, 0.03), float(rng.lognormal(np.log(0.22), 0.35))))
    survey_len = len(fix)
    dwell_rows: list[tuple[float, float, float]] = []
    for f, m in zip(result.findings, result.masks):
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            continue
        sub = subtlety(f.kind, f.severity, len(xs) / float(h * w))
        budget = 0.6 + 3.0 * sub
        spent = 0.0
        while spent < budget:
            i = int(rng.integers(len(xs)))
            d = float(rng.lognormal(np.log(0.3 + 0.2 * sub), 0.3))
            dwell_rows.append(((xs[i] + 0.5) / w + rng.normal(0, noise), (ys[i] + 0.5) / h + rng.normal(0, noise), d))
            spent += d
    # findings are noticed during the survey: insert the dwells after a random survey fixation
    cut = int(rng.integers(max(survey_len // 3, 1), survey_len + 1)) if survey_len else 0
    fix = fix[:cut] + dwell_rows + fix[cut:]
    return _to_egd(fix, rng, original_size or (h, w), dicom_id or uid, session_id, uid)


def _to_egd(fix, rng, shape, dicom_id: str, session_id: int, uid: str) -> pd.DataFrame:
    h, w = shape
    n = len(fix)
    # normalised edge-based coordinates -> pixel-centre indices of the original grid
    xs = np.clip(np.array([f[0] for f in fix]) * w - 0.5, 0, w - 1)
    ys = np.clip(np.array([f[1] for f in fix]) * h - 0.5, 0, h - 1)
    dur = np.array([f[2] for f in fix])
    sacc = rng.uniform(0.02, 0.06, n)
    start = np.cumsum(np.concatenate([[0.5], (dur + sacc)[:-1]]))
    scale = SCREEN[1] / h
    off_x = 0.5 * (SCREEN[0] - w * scale)
    fx = (off_x + xs * scale) / SCREEN[0]
    fy = (ys * scale) / SCREEN[1]
    sx, sy = fx * SCREEN[0], fy * SCREEN[1]
    dx = np.diff(sx, prepend=sx[0])
    dy = np.diff(sy, prepend=sy[0])
    digits = "".join(c for c in uid if c.isdigit()) or "0"
    df = pd.DataFrame(
        {
            "SESSION_ID": session_id,
            "MEDIA_ID": int(digits),
            "DICOM_ID": dicom_id,
            "CNT": np.arange(n),
            "Time (in secs)": np.round(start + dur, 4),
            "TIMETICK(f=10000000)": np.round((start + dur) * 1e7).astype(np.int64),
            "FPOGX": np.round(fx, 5),
            "FPOGY": np.round(fy, 5),
            "FPOGS": np.round(start, 4),
            "FPOGD": np.round(dur, 4),
            "FPOGID": np.arange(1, n + 1),
            "FPOGV": 1,
            "BPOGX": np.round(fx + rng.normal(0, 0.002, n), 5),
            "BPOGY": np.round(fy + rng.normal(0, 0.002, n), 5),
            "BPOGV": 1,
            "LPCX": np.round(0.42 + rng.normal(0, 0.004, n), 5),
            "LPCY": np.round(0.55 + rng.normal(0, 0.004, n), 5),
            "LPD": np.round(18 + rng.normal(0, 0.6, n), 3),
            "LPS": np.round(0.95 + rng.normal(0, 0.01, n), 4),
            "LPV": 1,
            "RPCX": np.round(0.58 + rng.normal(0, 0.004, n), 5),
            "RPCY": np.round(0.55 + rng.normal(0, 0.004, n), 5),
            "RPD": np.round(18 + rng.normal(0, 0.6, n), 3),
            "RPS": np.round(0.95 + rng.normal(0, 0.01, n), 4),
            "RPV": 1,
            "BKID": 0,
            "BKDUR": 0.0,
            "BKPMIN": 14,
            "LPMM": np.round(3.8 + rng.normal(0, 0.1, n), 3),
            "LPMMV": 1,
            "RPMM": np.round(3.8 + rng.normal(0, 0.1, n), 3),
            "RPMMV": 1,
            "SACCADE_MAG": np.round(np.hypot(dx, dy), 3),
            "SACCADE_DIR": np.round(np.degrees(np.arctan2(dy, dx)) % 360.0, 3),
            "VID_FRAME": np.round((start + dur) * 30).astype(np.int64),
            "X_ORIGINAL": np.round(xs, 2),
            "Y_ORIGINAL": np.round(ys, 2),
        }
    )
    return df[list(EGD_COLUMNS)]


def write_fixations(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write fixations as an EGD-CXR CSV, atomically (same rows -> same bytes)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    return path
