"""REFLACX (gaze + dictations of five radiologists on 2,616 MIMIC-CXR images) -> expert manifest.

Inputs under ``reflacx_root`` (as PhysioNet ships them):

* ``main_data/metadata_phase_{1,2,3}.csv``: id, split, eye_tracking_data_discarded, image,
  dicom_id, subject_id, image_size_x, image_size_y, then one column per label (certainty);
* ``main_data/<id>/fixations.csv`` per reading (see :data:`eclip_core.heatmap.gaze.REFLACX_REQUIRED`);
* ``main_data/<id>/transcription.txt`` per reading (the dictated report), optional.

Several readings of one image are all usable: they become one row per image whose
``fixations_path`` lists every kept reading (``load_expert_heatmap`` averages their maps).
Readings whose eye tracking was discarded, or without a fixations file, are skipped and counted.
Images come from ``image_root`` + the ``files/pXX/...`` tail of the ``image`` column (suffix
swapped for ``image_suffix``). Report text: the MIMIC-CXR report (``reports_root``) when
given, else the first reading's transcription. ``meta`` keeps dicom_id, subject_id, reading ids,
``original_size`` [image_size_y, image_size_x] and ``reflacx_labels`` (max certainty per label).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from eclip_core.data.builders.common import (
    SkipCounter,
    finish_manifest,
    hash_split,
    id_str,
    mimic_image,
    normalize_split,
    read_mimic_report,
    read_table,
    study_from_path,
)
from eclip_core.data.builders.sectioning import section_report
from eclip_core.data.manifest import Study
from eclip_core.errors import ManifestError

log = logging.getLogger(__name__)

METADATA_REQUIRED = (
    "id",
    "split",
    "eye_tracking_data_discarded",
    "image",
    "dicom_id",
    "subject_id",
    "image_size_x",
    "image_size_y",
)


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0", "yes", "t")


def read_reflacx_metadata(reflacx_root: str | os.PathLike) -> pd.DataFrame:
    """All ``main_data/metadata_phase_*.csv`` tables stacked, with a ``phase`` column."""
    main = Path(reflacx_root) / "main_data"
    files = sorted(main.glob("metadata_phase_*.csv"))
    if not files:
        raise ManifestError(f"{main}: no metadata_phase_*.csv found (is {reflacx_root} a REFLACX folder?)")
    frames = []
    for f in files:
        df = read_table(f, METADATA_REQUIRED, "REFLACX metadata", dtype={"dicom_id": str, "id": str})
        frames.append(df.assign(phase=f.stem.rsplit("_", 1)[-1]))
    return pd.concat(frames, ignore_index=True, sort=False)


def _usable_readings(
    root: Path, readings: pd.DataFrame, include_discarded: bool, skips: SkipCounter
) -> list[tuple[pd.Series, Path]]:
    """(reading, its fixations.csv) of the image's readings that kept their eye tracking and have fixations."""
    kept = []
    for _, r in readings.iterrows():
        if _truthy(r["eye_tracking_data_discarded"]) and not include_discarded:
            skips.skip("readings with discarded eye tracking", str(r["id"]))
            continue
        fix = root / "main_data" / str(r["id"]) / "fixations.csv"
        if not fix.is_file():
            skips.skip("readings without fixations.csv", str(fix))
            continue
        kept.append((r, fix))
    return kept


def _report(
    root: Path, reports_root: str | os.PathLike | None, subject: str, study_num: str, reading_id: str
) -> tuple[str, str, str]:
    """(findings, impression, source): the MIMIC-CXR report where ``reports_root`` has it, else the first
    reading's transcription as findings; source "none" when neither has text."""
    text = read_mimic_report(Path(reports_root), subject, study_num) if reports_root else None
    if text is not None:
        sec = section_report(text)
        return sec.findings, sec.impression, "mimic-report"
    trans = root / "main_data" / reading_id / "transcription.txt"
    findings = trans.read_text(encoding="utf-8", errors="replace").strip() if trans.is_file() else ""
    return findings, "", "transcription" if findings else "none"


def _certainty(readings: pd.DataFrame, label_cols: list[str]) -> dict[str, float]:
    """Per REFLACX label column, the highest certainty any reading of the image gave (columns all blank: absent)."""
    certainty = {}
    for c in label_cols:
        vals = pd.to_numeric(readings[c], errors="coerce").dropna()
        if len(vals):
            certainty[c] = float(vals.max())
    return certainty


def build_reflacx_manifest(
    reflacx_root: str | os.PathLike,
    image_root: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    reports_root: str | os.PathLike | None = None,
    image_suffix: str | None = ".jpg",
    include_discarded: bool = False,
    check_files: bool = True,
    progress: bool = True,
) -> Path:
    """Write the REFLACX expert manifest (one row per image, all readings); returns its path."""
    root, image_root, out = Path(reflacx_root), Path(image_root), Path(out_path)
    meta = read_reflacx_metadata(root)
    label_cols = [c for c in meta.columns if c not in (*METADATA_REQUIRED, "phase")]
    skips = SkipCounter(f"REFLACX manifest from {root}")
    studies: list[Study] = []
    seen_ids: dict[str, int] = {}
    groups = meta.groupby("dicom_id", sort=True)
    for dicom_id, readings in tqdm(groups, total=groups.ngroups, disable=not progress, desc="REFLACX images"):
        first = readings.iloc[0]
        image = mimic_image(image_root, str(first["image"]), image_suffix, check_files, skips)
        if image is None:
            continue
        kept = _usable_readings(root, readings, include_discarded, skips)
        if not kept:
            skips.skip("images without a usable reading", str(dicom_id))
            continue
        subject = id_str(first["subject_id"])
        study_num = study_from_path(str(first["image"])) or str(dicom_id)
        findings, impression, source = _report(root, reports_root, subject, study_num, str(kept[0][0]["id"]))
        sid = f"s{study_num}"
        seen_ids[sid] = seen_ids.get(sid, 0) + 1
        if seen_ids[sid] > 1:  # a second gaze image of the same study
            sid = f"{sid}_{dicom_id}"
        split = normalize_split(first["split"]) or hash_split(subject)
        studies.append(
            Study(
                study_id=sid,
                image_paths=[str(image)],
                split=split,
                findings=findings,
                impression=impression,
                fixations_paths=[str(f) for _, f in kept],
                gaze_format="reflacx",
                meta={
                    "source": "reflacx",
                    "dicom_id": str(dicom_id),
                    "subject_id": subject,
                    "reading_ids": [str(r["id"]) for r, _ in kept],
                    "report_source": source,
                    "original_size": [int(first["image_size_y"]), int(first["image_size_x"])],
                    "reflacx_labels": _certainty(readings, label_cols),
                },
            )
        )
    log.info("REFLACX: %d readings", sum(len(s.fixations_paths) for s in studies))
    return finish_manifest(
        studies,
        skips,
        out,
        f"{root}: no REFLACX image had an image file and a usable reading",
        "REFLACX expert studies",
    )
