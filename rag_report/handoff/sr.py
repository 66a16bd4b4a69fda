"""A draft as a DICOM Comprehensive SR (highdicom), filed into the study of the image it was drafted from.

The document is preliminary: completion PARTIAL, verification UNVERIFIED, preliminary flag PRELIMINARY. A
radiologist who signs the report makes their own. Its content tree follows the Basic Diagnostic Imaging
Report (TID 2000) pattern, built from highdicom content items::

    CONTAINER  Diagnostic imaging study (LOINC 18748-4)
      HAS CONCEPT MOD   Language of content = English
      HAS OBS CONTEXT   observer: device (algorithm name, manufacturer, version)
      HAS CONCEPT MOD   Algorithm Name / Version / Parameters (eCLIP checkpoint hash, index, mode, LLM)
      CONTAINS TEXT     Comment: the simulated-data notice and the draft's warnings, when there are any
      CONTAINS CONTAINER  Findings (DCM 121070)
        CONTAINS TEXT     Finding (DCM 121071) = the draft's findings text
        CONTAINS CODE     Finding (DCM 121071) = SNOMED CT concept, one per predicted-present observation
          HAS PROPERTIES NUM  Probability (DCM 122157) = the classifier's probability
        CONTAINS IMAGE    Source image (DCM 121324) -> each source instance (SOP class + instance UID)
      CONTAINS CONTAINER  Impressions (DCM 121072)
        CONTAINS TEXT     Impression (DCM 121073) = the draft's impression text

Patient and study attributes are copied from the first source dataset, so the SR files into that study.
They are the only patient identity the SR carries, and they are there because the receiving PACS needs them.

>>> sr = draft_to_sr(draft, [pydicom.dcmread("chest.dcm", stop_before_pixels=True)])  # doctest: +SKIP
>>> sr.save_as("draft-sr.dcm")                                                        # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from rag_report.errors import HandoffError
from rag_report.handoff.codes import (
    CHEST_XR_SINGLE_VIEW,
    COMMENT,
    FINDING,
    FINDINGS_SECTION,
    IMPRESSION,
    IMPRESSIONS_SECTION,
    NO_UNITS,
    PROBABILITY,
    REPORT_TITLE,
    SOURCE_IMAGE,
    Concept,
    observation_concept,
)
from rag_report.handoff.provenance import algorithm_identity, draft_fingerprint, stable_uid
from rag_report.report import SIMULATED_NOTICE, DraftReport

log = logging.getLogger(__name__)

# highdicom logs at INFO the SOP Instance UID it copies patient/study data from: header values stay out of
# logs unless the application asks for highdicom's INFO records itself.
_HIGHDICOM_LOG = logging.getLogger("highdicom")
if _HIGHDICOM_LOG.level == logging.NOTSET:
    _HIGHDICOM_LOG.setLevel(logging.WARNING)

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
SERIES_DESCRIPTION = "AI draft report (preliminary, unverified)"
#: Attributes every source must have (to reference it and to file the SR into its study).
_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
#: Type 2 patient / study attributes that highdicom reads from the first source: absent ones are written empty.
_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


def _coded(concept: Concept) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=concept.code, scheme_designator=concept.scheme, meaning=concept.meaning)


def _header_copy(ds: Dataset) -> Dataset:
    """A new dataset holding ``ds``'s elements but its pixels (so filling in attributes leaves ``ds`` alone)."""
    out = Dataset()
    for elem in ds:
        if elem.tag not in _PIXEL_TAGS:
            out.add(elem)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out.file_meta = meta
    return out


def _checked_sources(sources: Sequence[Dataset]) -> list[Dataset]:
    if isinstance(sources, Dataset):
        sources = [sources]
    if not sources:
        raise HandoffError("an SR needs at least one source DICOM dataset (the image the draft was made from)")
    out = []
    for i, ds in enumerate(sources):
        if not isinstance(ds, Dataset):
            raise HandoffError(f"source {i} is a {type(ds).__name__}, not a pydicom Dataset: read it with pydicom")
        missing = [k for k in _REQUIRED if not str(ds.get(k, "") or "")]
        if missing:
            raise HandoffError(
                f"source {i} lacks {', '.join(missing)}: an SR can only reference and file into a study given "
                "these; for a PNG/JPEG use source_dataset_for_image()"
            )
        out.append(ds)
    first = _header_copy(out[0])
    for keyword in _TYPE2:
        if keyword not in first:
            setattr(first, keyword, "")
    return [first, *out[1:]]


def _findings_section(draft: DraftReport, sources: Sequence[Dataset]) -> hd.sr.ContainerContentItem:
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    section = hd.sr.ContainerContentItem(name=_coded(FINDINGS_SECTION), relationship_type=contains)
    items: list[hd.sr.ContentItem] = []
    if draft.findings:
        items.append(hd.sr.TextContentItem(name=_coded(FINDING), value=draft.findings, relationship_type=contains))
    for name in draft.predicted_positive:
        finding = hd.sr.CodeContentItem(
            name=_coded(FINDING), value=_coded(observation_concept(name)), relationship_type=contains
        )
        probability = draft.predicted_labels.get(name)
        if probability is not None and np.isfinite(probability):
            finding.ContentSequence = hd.sr.ContentSequence(
                [
                    hd.sr.NumContentItem(
                        name=_coded(PROBABILITY),
                        value=round(float(probability), 4),
                        unit=_coded(NO_UNITS),
                        relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES,
                    )
                ]
            )
        items.append(finding)
    for ds in sources:
        items.append(
            hd.sr.ImageContentItem(
                name=_coded(SOURCE_IMAGE),
                referenced_sop_class_uid=str(ds.SOPClassUID),
                referenced_sop_instance_uid=str(ds.SOPInstanceUID),
                relationship_type=contains,
            )
        )
    section.ContentSequence = hd.sr.ContentSequence(items)
    return section


def _impressions_section(draft: DraftReport) -> hd.sr.ContainerContentItem:
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    section = hd.sr.ContainerContentItem(name=_coded(IMPRESSIONS_SECTION), relationship_type=contains)
    section.ContentSequence = hd.sr.ContentSequence(
        [hd.sr.TextContentItem(name=_coded(IMPRESSION), value=draft.impression, relationship_type=contains)]
    )
    return section


def _content(draft: DraftReport, sources: Sequence[Dataset], manufacturer: str) -> hd.sr.ContainerContentItem:
    ident = algorithm_identity(draft)
    root = hd.sr.ContainerContentItem(name=_coded(REPORT_TITLE))
    items: list[hd.sr.ContentItem] = [
        *hd.sr.LanguageOfContentItemAndDescendants(
            hd.sr.CodedConcept(value="en", scheme_designator="RFC5646", meaning="English")
        ),
        *hd.sr.ObserverContext(
            observer_type=hd.sr.CodedConcept(value="121007", scheme_designator="DCM", meaning="Device"),
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=stable_uid("rag-report device", ident.name, ident.version, ident.checkpoint),
                name=ident.name,
                manufacturer_name=manufacturer,
                model_name=f"{ident.name} {ident.version}",
            ),
        ),
        *hd.sr.AlgorithmIdentification(
            name=ident.name, version=ident.version, parameters=ident.parameter_lines() or None
        ),
    ]
    comments = ([SIMULATED_NOTICE] if draft.simulated_data else []) + [f"Warning: {w}" for w in draft.warnings]
    items += [
        hd.sr.TextContentItem(name=_coded(COMMENT), value=text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        for text in comments
    ]
    items.append(_findings_section(draft, sources))
    if draft.impression:
        items.append(_impressions_section(draft))
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root


def draft_to_sr(
    draft: DraftReport,
    sources: Sequence[Dataset],
    *,
    series_number: int = 9001,
    instance_number: int = 1,
    manufacturer: str = "rag-report",
) -> hd.sr.ComprehensiveSR:
    """highdicom Comprehensive SR of a draft, filed into the sources' study (sources[0] gives patient/study).

    ``sources`` are the instances the draft was made from (headers suffice: ``stop_before_pixels=True``); each
    is referenced by SOP class and instance UID. The SR's series and instance UIDs are derived from the study
    and the draft, so writing the same draft twice gives the same instance. Raises HandoffError naming what a
    source lacks.

    >>> sr = draft_to_sr(draft, [source])                  # doctest: +SKIP
    >>> sr.CompletionFlag, sr.VerificationFlag             # doctest: +SKIP
    ('PARTIAL', 'UNVERIFIED')
    """
    evidence = _checked_sources(sources)
    study_uid = str(evidence[0].StudyInstanceUID)
    ident = algorithm_identity(draft)
    references = [str(ds.SOPInstanceUID) for ds in evidence]
    try:
        sr = hd.sr.ComprehensiveSR(
            evidence=evidence,
            content=_content(draft, evidence, manufacturer),
            series_instance_uid=stable_uid("rag-report SR series", study_uid, manufacturer),
            series_number=series_number,
            sop_instance_uid=stable_uid("rag-report SR", study_uid, *references, draft_fingerprint(draft)),
            instance_number=instance_number,
            manufacturer=manufacturer,
            is_complete=False,
            is_final=False,
            is_verified=False,
            performed_procedure_codes=[_coded(CHEST_XR_SINGLE_VIEW)],
            series_description=SERIES_DESCRIPTION,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise HandoffError(
            f"the SR could not be built from these sources ({type(exc).__name__}: {exc}); check that each is an "
            "image instance with a standard SOP class"
        ) from exc
    sr.ManufacturerModelName = ident.name[:64]
    sr.SoftwareVersions = ident.version
    log.info("SR built: %d source instance(s), %d coded finding(s)", len(evidence), len(draft.predicted_positive))
    return sr


def source_dataset_for_image(
    pixels: np.ndarray | None = None,
    *,
    study_instance_uid: str | None = None,
    patient_id: str = "",
    patient_name: str = "",
) -> Dataset:
    """A minimal Secondary Capture dataset standing for a PNG/JPEG input, so that an SR can still be made.

    The patient module is empty (anonymous) unless given. With ``pixels`` (a 2-D grey array: uint8, uint16, or
    float in [0, 1]) the dataset carries them and is a complete SC instance that can be stored beside the SR,
    and its UIDs are derived from the pixels (the same image gives the same study); without, UIDs are new.

    >>> ds = source_dataset_for_image(np.zeros((4, 4), np.uint8))
    >>> ds.SOPClassUID == SECONDARY_CAPTURE, ds.PatientName == "", ds.Rows
    (True, True, 4)
    """
    if pixels is not None:
        pixels = _sc_pixels(pixels)
        digest = hashlib.sha256(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()
        study = study_instance_uid or stable_uid("rag-report image study", digest)
        series, instance = stable_uid("rag-report image series", digest), stable_uid("rag-report image", digest)
    else:
        study, series, instance = study_instance_uid or generate_uid(), generate_uid(), generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.UID(SECONDARY_CAPTURE)
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(instance)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, instance
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient_name, patient_id, "", ""
    ds.StudyDate = ds.StudyTime = ds.ReferringPhysicianName = ds.StudyID = ds.AccessionNumber = ""
    ds.Modality, ds.ConversionType = "OT", "WSD"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PatientOrientation = ds.Laterality = ""
    if pixels is not None:
        ds.set_pixel_data(pixels, photometric_interpretation="MONOCHROME2", bits_stored=8 * pixels.itemsize)
    return ds


def _sc_pixels(pixels: np.ndarray) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.size == 0:
        raise HandoffError(f"pixels for a secondary capture must be one 2-D grey image, got shape {arr.shape}")
    if arr.dtype in (np.uint8, np.uint16):
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0:
        return np.rint(arr * 255.0).astype(np.uint8)
    raise HandoffError(f"pixels must be uint8, uint16 or float in [0, 1], got {arr.dtype}")


@dataclass
class SRContent:
    """What an SR written by :func:`draft_to_sr` states, read back (for checks and for other tools)."""

    findings: str = ""
    impression: str = ""
    #: (code value, scheme, meaning, probability or None) of each coded finding.
    coded_findings: list[tuple[str, str, str, float | None]] = field(default_factory=list)
    #: (SOP class UID, SOP instance UID) of each referenced source image.
    references: list[tuple[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


def read_sr_content(sr: Dataset) -> SRContent:
    """The findings / impression text, coded findings, image references and comments of an SR that
    :func:`draft_to_sr` wrote (any dataset with the same tree, e.g. read back with pydicom)."""
    out = SRContent()

    def code_of(item: Dataset, seq: str) -> tuple[str, str, str]:
        c = item[seq][0]
        return str(c.CodeValue), str(c.CodingSchemeDesignator), str(c.CodeMeaning)

    def walk(items: Sequence[Dataset], section: str) -> None:
        for item in items:
            name = code_of(item, "ConceptNameCodeSequence")[0]
            kind = item.ValueType
            if kind == "CONTAINER":
                walk(item.get("ContentSequence", []), name)
            elif kind == "TEXT" and name == FINDING.code and section == FINDINGS_SECTION.code:
                out.findings = str(item.TextValue)
            elif kind == "TEXT" and name == IMPRESSION.code and section == IMPRESSIONS_SECTION.code:
                out.impression = str(item.TextValue)
            elif kind == "TEXT" and name == COMMENT.code:
                out.comments.append(str(item.TextValue))
            elif kind == "CODE" and name == FINDING.code:
                prob = None
                for child in item.get("ContentSequence", []):
                    if child.ValueType == "NUM" and code_of(child, "ConceptNameCodeSequence")[0] == PROBABILITY.code:
                        prob = float(child.MeasuredValueSequence[0].NumericValue)
                out.coded_findings.append((*code_of(item, "ConceptCodeSequence"), prob))
            elif kind == "IMAGE":
                ref = item.ReferencedSOPSequence[0]
                out.references.append((str(ref.ReferencedSOPClassUID), str(ref.ReferencedSOPInstanceUID)))

    walk(sr.get("ContentSequence", []), REPORT_TITLE.code)
    return out
