"""Which view and modality a DICOM image is, from its header: is it a frontal chest radiograph?

The drafting models were trained on frontal chest X-rays (PA or AP). A lateral, or an image of another
modality (a CT slice, an ultrasound frame), still embeds and still gets a report that reads fine, and that
report is wrong. This module reads only header elements (never pixels), so it serves two callers:

- single drafts: :func:`header_warnings` gives the warning a DraftReport carries for a DICOM input;
- batches (``rag-report batch``): :func:`assess_dataset` ranks a study's images so the frontal one is
  drafted (PA over AP) and a study without one is skipped with the reason.

Evidence, strongest first: ViewPosition (PA, AP, LL, RL, LATERAL ...), PatientOrientation (a frontal
image's rows run toward the patient's left or right, a lateral's toward anterior or posterior), the words of
SeriesDescription / ProtocolName / ViewCodeSequence, and ImageLaterality (a one-sided L or R image of a chest
is not a standard frontal view). No message quotes an identifying header value.

>>> from pydicom import Dataset
>>> ds = Dataset(); ds.Modality = "DX"; ds.ViewPosition = "LL"
>>> a = assess_dataset(ds)
>>> a.view, a.frontal, a.usable
('LATERAL', False, False)
>>> ds.ViewPosition = "PA"
>>> assess_dataset(ds).rank
0
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

#: Modalities of projection radiographs: computed and digital radiography.
XRAY_MODALITIES = ("CR", "DX")
#: Rank of each view when choosing a study's image (lower wins); laterals are never chosen.
VIEW_RANK = {"PA": 0, "AP": 1, "FRONTAL": 2, "UNKNOWN": 3}

_LATERAL_POSITIONS = {"LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "LLO", "RLO", "XTABLE LATERAL"}
_WORDS_LATERAL = re.compile(r"\b(LAT|LATERAL|LL|RL|SEITLICH|LATERALE?)\b")
_WORDS_PA = re.compile(r"\b(PA|P-A|POSTEROANTERIOR|POSTERO-ANTERIOR)\b")
_WORDS_AP = re.compile(r"\b(AP|A-P|ANTEROPOSTERIOR|ANTERO-POSTERIOR|SUPINE|PORTABLE)\b")
_WORDS_FRONTAL = re.compile(r"\b(FRONTAL|CHEST|THORAX|CXR)\b")


@dataclass
class ViewAssessment:
    """What a header says about one image: its view, whether it is a chest radiograph to draft from."""

    modality: str
    #: PA, AP, FRONTAL (frontal, projection not stated), LATERAL, or UNKNOWN (nothing in the header says).
    view: str
    #: Which header element decided the view ("ViewPosition", "PatientOrientation", ...; "" when none).
    evidence: str = ""
    #: Why the image is not drafted from (empty when it is usable).
    reasons: list[str] = field(default_factory=list)

    @property
    def frontal(self) -> bool:
        return self.view in ("PA", "AP", "FRONTAL")

    @property
    def usable(self) -> bool:
        """A CR/DX image that is not a lateral (an UNKNOWN view is usable, at the lowest rank)."""
        return not self.reasons

    @property
    def rank(self) -> int:
        """Sort key among a study's usable images: PA 0, AP 1, frontal 2, unknown 3; unusable 99."""
        return VIEW_RANK.get(self.view, 99) if self.usable else 99


def _text(ds: Any, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed element reads as absent
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).strip().upper()
    return str(value).strip().upper()


def _view_code_meaning(ds: Any) -> str:
    try:
        seq = ds.get("ViewCodeSequence")
        return " ".join(str(item.get("CodeMeaning", "")) for item in seq or ()).upper()
    except Exception:
        return ""


def _view_from_orientation(orientation: str) -> str:
    """PatientOrientation "row\\column": a frontal's rows run L or R, a lateral's A or P (PA and AP are
    displayed alike, so orientation cannot tell them apart)."""
    parts = [p for p in orientation.split("\\") if p]
    if len(parts) != 2:
        return ""
    row = parts[0][:1]
    if row in ("A", "P"):
        return "LATERAL"
    return "FRONTAL" if row in ("L", "R") else ""


def _view_from_words(words: str) -> str:
    if _WORDS_LATERAL.search(words):
        return "LATERAL"
    if _WORDS_PA.search(words):
        return "PA"
    if _WORDS_AP.search(words):
        return "AP"
    if _WORDS_FRONTAL.search(words):
        return "FRONTAL"
    return ""


def assess_dataset(ds: Any) -> ViewAssessment:
    """Modality and view of one image from its header (a pydicom Dataset; pixels are not read)."""
    modality = _text(ds, "Modality")
    view, evidence = "", ""
    position = _text(ds, "ViewPosition")
    if position in _LATERAL_POSITIONS:
        view, evidence = "LATERAL", "ViewPosition"
    elif position in ("PA", "AP"):
        view, evidence = position, "ViewPosition"
    if not view:
        view = _view_from_orientation(_text(ds, "PatientOrientation"))
        evidence = "PatientOrientation" if view else ""
    if view in ("", "FRONTAL"):  # the words may name the view, or refine a frontal one to PA / AP
        for keyword in ("SeriesDescription", "ProtocolName", "ViewCodeSequence", "StudyDescription"):
            words = _view_code_meaning(ds) if keyword == "ViewCodeSequence" else _text(ds, keyword)
            said = _view_from_words(words)
            if said and (not view or said in ("PA", "AP")):
                view, evidence = said, keyword
                break
    view = view or "UNKNOWN"
    reasons = []
    if modality not in XRAY_MODALITIES:
        reasons.append(
            f"modality {modality or 'missing'} is not a radiograph (CR or DX); drafts are made for chest X-rays only"
        )
    if view == "LATERAL":
        reasons.append(f"a lateral view ({evidence}); drafts are made for frontal (PA or AP) chest X-rays only")
    laterality = _text(ds, "ImageLaterality")
    if not reasons and laterality in ("L", "R") and view in ("UNKNOWN", "FRONTAL"):
        reasons.append(
            f"ImageLaterality {laterality}: a one-sided image, not a frontal chest view; "
            "drafts are made for frontal (PA or AP) chest X-rays only"
        )
    return ViewAssessment(modality=modality, view=view, evidence=evidence, reasons=reasons)


def read_header(source: str | os.PathLike | bytes) -> Any | None:
    """The header of a DICOM file or bytes (no pixels), or None when ``source`` is not DICOM."""
    import pydicom

    if isinstance(source, (bytes, bytearray)):
        fh: Any = BytesIO(source)
        head = bytes(source[128:132])
    else:
        path = Path(source)
        if not path.is_file():
            return None
        fh = path
        with path.open("rb") as f:
            head = f.read(132)[128:132]
    is_dicom = head == b"DICM" or (
        not isinstance(source, (bytes, bytearray)) and Path(source).suffix.lower() in (".dcm", ".dicom")
    )
    if not is_dicom:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(fh, force=True, stop_before_pixels=True)
        except Exception:  # unreadable headers are the image loader's to report
            return None


def header_warnings(source: Any) -> list[str]:
    """Warnings for a DraftReport made from ``source`` when it is a DICOM (path, bytes or Dataset) whose
    header says it is not a frontal chest radiograph; [] for anything else (PNG, arrays, clean headers)."""
    if hasattr(source, "dir") and hasattr(source, "get"):  # a pydicom Dataset
        ds = source
    elif isinstance(source, (str, os.PathLike, bytes, bytearray)):
        ds = read_header(source)
    else:
        return []
    if ds is None:
        return []
    assessment = assess_dataset(ds)
    return [f"the DICOM header says {reason}: treat this draft with suspicion" for reason in assessment.reasons]
