"""Gaze and box heatmaps: official recipes checked against independent computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from eclip_core.data.expert_heatmap import load_expert_heatmap
from eclip_core.data.manifest import Study
from eclip_core.errors import FixationsError
from eclip_core.heatmap.boxes import boxes_from_frame, boxes_heatmap
from eclip_core.heatmap.gaze import (
    EGD_COLUMNS,
    REFLACX_COLUMNS,
    egd_heatmap,
    read_egd_fixations,
    read_reflacx_fixations,
    reflacx_heatmap,
)


def egd_frame(points, dicom_id="d1") -> pd.DataFrame:
    """A schema-true EGD-CXR fixations table (all 37 columns) with fixations at ``points`` (x, y)."""
    rows = []
    for i, (x, y) in enumerate(points):
        row = {c: 0 for c in EGD_COLUMNS}
        row.update(
            {
                "SESSION_ID": 1,
                "MEDIA_ID": 0,
                "DICOM_ID": dicom_id,
                "CNT": i,
                "Time (in secs)": 0.3 * i,
                "FPOGX": x / 3000,
                "FPOGY": y / 3000,
                "FPOGD": 0.25,
                "FPOGID": i + 1,
                "FPOGV": 1,
                "X_ORIGINAL": x,
                "Y_ORIGINAL": y,
            }
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(EGD_COLUMNS))


def reflacx_frame(fixations, shown=(0, 0, 10_000, 10_000)) -> pd.DataFrame:
    """A schema-true REFLACX fixations.csv: fixations as (x, y, duration_s, px_per_degree)."""
    rows, t = [], 0.0
    for x, y, dur, ppd in fixations:
        rows.append(
            {
                "timestamp_start_fixation": t,
                "timestamp_end_fixation": t + dur,
                "x_position": x,
                "y_position": y,
                "pupil_area_normalized": 0.5,
                "angular_resolution_x_pixels_per_degree": ppd,
                "angular_resolution_y_pixels_per_degree": ppd,
                "window_width": 1.0,
                "window_level": 0.5,
                "xmin_shown_from_image": shown[0],
                "ymin_shown_from_image": shown[1],
                "xmax_shown_from_image": shown[2],
                "ymax_shown_from_image": shown[3],
                "x_in_screen_coordinates": x / 2,
                "y_in_screen_coordinates": y / 2,
            }
        )
        t += dur + 0.05
    return pd.DataFrame(rows)


def test_egd_heatmap_peaks_at_fixation_with_sigma_150():
    h = egd_heatmap(egd_frame([(800.0, 600.0)]), (1500, 1800))
    assert h.dtype == np.float32 and h.shape == (1500, 1800) and h.max() == 1.0
    assert np.unravel_index(h.argmax(), h.shape) == (600, 800)
    # A Gaussian of sigma 150 falls to exp(-1/2) one sigma away and exp(-2) two sigmas away.
    for dy, dx, d in ((150, 0, 1), (0, -150, 1), (0, 300, 2)):
        assert h[600 + dy, 800 + dx] == pytest.approx(np.exp(-0.5 * d * d), abs=4e-3)


def test_egd_heatmap_equals_official_count_map_filter():
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(0, 240, 300), rng.uniform(0, 200, 300)]  # more fixations than sampled columns
    counts = np.zeros((200, 240))
    for x, y in pts:
        counts[int(y), int(x)] += 1
    ref = gaussian_filter(counts, 12.0)
    ref /= ref.max()
    np.testing.assert_allclose(egd_heatmap(pts, (200, 240), sigma=12.0, exact=True), ref, atol=1e-5)
    # The fast path (subsampled + bilinear) stays within 0.5 % of the peak.
    fast = egd_heatmap(pts, (200, 240), sigma=12.0)
    np.testing.assert_allclose(fast, ref, atol=5e-3)
    assert np.abs(fast - ref).max() > 1e-6  # (it really took the subsampled path)
    # On a smaller output grid, the map is the official one resized.
    small = egd_heatmap(pts, (100, 120), sigma=12.0, original_shape=(200, 240), exact=True)
    resized = np.asarray(Image.fromarray(ref.astype(np.float32), "F").resize((120, 100), Image.BILINEAR))
    np.testing.assert_allclose(small, resized / resized.max(), atol=3e-3)


def test_egd_ignores_outside_fixations_and_handles_none():
    h = egd_heatmap(np.array([[-5.0, 10.0], [50.0, 40.0]]), (100, 100), sigma=5)
    assert np.unravel_index(h.argmax(), h.shape) == (40, 50)
    assert not egd_heatmap(np.array([[500.0, 500.0]]), (100, 100)).any()


def test_reflacx_heatmap_sigma_duration_and_shown_region():
    fix = reflacx_frame([(300.0, 200.0, 0.6, 40.0)])
    h = reflacx_heatmap(fix, (500, 600), exact=True)
    assert h.sum() == pytest.approx(1.0, rel=1e-5)  # official normalisation: sum 1
    assert np.unravel_index(h.argmax(), h.shape) == (200, 300)
    assert h[200, 340] / h[200, 300] == pytest.approx(np.exp(-0.5), rel=1e-4)  # sigma = 1 degree = 40 px
    assert h[280, 300] / h[200, 300] == pytest.approx(np.exp(-2.0), rel=1e-4)
    # Duration weighting: twice the time, twice the mass (fixations far apart).
    two = reflacx_heatmap(
        reflacx_frame([(100.0, 100.0, 0.5, 20.0), (450.0, 350.0, 1.0, 20.0)]), (500, 600), normalize="none", exact=True
    )
    assert two[350, 450] / two[100, 100] == pytest.approx(2.0, rel=1e-6)
    # Only inside the shown region.
    clipped = reflacx_heatmap(reflacx_frame([(300.0, 200.0, 0.6, 40.0)], shown=(0, 0, 310, 600)), (500, 600))
    assert not clipped[:, 311:].any() and clipped[:, :310].any()
    assert reflacx_heatmap(fix, (500, 600), normalize="max").max() == pytest.approx(1.0)


def test_readers_on_schema_true_files(tmp_path):
    egd_frame([(10, 20), (30, 40)]).to_csv(tmp_path / "fixations.csv", index=False)
    df = read_egd_fixations(tmp_path / "fixations.csv", strict=True)
    assert list(df.columns) == list(EGD_COLUMNS) and len(df) == 2 and df["DICOM_ID"].iloc[0] == "d1"
    reflacx_frame([(1, 2, 0.3, 30)]).to_csv(tmp_path / "r.csv", index=False)
    r = read_reflacx_fixations(tmp_path / "r.csv", strict=True)
    assert set(REFLACX_COLUMNS) <= set(r.columns)


def test_readers_reject_bad_files(tmp_path):
    egd_frame([(10, 20)]).drop(columns=["X_ORIGINAL", "FPOGD"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(FixationsError) as exc:
        read_egd_fixations(tmp_path / "bad.csv")
    assert "X_ORIGINAL" in str(exc.value) and "FPOGD" in str(exc.value) and "bad.csv" in str(exc.value)
    reflacx_frame([(1, 2, 0.3, 30)]).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(FixationsError, match="x_position"):
        read_egd_fixations(tmp_path / "r.csv")  # a REFLACX file is not an EGD file
    with pytest.raises(FixationsError, match="timestamp_start_fixation"):
        read_reflacx_fixations(tmp_path / "bad.csv")
    f = egd_frame([(10, 20)])
    f["X_ORIGINAL"] = ["left"]
    f.to_csv(tmp_path / "txt.csv", index=False)
    with pytest.raises(FixationsError, match="numeric"):
        read_egd_fixations(tmp_path / "txt.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FixationsError, match="empty"):
        read_egd_fixations(tmp_path / "empty.csv")
    with pytest.raises(FixationsError, match="does not exist"):
        read_reflacx_fixations(tmp_path / "nope.csv")


def test_boxes_heatmap_coverage_and_formats():
    m = boxes_heatmap([(10, 20, 30, 25)], (50, 40))
    assert m.max() == 1.0 and m[20:25, 10:30].min() == 1.0 and m.sum() == pytest.approx(20 * 5)
    # Half the original resolution: each output pixel covers 2x2 original pixels exactly.
    half = boxes_heatmap([(10, 20, 31, 25)], (25, 20), original_shape=(50, 40))
    assert half[10, 15] == pytest.approx(0.5) and half[10, 5:15].min() == 1.0 and half[12, 10] == pytest.approx(0.5)
    vindr = pd.DataFrame(
        {
            "image_id": ["a", "a"],
            "class_name": ["Nodule", "No finding"],
            "x_min": [5, None],
            "y_min": [5, None],
            "x_max": [10, None],
            "y_max": [10, None],
        }
    )
    nih = pd.DataFrame({"Image Index": ["a"], "Finding Label": ["Mass"], "Bbox [x": [5], "y": [5], "w": [5], "h]": [5]})
    egd = pd.DataFrame({"dicom_id": ["a"], "bbox_name": ["left lung"], "x1": [5], "x2": [10], "y1": [5], "y2": [10]})
    ref = boxes_heatmap([(5, 5, 10, 10)], (20, 20))
    for frame in (vindr, nih, egd):
        np.testing.assert_array_equal(boxes_heatmap(frame, (20, 20)), ref)
    assert boxes_from_frame(vindr).shape == (1, 4)
    blurred = boxes_heatmap([(5, 5, 10, 10)], (20, 20), sigma=2.0)
    assert blurred.max() == 1.0 and blurred[0, 0] > 0


def _png(path: Path, arr: np.ndarray) -> str:
    Image.fromarray(arr).save(path)
    return str(path)


def test_load_expert_heatmap_sources(tmp_path):
    img = _png(tmp_path / "img.png", np.zeros((1600, 1200), np.uint8))
    assert load_expert_heatmap(Study("s0", [img], "train"), (40, 30)) is None
    # A ready heatmap (.npy and PNG), resized and max-scaled.
    hm = np.zeros((1600, 1200), np.float32)
    hm[400:800, 200:600] = 3.0
    np.save(tmp_path / "h.npy", hm)
    out = load_expert_heatmap(Study("s1", [img], "train", heatmap_path=str(tmp_path / "h.npy")), (40, 30))
    assert out.shape == (40, 30) and out.max() == pytest.approx(1.0) and out[15, 10] == pytest.approx(1.0)
    assert out[35, 25] == 0.0
    png = _png(tmp_path / "h.png", (hm / 3 * 255).astype(np.uint8))
    np.testing.assert_allclose(load_expert_heatmap(Study("s2", [img], "train", heatmap_path=png), (40, 30)), out)
    # EGD: one big fixations file holding two images; the study's dicom_id selects its rows, and
    # the coordinates refer to the image file's 1600x1200 grid (read from its header).
    pd.concat([egd_frame([(600.0, 400.0)], "d1"), egd_frame([(80.0, 1200.0)], "d2")]).to_csv(
        tmp_path / "f.csv", index=False
    )
    s = Study(
        "s3", [img], "train", fixations_paths=[str(tmp_path / "f.csv")], gaze_format="egd", meta={"dicom_id": "d1"}
    )
    e = load_expert_heatmap(s, (40, 30))
    np.testing.assert_allclose(e, egd_heatmap(np.array([[600.0, 400.0]]), (40, 30), original_shape=(1600, 1200)))
    assert np.unravel_index(e.argmax(), e.shape) == (10, 15)
    # REFLACX: two readings averaged, then max-scaled; original size from meta.
    reflacx_frame([(100.0, 100.0, 1.0, 30.0)]).to_csv(tmp_path / "r1.csv", index=False)
    reflacx_frame([(200.0, 300.0, 1.0, 30.0)], shown=(0, 0, 299, 399)).to_csv(tmp_path / "r2.csv", index=False)
    s = Study(
        "s4",
        [img],
        "train",
        fixations_paths=[str(tmp_path / "r1.csv"), str(tmp_path / "r2.csv")],
        gaze_format="reflacx",
        meta={"original_size": [400, 300]},
    )
    r = load_expert_heatmap(s, (40, 30))
    assert r.max() == pytest.approx(1.0)
    assert r[10, 10] == pytest.approx(r[30, 20], rel=0.05) and r[10, 10] > 0.9  # equal weight per reading
    with pytest.raises(FixationsError, match="gaze_format"):
        load_expert_heatmap(Study("s5", [img], "train", fixations_paths=[str(tmp_path / "r1.csv")]), (40, 30))


def test_reflacx_sentence_window():
    from eclip_core.heatmap.gaze import reflacx_sentence_heatmap

    # fixations at t = 0-1 s (left), 10-11 s (right); a sentence spoken 14-16 s sees only the right one
    fix = reflacx_frame([(100.0, 100.0, 1.0, 20.0)])
    late = reflacx_frame([(400.0, 300.0, 1.0, 20.0)])
    late[["timestamp_start_fixation", "timestamp_end_fixation"]] += 10.0
    both = pd.concat([fix, late], ignore_index=True)
    m = reflacx_sentence_heatmap(both, 14.0, 16.0, (500, 600))
    assert m.max() == pytest.approx(1.0) and np.unravel_index(m.argmax(), m.shape) == (300, 400)
    assert m[100, 100] == 0.0
    assert reflacx_sentence_heatmap(both, 3.0, 4.0, (500, 600))[100, 100] == pytest.approx(1.0)
    assert not reflacx_sentence_heatmap(both, 30.0, 31.0, (500, 600)).any()
