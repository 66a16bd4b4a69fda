"""Synthetic inputs of the hand-off writer tests: a CR DICOM with a synthetic patient and UIDs, and a draft
with known predictions (so each test knows what the SR / FHIR must state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from rag_report.report import DraftReport

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
PATIENT_NAME, PATIENT_ID = "Synthetic^Patient^Handoff", "SYN-000417"
FINDINGS = "The cardiac silhouette is enlarged. Small left pleural effusion. No pneumothorax."
IMPRESSION = "Cardiomegaly with a small left pleural effusion."
#: Predicted probabilities; the first two are predicted present.
PREDICTED = {"Cardiomegaly": 0.912, "Pleural Effusion": 0.734, "Pneumothorax": 0.041, "No Finding": 0.08}
POSITIVE = ["Cardiomegaly", "Pleural Effusion"]
#: SNOMED CT codes of the positives, written out here rather than read from the code table.
POSITIVE_SNOMED = {"Cardiomegaly": "8186001", "Pleural Effusion": "60046008"}


def synthetic_cr(
    path: Path | None = None,
    *,
    study_uid: str | None = None,
    view: str = "PA",
    size: int = 64,
    seed: int = 0,
) -> Dataset:
    """A small CR image instance (12-bit phantom noise) with synthetic patient and study attributes; saved to
    ``path`` when given."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(CR_IMAGE_STORAGE)
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CR_IMAGE_STORAGE, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid or generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = PATIENT_NAME, PATIENT_ID, "19600229", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "101500", "S1", "ACC-SYN-1"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", view
    ds.SeriesNumber, ds.InstanceNumber, ds.PatientOrientation, ds.Laterality = 1, 1, ["P", "F"], ""
    ds.ImageLaterality = "U"
    rng = np.random.default_rng(seed)
    ds.set_pixel_data(rng.integers(0, 4096, (size, size), dtype=np.uint16), "MONOCHROME2", 12)
    if path is not None:
        ds.save_as(path, enforce_file_format=True)
    return ds


def sample_draft(*, simulated: bool = False, warnings: list[str] | None = None) -> DraftReport:
    """A draft with the texts and predictions above (as the pipeline would return it)."""
    return DraftReport(
        findings=FINDINGS,
        impression=IMPRESSION,
        evidence=[],
        provenance=[],
        labels={},
        timings_ms={"total": 12.0},
        models={
            "eclip_checkpoint": "0123456789abcdef",
            "index_id": "idx-synthetic",
            "llm_id": "",
            "generation_mode": "top1",
            "label_boost": "rerank",
        },
        mode="top1",
        simulated_data=simulated,
        warnings=list(warnings or []),
        predicted_labels=dict(PREDICTED),
        predicted_positive=list(POSITIVE),
    )
