"""A study's expert heatmap: its saved map file, or its EGD-CXR / REFLACX fixation files rendered.

Lives in the data layer because it reads files a manifest names (images for their original size, maps
as PNG or .npy); the renderers it calls stay in :mod:`eclip_core.heatmap.gaze`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from eclip_core.data.image_io import image_size, load_image
from eclip_core.errors import FixationsError, ImageLoadError
from eclip_core.heatmap.gaze import (
    REFLACX_REQUIRED,
    check_shape,
    egd_heatmap,
    max_scale,
    read_egd_fixations,
    read_reflacx_fixations,
    reflacx_heatmap,
)

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)
def _cached_fixations(path: str, mtime: float, fmt: str) -> pd.DataFrame:
    # Expert studies are revisited every epoch: parse each file once (keyed by mtime to see edits).
    if fmt == "egd":
        df = read_egd_fixations(path)
        return df[["DICOM_ID", "X_ORIGINAL", "Y_ORIGINAL"]].copy()
    return read_reflacx_fixations(path)[list(REFLACX_REQUIRED)].copy()


def _fixations(path: str, fmt: str) -> pd.DataFrame:
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        raise FixationsError(f"{fmt} fixations file {path} does not exist") from None
    return _cached_fixations(str(path), mtime, fmt)


@functools.lru_cache(maxsize=8192)
def _cached_size(path: str, mtime: float) -> tuple[int, int]:
    return image_size(path)


def _original_shape(study: Any, image_shape: tuple[int, int]) -> tuple[int, int]:
    meta = getattr(study, "meta", {}) or {}
    size = meta.get("original_size")
    if size and len(size) == 2:
        return int(size[0]), int(size[1])
    for p in getattr(study, "image_paths", [])[:1]:
        try:
            return _cached_size(str(p), os.path.getmtime(p))
        except (OSError, ImageLoadError):
            log.warning(
                "study %s: cannot read the size of %s; assuming fixations are on a %s grid",
                getattr(study, "study_id", "?"),
                p,
                image_shape,
            )
    return image_shape


def _resize(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if m.shape == shape:
        return m.astype(np.float32)
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(m, dtype=np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def _load_heatmap_file(path: str, shape: tuple[int, int]) -> np.ndarray:
    if str(path).lower().endswith(".npy"):
        try:
            m = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise ImageLoadError(f"{path}: unreadable heatmap .npy ({exc})") from None
        m = np.squeeze(m)
        if m.ndim != 2:
            raise ImageLoadError(f"{path}: heatmap must be 2-D, got shape {m.shape}")
        if not np.isfinite(m).all():
            raise ImageLoadError(f"{path}: heatmap contains NaN or infinite values")
    else:
        m = load_image(path)
    return np.clip(_resize(m, shape), 0.0, None)


def load_expert_heatmap(study: Any, image_shape: Sequence[int]) -> np.ndarray | None:
    """The study's expert map on an ``image_shape`` grid (float32, max 1), or None if it has none.

    Uses ``study.heatmap_path`` (PNG or .npy, resized) when set, else ``study.fixations_paths`` with
    ``study.gaze_format`` ``"egd"`` (all files' fixations pooled; rows filtered by
    ``meta["dicom_id"]`` when a file holds several images) or ``"reflacx"`` (one sum-normalised map
    per reading, averaged). Fixation coordinates refer to the original image, whose size comes from
    ``meta["original_size"]`` ([height, width]) or the first image file's header.

    >>> from eclip_core.data.manifest import Study
    >>> load_expert_heatmap(Study("s1", ["a.png"], "train"), (8, 8)) is None
    True
    """
    shape = check_shape(image_shape)
    if getattr(study, "heatmap_path", None):
        return max_scale(_load_heatmap_file(study.heatmap_path, shape), f"heatmap {study.heatmap_path}")
    paths = list(getattr(study, "fixations_paths", []) or [])
    if not paths:
        return None
    fmt = (getattr(study, "gaze_format", "") or "").lower()
    orig = _original_shape(study, shape)
    meta = getattr(study, "meta", {}) or {}
    if fmt == "egd":
        frames = [_fixations(p, "egd") for p in paths]
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        dicom_id = meta.get("dicom_id")
        if dicom_id and df["DICOM_ID"].nunique() > 1:
            df = df[df["DICOM_ID"] == str(dicom_id)]
        return egd_heatmap(df, shape, original_shape=orig)
    if fmt == "reflacx":
        maps = [reflacx_heatmap(_fixations(p, "reflacx"), shape, original_shape=orig, normalize="sum") for p in paths]
        return max_scale(np.mean(maps, axis=0), f"study {study.study_id} REFLACX readings")
    raise FixationsError(
        f"study {getattr(study, 'study_id', '?')}: gaze_format must be 'egd' or 'reflacx' for fixations_path, "
        f"got {fmt!r}"
    )
