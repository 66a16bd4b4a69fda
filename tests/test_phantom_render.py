"""Phantom renderer: findings change the pixels where the report puts them, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from eclip_core.data.phantom.anatomy import Geometry, sample_anatomy
from eclip_core.data.phantom.findings import KINDS, Finding, findings_from_mesh, study_findings
from eclip_core.data.phantom.render import render_study
from eclip_core.errors import ConfigError

SIZE = 128
UIDS = ("CXR11", "CXR202", "CXR3003")


def _pair(uid: str, finding: Finding, size: int = SIZE):
    return render_study(uid, [], size=size), render_study(uid, [finding], size=size)


def test_deterministic_and_patient_specific():
    a = render_study("CXR42", [Finding("nodule", side="left")], size=SIZE)
    b = render_study("CXR42", [Finding("nodule", side="left")], size=SIZE)
    c = render_study("CXR43", [Finding("nodule", side="left")], size=SIZE)
    assert a.to_array(16).tobytes() == b.to_array(16).tobytes()
    assert np.abs(a.image - c.image).mean() > 0.01  # habitus / exposure / markings differ


def test_image_looks_like_a_chest_film():
    r = render_study("CXR42", [], size=SIZE)
    g = r.geometry
    lungs, heart = g.lungs(), g.heart_mask()
    lung_core = ndimage.binary_erosion(lungs, iterations=3)
    assert r.image[lung_core].mean() < r.image[heart].mean() - 0.15  # dark lungs, white heart
    outside = (np.abs(g.x - g.a.cx) > g.a.body_half + 0.03) & (g.y > 0.3)
    assert r.image[outside].mean() < 0.12  # air outside the body
    assert 0.38 <= r.cardiothoracic_ratio() <= 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_changes_pixels_inside_its_region(kind):
    for uid in UIDS[:2]:
        f = Finding(
            kind,
            side="left" if kind not in ("edema", "hyperinflation", "low_volumes") else "",
            severity=0.7,
            location="lower",
            term="Surgical Instruments/abdomen/right" if kind == "clips" else "",
        )
        base, with_f = _pair(uid, f)
        mask = with_f.masks[0]
        assert mask.any(), kind
        diff = np.abs(with_f.image - base.image)
        inside = diff[mask].mean()
        outside = diff[~ndimage.binary_dilation(mask, iterations=4)].mean()
        assert inside > 0.02, (kind, uid, inside)
        assert inside > 3 * outside, (kind, uid, inside, outside)


def _cp_region(g: Geometry, side: str) -> np.ndarray:
    x, y = g.costophrenic_point(side)
    return (np.abs(g.x - x) < 0.08) & (g.y > y - 0.12) & (g.y < y + 0.01)


def test_left_effusion_brightens_left_costophrenic_angle_only():
    for uid in UIDS:
        base, eff = _pair(uid, Finding("effusion", side="left", severity=0.5))
        g = base.geometry
        left, right = _cp_region(g, "left"), _cp_region(g, "right")
        assert g.x[left].mean() > 0.5  # the patient's left is the image right
        assert eff.image[left].mean() - base.image[left].mean() > 0.05
        assert abs(eff.image[right].mean() - base.image[right].mean()) < 0.01


def test_cardiomegaly_raises_measured_ctr_above_half():
    for uid in UIDS:
        base, big = _pair(uid, Finding("cardiomegaly", severity=0.25))  # even "borderline"
        assert base.cardiothoracic_ratio() < 0.5 < big.cardiothoracic_ratio()
        # the pixels agree: where the heart grew, lung turned to soft tissue
        grown = ndimage.binary_erosion(big.masks[0] & ~base.geometry.heart_mask(), iterations=1)
        assert grown.sum() > 20
        assert big.image[grown].mean() - base.image[grown].mean() > 0.1
    ctr = [_pair(UIDS[0], Finding("cardiomegaly", severity=s))[1].cardiothoracic_ratio() for s in (0.25, 0.45, 0.9)]
    assert ctr[0] < ctr[1] < ctr[2]  # graded


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_pneumothorax_removes_markings_beyond_the_pleural_line():
    for uid in UIDS:
        base, ptx = _pair(uid, Finding("pneumothorax", side="right", severity=0.6), size=256)
        gap = ndimage.binary_erosion(ptx.masks[0], iterations=3)
        assert gap.any()
        assert ptx.geometry.x[gap].mean() < 0.5  # right lung = image left
        assert ptx.image[gap].mean() < base.image[gap].mean() - 0.02  # more air
        # the pixels' fine detail follows the vessel pattern without the finding, and not with it
        vessels = base.vessel_layer - ndimage.gaussian_filter(base.vessel_layer, 3.0)
        detail_base = base.image - ndimage.gaussian_filter(base.image, 3.0)
        detail_ptx = ptx.image - ndimage.gaussian_filter(ptx.image, 3.0)
        assert _corr(detail_base[gap], vessels[gap]) > 0.2
        assert abs(_corr(detail_ptx[gap], vessels[gap])) < 0.1
        assert float(np.abs(ptx.vessel_layer[gap]).max()) == 0.0
        # and the lung beyond the gap keeps its markings
        inner = ptx.geometry.lung_mask("right") & ~ndimage.binary_dilation(ptx.masks[0], iterations=3)
        assert _corr(detail_ptx[inner], vessels[inner]) > 0.2


def test_nodule_and_opacity_where_the_code_puts_them():
    fs = findings_from_mesh(["Nodule/lung/upper lobe/right", "Opacity/lung/base/left"])
    r = render_study("CXR11", fs, size=SIZE)
    by_kind = {f.kind: m for f, m in zip(r.findings, r.masks)}
    g = r.geometry
    ny, nx = np.argwhere(by_kind["nodule"]).mean(0) / SIZE
    oy, ox = np.argwhere(by_kind["opacity"]).mean(0) / SIZE
    assert nx < g.a.cx and ny < 0.4  # right upper = image left, top
    assert ox > g.a.cx and oy > 0.5  # left base = image right, bottom


def test_negated_findings_render_nothing():
    normal = render_study("CXR11", [], size=SIZE)
    text = "No pneumothorax. No pleural effusion. Heart size is normal. No focal consolidation or edema."
    fs = study_findings(["normal"], text)
    assert fs == []
    assert render_study("CXR11", fs, size=SIZE).to_array(16).tobytes() == normal.to_array(16).tobytes()
    positive = study_findings([], "Small left pleural effusion. No pneumothorax.")
    assert [(f.kind, f.side) for f in positive] == [("effusion", "left")]


def test_mesh_grammar_to_findings():
    fs = findings_from_mesh(
        [
            "Opacity/lung/upper lobe/right/round",
            "Cardiomegaly/mild",
            "Calcified Granuloma/lung/hilum/right",
            "Pleural Effusion/bilateral/small",
            "Lung/hypoinflation",
            "Implanted Medical Device/left",
            "normal",
            "Technical Quality of Image Unsatisfactory",
        ]
    )
    got = {(f.kind, f.side, f.location) for f in fs}
    assert ("opacity", "right", "upper") in got
    assert ("cardiomegaly", "", "") in got
    assert ("granuloma", "right", "hilum") in got
    assert ("effusion", "bilateral", "") in got
    assert ("low_volumes", "", "") in got
    assert ("pacemaker", "left", "") in got
    assert len(fs) == 6
    sev = {f.kind: f.severity for f in fs}
    assert sev["effusion"] < sev["cardiomegaly"]


@pytest.mark.parametrize("size,bits,dtype", [(64, 8, np.uint8), (96, 16, np.uint16)])
def test_sizes_and_bit_depths(size, bits, dtype):
    r = render_study("CXR9", [Finding("granuloma", side="right")], size=size)
    arr = r.to_array(bits)
    assert arr.shape == (size, size) and arr.dtype == dtype
    assert arr.max() > np.iinfo(dtype).max // 2


def test_bad_size_and_bits_are_config_errors():
    with pytest.raises(ConfigError):
        render_study("CXR1", [], size=4096)
    with pytest.raises(ConfigError):
        render_study("CXR1", [], size=64).to_array(12)


def test_anatomy_varies_within_normal_ranges():
    ctrs = [sample_anatomy(f"CXR{i}").ctr for i in range(200)]
    assert 0.38 <= min(ctrs) and max(ctrs) <= 0.47 and np.std(ctrs) > 0.015
