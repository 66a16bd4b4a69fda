"""What the page shows of an upload: the image as read (DICOM windowed), window/level, gaze overlays.

Display only: drafting always reads the file itself (the file's own VOI for a DICOM), so moving the
window/level sliders never changes the draft. Nothing here reads or returns DICOM header identity.

>>> import numpy as np
>>> to_display(np.array([[0.0, 1.0]], np.float32)).tolist()
[[0, 255]]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eclip_core.data.image_io import DICOM_SUFFIXES, is_dicom_bytes, load_image
from eclip_core.errors import FixationsError

log = logging.getLogger(__name__)

#: Longest side of the preview sent to the browser (radiographs are ~3,000 px; the page shows ~500).
PREVIEW_MAX_SIDE = 1024


@dataclass
class Preview:
    """An upload as the page shows it.

    ``grey``: float32 HxW in [0, 1] at full resolution (what drafting reads);
    ``window``: (center, width, low, high) in modality units for a DICOM (slider ranges), else None.
    """

    grey: np.ndarray
    is_dicom: bool
    window: tuple[float, float, float, float] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.grey.shape[0]), int(self.grey.shape[1])


def is_dicom_file(path: str | Path) -> bool:
    """True for a DICOM Part 10 file (magic bytes) or a DICOM suffix."""
    p = Path(path)
    with p.open("rb") as fh:
        head = fh.read(132)
    return is_dicom_bytes(head) or p.suffix.lower() in DICOM_SUFFIXES


def read_preview(path: str | Path, center: float | None = None, width: float | None = None) -> Preview:
    """Read an upload for display; a DICOM is re-windowed when ``center``/``width`` are given.

    Raises :class:`eclip_core.errors.ImageLoadError` for an unreadable file, like drafting would.
    """
    if is_dicom_file(path):
        from eclip_core.data.dicom import read_dicom_display

        display = read_dicom_display(path)
        grey = display.render(center, width) if (center is not None or width is not None) else display.render()
        lo, hi = float(display.values.min()), float(display.values.max())
        return Preview(grey, True, (display.window_center, display.window_width, lo, hi))
    return Preview(load_image(path), False)


def _downscale_factor(shape: tuple[int, int], max_side: int) -> int:
    return max(1, int(np.ceil(max(shape) / max_side)))


def downscale(grey: np.ndarray, max_side: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """Block-average a float HxW image so its longest side is at most ``max_side`` (edges cropped to
    whole blocks)."""
    f = _downscale_factor(grey.shape, max_side)
    if f == 1:
        return grey
    h, w = (grey.shape[0] // f) * f, (grey.shape[1] // f) * f
    return grey[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def to_display(grey: np.ndarray, max_side: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """float [0, 1] HxW -> uint8 HxW, block-averaged so the longest side is at most ``max_side``."""
    return np.clip(np.rint(downscale(grey, max_side) * 255.0), 0, 255).astype(np.uint8)


def _one_image(fixations, image_name: str | None, path: Path):
    # A whole EGD-CXR fixations.csv covers ~1,000 images: keep the uploaded image's rows (by DICOM_ID =
    # the image's file stem) or refuse, rather than paint every radiologist's gaze on one picture.
    ids = fixations["DICOM_ID"].unique()
    if len(ids) <= 1:
        return fixations
    if image_name and image_name in set(ids):
        return fixations[fixations["DICOM_ID"] == image_name]
    raise FixationsError(
        f"{path.name}: holds fixations for {len(ids)} images; name the image after its DICOM_ID "
        "or upload the rows of this image only"
    )


def read_gaze_heatmap(
    path: str | Path,
    image_shape: tuple[int, int],
    out_shape: tuple[int, int] | None = None,
    image_name: str | None = None,
) -> tuple[np.ndarray, str]:
    """A gaze file (EGD-CXR or REFLACX fixations) -> (heatmap on ``out_shape`` in [0, 1], format name).

    Fixation coordinates are pixels of the uploaded image (``image_shape``, its original size); the map
    is drawn on ``out_shape`` (default the same). Tries EGD-CXR first, then REFLACX; raises
    :class:`FixationsError` naming both problems when neither reader accepts the file.
    """
    from eclip_core.heatmap import gaze

    path = Path(path)
    out_shape = out_shape or image_shape
    problems = []
    try:
        fixations = _one_image(gaze.read_egd_fixations(path), image_name, path)
        return gaze.egd_heatmap(fixations, out_shape, original_shape=image_shape).astype(np.float32), "EGD-CXR"
    except FixationsError as exc:
        problems.append(f"as EGD-CXR: {exc}")
    try:
        fixations = gaze.read_reflacx_fixations(path)
        heat = gaze.reflacx_heatmap(fixations, out_shape, original_shape=image_shape, normalize="max")
        return heat.astype(np.float32), "REFLACX"
    except FixationsError as exc:
        problems.append(f"as REFLACX: {exc}")
    raise FixationsError(f"{path.name}: not a usable EGD-CXR or REFLACX fixation file ({'; '.join(problems)})")


def overlay(grey: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a heatmap (HxW, [0, 1]) over a grey image of the same shape as RGB uint8 (jet colours).

    Where the heat is zero the radiograph shows unchanged; the blend weight grows with the heat.

    >>> g = np.zeros((4, 4), np.float32); h = np.zeros((4, 4), np.float32); h[0, 0] = 1.0
    >>> out = overlay(g, h); out.shape, bool((out[3, 3] == 0).all()), bool(out[0, 0].any())
    ((4, 4, 3), True, True)
    """
    from matplotlib import colormaps

    if heat.shape != grey.shape:
        raise FixationsError(f"heatmap shape {heat.shape} does not match the image shape {grey.shape}")
    peak = float(heat.max()) if heat.size else 0.0
    heat = heat / peak if peak > 0 else heat
    rgb_grey = np.repeat(grey[..., None], 3, axis=2)
    colour = colormaps["jet"](heat)[..., :3]
    weight = (alpha * heat)[..., None]
    out = (1.0 - weight) * rgb_grey + weight * colour
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
