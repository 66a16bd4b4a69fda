"""Synthetic multi-series DICOM studies for tests, demos and benchmarks: phantom radiographs as CR/DX.

Every patient name, id and UID is made up (``SYNTHETIC^PATIENT0001``; UIDs from pydicom's generator under a
seeded prefix); the pixels come from the project's phantom renderer (eclip_core.data.phantom). A study can
hold a PA and a lateral series, an AP only, a lateral only, or a CT series beside its radiographs.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> files = write_study(d, 1, views=("PA", "LL"), size=64)
>>> [f.name for f in files]
['s0001-1-PA.dcm', 's0001-2-LL.dcm']
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eclip_core.data.phantom import findings_from_mesh, render_study

CR_CLASS = "1.2.840.10008.5.1.4.1.1.1"
DX_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
#: A deterministic UID root (2.25 + a hash: an RFC-style UUID-derived root, unique to these tests).
_UID_ROOT = "2.25."

#: MeSH-style finding sets the phantom draws; study n gets set n mod len.
FINDING_SETS = (
    ["normal"],
    ["Cardiomegaly/mild"],
    ["Pleural Effusion/left/small"],
    ["Opacity/lung/upper lobe/right/round"],
    ["Cardiomegaly/moderate", "Pleural Effusion/bilateral/small"],
)


def synthetic_uid(*parts: object) -> str:
    """A made-up, deterministic DICOM UID (2.25.<decimal of a SHA-256 prefix>)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:30]
    return _UID_ROOT + str(int(digest, 16))


def _dataset(study: int, series: int, view: str, modality: str, pixels: np.ndarray):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    sop_class = {"CR": CR_CLASS, "DX": DX_CLASS, "CT": CT_CLASS}[modality]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(synthetic_uid("sop", study, series))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = synthetic_uid("study", study)
    ds.SeriesInstanceUID = synthetic_uid("series", study, series)
    ds.PatientName = f"SYNTHETIC^PATIENT{study:04d}"
    ds.PatientID = f"SYN{study:06d}"
    ds.PatientBirthDate, ds.PatientSex = "19600101", "O"
    ds.StudyDate, ds.StudyTime, ds.SeriesDate, ds.ContentDate = "20240115", "101500", "20240115", "20240115"
    ds.ContentTime = "101500"
    ds.AccessionNumber, ds.StudyID = f"ACC{study:06d}", f"{study}"
    ds.ReferringPhysicianName = "SYNTHETIC^REFERRER"
    ds.StudyDescription = "XR CHEST"
    ds.Manufacturer = "rag-report synthetic"
    ds.Modality = modality
    ds.SeriesNumber, ds.InstanceNumber = series, 1
    if modality == "CT":
        ds.SeriesDescription = "CT THORAX AXIAL"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.FrameOfReferenceUID = synthetic_uid("frame", study)
        ds.KVP = 120
    else:
        lateral = view in ("LL", "RL", "LATERAL")
        ds.SeriesDescription = f"CHEST {'LAT' if lateral else view}"
        ds.ViewPosition = view
        ds.PatientOrientation = ["A", "F"] if lateral else ["L", "F"]
        ds.BodyPartExamined = "CHEST"
        ds.ImageLaterality = "U"
        if modality == "DX":
            ds.ImageType = ["ORIGINAL", "PRIMARY"]
            ds.PresentationIntentType = "FOR PRESENTATION"
            ds.ImagerPixelSpacing = [0.14, 0.14]
    ds.set_pixel_data(pixels, photometric_interpretation="MONOCHROME2", bits_stored=12, generate_instance_uid=False)
    return ds


def write_study(
    out: str | os.PathLike,
    number: int,
    *,
    views: Sequence[str] = ("PA", "LL"),
    modality: str = "DX",
    ct_series: bool = False,
    size: int = 128,
) -> list[Path]:
    """Write study ``number``: one series per view (PA, AP, LL ...; CR or DX) and optionally a CT series
    of two slices; returns the files. Same arguments -> same UIDs and pixels."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    image = render_study(f"SYN{number}", findings_from_mesh(FINDING_SETS[number % len(FINDING_SETS)]), size=size)
    frontal = np.round(image.image * 4095).astype(np.uint16)
    files = []
    for series, view in enumerate(views, start=1):
        pixels = frontal if view in ("PA", "AP") else np.ascontiguousarray(np.fliplr(frontal.T))
        ds = _dataset(number, series, view, modality, pixels)
        path = out / f"s{number:04d}-{series}-{view}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    if ct_series:
        for slice_ in range(2):
            series = len(views) + 1
            ds = _dataset(number, series, "", "CT", (frontal[::2, ::2] + slice_).astype(np.uint16))
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = synthetic_uid("sop", number, series, slice_)
            ds.InstanceNumber = slice_ + 1
            path = out / f"s{number:04d}-{series}-CT{slice_}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
    return files


def write_truncated(path: str | os.PathLike, source: str | os.PathLike, keep: float = 0.6) -> Path:
    """A copy of DICOM ``source`` cut to ``keep`` of its bytes (its header whole, its pixel data cut)."""
    data = Path(source).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def write_undecodable(path: str | os.PathLike, source: str | os.PathLike) -> Path:
    """A copy of DICOM ``source`` whose header is whole and valid but whose pixel data, declared JPEG-LS
    compressed, is garbage: a PACS stores it, and no decoder can read it."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    ds = pydicom.dcmread(source)
    ds.PixelData = encapsulate([b"\xff\xd8 not a JPEG-LS stream " * 8])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.save_as(path, enforce_file_format=True)
    return Path(path)
