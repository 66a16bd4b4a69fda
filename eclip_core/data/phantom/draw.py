"""Vectorised drawing primitives on a normalised grid (see :class:`anatomy.Geometry`).

Each returns a float32 map in [0, 1] (1 inside, soft edge about one pixel wide) so shapes can be
added to a density map at any image size.

>>> from eclip_core.data.phantom.anatomy import Geometry, Anatomy
>>> g = Geometry(Anatomy(), 32)
>>> d = disk(g, 0.5, 0.5, 0.2)
>>> float(d[16, 16]), float(d[0, 0])
(1.0, 0.0)
"""

from __future__ import annotations

import numpy as np

from eclip_core.data.phantom.anatomy import Geometry


def _soft(signed_inside: np.ndarray, g: Geometry, edge_px: float = 1.0) -> np.ndarray:
    """Distance inside a boundary (normalised units) -> 0..1 with an ``edge_px`` ramp."""
    return np.clip(signed_inside / (edge_px * g.px) + 0.5, 0.0, 1.0).astype(np.float32)


def disk(g: Geometry, cx: float, cy: float, r: float, edge_px: float = 1.0) -> np.ndarray:
    d = np.sqrt((g.x - cx) ** 2 + (g.y - cy) ** 2)
    return _soft(r - d, g, edge_px)


def ellipse(
    g: Geometry, cx: float, cy: float, rx: float, ry: float, angle: float = 0.0, edge_px: float = 1.0
) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = g.x - cx, g.y - cy
    u, v = (dx * c + dy * s) / rx, (-dx * s + dy * c) / ry
    rr = np.sqrt(u * u + v * v)
    return _soft((1.0 - rr) * min(rx, ry), g, edge_px)


def gauss(g: Geometry, cx: float, cy: float, sx: float, sy: float | None = None) -> np.ndarray:
    sy = sx if sy is None else sy
    return np.exp(-0.5 * (((g.x - cx) / sx) ** 2 + ((g.y - cy) / sy) ** 2)).astype(np.float32)


def polyline(g: Geometry, pts: np.ndarray, width: float, edge_px: float = 1.0) -> np.ndarray:
    """A stroke of full ``width`` (normalised) along the polyline ``pts`` [n, 2] of (x, y).

    Computed on the bounding box of the stroke only, so long thin lines stay cheap at 1024 px.
    """
    pts = np.asarray(pts, dtype=np.float32)
    out = np.zeros_like(g.x)
    half = 0.5 * max(width, g.px)
    pad = half + 2 * g.px
    x0, y0 = pts.min(0) - pad
    x1, y1 = pts.max(0) + pad
    n = g.size
    c0, c1 = max(int(x0 * n), 0), min(int(np.ceil(x1 * n)) + 1, n)
    r0, r1 = max(int(y0 * n), 0), min(int(np.ceil(y1 * n)) + 1, n)
    if c0 >= c1 or r0 >= r1:
        return out
    X, Y = g.x[r0:r1, c0:c1], g.y[r0:r1, c0:c1]
    best = np.full(X.shape, np.inf, dtype=np.float32)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
        vx, vy = bx - ax, by - ay
        ll = vx * vx + vy * vy
        t = np.clip(((X - ax) * vx + (Y - ay) * vy) / ll, 0.0, 1.0) if ll > 0 else 0.0
        d = (X - ax - t * vx) ** 2 + (Y - ay - t * vy) ** 2
        np.minimum(best, d, out=best)
    out[r0:r1, c0:c1] = _soft(half - np.sqrt(best), g, edge_px)
    return out


def bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    """Points of a quadratic Bezier curve (for tubes, lines and leads)."""
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    p0, p1, p2 = (np.asarray(p, dtype=np.float32) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t * t * p2


def splat(g: Geometry, xs: np.ndarray, ys: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Accumulate weighted points into a map (nearest pixel); blur afterwards to make strokes."""
    n = g.size
    out = np.zeros(n * n, dtype=np.float32)
    c = np.clip((xs * n).astype(np.int64), 0, n - 1)
    r = np.clip((ys * n).astype(np.int64), 0, n - 1)
    np.add.at(out, r * n + c, weights.astype(np.float32))
    return out.reshape(n, n)
