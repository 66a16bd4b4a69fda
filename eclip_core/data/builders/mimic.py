"""MIMIC-CXR-JPG -> study manifest.

Inputs (as PhysioNet ships them; ``.csv`` or ``.csv.gz``):

* ``<root>/files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg``
* ``mimic-cxr-2.0.0-metadata.csv``: dicom_id, subject_id, study_id, ViewPosition (PA/AP/LATERAL...),
  Rows, Columns, ...
* ``mimic-cxr-2.0.0-split.csv``: dicom_id, study_id, subject_id, split (train/validate/test)
* optional ``mimic-cxr-2.0.0-chexpert.csv``: subject_id, study_id + the 14 CheXpert columns
* reports from MIMIC-CXR: ``<reports_root>/files/pXX/pSUBJECT/sSTUDY.txt`` (free text, sectioned by
  :mod:`eclip_core.data.builders.sectioning`).

One manifest row per study (``study_id`` = ``s<number>``): the images whose view is in ``views``
(PA first, then AP, then the rest), findings and impression, labels, and ``meta`` with subject_id,
dicom_ids, views and ``original_size`` of the first image. Studies without a usable image or
without report text are skipped and counted in one warning.

>>> # build_mimic_manifest("/data/mimic-cxr-jpg", "/data/mimic.csv", reports_root="/data/mimic-cxr")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from eclip_core.data.builders.common import (
    SkipCounter,
    chexpert_labels,
    find_first,
    finish_manifest,
    hash_split,
    id_str,
    label_text,
    mimic_study_dir,
    normalize_split,
    read_mimic_report,
    read_table,
)
from eclip_core.data.builders.sectioning import section_report
from eclip_core.data.manifest import Study
from eclip_core.errors import ManifestError

log = logging.getLogger(__name__)

METADATA_NAMES = ("mimic-cxr-2.0.0-metadata.csv", "metadata.csv")
SPLIT_NAMES = ("mimic-cxr-2.0.0-split.csv", "split.csv")
CHEXPERT_NAMES = ("mimic-cxr-2.0.0-chexpert.csv", "chexpert.csv")
_VIEW_ORDER = {"PA": 0, "AP": 1, "LATERAL": 2, "LL": 3}


def build_mimic_manifest(
    root: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    reports_root: str | os.PathLike | None = None,
    metadata_csv: str | os.PathLike | None = None,
    split_csv: str | os.PathLike | None = None,
    chexpert_csv: str | os.PathLike | None = None,
    views: Sequence[str] | None = ("PA", "AP"),
    max_images_per_study: int | None = None,
    label_reports: bool = False,
    check_files: bool = True,
    progress: bool = True,
) -> Path:
    """Write a manifest (CSV or JSONL by suffix) for a MIMIC-CXR-JPG folder; returns its path.

    ``reports_root`` defaults to ``root`` (reports unpacked into the same ``files/`` tree).
    ``views=None`` keeps every view. Without a chexpert csv, ``label_reports=True`` labels the
    report text with :mod:`eclip_core.labeler`. Without a split csv, studies are split by a hash
    of the subject id (70/10/20; no patient in two splits).
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"MIMIC-CXR-JPG folder {root} does not exist")
    reports = Path(reports_root) if reports_root else root
    meta, splits, chex = _read_tables(root, metadata_csv, split_csv, chexpert_csv)
    wanted = {v.upper() for v in views} if views else None
    skips = SkipCounter(f"MIMIC-CXR-JPG manifest from {root}")
    studies: list[Study] = []
    groups = meta.groupby("study_id", sort=True)
    for study_num, rows in tqdm(groups, total=groups.ngroups, disable=not progress, desc="MIMIC studies"):
        study_num = id_str(study_num)
        subject = id_str(rows["subject_id"].iloc[0])
        images, kept = _study_images(root, subject, study_num, rows, wanted, max_images_per_study, check_files, skips)
        if not images:
            skips.skip("studies without an image of the wanted views", f"s{study_num}")
            continue
        text = read_mimic_report(reports, subject, study_num)
        if text is None:
            skips.skip("studies without a report file", f"s{study_num}")
            continue
        sec = section_report(text)
        if not (sec.findings or sec.impression):
            skips.skip("reports without findings or impression text", f"s{study_num}")
            continue
        split = splits.get(study_num) or hash_split(subject)
        labels = chex.get(study_num) or (label_text(sec.findings, sec.impression) if label_reports else {})
        studies.append(
            Study(
                study_id=f"s{study_num}",
                image_paths=[str(root / p) for p in images],
                split=split,
                findings=sec.findings,
                impression=sec.impression,
                view=kept[0]["_view"],
                labels=labels,
                meta=_study_meta(subject, kept, sec.fallback),
            )
        )
    return finish_manifest(
        studies,
        skips,
        out_path,
        f"{root}: no usable MIMIC-CXR-JPG study found (see the warning for what was skipped)",
        "MIMIC-CXR-JPG studies",
    )


def _read_tables(
    root: Path,
    metadata_csv: str | os.PathLike | None,
    split_csv: str | os.PathLike | None,
    chexpert_csv: str | os.PathLike | None,
) -> tuple[pd.DataFrame, dict[str, str], dict[str, dict]]:
    """The metadata table (required), the official split by study number and the CheXpert labels by
    study number (both empty when their csv is absent)."""
    meta_path = Path(metadata_csv) if metadata_csv else find_first(root, METADATA_NAMES)
    if meta_path is None:
        raise ManifestError(f"{root}: no {METADATA_NAMES[0]}(.gz) found; pass metadata_csv=")
    meta = read_table(
        meta_path, ("dicom_id", "subject_id", "study_id", "ViewPosition"), "MIMIC metadata csv", dtype={"dicom_id": str}
    )
    split_path = Path(split_csv) if split_csv else find_first(root, SPLIT_NAMES)
    splits: dict[str, str] = {}
    if split_path is not None:
        sp = read_table(
            split_path, ("dicom_id", "study_id", "subject_id", "split"), "MIMIC split csv", dtype={"dicom_id": str}
        )
        splits = {id_str(s): normalize_split(v) for s, v in zip(sp["study_id"], sp["split"]) if normalize_split(v)}
    else:
        log.info("%s: no split csv; splitting studies by subject hash", root)
    chex_path = Path(chexpert_csv) if chexpert_csv else find_first(root, CHEXPERT_NAMES)
    chex: dict[str, dict] = {}
    if chex_path is not None:
        cx = read_table(chex_path, ("subject_id", "study_id"), "MIMIC chexpert csv")
        chex = {id_str(r["study_id"]): chexpert_labels(r) for _, r in cx.iterrows()}
    return meta, splits, chex


def _study_images(
    root: Path,
    subject: str,
    study_num: str,
    rows: pd.DataFrame,
    wanted: set[str] | None,
    max_images: int | None,
    check_files: bool,
    skips: SkipCounter,
) -> tuple[list[str], list[pd.Series]]:
    """The study's image paths (relative to ``root``) of the wanted views, PA first, and their metadata rows."""
    rows = rows.assign(_view=rows["ViewPosition"].fillna("").astype(str).str.upper())
    if wanted is not None:
        rows = rows[rows["_view"].isin(wanted)]
    rows = rows.assign(_order=rows["_view"].map(lambda v: _VIEW_ORDER.get(v, 9))).sort_values(["_order", "dicom_id"])
    images, kept = [], []
    for _, r in rows.iterrows():
        rel = f"{mimic_study_dir(subject, study_num)}/{r['dicom_id']}.jpg"
        if check_files and not (root / rel).is_file():
            skips.skip("image file missing", str(root / rel))
            continue
        images.append(rel)
        kept.append(r)
        if max_images and len(images) >= max_images:
            break
    return images, kept


def _study_meta(subject: str, kept: list[pd.Series], sectioning_fallback: bool) -> dict:
    """A manifest row's ``meta``: ids, views and the first image's original size where the metadata has it."""
    first = kept[0]
    meta_out = {
        "source": "mimic-cxr-jpg",
        "subject_id": subject,
        "dicom_ids": [str(r["dicom_id"]) for r in kept],
        "views": [r["_view"] for r in kept],
        "dicom_id": str(first["dicom_id"]),
        "sectioning_fallback": sectioning_fallback,
    }
    if "Rows" in first and "Columns" in first and pd.notna(first["Rows"]) and pd.notna(first["Columns"]):
        meta_out["original_size"] = [int(first["Rows"]), int(first["Columns"])]
    return meta_out
