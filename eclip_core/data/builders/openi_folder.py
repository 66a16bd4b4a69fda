"""Open-I / IU X-ray -> study manifest, from either of the two forms users hold.

1. NLMCXR: a PNG folder (``NLMCXR_png/<parentImage id>.png``) + the XML reports (a folder of
   ``*.xml``, the ``NLMCXR_reports.tgz`` archive, or, by default, the copy inside the installed
   torchxrayvision package), read by :func:`eclip_core.data.openi.load_openi_reports`
   (its ``parse_openi_xml``; view positions from the package's DICOM metadata).
2. The Kaggle repack: ``indiana_reports.csv`` (uid, MeSH, Problems, image, indication, comparison,
   findings, impression) + ``indiana_projections.csv`` (uid, filename, projection Frontal/Lateral)
   with images in ``images/images_normalized/``.

One row per report (``study_id`` = ``CXR<uid>``), frontal images first. Splits: a CSV with columns
``uid`` and ``split`` (e.g. the R2Gen split shipped as ``eclip_core/data/phantom/r2gen_split.csv``) or a hash of
the uid (70/10/20). With a split CSV, reports not in it are dropped unless ``drop_unsplit=False``.
Reports with no findings and no impression, and reports none of whose images exist, are skipped
and counted in one warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from eclip_core.data.builders.common import (
    SkipCounter,
    finish_manifest,
    hash_split,
    label_text,
    normalize_split,
    read_table,
)
from eclip_core.data.manifest import Study
from eclip_core.errors import EClipError, ManifestError

log = logging.getLogger(__name__)

_FRONTAL = {"PA", "AP", "FRONTAL"}


def _uid(value: Any) -> str:
    s = str(value).strip()
    s = s[:-2] if s.endswith(".0") else s
    return s if s.upper().startswith("CXR") else f"CXR{s}"


def read_split_csv(path: str | os.PathLike | None) -> dict[str, str]:
    """uid (``CXR123``) -> train/val/test from a CSV with columns uid and split."""
    if path is None:
        return {}
    df = read_table(path, ("uid", "split"), "Open-I split csv", dtype={"uid": str})
    return {_uid(u): normalize_split(s) for u, s in zip(df["uid"], df["split"]) if normalize_split(s)}


def _assign_split(uid: str, splits: dict[str, str], drop_unsplit: bool) -> str | None:
    if splits:
        return splits.get(uid) if drop_unsplit else splits.get(uid) or hash_split(uid)
    return hash_split(uid)


def _load_reports(reports: str | os.PathLike | None) -> Iterable[Any]:
    # The XML parsing lives in eclip_core.data.openi (one parser for the project).
    from eclip_core.data.openi import load_openi_reports

    try:
        return load_openi_reports(reports)
    except EClipError as exc:
        raise ManifestError(f"Open-I reports {reports or '(torchxrayvision package)'}: {exc}") from None


def _order_frontal_first(ids: list[str], views: dict[str, str]) -> tuple[list[str], list[str]]:
    pairs = [(i, (views.get(i) or "").upper()) for i in ids]
    pairs.sort(key=lambda p: p[1] not in _FRONTAL)  # stable: keeps the XML order otherwise
    return [p[0] for p in pairs], [p[1] for p in pairs]


def build_openi_manifest(
    png_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    reports: str | os.PathLike | None = None,
    split_csv: str | os.PathLike | None = None,
    drop_unsplit: bool = True,
    frontal_only: bool = False,
    label_reports: bool = False,
    progress: bool = True,
) -> Path:
    """Manifest for the NLMCXR PNG folder + XML reports; returns its path.

    >>> # build_openi_manifest("NLMCXR_png", "openi.csv", split_csv="openi_r2gen_split.csv")
    """
    png_dir = Path(png_dir)
    if not png_dir.is_dir():
        raise ManifestError(f"Open-I PNG folder {png_dir} does not exist")
    splits = read_split_csv(split_csv)
    skips = SkipCounter(f"Open-I manifest from {png_dir}")
    studies = []
    for rep in tqdm(list(_load_reports(reports)), disable=not progress, desc="Open-I reports"):
        uid = _uid(rep.uid)
        ids, views = _order_frontal_first(list(rep.image_ids), dict(getattr(rep, "views", {}) or {}))
        pairs = [(i, v) for i, v in zip(ids, views) if (png_dir / f"{i}.png").is_file()]
        if frontal_only:
            pairs = [(i, v) for i, v in pairs if v.upper() in _FRONTAL or not v]
        if not pairs:
            skips.skip("reports without an image file", uid)
            continue
        study = _make_study(
            uid,
            [str(png_dir / f"{i}.png") for i, _ in pairs],
            pairs[0][1],
            rep.findings,
            rep.impression,
            splits,
            drop_unsplit,
            label_reports,
            skips,
            {
                "source": "openi",
                "image_ids": [i for i, _ in pairs],
                "mesh_major": list(getattr(rep, "mesh_major", []) or []),
                "mesh_minor": list(getattr(rep, "mesh_minor", []) or []),
                "indication": getattr(rep, "indication", "") or "",
            },
        )
        if study is not None:
            studies.append(study)
    return _finish(studies, skips, out_path, png_dir)


def _make_study(uid, images, view, findings, impression, splits, drop_unsplit, label_reports, skips, meta):
    findings, impression = (findings or "").strip(), (impression or "").strip()
    if not (findings or impression):
        skips.skip("reports without findings or impression", uid)
        return None
    split = _assign_split(uid, splits, drop_unsplit)
    if split is None:
        skips.skip("reports not in the split csv", uid)
        return None
    labels = label_text(findings, impression) if label_reports else {}
    return Study(
        study_id=uid,
        image_paths=images,
        split=split,
        findings=findings,
        impression=impression,
        view=(view or "").upper(),
        labels=labels,
        meta=meta,
    )


def _finish(studies: list[Study], skips: SkipCounter, out_path, where) -> Path:
    return finish_manifest(
        studies,
        skips,
        out_path,
        f"{where}: no usable Open-I study (see the warning for what was skipped)",
        "Open-I studies",
    )


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v).strip()


def build_openi_kaggle_manifest(
    root: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    reports_csv: str | os.PathLike | None = None,
    projections_csv: str | os.PathLike | None = None,
    images_dir: str | os.PathLike | None = None,
    split_csv: str | os.PathLike | None = None,
    drop_unsplit: bool = True,
    frontal_only: bool = False,
    label_reports: bool = False,
    progress: bool = True,
) -> Path:
    """Manifest for the Kaggle repack (indiana_reports.csv + indiana_projections.csv); returns its path."""
    root = Path(root)
    reports = read_table(
        Path(reports_csv) if reports_csv else root / "indiana_reports.csv",
        ("uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"),
        "indiana_reports.csv",
        dtype={"uid": str},
    )
    proj = read_table(
        Path(projections_csv) if projections_csv else root / "indiana_projections.csv",
        ("uid", "filename", "projection"),
        "indiana_projections.csv",
        dtype={"uid": str},
    )
    img_dir = Path(images_dir) if images_dir else root / "images" / "images_normalized"
    if not img_dir.is_dir():
        raise ManifestError(f"Open-I Kaggle images folder {img_dir} does not exist; pass images_dir=")
    by_uid: dict[str, list[tuple[str, str]]] = {}
    for u, f, p in zip(proj["uid"], proj["filename"], proj["projection"]):
        by_uid.setdefault(_uid(u), []).append((str(f), _text(p)))
    splits = read_split_csv(split_csv)
    skips = SkipCounter(f"Open-I Kaggle manifest from {root}")
    studies = []
    for _, row in tqdm(reports.iterrows(), total=len(reports), disable=not progress, desc="Open-I reports"):
        uid = _uid(row["uid"])
        files = sorted(by_uid.get(uid, []), key=lambda fp: fp[1].lower() != "frontal")
        files = [(f, p) for f, p in files if (img_dir / f).is_file()]
        if frontal_only:
            files = [(f, p) for f, p in files if p.lower() == "frontal"]
        if not files:
            skips.skip("reports without an image file", uid)
            continue
        view = "FRONTAL" if files[0][1].lower() == "frontal" else files[0][1].upper()
        mesh = [m.strip() for m in _text(row["MeSH"]).split(";") if m.strip()]
        study = _make_study(
            uid,
            [str(img_dir / f) for f, _ in files],
            view,
            _text(row["findings"]),
            _text(row["impression"]),
            splits,
            drop_unsplit,
            label_reports,
            skips,
            {
                "source": "openi-kaggle",
                "mesh": mesh,
                "problems": _text(row["Problems"]),
                "indication": _text(row["indication"]),
                "projections": [p for _, p in files],
            },
        )
        if study is not None:
            studies.append(study)
    return _finish(studies, skips, out_path, root)
