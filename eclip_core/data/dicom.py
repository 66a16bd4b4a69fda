"""DICOM radiographs to display-ready grey images, without ever exposing patient identity.

Pipeline (DICOM PS3.3 C.11 order): stored values -> modality LUT (rescale slope/intercept or a
Modality LUT Sequence) -> VOI (a VOI LUT Sequence is preferred; else Window Center/Width with the
VOI LUT Function LINEAR, LINEAR_EXACT or SIGMOID; else the image's min/max) -> [0, 1] ->
MONOCHROME1 inverted (pydicom does not invert it for us). Compressed transfer syntaxes decode
through pydicom's plugins (pylibjpeg-openjpeg, pylibjpeg-rle, pyjpegls, ...); when none is
installed for a syntax, :class:`MissingDecoderError` names the package that would decode it.

Patient identifiers (names, ids, dates, institution) are never logged and never put into messages:
pydicom warnings raised while reading are suppressed (they can quote header values), and any
identifier value that slips into a wrapped exception text is redacted.

>>> import tempfile, pathlib, numpy as np
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.dcm"
>>> write_test_dicom(p, np.arange(16, dtype=np.uint16).reshape(4, 4) * 256, bits_stored=12)
>>> img = read_dicom(p)
>>> img.shape, img.dtype, float(img.min()), float(img.max())
((4, 4), dtype('float32'), 0.0, 1.0)
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import numpy as np

from eclip_core.errors import ImageLoadError, MissingDecoderError
from eclip_core.privacy import file_tag

log = logging.getLogger(__name__)

# Header elements that identify a person or a visit; their values are scrubbed from any message.
_IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StudyID",
    "IssuerOfPatientID",
    "PatientMotherBirthName",
    "MedicalRecordLocator",
)

# Which installable package decodes each family of compressed transfer syntaxes.
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg (GPL-3) or python-gdcm",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg (GPL-3) or python-gdcm",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg (GPL-3) or python-gdcm",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg (GPL-3) or python-gdcm",
    "1.2.840.10008.1.2.4.80": "pyjpegls or python-gdcm",
    "1.2.840.10008.1.2.4.81": "pyjpegls or python-gdcm",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",
}

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class DicomDisplay:
    """A DICOM image before VOI, so a viewer can offer window/level.

    ``values`` are modality values (after rescale / modality LUT), float32 HxW.
    ``window_center`` / ``window_width`` are the file's first window, or the values' min/max
    span when the file has none. ``render()`` gives the same image as :func:`read_dicom`;
    ``render(center, width)`` re-windows it (always LINEAR, MONOCHROME1 still inverted).
    """

    values: np.ndarray
    window_center: float
    window_width: float
    invert: bool
    voi_function: str = "LINEAR"
    default_image: np.ndarray | None = None

    def render(self, center: float | None = None, width: float | None = None) -> np.ndarray:
        """Grey image in [0, 1] for the given window (default: the file's own VOI)."""
        if center is None and width is None and self.default_image is not None:
            return self.default_image
        c = self.window_center if center is None else float(center)
        w = self.window_width if width is None else float(width)
        out = apply_window(self.values, c, w, "LINEAR")
        return (1.0 - out if self.invert else out).astype(np.float32)


def apply_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Map modality values to [0, 1] with a DICOM window (PS3.3 C.11.2.1.2).

    >>> apply_window(np.array([0.0, 50.0, 100.0]), center=50.5, width=101).round(3).tolist()
    [0.0, 0.5, 1.0]
    """
    x = np.asarray(values, dtype=np.float64)
    function = (function or "LINEAR").upper()
    if function == "SIGMOID":
        if width <= 0:
            raise ImageLoadError(f"window width must be > 0 for SIGMOID, got {width}")
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ImageLoadError(f"window width must be > 0 for LINEAR_EXACT, got {width}")
        return np.clip((x - (center - width / 2.0)) / width, 0.0, 1.0)
    # LINEAR: the standard's half-pixel offsets; width 1 degenerates to a threshold.
    if width < 1:
        raise ImageLoadError(f"window width must be >= 1 for LINEAR, got {width}")
    if width == 1:
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _redact(text: str, ds) -> str:
    """Remove identifier values from an exception text before it reaches a message or a log."""
    from pydicom.multival import MultiValue

    if ds is None:
        return text
    for kw in _IDENTIFYING_KEYWORDS:
        try:
            value = ds.get(kw)
        except Exception:  # a malformed element must not break error reporting
            continue
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        for v in values:
            s = str(v).strip()
            if len(s) >= 2:
                text = text.replace(s, "[redacted]")
                # PersonName also appears with ^ turned into spaces in some messages.
                text = text.replace(s.replace("^", " ").strip(), "[redacted]")
    return text


def _read_dataset(source: str | os.PathLike | bytes | BinaryIO, name: str):
    import pydicom
    from pydicom.errors import InvalidDicomError

    fh = BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    # force=True lets preamble-less files (".dcm" without "DICM") through; validity is checked after.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(fh, force=True, defer_size="2 MB")
        except InvalidDicomError as exc:
            raise ImageLoadError(f"{name}: not a valid DICOM file ({exc})") from None
        except FileNotFoundError:
            raise ImageLoadError(f"{name}: file not found") from None
        except Exception as exc:  # pydicom raises many types on garbage; never echo header text
            raise ImageLoadError(
                f"{name}: not a readable DICOM file (truncated or corrupt: {type(exc).__name__})"
            ) from None
    if not any(kw in ds for kw in _PIXEL_KEYWORDS):
        if getattr(ds, "file_meta", None) or "SOPClassUID" in ds:
            raise ImageLoadError(
                f"{name}: DICOM file has no pixel data (e.g. a structured report or "
                f"presentation state); nothing to display"
            )
        raise ImageLoadError(f"{name}: not a DICOM file (no DICOM header and no pixel data)")
    return ds


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return str(uid) if uid else "1.2.840.10008.1.2.1"


def _check_decoder(ds, name: str) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(_transfer_syntax(ds))
    if not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise MissingDecoderError(
            f"{name}: transfer syntax {uid} ({uid.name}) has no decoder in pydicom; "
            f"convert the file (e.g. gdcmconv --raw) or install python-gdcm"
        ) from None
    if not decoder.is_available:
        package = _DECODER_PACKAGES.get(str(uid), "python-gdcm")
        raise MissingDecoderError(
            f"{name}: pixel data is compressed as {uid.name} ({uid}) and no installed plugin decodes it; "
            f"install {package} (pip install {package.split(' ')[0]})"
        )


def _decode_pixels(ds, name: str, max_pixels: int | None) -> np.ndarray:
    from pydicom.pixels import pixel_array

    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise ImageLoadError(f"{name}: DICOM image has zero size (Rows={rows}, Columns={cols})")
    if max_pixels is not None and rows * cols > max_pixels:
        raise ImageLoadError(
            f"{name}: DICOM image is {cols}x{rows} = {rows * cols:,} pixels, over the limit of {max_pixels:,} "
            f"(possible decompression bomb); raise max_pixels if the image is genuine"
        )
    _check_decoder(ds, name)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            arr = pixel_array(ds, index=0) if frames > 1 else ds.pixel_array
        except Exception as exc:
            msg = _redact(str(exc), ds)[:300]
            if "missing" in msg.lower() and "plugin" in msg.lower():
                uid = _transfer_syntax(ds)
                package = _DECODER_PACKAGES.get(uid, "python-gdcm")
                raise MissingDecoderError(f"{name}: cannot decode transfer syntax {uid}; install {package}") from None
            raise ImageLoadError(
                f"{name}: DICOM pixel data is truncated or corrupt ({type(exc).__name__}: {msg})"
            ) from None
    if frames > 1:
        log.warning("%s: multi-frame DICOM (%d frames); using the first frame", file_tag(name), frames)  # no name: PHI
    return np.asarray(arr)


def _voi_lut_range(ds) -> tuple[float, float] | None:
    seq = ds.get("VOILUTSequence")
    if not seq:
        return None
    item = seq[0]
    value = item.get("LUTData")  # keyword get returns the value: bytes (OW), a list, or an int
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        lut = np.frombuffer(value, dtype=np.uint16 if len(value) % 2 == 0 else np.uint8)
    else:
        lut = np.asarray(value if isinstance(value, (list, tuple)) or hasattr(value, "__len__") else [value])
    if lut.size == 0:
        return None
    return float(lut.min()), float(lut.max())


def _first(value) -> float | None:
    if value is None:
        return None
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _to_display(ds, arr: np.ndarray, name: str) -> DicomDisplay:
    from pydicom.pixels import apply_voi_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3:  # colour: pydicom already converted YBR to RGB; VOI does not apply to colour
        bits = int(ds.get("BitsStored", 8) or 8)
        rgb = arr[..., :3].astype(np.float64) / float(2**bits - 1)
        grey = np.clip(rgb @ np.array([0.299, 0.587, 0.114]), 0.0, 1.0).astype(np.float32)
        return DicomDisplay(grey, 0.5, 1.0, False, "LINEAR", grey)
    if arr.ndim != 2:
        raise ImageLoadError(f"{name}: unexpected DICOM pixel array shape {arr.shape}")
    values = _modality_values(ds, arr)
    invert = photometric == "MONOCHROME1"
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ImageLoadError(f"{name}: DICOM pixel values contain NaN or infinity")
    vmin, vmax = float(values.min()), float(values.max())
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    lut_range = _voi_lut_range(ds)
    if lut_range is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = apply_voi_lut(arr if "ModalityLUTSequence" in ds else values, ds, index=0, prefer_lut=True)
        lo, hi = lut_range
        out = ((np.asarray(out, dtype=np.float32) - lo) / max(hi - lo, 1e-12)).astype(np.float32)
    elif center is not None and width is not None and width > 0 and function == "LINEAR" and width > 1:
        # The common case, in float32 and in place (a 2500x2000 radiograph is 5 M pixels).
        out = values - np.float32(center - 0.5)
        out *= np.float32(1.0 / (width - 1.0))
        out += np.float32(0.5)
    elif center is not None and width is not None and width > 0:
        out = apply_window(values, center, width, function).astype(np.float32)
    else:
        out = values - np.float32(vmin)
        out *= np.float32(1.0 / (vmax - vmin) if vmax > vmin else 0.0)
    np.clip(out, 0.0, 1.0, out=out)
    if invert:
        np.subtract(np.float32(1.0), out, out=out)
    if center is None or width is None or width <= 0:
        center, width = (vmin + vmax) / 2.0, max(vmax - vmin, 1.0)
    return DicomDisplay(values, float(center), float(width), invert, function, np.ascontiguousarray(out, np.float32))


def _modality_values(ds, arr: np.ndarray) -> np.ndarray:
    """Stored values -> modality values (float32): rescale slope/intercept, or a Modality LUT."""
    from pydicom.pixels import apply_modality_lut

    if "ModalityLUTSequence" in ds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    values = arr.astype(np.float32)
    slope, intercept = _first(ds.get("RescaleSlope")), _first(ds.get("RescaleIntercept"))
    if slope is not None and slope != 1.0:
        values *= np.float32(slope)
    if intercept:
        values += np.float32(intercept)
    return values


def read_dicom_display(
    source: str | os.PathLike | bytes, *, max_pixels: int | None = None, name: str | None = None
) -> DicomDisplay:
    """Read a DICOM file (path or bytes) into a :class:`DicomDisplay` (modality values + window).

    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.dcm"
    >>> write_test_dicom(p, np.full((4, 4), 100, np.uint16), window=(100.0, 50.0))
    >>> d = read_dicom_display(p)
    >>> (d.window_center, d.window_width)
    (100.0, 50.0)
    """
    label = name or (str(source) if not isinstance(source, (bytes, bytearray)) else "<DICOM bytes>")
    if not isinstance(source, (bytes, bytearray)) and not Path(source).is_file():
        raise ImageLoadError(f"{label}: file not found")
    ds = _read_dataset(source, label)
    arr = _decode_pixels(ds, label, max_pixels)
    return _to_display(ds, arr, label)


def read_dicom(
    source: str | os.PathLike | bytes, *, max_pixels: int | None = None, name: str | None = None
) -> np.ndarray:
    """DICOM -> float32 HxW in [0, 1] (0 = black): modality LUT, VOI LUT / window, MONOCHROME1 inverted.

    Raises :class:`ImageLoadError` (missing, not DICOM, no pixel data, truncated) or
    :class:`MissingDecoderError` (compressed syntax without an installed decoder).
    """
    display = read_dicom_display(source, max_pixels=max_pixels, name=name)
    assert display.default_image is not None
    return display.default_image


def dicom_size(source: str | os.PathLike) -> tuple[int, int]:
    """(rows, columns) from the header only, without decoding pixels."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(source, force=True, stop_before_pixels=True)
        except Exception as exc:
            raise ImageLoadError(f"{source}: not a readable DICOM file ({type(exc).__name__})") from None
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise ImageLoadError(f"{source}: DICOM header has no image size (Rows/Columns)")
    return rows, cols


def write_test_dicom(
    path: str | os.PathLike,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    transfer_syntax: str | None = None,
    patient_name: str = "Test^Patient",
    patient_id: str = "TEST-0",
) -> None:
    """Write a small, valid DX DICOM (for tests and examples): uint8/uint16 pixels, optional rescale
    (slope, intercept), window (center, width) and compression (a transfer syntax UID whose encoder
    is installed, e.g. RLE Lossless ``1.2.840.10008.1.2.5``)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    pixels = np.ascontiguousarray(pixels)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    bits = bits_stored or (8 if pixels.dtype == np.uint8 else 16)
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = float(rescale[0]), float(rescale[1])
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = float(window[0]), float(window[1])
    if photometric == "MONOCHROME1":
        ds.PresentationLUTShape = "INVERSE"
    if transfer_syntax is not None:
        ds.compress(UID(transfer_syntax))
    ds.save_as(path, enforce_file_format=True)
