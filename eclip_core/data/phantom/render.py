"""The phantom renderer: one frontal (PA) chest radiograph from an anatomy and a list of findings.

The image is built as an X-ray density map (soft tissue, aerated lungs, bones, vessels, devices)
mapped through ``1 - exp(-k * density)`` with patient-specific exposure and gamma, then quantum
noise and a slight blur (detector MTF). Findings are painted by :mod:`.lesions`; each returns the
region it changed, kept as a per-finding mask for tests and the gaze simulator.

>>> from eclip_core.data.phantom.findings import Finding
>>> r = render_study("CXR1", [Finding("effusion", side="left", severity=0.6)], size=64)
>>> r.image.shape, r.image.dtype, bool(r.masks[0].any())
((64, 64), dtype('float32'), True)
>>> r.to_array(8).dtype, r.to_array(16).dtype
(dtype('uint8'), dtype('uint16'))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from eclip_core.data.phantom import lesions
from eclip_core.data.phantom.anatomy import Anatomy, Geometry, sample_anatomy, side_sign, uid_rng
from eclip_core.data.phantom.draw import disk, ellipse, gauss, polyline, splat
from eclip_core.data.phantom.findings import KINDS, Finding
from eclip_core.errors import ConfigError

SIZES = (64, 1024)  # allowed range (inclusive)


@dataclass
class RenderResult:
    """A rendered study: image in [0, 1] (0 = black), findings and one bool mask per finding."""

    image: np.ndarray
    findings: list[Finding]
    masks: list[np.ndarray]
    anatomy: Anatomy
    geometry: Geometry = field(repr=False)
    #: The vascular markings as drawn (density units, after pneumothorax / effusion removal).
    vessel_layer: np.ndarray | None = field(default=None, repr=False)

    def to_array(self, bits: int = 8) -> np.ndarray:
        """The image quantised to uint8 (bits=8) or uint16 (bits=16)."""
        if bits == 8:
            return np.round(self.image * 255.0).astype(np.uint8)
        if bits == 16:
            return np.round(self.image * 65535.0).astype(np.uint16)
        raise ConfigError(f"bits must be 8 or 16, got {bits!r}")

    def mask_of(self, kind: str) -> np.ndarray:
        """Union of the masks of every finding of ``kind`` (all False when absent)."""
        out = np.zeros(self.image.shape, dtype=bool)
        for f, m in zip(self.findings, self.masks):
            if f.kind == kind:
                out |= m
        return out

    def cardiothoracic_ratio(self) -> float:
        """Measured CTR: widest heart-shadow extent / widest inner thoracic width (from the masks)."""
        g = self.geometry
        heart_cols = np.flatnonzero(g.heart_mask()[: int(0.8 * g.size)].any(0))
        env = g.lung_envelope("right") | g.lung_envelope("left")
        widths = [np.ptp(np.flatnonzero(row)) for row in env if row.any()]
        return float((np.ptp(heart_cols) + 1) / (max(widths) + 1))


@dataclass
class Canvas:
    """Mutable state that painters work on."""

    g: Geometry
    density: np.ndarray  # X-ray density (higher = whiter)
    vessels: np.ndarray  # vascular markings, added inside aerated lung at the end
    vessel_keep: np.ndarray  # multiplier on vessels (pneumothorax sets 0 beyond the pleural line)
    lucency: np.ndarray  # extra air (reduces density inside the lungs)
    rng: np.random.Generator


def _smooth(mask: np.ndarray, g: Geometry, px: float) -> np.ndarray:
    return ndimage.gaussian_filter(mask.astype(np.float32), sigma=max(px * g.size / 256.0, 0.5))


def _body(g: Geometry) -> np.ndarray:
    a = g.a
    t = np.clip((g.y - 0.02) / 0.15, 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    half = 0.12 + (a.body_half - 0.12) * t
    u = (g.x - a.cx) / half
    # abdomen below the domes is a little narrower than the chest (waist)
    return np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0)).astype(np.float32)


def _ribs(g: Geometry) -> np.ndarray:
    a = g.a
    # ribs hang from the midline, not the (possibly scoliotic) spine line: a curve moves the spine only
    s = np.abs(g.x - a.cx) / a.thorax_half
    out = np.zeros_like(g.x)
    # posterior ribs: leave the spine slightly upwards, then curve down laterally
    curve = 0.15 * s * s - 0.03 * s
    q = (g.y - (a.lung_top - 0.045) - curve) / a.rib_spacing
    k = np.floor(q)
    f = q - k
    prof = np.clip(1.0 - np.abs(f - 0.5) / 0.2, 0.0, 1.0)
    cortex = np.exp(-(((np.abs(f - 0.5) - 0.17) / 0.05) ** 2))
    keep = (k >= 0) & (k < 10) & (s > 0.1) & (s < 1.12)
    fade = np.clip((1.12 - s) / 0.12, 0, 1) * np.clip((s - 0.1) / 0.06, 0, 1)
    out += keep * fade * (0.10 * np.sqrt(prof) + 0.07 * cortex)
    # anterior ribs: fainter, running down towards the midline
    q2 = (g.y - (a.lung_top + 0.03) - 0.10 * (1.0 - s)) / (a.rib_spacing * 1.25)
    k2 = np.floor(q2)
    f2 = q2 - k2
    prof2 = np.clip(1.0 - np.abs(f2 - 0.5) / 0.16, 0.0, 1.0)
    keep2 = (k2 >= 0) & (k2 < 6) & (s > 0.35) & (s < 1.08)
    out += keep2 * 0.07 * prof2
    return out


def _spine(g: Geometry) -> np.ndarray:
    sx = g.spine_x(g.y)
    d = np.abs(g.x - sx)
    band = np.clip((0.032 - d) / (1.5 * g.px) + 0.5, 0, 1)
    level = (g.y - 0.02) / 0.042
    disc = 0.5 + 0.5 * np.cos(2 * np.pi * level)  # 1 mid-vertebra, 0 at the disc space
    pedicle = np.exp(-(((d - 0.021) / 0.006) ** 2)) * np.clip(np.cos(2 * np.pi * level) + 0.2, 0, 1)
    spinous = np.exp(-((d / 0.006) ** 2)) * np.clip(np.cos(2 * np.pi * (level - 0.35)), 0, 1)
    return (band * (0.11 + 0.06 * disc) + 0.08 * pedicle + 0.05 * spinous).astype(np.float32)


def _vessels(g: Geometry, rng: np.random.Generator) -> np.ndarray:
    """Branching random walks from each hilum (vectorised over branches), splatted and blurred."""
    a = g.a
    sigma_px = max(1.25 * g.size / 256.0, 0.8)
    step = 1.0 / g.size
    xs, ys, ws = [], [], []
    for side in ("right", "left"):
        s = side_sign(side)
        hx, hy = g.hilum(side)
        n_main = 20
        # angles measured from the outward horizontal; spread from up (-) to down (+)
        theta = rng.uniform(-1.25, 1.35, n_main)
        length = rng.uniform(0.22, 0.36, n_main) * a.thorax_half / 0.36
        starts = np.stack([hx + rng.normal(0, 0.01, n_main), hy + rng.normal(0, 0.015, n_main)], 1)
        for _gen, (width, shrink) in enumerate(((0.5, 1.0), (0.36, 0.6), (0.26, 0.5))):
            n_steps = int(np.ceil(length.max() / step))
            turn = np.cumsum(rng.normal(0, 0.022 * np.sqrt(256.0 / g.size), (len(theta), n_steps)), axis=1)
            ang = theta[:, None] + turn
            dx = s * np.cos(ang) * step
            dy = np.sin(ang) * step
            px = starts[:, 0:1] + np.cumsum(dx, 1)
            py = starts[:, 1:2] + np.cumsum(dy, 1)
            t = np.arange(1, n_steps + 1)[None, :] * step / length[:, None]
            w = np.where(t <= 1.0, width * (1.0 - np.clip(t, 0, 1)) ** 1.3, 0.0)
            xs.append(px.ravel())
            ys.append(py.ravel())
            ws.append(w.ravel())
            # children: start somewhere along each path, branch off at an angle
            pick = rng.uniform(0.15, 0.7, len(theta) * 2)
            parent = np.repeat(np.arange(len(theta)), 2)
            idx = np.minimum((pick * length[parent] / step).astype(int), n_steps - 1)
            starts = np.stack([px[parent, idx], py[parent, idx]], 1)
            theta = ang[parent, idx] + rng.choice([-1.0, 1.0], len(parent)) * rng.uniform(0.3, 0.7, len(parent))
            length = length[parent] * (1 - pick) * shrink + 0.03
    v = splat(g, np.concatenate(xs), np.concatenate(ys), np.concatenate(ws))
    v = ndimage.gaussian_filter(v, sigma_px) * np.sqrt(2 * np.pi) * sigma_px
    return np.clip(v, 0, 0.9).astype(np.float32) * 0.22


def _base(g: Geometry, rng: np.random.Generator) -> Canvas:
    a = g.a
    body = _body(g)
    dens = 0.5 * body**0.7 + 0.14 * body
    dens += 0.10 * np.clip(1.0 - (g.y - 0.08) / 0.25, 0, 1) * body  # shoulder soft tissue
    for sgn in (-1, 1):
        # humeral head and scapula, partly in the field at the upper corners
        hx = a.cx + sgn * (a.body_half + 0.015)
        dens += 0.25 * disk(g, hx, 0.16, 0.055, 2.0) * body**0.2
        dens += 0.06 * ellipse(g, a.cx + sgn * (a.thorax_half * 0.98), 0.27, 0.06, 0.14, sgn * 0.25, 4.0)
        dens += a.breast * 0.35 * gauss(g, a.cx + sgn * a.thorax_half * 0.72, 0.74, 0.11, 0.07)
    canvas = Canvas(g, dens.astype(np.float32), _vessels(g, rng), np.ones_like(dens), np.zeros_like(dens), rng)
    return canvas


def _compose(c: Canvas) -> tuple[np.ndarray, np.ndarray]:
    g, a = c.g, c.g.a
    lungs = g.lungs()
    air = _smooth(lungs, g, 1.6)
    # air column is thickest mid-lung, thinner at the apex and along the chest wall
    lat = np.abs(g.x - g.med_x) / (a.thorax_half + 1e-3)
    depth = 0.78 + 0.22 * np.clip(1.0 - (lat - 0.45) ** 2 * 3.0, 0, 1)
    depth *= 0.8 + 0.2 * np.clip((g.y - a.lung_top) / 0.2, 0, 1)
    dens = c.density.copy()
    dens -= air * depth * (0.5 + 0.5 * a.lung_lucency) + c.lucency * air
    vessel_layer = air * c.vessels * c.vessel_keep * a.vessel_gain
    dens += vessel_layer
    dens += 0.05 * _smooth(g.heart_mask(), g, 1.5)
    # trachea and main bronchi (air columns)
    mx = g.med_x
    carina = a.heart_top - 0.09
    dens -= 0.3 * polyline(g, np.array([[mx, 0.0], [mx + 0.004, carina]]), 0.03, 3.0)
    for side in ("right", "left"):
        hx, hy = g.hilum(side)
        dens -= 0.1 * polyline(g, np.array([[mx, carina], [0.5 * (mx + hx), carina + 0.04], [hx, hy]]), 0.016, 1.5)
        dens += 0.10 * gauss(g, hx, hy + 0.01, 0.022, 0.035) * air
    # gastric bubble under the left dome
    bx = g.dome_apex_x("left") + 0.02
    dens -= 0.22 * gauss(g, bx, a.dome_left + 0.05, 0.04, 0.022) * (g.y > g.dome_y("left") + 0.012)
    dens += _spine(g)
    dens += _ribs(g)
    for sgn in (-1, 1):
        pts = np.array(
            [[mx + sgn * 0.03, 0.175], [mx + sgn * 0.12, 0.16], [mx + sgn * 0.22, 0.135], [mx + sgn * 0.34, 0.105]]
        )
        dens += 0.22 * polyline(g, pts, 0.026, 1.5) + 0.06 * polyline(g, pts, 0.034, 1.5)
    dens *= a.exposure
    img = 1.0 - np.exp(-2.1 * np.clip(dens, 0, None))
    img = np.clip(img / 0.97, 0, 1) ** (a.gamma * 1.1)
    noise = c.rng.normal(0.0, a.noise, img.shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, 0.6 * max(g.size / 256.0, 1.0)) * 1.8
    img = img + noise * (0.4 + 0.6 * img)
    img = ndimage.gaussian_filter(img, 0.45 * g.size / 256.0 + 0.2)
    return np.clip(img, 0.0, 1.0).astype(np.float32), vessel_layer


def render_study(uid: str, findings: Sequence[Finding], size: int = 256, seed: int = 0) -> RenderResult:
    """Render one study's phantom radiograph. Same (uid, findings, size, seed) -> same pixels."""
    if not isinstance(size, (int, np.integer)) or not SIZES[0] <= size <= SIZES[1]:
        raise ConfigError(f"phantom image size must be an int in [{SIZES[0]}, {SIZES[1]}], got {size!r}")
    findings = sorted(findings, key=lambda f: KINDS.index(f.kind))
    anatomy = sample_anatomy(uid, seed)
    base_geometry = Geometry(anatomy, size)
    anatomy = lesions.adjust_anatomy(anatomy, findings)
    g = Geometry(anatomy, size)
    rng = uid_rng(uid, seed, 2)
    canvas = _base(g, rng)
    masks = []
    for i, f in enumerate(findings):
        frng = uid_rng(uid + f"|{i}|{f.kind}", seed, 3)
        masks.append(lesions.paint(canvas, f, frng, base_geometry))
    image, vessel_layer = _compose(canvas)
    return RenderResult(image, list(findings), masks, anatomy, g, vessel_layer)
