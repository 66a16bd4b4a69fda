"""Load any chest X-ray the product accepts as one grey float32 HxW array in [0, 1] (0 = black).

Sources: a path (PNG / JPEG, 8 or 16 bit, grey or colour; DICOM by its ``DICM`` magic bytes or a
``.dcm``/``.dicom``/``.dic`` suffix; ``.npy``), raw bytes of any of these, a ``PIL.Image``, or a
numpy array (uint8, uint16, other ints, bool, float; 2-D or HxWx1/3/4).

Intensity scaling: integer data is divided by its type's full range (uint8 / 255, uint16 / 65535),
so a 16-bit PNG keeps its absolute grey levels; float data already inside [0, 1] is kept, other
float or signed-integer data is min-max scaled. Colour is turned into luma (ITU-R 601 weights).

Size guard: the header's width x height is checked against ``max_pixels`` (default
:data:`DEFAULT_MAX_PIXELS`) *before* any pixel is decoded, so a 50,000 x 50,000 PNG (a
decompression bomb) fails fast without allocating gigabytes. Pillow's own guard
(2 x ``PIL.Image.MAX_IMAGE_PIXELS``) stays an outer limit.

>>> import numpy as np
>>> load_image(np.array([[0, 255]], dtype=np.uint8)).tolist()
[[0.0, 1.0]]
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from eclip_core.data.dicom import dicom_size, read_dicom, read_dicom_display  # noqa: F401 (re-exported)
from eclip_core.errors import ImageLoadError
from eclip_core.privacy import file_tag

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DICOM_SUFFIXES",
    "array_to_unit",
    "check_not_blank",
    "dicom_size",
    "image_size",
    "is_dicom_bytes",
    "load_image",
    "load_nonblank_image",
    "pil_to_unit",
    "read_dicom",
    "read_dicom_display",
]

log = logging.getLogger(__name__)

#: Largest image (width x height) decoded by default: 10,000 x 10,000. Radiographs are <= ~4,300 px a side.
DEFAULT_MAX_PIXELS = 100_000_000

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, TypeError)

ImageSource = Union[str, os.PathLike, bytes, bytearray, "Image.Image", np.ndarray, BinaryIO]


def is_dicom_bytes(head: bytes) -> bool:
    """True when ``head`` (the first >= 132 bytes of a file) carries the DICOM Part 10 magic."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def array_to_unit(arr: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Convert a numpy image (2-D, HxWx1, HxWx3 or HxWx4) into float32 HxW in [0, 1].

    >>> array_to_unit(np.array([[0, 65535]], dtype=np.uint16)).tolist()
    [[0.0, 1.0]]
    >>> array_to_unit(np.array([[-5.0, 5.0]])).tolist()
    [[0.0, 1.0]]
    """
    a = np.asarray(arr)
    if a.dtype == object:
        raise ImageLoadError(f"{name}: array of Python objects is not an image")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        rgb = a[..., :3]
        scaled = _scale(rgb, name)
        a2 = scaled @ _LUMA
        out = np.clip(a2, 0.0, 1.0)
    elif a.ndim == 2:
        out = _scale(a, name)
    else:
        raise ImageLoadError(f"{name}: expected a 2-D grey or HxWx3 colour image, got array of shape {a.shape}")
    if out.shape[0] == 0 or out.shape[1] == 0:
        raise ImageLoadError(f"{name}: image is empty (shape {out.shape})")
    return np.ascontiguousarray(out, dtype=np.float32)


def _scale(a: np.ndarray, name: str) -> np.ndarray:
    if a.size == 0:
        raise ImageLoadError(f"{name}: image is empty (shape {a.shape})")
    # Full-range integer types go straight to float32 (a 5 M pixel radiograph: no float64 detour).
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        out = a.astype(np.float32)
        out /= np.float32(255.0)
        return out
    if a.dtype == np.uint16:
        out = a.astype(np.float32)
        out /= np.float32(65535.0)
        return out
    if np.issubdtype(a.dtype, np.integer):  # other widths/signed: no known full range
        return _minmax(a.astype(np.float64))
    if np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float64)
        if not np.isfinite(f).all():
            raise ImageLoadError(f"{name}: image contains NaN or infinite values")
        if f.min() >= 0.0 and f.max() <= 1.0:
            return f
        return _minmax(f)
    raise ImageLoadError(f"{name}: unsupported pixel type {a.dtype}")


def _minmax(f: np.ndarray) -> np.ndarray:
    lo, hi = float(f.min()), float(f.max())
    return (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)


def pil_to_unit(im: Image.Image, name: str = "<PIL image>") -> np.ndarray:
    """Convert a decoded PIL image of any mode into float32 HxW in [0, 1]."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return array_to_unit(np.asarray(im).astype(np.uint16), name)
    if mode == "I":
        a = np.asarray(im)
        if a.size and a.min() >= 0 and a.max() <= 65535:  # older Pillow opens 16-bit PNG as "I"
            a = a.astype(np.uint16)
        return array_to_unit(a, name)
    if mode == "F":
        return array_to_unit(np.asarray(im, dtype=np.float32), name)
    if mode in ("L", "1"):
        return array_to_unit(np.asarray(im.convert("L")), name)
    if mode == "LA":
        return array_to_unit(np.asarray(im)[..., 0], name)
    return array_to_unit(np.asarray(im.convert("RGB")), name)


def _check_pixels(width: int, height: int, name: str, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"{name}: image has zero size ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
            f"(possible decompression bomb); pass a larger max_pixels if the image is genuine"
        )


def _open_pil(fh: BinaryIO, name: str, max_pixels: int | None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(fh)
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(f"{name}: image too large, possible decompression bomb ({exc})") from None
        except UnidentifiedImageError:
            fmt = _signature(fh)
            if fmt:
                raise ImageLoadError(f"{name}: starts like a {fmt} file but its structure is corrupt") from None
            raise ImageLoadError(f"{name}: not a recognised image (expected PNG, JPEG or DICOM)") from None
        except _DECODE_ERRORS as exc:
            raise ImageLoadError(f"{name}: corrupt image header ({type(exc).__name__}: {exc})") from None
        with im:
            width, height = im.size  # header only: nothing decoded yet
            _check_pixels(width, height, name, max_pixels)
            try:
                im.load()
                if getattr(im, "n_frames", 1) > 1:
                    log.warning("%s: multi-frame image; using the first frame", file_tag(name))  # never the name: PHI
                im = ImageOps.exif_transpose(im) if im.format == "JPEG" else im
            except Image.DecompressionBombError as exc:
                raise ImageLoadError(f"{name}: image too large, possible decompression bomb ({exc})") from None
            except _DECODE_ERRORS as exc:
                raise ImageLoadError(
                    f"{name}: image data is truncated or corrupt ({type(exc).__name__}: {exc})"
                ) from None
            return pil_to_unit(im, name)


_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _format_of(head: bytes) -> str | None:
    """PNG / JPEG / ... when ``head`` starts with that format's signature, else None."""
    return next((fmt for sig, fmt in _SIGNATURES.items() if head.startswith(sig)), None)


def _signature(fh: BinaryIO) -> str | None:
    try:
        fh.seek(0)
        return _format_of(fh.read(8))
    except (OSError, ValueError):
        return None


def _load_bytes(data: bytes, name: str, max_pixels: int | None) -> np.ndarray:
    if len(data) == 0:
        raise ImageLoadError(f"{name}: empty input (0 bytes)")
    if is_dicom_bytes(data[:132]):
        return read_dicom(bytes(data), max_pixels=max_pixels, name=name)
    if data[:6] == b"\x93NUMPY":
        return _load_npy(io.BytesIO(data), name)
    return _open_pil(io.BytesIO(data), name, max_pixels)


def _load_npy(fh: Any, name: str) -> np.ndarray:
    try:
        arr = np.load(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageLoadError(f"{name}: unreadable .npy array ({exc})") from None
    return array_to_unit(arr, name)


def _load_path(path: Path, max_pixels: int | None) -> np.ndarray:
    name = str(path)
    if not path.exists():
        raise ImageLoadError(f"{name}: file not found")
    if path.is_dir():
        raise ImageLoadError(f"{name}: is a folder, not an image file")
    size = path.stat().st_size
    if size == 0:
        raise ImageLoadError(f"{name}: empty file (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(132)
    pil_format = _format_of(head)
    # DICOM by magic bytes, or by suffix unless the bytes say PNG/JPEG (a misnamed export).
    if is_dicom_bytes(head) or (path.suffix.lower() in DICOM_SUFFIXES and pil_format is None):
        return read_dicom(path, max_pixels=max_pixels, name=name)
    if path.suffix.lower() == ".npy" or head[:6] == b"\x93NUMPY":
        return _load_npy(path, name)
    with path.open("rb") as fh:
        return _open_pil(fh, name, max_pixels)


def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an X-ray as float32 HxW in [0, 1] (0 = black) from a path, bytes, PIL image or array.

    Raises :class:`~eclip_core.errors.ImageLoadError` naming the input and the problem (missing,
    empty, not an image, truncated/corrupt, too large, DICOM without pixel data) and
    :class:`~eclip_core.errors.MissingDecoderError` naming the package for a compressed DICOM.

    >>> import numpy as np
    >>> from PIL import Image
    >>> load_image(Image.fromarray(np.full((2, 3), 128, np.uint8))).shape
    (2, 3)
    """
    if isinstance(source, (str, os.PathLike)):
        return _load_path(Path(source), max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load_bytes(bytes(source), "<image bytes>", max_pixels)
    if isinstance(source, Image.Image):
        _check_pixels(source.width, source.height, "<PIL image>", max_pixels)
        return pil_to_unit(source)
    if isinstance(source, np.ndarray):
        return array_to_unit(source)
    if hasattr(source, "read"):
        name = str(getattr(source, "name", "<file object>"))
        return _load_bytes(source.read(), name, max_pixels)
    if hasattr(source, "detach") and hasattr(source, "numpy"):  # a torch tensor, without importing torch
        return array_to_unit(source.detach().cpu().numpy())
    raise ImageLoadError(
        f"unsupported image source of type {type(source).__name__}; pass a path, bytes, PIL.Image or numpy array"
    )


def check_not_blank(pixels: np.ndarray, source: Any) -> None:
    """Refuse an image of one constant grey (ImageLoadError naming ``source``): nothing to draft from."""
    if pixels.size == 0 or float(pixels.std()) < 1e-3:
        name = source if isinstance(source, (str, Path)) else type(source).__name__
        raise ImageLoadError(
            f"{name}: the image is blank (constant value {float(pixels.mean()) if pixels.size else 0:.3f}); "
            "give a chest radiograph"
        )


def load_nonblank_image(source: ImageSource) -> np.ndarray:
    """:func:`load_image`, refusing a blank image too: how report drafting reads its input X-ray.

    Needs no model, so callers check an input before loading any (the CLI does).

    >>> load_nonblank_image(np.zeros((4, 4), np.uint8))
    Traceback (most recent call last):
    ...
    eclip_core.errors.ImageLoadError: ndarray: the image is blank (constant value 0.000); give a chest radiograph
    """
    pixels = load_image(source)
    check_not_blank(pixels, source)
    return pixels


def image_size(source: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file from its header, without decoding pixels.

    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"
    >>> Image.fromarray(np.zeros((3, 5), np.uint8)).save(p)
    >>> image_size(p)
    (3, 5)
    """
    path = Path(source)
    if not path.is_file():
        raise ImageLoadError(f"{path}: file not found")
    with path.open("rb") as fh:
        head = fh.read(132)
    if is_dicom_bytes(head) or path.suffix.lower() in DICOM_SUFFIXES:
        return dicom_size(path)
    if path.suffix.lower() == ".npy":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        return int(arr.shape[0]), int(arr.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                return im.height, im.width
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(f"{path}: image too large, possible decompression bomb ({exc})") from None
        except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
            raise ImageLoadError(f"{path}: not a readable image ({type(exc).__name__})") from None
