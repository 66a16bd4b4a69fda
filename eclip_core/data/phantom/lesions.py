"""Painters: how each finding kind changes the anatomy or the density map, and where.

Two stages. :func:`adjust_anatomy` applies findings that change the patient's geometry (heart size,
diaphragm level, lung volume, spine curve, aortic knob). :func:`paint` then draws each finding on the
density canvas and returns the bool region it changed (used by tests and the gaze simulator).
Sides are the patient's (a right effusion is on the image left).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from eclip_core.data.phantom.anatomy import Anatomy, Geometry, side_sign
from eclip_core.data.phantom.draw import bezier, disk, ellipse, gauss, polyline
from eclip_core.data.phantom.findings import Finding


def _sides(f: Finding, default: str = "right") -> tuple[str, ...]:
    if f.side == "bilateral":
        return ("right", "left")
    return (f.side or default,)


def adjust_anatomy(a: Anatomy, findings: Sequence[Finding]) -> Anatomy:
    """Geometry changes: cardiomegaly, hyperinflation, low volumes, elevated dome, scoliosis, aorta."""
    for f in findings:
        sev = f.severity
        if f.kind == "cardiomegaly":
            a = a.with_(ctr=max(a.ctr, 0.515 + 0.13 * sev), heart_top=a.heart_top - 0.02 * sev)
        elif f.kind == "hyperinflation":
            a = a.with_(
                dome_right=a.dome_right + 0.04 + 0.04 * sev,
                dome_left=a.dome_left + 0.04 + 0.04 * sev,
                dome_curv=a.dome_curv * (0.55 - 0.25 * sev),
                lung_lucency=0.18 + 0.2 * sev,
                vessel_gain=0.6,
                ctr=min(a.ctr, 0.40),
                lung_top=a.lung_top - 0.015,
            )
        elif f.kind == "low_volumes":
            a = a.with_(
                dome_right=a.dome_right - 0.05 - 0.04 * sev,
                dome_left=a.dome_left - 0.05 - 0.04 * sev,
                vessel_gain=1.3,
                ctr=a.ctr + 0.02,
            )
        elif f.kind == "elevated_diaphragm":
            for side in _sides(f):
                lift = 0.06 + 0.05 * sev
                if side == "right":
                    a = a.with_(dome_right=a.dome_right - lift)
                else:
                    a = a.with_(dome_left=a.dome_left - lift)
        elif f.kind == "scoliosis":
            sign = -side_sign(f.side) if f.side in ("left", "right") else 1.0
            a = a.with_(spine_curve=sign * (0.025 + 0.05 * sev))
        elif f.kind == "mediastinum":
            a = a.with_(med_half=a.med_half * (1.35 + 0.4 * sev))
        elif f.kind == "aorta":
            a = a.with_(knob_r=a.knob_r * (1.3 + 0.4 * sev))
    return a


Painter = Callable[["object", Finding, np.random.Generator, Geometry], np.ndarray]
_PAINTERS: dict[str, Painter] = {}


def _painter(*kinds: str):
    def deco(fn):
        for k in kinds:
            _PAINTERS[k] = fn
        return fn

    return deco


def paint(canvas, f: Finding, rng: np.random.Generator, base: Geometry) -> np.ndarray:
    """Draw ``f`` on ``canvas``; return the bool mask of the region it changed."""
    return _PAINTERS[f.kind](canvas, f, rng, base)


# ---------------------------------------------------------------- geometry findings (region only)
@_painter("cardiomegaly")
def _cardiomegaly(c, f, rng, base):
    return c.g.heart_mask()


@_painter("hyperinflation")
def _hyperinflation(c, f, rng, base):
    return c.g.lungs()


@_painter("low_volumes")
def _low_volumes(c, f, rng, base):
    g = c.g
    band = np.zeros_like(g.x, dtype=bool)
    for side in ("right", "left"):
        band |= base.lung_envelope(side) & ~g.lung_envelope(side)
    return band | (g.lungs() & (g.y > min(g.a.dome_right, g.a.dome_left) - 0.12))


@_painter("elevated_diaphragm")
def _elevated(c, f, rng, base):
    g = c.g
    m = np.zeros_like(g.x, dtype=bool)
    for side in _sides(f):
        m |= base.lung_envelope(side) & ~g.lung_envelope(side)
    return m


@_painter("scoliosis")
def _scoliosis(c, f, rng, base):
    g = c.g
    return (np.abs(g.x - g.spine_x(g.y)) < 0.05) | (np.abs(base.x - base.spine_x(base.y)) < 0.05)


@_painter("mediastinum")
def _mediastinum(c, f, rng, base):
    return c.g.mediastinum_mask() & (c.g.y < c.g.a.heart_top + 0.05)


@_painter("aorta")
def _aorta(c, f, rng, base):
    g = c.g
    a = g.a
    kx, ky = g.med_x + a.med_half + 0.25 * a.knob_r, a.heart_top - 0.15
    # descending aorta: a faint stripe from the knob down to the left of the spine
    c.density += 0.05 * polyline(
        g, np.array([[kx, ky], [g.med_x + 0.04, a.heart_top + 0.1], [g.med_x + 0.035, 0.62]]), 0.03, 3.0
    )
    return disk(g, kx, ky, a.knob_r * 1.5) > 0.5


@_painter("aortic_calcification")
def _aortic_calc(c, f, rng, base):
    g = c.g
    a = g.a
    kx, ky = g.med_x + a.med_half + 0.25 * a.knob_r, a.heart_top - 0.15
    ang = np.linspace(-2.4, 0.2, 12) + rng.uniform(-0.2, 0.2)
    r = a.knob_r * 0.9
    pts = np.stack([kx + r * np.cos(ang), ky + r * np.sin(ang)], 1)
    stroke = polyline(g, pts, max(0.006, 1.2 * g.px))
    c.density += 0.45 * stroke
    return disk(g, kx, ky, a.knob_r * 1.4) > 0.5


# ----------------------------------------------------------------------------- pleura and lungs
@_painter("effusion")
def _effusion(c, f, rng, base):
    g = c.g
    m = np.zeros_like(g.x, dtype=bool)
    for side in _sides(f):
        env = g.lung_mask(side)
        dome = g.dome_y(side)
        cpx, _ = g.costophrenic_point(side)
        lat = np.clip((g.x - g.med_x) * side_sign(side) / max(abs(cpx - g.med_x), 1e-3), 0, 1)
        height = 0.035 + 0.2 * f.severity
        # meniscus: the fluid climbs higher along the lateral chest wall
        surface = dome - height * (0.45 + 0.55 * lat**2)
        depth = np.clip((g.y - surface) / 0.035, 0, 1) ** 0.7
        fluid = env * depth
        # fluid replaces air: the effusion reads as soft tissue, never brighter than the abdomen
        c.lucency -= 0.62 * fluid
        c.vessel_keep *= 1.0 - np.clip(fluid, 0, 1)
        m |= fluid > 0.5
    return m


@_painter("pneumothorax")
def _pneumothorax(c, f, rng, base):
    g = c.g
    m = np.zeros_like(g.x, dtype=bool)
    for side in _sides(f):
        env = g.lung_envelope(side)
        hx, hy = g.hilum(side)
        keep = 1.0 - (0.18 + 0.35 * f.severity)
        # collapsed lung = the hemithorax shrunk towards the hilum; beyond it only air
        sx = (g.x - hx) / keep + hx
        sy = (g.y - hy) / keep + hy
        inner = _envelope_at(g, side, sx, sy)
        gap = env & ~inner
        # the visceral pleural line: the collapsed lung's edge where it faces the air gap
        line = g.lung_mask(side) & inner & ndimage.binary_dilation(gap, iterations=max(1, round(g.size / 160)))
        c.vessel_keep *= ~gap
        c.lucency += 0.12 * gap
        c.density += 0.16 * line
        m |= gap
    return m


def _envelope_at(g: Geometry, side: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = g.a
    dx = (x - g.med_x) * side_sign(side)
    return (dx > 0) & (dx < g.lung_half_at(y)) & (y > a.lung_top) & (y < g.dome_y(side, x))


def _patchy(g: Geometry, rng, cx, cy, r, side) -> np.ndarray:
    """Irregular airspace density: a few overlapping blobs clipped to the lung on ``side``."""
    blob = np.zeros_like(g.x)
    for _ in range(5):
        blob = np.maximum(
            blob,
            gauss(
                g,
                cx + rng.normal(0, r * 0.45),
                cy + rng.normal(0, r * 0.4),
                r * rng.uniform(0.45, 0.8),
                r * rng.uniform(0.4, 0.7),
            ),
        )
    return blob * g.lung_envelope(side)


@_painter("opacity")
def _opacity(c, f, rng, base):
    g = c.g
    m = np.zeros_like(g.x, dtype=bool)
    for side in _sides(f):
        cx, cy = g.lung_point(side, f.location or "lower", rng)
        r = 0.05 + 0.05 * f.severity
        blob = _patchy(g, rng, cx, cy, r, side)
        c.density += (0.3 + 0.3 * f.severity) * blob
        m |= blob > 0.3
    return m


@_painter("atelectasis")
def _atelectasis(c, f, rng, base):
    g = c.g
    m = np.zeros_like(g.x, dtype=bool)
    for side in _sides(f):
        loc = f.location if f.location in ("upper", "middle", "lingula") else "base"
        cx, cy = g.lung_point(side, loc, rng)
        n = 1 + int(f.severity > 0.5) + int(rng.random() < 0.5)
        for i in range(n):
            ang = rng.uniform(-0.35, 0.25)
            ln = 0.08 + 0.06 * f.severity
            dy = i * 0.022
            p0 = (cx - 0.5 * ln * np.cos(ang), cy + dy - 0.5 * ln * np.sin(ang))
            p1 = (cx + 0.5 * ln * np.cos(ang), cy + dy + 0.5 * ln * np.sin(ang))
            band = polyline(g, np.array([p0, p1]), 0.008 + 0.008 * f.severity, 3.0) * g.lung_envelope(side)
            c.density += 0.32 * band
            m |= band > 0.2
        haze = gauss(g, cx, cy + 0.01, 0.05, 0.025) * g.lung_envelope(side)
        c.density += 0.12 * haze
        m |= haze > 0.5
    return m


@_painter("nodule", "mass")
def _nodule(c, f, rng, base):
    g = c.g
    m = np.zeros_like(g.x, dtype=bool)
    mass = f.kind == "mass"
    for side in _sides(f, default=rng.choice(["right", "left"])):
        loc = f.location or rng.choice(["upper", "middle", "lower"])
        cx, cy = g.lung_point(side, loc, rng)
        r = (0.035 + 0.035 * f.severity) if mass else (0.012 + 0.01 * f.severity)
        r = max(r, 2.2 * g.px)
        shape = disk(g, cx, cy, r, 1.5)
        if mass:  # lobulated outline
            for _ in range(3):
                ang = rng.uniform(0, 2 * np.pi)
                shape = np.maximum(shape, disk(g, cx + 0.6 * r * np.cos(ang), cy + 0.6 * r * np.sin(ang), 0.6 * r, 1.5))
        c.density += (0.45 if mass else 0.4) * shape
        m |= shape > 0.3
    return m


@_painter("granuloma", "hilar_calcification")
def _granuloma(c, f, rng, base):
    g = c.g
    m = np.zeros_like(g.x, dtype=bool)
    hilar = f.kind == "hilar_calcification" or f.location == "hilum"
    n = int(rng.integers(3, 6)) if f.multiple else 1
    sides = _sides(f, default=rng.choice(["right", "left"]))
    for i in range(n):
        side = sides[i % len(sides)] if not f.multiple else rng.choice(sides if f.side else ["right", "left"])
        if hilar:
            hx, hy = g.hilum(side)
            cx, cy = hx + rng.normal(0, 0.012), hy + rng.normal(0, 0.02)
        else:
            cx, cy = g.lung_point(side, f.location or rng.choice(["upper", "middle", "lower"]), rng)
        r = max(0.008, 1.6 * g.px) * (1.0 + 0.3 * rng.random())
        dot = disk(g, cx, cy, r, 0.8)
        c.density += 0.9 * dot
        m |= disk(g, cx, cy, r + 2 * g.px) > 0.3
    return m


@_painter("edema")
def _edema(c, f, rng, base):
    g = c.g
    lungs = g.lung_envelope("right") | g.lung_envelope("left")
    haze = np.zeros_like(g.x)
    for side in ("right", "left"):
        hx, hy = g.hilum(side)
        haze = np.maximum(haze, gauss(g, hx + side_sign(side) * 0.05, hy + 0.02, 0.09 + 0.04 * f.severity, 0.11))
        # Kerley B lines: short horizontal lines at the lateral lung bases
        for k in range(4):
            y = g.dome_y(side, np.float32(g.costophrenic_point(side)[0])) - 0.03 - 0.018 * k
            x0 = g.med_x + side_sign(side) * float(g.lung_half_at(np.float32(y))) * 0.97
            line = polyline(g, np.array([[x0, y], [x0 - side_sign(side) * 0.035, y]]), max(0.004, 1.1 * g.px), 1.0)
            c.density += 0.12 * line * lungs
    haze *= lungs
    c.density += (0.22 + 0.28 * f.severity) * haze
    c.vessels *= 1.0 + 0.8 * (g.y < g.a.heart_top)  # upper-lobe vascular redistribution
    return haze > 0.35


# ---------------------------------------------------------------------------------------- bones
@_painter("spine_degenerative")
def _spine_deg(c, f, rng, base):
    """Osteophytes (bony spurs at the vertebral corners) and endplate sclerosis at several levels."""
    g = c.g
    m = np.zeros_like(g.x, dtype=bool)
    levels = np.arange(0.22, 0.7, 0.042) + 0.021
    n = 5 + int(6 * f.severity)
    w = max(0.009, 2.0 * g.px)
    for y in rng.choice(levels, size=min(n, len(levels)), replace=False):
        sx = float(g.spine_x(np.float32(y)))
        for sgn in (-1, 1):
            if rng.random() < 0.8:
                # a spur leaves the vertebral corner sideways, curling towards the disc
                tip = (sx + sgn * rng.uniform(0.042, 0.05), y + rng.uniform(-0.012, 0.012))
                spur = polyline(g, np.array([[sx + sgn * 0.03, y], tip]), w, 1.5)
                c.density += 0.3 * spur
                m |= spur > 0.2
        plate = polyline(g, np.array([[sx - 0.026, y], [sx + 0.026, y]]), w, 1.5)
        c.density += 0.1 * plate
        m |= plate > 0.2
    return m


@_painter("fracture")
def _fracture(c, f, rng, base):
    g = c.g
    a = g.a
    m = np.zeros_like(g.x, dtype=bool)
    for side in _sides(f, default=rng.choice(["right", "left"])):
        s = rng.uniform(0.75, 0.95)
        k = int(rng.integers(3, 8))
        y = (a.lung_top - 0.045) + (k + 0.5) * a.rib_spacing + 0.07 * s * s - 0.018 * s
        x = float(g.spine_x(np.float32(y))) + side_sign(side) * s * a.thorax_half
        ang = rng.uniform(1.2, 1.9)
        gap = polyline(
            g,
            np.array(
                [[x - 0.02 * np.cos(ang), y - 0.02 * np.sin(ang)], [x + 0.02 * np.cos(ang), y + 0.02 * np.sin(ang)]]
            ),
            max(0.006, 1.4 * g.px),
        )
        c.density -= 0.2 * gap
        callus = ellipse(g, x + side_sign(side) * 0.012, y, 0.02, 0.014, 0.0, 2.0)
        c.density += 0.2 * callus
        m |= disk(g, x, y, 0.04) > 0.5
    return m


@_painter("hiatal_hernia")
def _hernia(c, f, rng, base):
    g = c.g
    a = g.a
    cx = g.med_x + 0.035
    cy = a.dome_left - 0.07
    r = 0.045 + 0.03 * f.severity
    sac = ellipse(g, cx, cy, r * 1.15, r, 0.0, 2.0)
    air = sac * (g.y < cy - 0.2 * r)
    c.density += 0.22 * sac - 0.35 * air
    c.density += 0.12 * polyline(g, np.array([[cx - r, cy - 0.2 * r], [cx + r, cy - 0.2 * r]]), max(0.004, g.px)) * sac
    return sac > 0.3


# ------------------------------------------------------------------------------ devices, material
@_painter("sternotomy")
def _sternotomy(c, f, rng, base):
    g = c.g
    a = g.a
    m = np.zeros_like(g.x, dtype=bool)
    ys = np.linspace(a.heart_top - 0.14, a.heart_top + 0.12, int(rng.integers(5, 8)))
    for y in ys:
        x = g.med_x + rng.normal(0, 0.004)
        ring = ellipse(g, x, y, 0.016, 0.008, rng.normal(0, 0.15), 1.0) - ellipse(g, x, y, 0.009, 0.0035, 0, 1.0)
        ring = np.clip(ring, 0, 1)
        c.density += 1.2 * ring
        m |= disk(g, x, y, 0.03) > 0.5
    return m


@_painter("pacemaker")
def _pacemaker(c, f, rng, base):
    g = c.g
    a = g.a
    s = side_sign(f.side if f.side in ("left", "right") else "left")
    dx, dy = g.med_x + s * rng.uniform(0.22, 0.28), rng.uniform(0.17, 0.22)
    box = ellipse(g, dx, dy, 0.05, 0.035, rng.normal(0, 0.2), 1.0) ** 0.3
    c.density += 1.6 * box
    ra = (g.med_x - 0.035, a.heart_top + 0.06)
    rv = (g.med_x + 0.5 * g.heart_width() * 0.5, 0.5 * (a.dome_left + a.dome_right) - 0.03)
    w = max(0.005, 1.2 * g.px)
    lead1 = polyline(g, bezier((dx, dy), (g.med_x - 0.02, 0.2), ra), w)
    lead2 = polyline(
        g, np.concatenate([bezier((dx, dy), (g.med_x - 0.03, 0.2), ra), bezier(ra, (g.med_x + 0.02, rv[1]), rv)]), w
    )
    c.density += 0.8 * np.maximum(lead1, lead2)
    return (box > 0.2) | (np.maximum(lead1, lead2) > 0.2)


@_painter("central_line")
def _central_line(c, f, rng, base):
    g = c.g
    a = g.a
    s = side_sign(f.side if f.side in ("left", "right") else "right")
    start = (g.med_x + s * 0.3, 0.12)
    mid = (g.med_x + s * 0.07, 0.15)
    tip = (g.med_x - 0.035 + rng.normal(0, 0.005), a.heart_top + rng.uniform(-0.04, 0.04))
    line = polyline(g, bezier(start, mid, tip, 30), max(0.005, 1.2 * g.px))
    c.density += 0.55 * line
    return line > 0.2


@_painter("tube")
def _tube(c, f, rng, base):
    g = c.g
    a = g.a
    carina = a.heart_top - 0.09
    tip = carina - rng.uniform(0.03, 0.07)
    w = max(0.006, 1.3 * g.px)
    ett = polyline(g, np.array([[g.med_x, 0.0], [g.med_x + 0.002, tip]]), w)
    ng = polyline(
        g,
        np.concatenate(
            [
                bezier((g.med_x + 0.01, 0.0), (g.med_x + 0.02, 0.4), (g.med_x + 0.03, a.dome_left)),
                bezier(
                    (g.med_x + 0.03, a.dome_left),
                    (g.med_x + 0.06, a.dome_left + 0.06),
                    (g.dome_apex_x("left"), a.dome_left + 0.08),
                ),
            ]
        ),
        w,
    )
    c.density += 0.6 * ett + 0.45 * ng
    return (ett > 0.2) | (ng > 0.2)


@_painter("clips")
def _clips(c, f, rng, base):
    g = c.g
    a = g.a
    m = np.zeros_like(g.x, dtype=bool)
    term = f.term.lower()
    if "abdomen" in term or "stent" in term or not f.side:
        cx, cy = g.dome_apex_x("right") + 0.03, a.dome_right + 0.1
        if "stent" in term:
            cx, cy = g.med_x + 0.02, a.heart_top - 0.12
    else:
        cx, cy = g.lung_point(f.side if f.side in ("left", "right") else "right", "upper", rng)
    for _ in range(int(rng.integers(2, 5))):
        x, y = cx + rng.normal(0, 0.02), cy + rng.normal(0, 0.015)
        ang = rng.uniform(0, np.pi)
        clip = polyline(
            g,
            np.array(
                [[x - 0.012 * np.cos(ang), y - 0.012 * np.sin(ang)], [x + 0.012 * np.cos(ang), y + 0.012 * np.sin(ang)]]
            ),
            max(0.006, 1.3 * g.px),
        )
        c.density += 1.3 * clip
        m |= disk(g, x, y, 0.025) > 0.5
    return m
