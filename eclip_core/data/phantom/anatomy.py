"""Per-patient anatomy of a phantom frontal (PA) chest radiograph, and its geometry on a pixel grid.

All positions are in normalised image coordinates: ``x`` from 0 (image left) to 1 (image right),
``y`` from 0 (top) to 1 (bottom). A PA film shows the patient's RIGHT on the IMAGE LEFT, so
:func:`side_sign` maps "right" to -1 (towards smaller x) and "left" to +1.

>>> a = sample_anatomy("CXR1", seed=0)
>>> a == sample_anatomy("CXR1", seed=0), a == sample_anatomy("CXR2", seed=0)
(True, False)
>>> g = Geometry(a, 64)
>>> bool(g.lung_mask("right").any() and g.lung_mask("left").any())
True
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np


def side_sign(side: str) -> int:
    """+1 for the patient's left (image right), -1 for the patient's right (image left)."""
    return 1 if side == "left" else -1


def uid_rng(uid: str, seed: int, stream: int = 0) -> np.random.Generator:
    """A generator seeded by (seed, crc32(uid), stream): stable across runs and processes."""
    return np.random.default_rng([int(seed), zlib.crc32(uid.encode("utf-8")), int(stream)])


@dataclass(frozen=True)
class Anatomy:
    """Patient parameters: habitus, inspiration, rotation, exposure, normal heart size."""

    cx: float = 0.5  # midline (spine) x
    rotation: float = 0.0  # mediastinum offset from the spine (patient rotation)
    thorax_half: float = 0.36  # inner rib margin half width at the widest level
    body_half: float = 0.46  # soft-tissue outline half width
    lung_top: float = 0.12  # lung apex y
    dome_right: float = 0.67  # right hemidiaphragm apex y (usually higher than the left)
    dome_left: float = 0.70
    dome_curv: float = 0.10  # dome height above the costophrenic angles
    ctr: float = 0.44  # cardiothoracic ratio
    heart_top: float = 0.42
    med_half: float = 0.055  # upper mediastinum half width
    knob_r: float = 0.032  # aortic knob radius
    spine_curve: float = 0.0  # scoliosis amplitude (signed, image x)
    lung_lucency: float = 0.0  # extra lucency (hyperinflation)
    vessel_gain: float = 1.0
    rib_spacing: float = 0.058
    exposure: float = 1.0  # overall density gain (under/over-exposure)
    gamma: float = 1.0
    noise: float = 0.02
    breast: float = 0.0  # breast / pectoral soft-tissue strength at the lower lateral lungs

    def with_(self, **kw) -> Anatomy:
        return replace(self, **kw)


def sample_anatomy(uid: str, seed: int = 0) -> Anatomy:
    """Draw one patient's anatomy from (seed, uid); normal ranges only (findings change it later)."""
    r = uid_rng(uid, seed, 1)
    insp = r.uniform(-0.03, 0.035)
    dome_r = 0.665 + insp
    return Anatomy(
        cx=0.5 + r.normal(0, 0.01),
        rotation=r.normal(0, 0.008),
        thorax_half=r.uniform(0.33, 0.39),
        body_half=r.uniform(0.43, 0.485),
        lung_top=r.uniform(0.10, 0.14),
        dome_right=dome_r,
        dome_left=dome_r + r.uniform(0.01, 0.04),
        dome_curv=r.uniform(0.08, 0.115),
        ctr=r.uniform(0.38, 0.47),
        heart_top=r.uniform(0.40, 0.44),
        med_half=r.uniform(0.048, 0.06),
        knob_r=r.uniform(0.026, 0.036),
        rib_spacing=r.uniform(0.052, 0.062),
        exposure=r.uniform(0.88, 1.12),
        gamma=r.uniform(0.85, 1.15),
        noise=r.uniform(0.012, 0.028),
        breast=r.uniform(0.0, 0.25),
    )


class Geometry:
    """Pixel grids and anatomical masks of one anatomy at one image size (float32 / bool arrays)."""

    def __init__(self, anatomy: Anatomy, size: int):
        self.a = anatomy
        self.size = size
        c = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.y, self.x = np.meshgrid(c, c, indexing="ij")
        self.px = 1.0 / size  # one pixel in normalised units
        self._memo: dict[tuple, np.ndarray] = {}

    def _cached(self, key: tuple, fn):
        # masks are asked for many times per render (painters, compose); the geometry never changes
        if key not in self._memo:
            self._memo[key] = fn()
            self._memo[key].setflags(write=False)
        return self._memo[key]

    # ------------------------------------------------------------------ midline and spine
    def spine_x(self, y: np.ndarray | float) -> np.ndarray | float:
        a = self.a
        t = np.clip((np.asarray(y) - 0.05) / 0.9, 0.0, 1.0)
        return a.cx + a.spine_curve * np.sin(np.pi * t)

    @property
    def med_x(self) -> float:
        return self.a.cx + self.a.rotation

    # ------------------------------------------------------------------ lungs and diaphragm
    def lung_half_at(self, y: np.ndarray) -> np.ndarray:
        """Lateral half width of the thorax (inner rib margin) at height y: rounded apex, widening down."""
        a = self.a
        t = np.clip((y - a.lung_top) / 0.30, 0.0, 1.0)
        widen = 0.86 + 0.14 * np.clip((y - a.lung_top - 0.1) / 0.45, 0, 1)
        return a.thorax_half * np.sqrt(1.0 - (1.0 - t) ** 2.6) * widen

    def dome_apex_x(self, side: str) -> float:
        return self.med_x + side_sign(side) * 0.42 * self.a.thorax_half

    def dome_y(self, side: str, x: np.ndarray | None = None) -> np.ndarray:
        """y of the hemidiaphragm on ``side`` at image x (a dome: highest at its apex)."""
        a = self.a
        x = self.x if x is None else x
        apex = a.dome_right if side == "right" else a.dome_left
        u = (x - self.dome_apex_x(side)) / (0.62 * a.thorax_half)
        return apex + a.dome_curv * u * u

    def side_region(self, side: str) -> np.ndarray:
        return (self.x - self.med_x) * side_sign(side) > 0

    def lung_envelope(self, side: str) -> np.ndarray:
        """Hemithorax air space including the part behind the heart shadow (bool)."""
        return self._cached(("env", side), lambda: self._lung_envelope(side))

    def _lung_envelope(self, side: str) -> np.ndarray:
        a = self.a
        s = side_sign(side)
        dx = (self.x - self.med_x) * s
        inside = (dx > 0.0) & (dx < self.lung_half_at(self.y)) & (self.y > a.lung_top)
        return inside & (self.y < self.dome_y(side))

    def heart_mask(self) -> np.ndarray:
        return self._cached(("heart",), self._heart_mask)

    def _heart_mask(self) -> np.ndarray:
        a = self.a
        w = a.ctr * 2.0 * a.thorax_half
        xl, xr = self.med_x - 0.34 * w, self.med_x + 0.66 * w
        dome = 0.5 * (a.dome_left + a.dome_right)
        # left ventricle: an ellipse whose apex sits on the left dome; right atrium: a smaller bulge
        lx, ly = self.med_x + 0.16 * w, 0.5 * (a.heart_top + 0.04 + dome + 0.04)
        ax, ay = xr - lx, 0.5 * (dome + 0.04 - a.heart_top - 0.04)
        dx, dy = (self.x - lx) / ax, (self.y - ly) / ay
        lv = dx * dx + dy * dy < 1.0
        rx0, ry0 = xl + 0.55 * (self.med_x - xl), dome - 0.08
        rax, ray = self.med_x - xl - 0.55 * (self.med_x - xl) + 0.002, 0.12
        ra = ((self.x - rx0) / max(rax, 1e-3)) ** 2 + ((self.y - ry0) / ray) ** 2 < 1.0
        band = (self.x > xl) & (self.x < self.med_x + 0.02) & (self.y > a.heart_top + 0.02) & (self.y < dome + 0.05)
        return lv | ra | (band & (self.x > rx0))

    def heart_width(self) -> float:
        return self.a.ctr * 2.0 * self.a.thorax_half

    def mediastinum_mask(self) -> np.ndarray:
        return self._cached(("med",), self._mediastinum_mask)

    def _mediastinum_mask(self) -> np.ndarray:
        a = self.a
        # the upper mediastinum widens gently towards the heart
        half = a.med_half * (0.85 + 0.3 * np.clip((self.y - 0.15) / (a.heart_top - 0.15), 0, 1))
        upper = (np.abs(self.x - self.med_x) < half) & (self.y < a.heart_top + 0.08)
        kx, ky = self.med_x + a.med_half + 0.25 * a.knob_r, a.heart_top - 0.15
        knob = (self.x - kx) ** 2 + (self.y - ky) ** 2 < a.knob_r**2
        return upper | knob

    def lung_mask(self, side: str) -> np.ndarray:
        """Visible aerated lung on ``side`` (envelope minus heart and mediastinum)."""
        return self._cached(
            ("lung", side), lambda: self.lung_envelope(side) & ~self.heart_mask() & ~self.mediastinum_mask()
        )

    def lungs(self) -> np.ndarray:
        return self._cached(("lungs",), lambda: self.lung_mask("right") | self.lung_mask("left"))

    def hilum(self, side: str) -> tuple[float, float]:
        return self.med_x + side_sign(side) * (self.a.med_half + 0.045), self.a.heart_top + 0.0

    def costophrenic_point(self, side: str) -> tuple[float, float]:
        """(x, y) of the costophrenic angle on ``side``."""
        x = self.med_x + side_sign(side) * self.lung_half_at(np.float32(0.75)) * 0.98
        return float(x), float(self.dome_y(side, np.float32(x)))

    def lung_point(self, side: str, location: str, rng: np.random.Generator | None = None) -> tuple[float, float]:
        """A plausible (x, y) inside the lung on ``side`` for a named location."""
        a = self.a
        s = side_sign(side)
        dome = a.dome_right if side == "right" else a.dome_left
        frac, y = {
            "upper": (0.55, a.lung_top + 0.10),
            "middle": (0.45, a.heart_top + 0.08),
            "lingula": (0.5, a.heart_top + 0.08),
            "hilum": (0.3, a.heart_top + 0.01),
            "lower": (0.6, dome - 0.06),
            "base": (0.6, dome - 0.04),
        }.get(location, (0.6, 0.5 * (a.lung_top + dome) + 0.05))
        if rng is not None:
            frac += rng.uniform(-0.1, 0.1)
            y += rng.uniform(-0.03, 0.03)
        half = float(self.lung_half_at(np.float32(y)))
        return self.med_x + s * (a.med_half + frac * (half - a.med_half)), y
