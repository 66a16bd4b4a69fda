"""EGD-CXR (eye gaze on 1,083 MIMIC-CXR images) -> expert study manifest, joined by dicom_id.

Inputs under ``egd_root`` (as PhysioNet ships them):

* ``master_sheet.csv``: dicom_id, path (``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.dcm``), study_id,
  patient_id, image_*_pad, label columns (``<observation>_chexpert`` ones become CheXpert labels);
* ``fixations.csv`` (or ``eye_gaze.csv``): the gaze columns of data-sources.md, keyed by DICOM_ID;
* optional ``audio_segmentation_transcripts/<dicom_id>/transcript.json`` (the dictation).

Images come from ``image_root`` (a MIMIC-CXR or MIMIC-CXR-JPG folder): the master sheet's path,
with its suffix swapped for ``image_suffix`` (``".jpg"`` for MIMIC-CXR-JPG). The big fixations
table is split into one small CSV per image under ``<manifest folder>/egd_fixations/`` (all
original columns kept) so a training step reads only its image's fixations. Report text comes
from MIMIC-CXR reports (``reports_root``) or, failing that, the dictation transcript.

One row per image: ``study_id`` = ``s<study>`` (``s<study>_<dicom_id>`` if a study has several
gaze images), ``gaze_format="egd"``, ``meta`` with dicom_id, subject_id, source.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from eclip_core.atomic import atomic_path
from eclip_core.data.builders.common import (
    SkipCounter,
    chexpert_labels,
    finish_manifest,
    hash_split,
    id_str,
    mimic_image,
    normalize_split,
    read_mimic_report,
    read_table,
)
from eclip_core.data.builders.sectioning import section_report
from eclip_core.data.manifest import Study
from eclip_core.errors import ManifestError
from eclip_core.heatmap.gaze import read_egd_fixations
from eclip_core.labels import CHEXPERT_OBSERVATIONS

log = logging.getLogger(__name__)

MASTER_REQUIRED = ("dicom_id", "path", "study_id", "patient_id")


def _label_columns(columns) -> dict[str, str]:
    by_lower = {c.lower(): c for c in columns}
    out = {}
    for obs in CHEXPERT_OBSERVATIONS:
        key = obs.lower().replace(" ", "_")
        for cand in (f"{key}_chexpert", obs.lower()):
            if cand in by_lower:
                out[obs] = by_lower[cand]
                break
    return out


def _transcript(egd_root: Path, dicom_id: str) -> str:
    path = egd_root / "audio_segmentation_transcripts" / dicom_id / "transcript.json"
    if not path.is_file():
        return ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s: unreadable transcript JSON; ignored", path)
        return ""
    if isinstance(data, dict) and data.get("full_text"):
        return str(data["full_text"]).strip()
    phrases = data.get("time_stamped_text", data.get("phrases", [])) if isinstance(data, dict) else data
    return " ".join(str(p.get("phrase", p.get("text", ""))).strip() for p in phrases if isinstance(p, dict)).strip()


def _fixations_by_image(egd_root: Path, fixations_csv: str | os.PathLike | None) -> dict[str, pd.DataFrame]:
    """The fixation table (``fixations_csv``, else EGD-CXR's fixations.csv or eye_gaze.csv) by DICOM id."""
    fix_path = (
        Path(fixations_csv)
        if fixations_csv
        else next(
            (p for p in (egd_root / "fixations.csv", egd_root / "eye_gaze.csv") if p.is_file()),
            egd_root / "fixations.csv",
        )
    )
    fixations = read_egd_fixations(fix_path)
    return {str(k): g for k, g in fixations.groupby("DICOM_ID", sort=False)}


def _mimic_splits(split_csv: str | os.PathLike | None) -> dict[str, str]:
    """MIMIC's split by DICOM id (empty without a split csv: the patient hash decides)."""
    if not split_csv:
        return {}
    sp = read_table(split_csv, ("dicom_id", "split"), "MIMIC split csv", dtype={"dicom_id": str})
    return {str(d): normalize_split(s) for d, s in zip(sp["dicom_id"], sp["split"]) if normalize_split(s)}


def _report(
    egd_root: Path, reports_root: str | os.PathLike | None, subject: str, study_num: str, dicom_id: str
) -> tuple[str, str, str]:
    """(findings, impression, source): the MIMIC-CXR report where ``reports_root`` has it, else the
    dictation transcript as findings; source "none" when neither has text."""
    text = read_mimic_report(Path(reports_root), subject, study_num) if reports_root else None
    if text is not None:
        sec = section_report(text)
        findings, impression, source = sec.findings, sec.impression, "mimic-report"
    else:
        findings, impression, source = _transcript(egd_root, dicom_id), "", "transcript"
    if not (findings or impression):
        source = "none"
    return findings, impression, source


def build_egd_manifest(
    egd_root: str | os.PathLike,
    image_root: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    reports_root: str | os.PathLike | None = None,
    image_suffix: str | None = ".jpg",
    split_csv: str | os.PathLike | None = None,
    fixations_csv: str | os.PathLike | None = None,
    check_files: bool = True,
    progress: bool = True,
) -> Path:
    """Write the EGD-CXR expert manifest (and per-image fixation files next to it); returns its path.

    ``split_csv``: a MIMIC split csv (dicom_id, ..., split) to follow MIMIC's split; otherwise a hash
    of the patient id decides. Images missing under ``image_root`` (with ``check_files``) or
    without fixations are skipped and counted in one warning.
    """
    egd_root, image_root, out = Path(egd_root), Path(image_root), Path(out_path)
    if not egd_root.is_dir():
        raise ManifestError(f"EGD-CXR folder {egd_root} does not exist")
    master = read_table(egd_root / "master_sheet.csv", MASTER_REQUIRED, "EGD-CXR master sheet", dtype={"dicom_id": str})
    by_image = _fixations_by_image(egd_root, fixations_csv)
    splits = _mimic_splits(split_csv)
    label_cols = _label_columns(master.columns)
    fix_dir = out.parent / "egd_fixations"
    fix_dir.mkdir(parents=True, exist_ok=True)
    per_study = master["study_id"].map(id_str).value_counts()
    skips = SkipCounter(f"EGD-CXR manifest from {egd_root}")
    studies: list[Study] = []
    for _, row in tqdm(master.iterrows(), total=len(master), disable=not progress, desc="EGD-CXR images"):
        dicom_id = str(row["dicom_id"])
        image = mimic_image(image_root, str(row["path"]), image_suffix, check_files, skips)
        if image is None:
            continue
        fix = by_image.get(dicom_id)
        if fix is None or fix[["X_ORIGINAL", "Y_ORIGINAL"]].dropna().empty:
            skips.skip("images without fixations", dicom_id)
            continue
        fix_file = fix_dir / f"{dicom_id}.csv"
        with atomic_path(fix_file) as tmp:
            fix.to_csv(tmp, index=False)
        study_num = id_str(row["study_id"]).lstrip("s")
        subject = id_str(row["patient_id"])
        findings, impression, source = _report(egd_root, reports_root, subject, study_num, dicom_id)
        sid = f"s{study_num}" if per_study.get(id_str(row["study_id"]), 1) == 1 else f"s{study_num}_{dicom_id}"
        studies.append(
            Study(
                study_id=sid,
                image_paths=[str(image)],
                split=splits.get(dicom_id) or hash_split(subject),
                findings=findings,
                impression=impression,
                view=str(row.get("ViewPosition", "") or ""),
                labels=chexpert_labels(row, label_cols),
                fixations_paths=[str(fix_file)],
                gaze_format="egd",
                meta={
                    "source": "egd-cxr",
                    "dicom_id": dicom_id,
                    "subject_id": subject,
                    "report_source": source,
                    "n_fixations": int(len(fix)),
                },
            )
        )
    return finish_manifest(
        studies,
        skips,
        out,
        f"{egd_root}: no EGD-CXR image had both an image file and fixations",
        "EGD-CXR expert studies",
    )


__all__ = ["build_egd_manifest", "MASTER_REQUIRED"]
