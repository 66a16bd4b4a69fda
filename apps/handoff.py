"""The app's hand-off downloads: a draft as a DICOM SR (when the upload was a DICOM) and as a FHIR R4 Bundle.

The SR copies the upload's patient and study attributes, because a PACS needs them to file it into that
study; it is written only into the request's download folder (removed like the other downloads) and nothing
from the header is logged or shown. The FHIR Bundle names the study by its UID and no patient. Both state the
draft as generated: an edit in the page is the radiologist's own report, which these do not claim to be.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from apps import imaging
from rag_report.errors import RagReportError
from rag_report.report import DraftReport

log = logging.getLogger(__name__)

SR_NAME, FHIR_NAME = "draft-report-sr.dcm", "draft-report-fhir.json"


def _dicom_header(image_path: str):
    """The upload's DICOM header (no pixels), or None for a PNG/JPEG or an unreadable file."""
    try:
        if not imaging.is_dicom_file(image_path):
            return None
        import pydicom

        return pydicom.dcmread(image_path, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - the draft was made; a header we cannot read only costs the SR
        log.info("no DICOM header for the hand-off files (%s)", type(exc).__name__)
        return None


def write_handoff_files(image_path: str, draft: DraftReport, folder: Path) -> tuple[str | None, str | None]:
    """(SR .dcm path or None, FHIR .json path or None) of ``draft``, written into ``folder``.

    The SR needs a DICOM upload; either file is left out (None, with a log line naming only the error type)
    when it cannot be made, so a draft is never lost to its hand-off files.
    """
    header = _dicom_header(image_path)
    sr_path = fhir_path = None
    study_uid = str(header.get("StudyInstanceUID", "") or "") if header is not None else ""
    if header is not None:
        try:
            sr = draft.to_dicom_sr([header])
            sr.save_as(folder / SR_NAME)
            sr_path = str(folder / SR_NAME)
        except (RagReportError, OSError, ValueError, TypeError) as exc:
            log.info("no DICOM SR for this draft (%s)", type(exc).__name__)
    try:
        bundle = draft.to_fhir(study_instance_uid=study_uid or None)
        (folder / FHIR_NAME).write_text(json.dumps(bundle, indent=2), encoding="utf-8")
        fhir_path = str(folder / FHIR_NAME)
    except (RagReportError, OSError) as exc:
        log.info("no FHIR bundle for this draft (%s)", type(exc).__name__)
    return sr_path, fhir_path
