"""The COVID-19 image data collection (a git clone of github ieee8023/covid-chestxray-dataset or a fork)
-> study manifest of its frontal chest X-rays.

The clone holds ``metadata.csv`` (one row per image: patientid, offset, sex, age, finding, view, modality,
folder, filename, doi, url, license, clinical_notes, ...) and the images under ``images/``. Kept: X-rays
whose view is frontal (``PA``, ``AP``, ``AP Supine``); their ``clinical_notes`` become the findings (rows
without notes are skipped unless ``keep_without_notes``). Splits are patient-disjoint: a seeded hash of the
patient id. Images listed but absent from the clone are skipped and counted. ``patients`` keeps only the
patients listed in a file (one id a line), e.g. to hold some out for an independent check.

One row per image: ``study_id`` = ``covid-p<patient>-<file stem>``, ``meta`` with patient_id, finding,
finding_group (covid-19, viral, bacterial, fungal, no finding, other), sex, age, offset, license, doi, url,
source. Each image keeps its own licence (``meta.license``; empty where the collection names none).

>>> finding_group("COVID-19, ARDS"), finding_group("Streptococcus"), finding_group("No Finding")
('covid-19', 'bacterial', 'no finding')
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from eclip_core.data.builders.common import (
    DEFAULT_FRACTIONS,
    SkipCounter,
    finish_manifest,
    hash_split,
    id_str,
    read_table,
)
from eclip_core.data.manifest import Study
from eclip_core.errors import ManifestError

log = logging.getLogger(__name__)

REQUIRED = ("patientid", "finding", "view", "modality", "folder", "filename", "clinical_notes")
FRONTAL_VIEWS = ("PA", "AP", "AP Supine")
#: The collection's findings (June 2020) by kind of pneumonia. COVID-19 and SARS are viral; a finding
#: naming several ("COVID-19, ARDS") takes its first.
_GROUPS = {
    "covid-19": "covid-19",
    "sars": "viral",
    "mers": "viral",
    "varicella": "viral",
    "influenza": "viral",
    "herpes": "viral",
    "streptococcus": "bacterial",
    "klebsiella": "bacterial",
    "mycoplasma bacterial pneumonia": "bacterial",
    "legionella": "bacterial",
    "e.coli": "bacterial",
    "bacterial": "bacterial",
    "chlamydophila": "bacterial",
    "staphylococcus": "bacterial",
    "pneumocystis": "fungal",
    "aspergillosis": "fungal",
    "no finding": "no finding",
}


def finding_group(finding: str) -> str:
    """covid-19, viral, bacterial, fungal, no finding or other for a ``finding`` value of the collection."""
    first = str(finding).split(",")[0].strip().lower()
    return _GROUPS.get(first, "other")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(str(value).split())


def read_metadata(root: Path) -> pd.DataFrame:
    """``metadata.csv`` of a clone (UTF-8, or cp1252 as some rows of the June-2020 files are)."""
    path = root / "metadata.csv"
    if not path.is_file():
        raise ManifestError(f"{root} has no metadata.csv; give the root of a covid-chestxray-dataset clone")
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False}
    try:
        return read_table(path, REQUIRED, "covid-chestxray-dataset metadata", encoding="utf-8", **options)
    except ManifestError:
        return read_table(
            path, REQUIRED, "covid-chestxray-dataset metadata", encoding="cp1252", encoding_errors="replace", **options
        )


def read_patient_list(path: str | os.PathLike) -> set[str]:
    """Patient ids, one a line (blank lines and ``#`` comments ignored)."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"patient list {p} does not exist")
    ids = {id_str(line.split("#")[0].strip()) for line in p.read_text(encoding="utf-8").splitlines()}
    ids.discard("")
    if not ids:
        raise ManifestError(f"patient list {p} names no patient")
    return ids


def build_covid_manifest(
    root: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    patients: str | os.PathLike | None = None,
    views: Sequence[str] = FRONTAL_VIEWS,
    keep_without_notes: bool = False,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Path:
    """Write the manifest of a covid-chestxray-dataset clone at ``root``; returns its path.

    Example (a clone made with ``git clone https://github.com/ieee8023/covid-chestxray-dataset``)::

        build_covid_manifest("covid-chestxray-dataset", "covid.csv", patients="dev_patients.txt")
    """
    root = Path(root)
    df = read_metadata(root)
    keep = read_patient_list(patients) if patients is not None else None
    skips = SkipCounter(f"covid-chestxray-dataset {root}")
    wanted = {v.lower() for v in views}
    studies: list[Study] = []
    seen: set[str] = set()
    for row in df.to_dict("records"):
        patient, view = id_str(row["patientid"]), _text(row["view"])
        if _text(row["modality"]).lower() != "x-ray" or view.lower() not in wanted:
            skips.skip("not a frontal X-ray", f"{row['filename']} ({row['modality']}, {view})")
            continue
        if keep is not None and patient not in keep:
            skips.skip("patient not in the patient list", patient)
            continue
        notes = _text(row["clinical_notes"])
        if not notes and not keep_without_notes:
            skips.skip("no clinical notes", row["filename"])
            continue
        image = root / _text(row["folder"]) / _text(row["filename"])
        if not image.is_file():
            skips.skip("image file missing from the clone", str(image))
            continue
        sid = f"covid-p{patient}-{Path(row['filename']).stem}"
        if sid in seen:
            skips.skip("duplicate image row", row["filename"])
            continue
        seen.add(sid)
        finding = _text(row["finding"])
        studies.append(
            Study(
                study_id=sid,
                image_paths=[str(image)],
                split=hash_split(f"covid:{patient}", fractions, seed),
                findings=notes,
                view=view,
                meta={
                    "source": "covid-chestxray-dataset",
                    "patient_id": patient,
                    "finding": finding,
                    "finding_group": finding_group(finding),
                    "sex": _text(row.get("sex")),
                    "age": _text(row.get("age")),
                    "offset": _text(row.get("offset")),
                    "license": _text(row.get("license")),
                    "doi": _text(row.get("doi")),
                    "url": _text(row.get("url")),
                },
            )
        )
    return finish_manifest(
        studies,
        skips,
        out_path,
        f"{root}: no frontal X-ray with notes and an image file"
        + (f" among the patients of {patients}" if patients is not None else ""),
        "COVID-19 collection X-rays",
    )


__all__ = ["build_covid_manifest", "finding_group", "read_patient_list", "FRONTAL_VIEWS"]
