"""Image pipeline: grey X-ray in [0, 1] -> normalised 3-channel tensor (and the same geometry for a heatmap).

Train: RandomResizedCrop (area scale 0.5-1 by default) then, with probability ``clahe_p``, a CLAHE-like
local contrast step (tile-wise clipped histogram equalisation, bilinearly blended between tiles).
Eval: resize the shorter side, center crop. A heatmap given with the image goes through the same crop
so the expert map stays on the pixels it annotates.

>>> import numpy as np
>>> t = ImageTransform(size=32)
>>> x, h = t(np.full((40, 50), 0.58, np.float32), heatmap=np.ones((40, 50), np.float32))
>>> tuple(x.shape), float(x.abs().max()) < 1e-6, tuple(h.shape)
((3, 32, 32), True, (1, 32, 32))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from eclip_core.errors import ImageLoadError


def clahe(image: np.ndarray, clip_limit: float = 2.0, tiles: int = 8, bins: int = 256) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a grey image in [0, 1] (returns [0, 1]).

    Written from the textbook algorithm (Zuiderveld 1994): per-tile histograms clipped at
    ``clip_limit`` x the uniform count with the excess redistributed, per-tile CDF look-up tables,
    bilinear interpolation between the four nearest tile centres (no tile seams).
    """
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape
    tiles = max(1, min(tiles, h, w))
    th, tw = math.ceil(h / tiles), math.ceil(w / tiles)
    q = np.clip(np.rint(img * (bins - 1)), 0, bins - 1).astype(np.int64)
    qp = np.pad(q, ((0, tiles * th - h), (0, tiles * tw - w)), mode="reflect" if min(h, w) > 1 else "edge")
    blocks = qp.reshape(tiles, th, tiles, tw).transpose(0, 2, 1, 3).reshape(tiles * tiles, th * tw)
    offsets = blocks + (np.arange(tiles * tiles) * bins)[:, None]
    hist = np.bincount(offsets.ravel(), minlength=tiles * tiles * bins).reshape(tiles * tiles, bins).astype(np.float64)
    limit = max(1.0, clip_limit * th * tw / bins)
    excess = np.clip(hist - limit, 0, None).sum(axis=1, keepdims=True)
    hist = np.minimum(hist, limit) + excess / bins
    cdf = np.cumsum(hist, axis=1)
    lut = ((cdf - cdf[:, :1]) / np.maximum(cdf[:, -1:] - cdf[:, :1], 1e-12)).reshape(tiles, tiles, bins)

    def axis_weights(n: int, t: int):
        pos = (np.arange(n) + 0.5) / t - 0.5
        lo = np.floor(pos)
        wgt = (pos - lo).astype(np.float32)
        return np.clip(lo, 0, tiles - 1).astype(int), np.clip(lo + 1, 0, tiles - 1).astype(int), wgt

    y0, y1, wy = axis_weights(h, th)
    x0, x1, wx = axis_weights(w, tw)
    wy, wx = wy[:, None], wx[None, :]
    Y0, Y1, X0, X1 = y0[:, None], y1[:, None], x0[None, :], x1[None, :]
    out = (1 - wy) * ((1 - wx) * lut[Y0, X0, q] + wx * lut[Y0, X1, q]) + wy * (
        (1 - wx) * lut[Y1, X0, q] + wx * lut[Y1, X1, q]
    )
    return out.astype(np.float32)


def random_resized_crop_box(
    h: int, w: int, scale: tuple[float, float], rng: np.random.Generator, ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop covering ``scale`` of the area (torchvision's rule)."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    # Fallback: the largest centred crop within the ratio bounds.
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # x: [C,H,W]; antialias only matters (and only works) when shrinking.
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=shrink)[0]


def _center_box(h: int, w: int, size: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    s = size / min(h, w)
    rh, rw = max(size, int(round(h * s))), max(size, int(round(w * s)))
    return (rh, rw), ((rh - size) // 2, (rw - size) // 2, size, size)


@dataclass
class ImageTransform:
    """Grey [0,1] HxW array (and optional HxW heatmap) -> ([3,S,S] normalised, [1,S,S] heatmap or None)."""

    size: int = 224
    mean: float = 0.58
    std: float = 0.26
    crop_scale: tuple[float, float] = (0.5, 1.0)
    clahe_p: float = 0.3
    clahe_clip_limit: float = 2.0
    clahe_tiles: int = 8

    def __call__(
        self,
        image: np.ndarray,
        heatmap: np.ndarray | None = None,
        train: bool = False,
        rng: np.random.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        img = np.asarray(image, dtype=np.float32)
        if img.ndim == 3 and img.shape[-1] in (3, 4):
            img = img[..., :3].mean(axis=-1)  # RGB(A) array -> grey
        if img.ndim != 2 or min(img.shape) < 1:
            raise ImageLoadError(f"expected a 2-D grey image, got an array of shape {img.shape}")
        h, w = img.shape
        if heatmap is not None and np.asarray(heatmap).shape != (h, w):
            raise ImageLoadError(f"heatmap shape {np.asarray(heatmap).shape} differs from image shape {(h, w)}")
        rng = rng if rng is not None else np.random.default_rng()
        x = torch.from_numpy(np.ascontiguousarray(img))[None]
        hm = torch.from_numpy(np.ascontiguousarray(heatmap, dtype=np.float32))[None] if heatmap is not None else None
        if train:
            top, left, ch, cw = random_resized_crop_box(h, w, self.crop_scale, rng)
            x = _resize(x[:, top : top + ch, left : left + cw], (self.size, self.size))
            if hm is not None:
                hm = _resize(hm[:, top : top + ch, left : left + cw], (self.size, self.size))
            if self.clahe_p > 0 and rng.uniform() < self.clahe_p:
                x = torch.from_numpy(clahe(x[0].clamp(0, 1).numpy(), self.clahe_clip_limit, self.clahe_tiles))[None]
        else:
            (rh, rw), (top, left, ch, cw) = _center_box(h, w, self.size)
            x = _resize(x, (rh, rw))[:, top : top + ch, left : left + cw]
            if hm is not None:
                hm = _resize(hm, (rh, rw))[:, top : top + ch, left : left + cw]
        x = (x.clamp(0, 1) - self.mean) / self.std
        # Grey to 3 channels by concatenation: expand().contiguous() is a strided copy that torch spreads
        # over its thread pool, ~100x slower than this on a loaded 2-core CPU (same values).
        x = torch.cat([x, x, x])
        if hm is not None:
            hm = hm.clamp(min=0).contiguous()
        return x, hm
