"""Simulated gaze: EGD-CXR format, loads through the project's EGD loader, dwells on the findings."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from eclip_core.data.phantom.findings import Finding
from eclip_core.data.phantom.gaze_sim import simulate_fixations, write_fixations
from eclip_core.data.phantom.render import render_study
from eclip_core.heatmap.gaze import EGD_COLUMNS, egd_heatmap, read_egd_fixations

SIZE = 128


def _inside(df, mask, grid) -> np.ndarray:
    h, w = mask.shape
    col = np.clip(np.round((df["X_ORIGINAL"].to_numpy() + 0.5) * w / grid[1] - 0.5).astype(int), 0, w - 1)
    row = np.clip(np.round((df["Y_ORIGINAL"].to_numpy() + 0.5) * h / grid[0] - 0.5).astype(int), 0, h - 1)
    return mask[row, col]


def test_fixations_fall_on_findings_far_above_chance():
    ratios = []
    for uid, f in [
        ("CXR11", Finding("nodule", side="right", location="upper", severity=0.4)),
        ("CXR12", Finding("effusion", side="left", severity=0.5)),
        ("CXR13", Finding("pneumothorax", side="right", severity=0.5)),
        ("CXR14", Finding("granuloma", side="left", location="lower")),
    ]:
        r = render_study(uid, [f], size=SIZE)
        df = simulate_fixations(r, uid)
        region = ndimage.binary_dilation(r.masks[0], iterations=2)
        hit_time = df["FPOGD"][_inside(df, region, (SIZE, SIZE))].sum() / df["FPOGD"].sum()
        chance = region.mean()
        ratios.append(hit_time / chance)
        assert hit_time > 0.25, (uid, f.kind, hit_time)
    assert min(ratios) > 3.0 and np.median(ratios) > 10.0, ratios


def test_subtle_findings_hold_the_eye_longer():
    r_nod = render_study("CXR21", [Finding("nodule", side="right", location="upper", severity=0.3)], size=SIZE)
    r_pm = render_study("CXR21", [Finding("pacemaker", side="left")], size=SIZE)
    dwell = []
    for r in (r_nod, r_pm):
        df = simulate_fixations(r, "CXR21")
        dwell.append(df["FPOGD"][_inside(df, r.masks[0], (SIZE, SIZE))].sum())
    assert dwell[0] > 1.5 * dwell[1]


def test_normal_study_is_survey_only_and_covers_both_lungs():
    r = render_study("CXR31", [], size=SIZE)
    df = simulate_fixations(r, "CXR31")
    assert 12 <= len(df) <= 40
    g = r.geometry
    right = _inside(df, ndimage.binary_dilation(g.lung_mask("right"), iterations=3), (SIZE, SIZE))
    left = _inside(df, ndimage.binary_dilation(g.lung_mask("left"), iterations=3), (SIZE, SIZE))
    assert right.sum() >= 3 and left.sum() >= 3
    # timing is a proper sequence: starts increase, durations positive
    assert (np.diff(df["FPOGS"].to_numpy()) > 0).all() and (df["FPOGD"] > 0).all()


def test_files_load_through_the_egd_loader_and_give_a_heatmap_on_the_finding(tmp_path):
    r = render_study("CXR41", [Finding("mass", side="left", location="upper", severity=0.8)], size=SIZE)
    film = (2500, 2500)
    df = simulate_fixations(r, "CXR41", dicom_id="CXR41_IM-0001-1001", original_size=film)
    path = write_fixations(df, tmp_path / "fixations.csv")
    back = read_egd_fixations(path, strict=True)
    assert list(back.columns) == list(EGD_COLUMNS)
    assert (back["DICOM_ID"] == "CXR41_IM-0001-1001").all()
    assert back["X_ORIGINAL"].between(0, film[1] - 1).all()
    assert back["FPOGX"].between(0, 1).all() and back["FPOGY"].between(0, 1).all()
    heat = egd_heatmap(back, (SIZE, SIZE), original_shape=film)
    assert heat.shape == (SIZE, SIZE) and np.isclose(heat.max(), 1.0)
    mask = r.masks[0]
    assert heat[mask].mean() > 2.0 * heat[~mask].mean()
    # byte-identical on a rerun
    path2 = write_fixations(
        simulate_fixations(r, "CXR41", dicom_id="CXR41_IM-0001-1001", original_size=film), tmp_path / "again.csv"
    )
    assert path.read_bytes() == path2.read_bytes()
