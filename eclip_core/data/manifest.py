"""The study manifest: one row per study, CSV or JSONL, the input format of training, indexing and eval.

Columns (CSV) / keys (JSONL):

=================  ========  ==================================================================
column             required  meaning
=================  ========  ==================================================================
study_id           yes       unique id of the study (Open-I uid ``CXR123``, MIMIC ``s5041...``)
image_path         yes       image file(s), relative to the manifest's folder or absolute;
                             several are joined with ``|`` in CSV (a list in JSONL)
split              yes       ``train``, ``val`` or ``test``
findings           no        FINDINGS section text
impression         no        IMPRESSION section text
view               no        ``PA``, ``AP``, ``LATERAL`` ... of the first image
labels             no        JSON object: CheXpert observation -> 1 / 0 / -1 / null
heatmap_path       no        a ready heatmap (PNG or .npy), same grid as the image
fixations_path     no        gaze fixation file(s) (``|``-joined in CSV)
gaze_format        no        ``egd`` or ``reflacx`` (format of fixations_path)
meta               no        JSON object of anything else (MeSH codes, source, simulated flag)
=================  ========  ==================================================================

Example:

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> s = Study("CXR1", ["a.png"], "train", findings="Lungs clear.", labels={"No Finding": 1.0})
>>> write_manifest([s], d / "m.csv")
>>> read_manifest(d / "m.csv")[0].labels
{'No Finding': 1.0}
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eclip_core.errors import ManifestError
from eclip_core.text import join_report

REQUIRED_COLUMNS = ("study_id", "image_path", "split")
ALL_COLUMNS = (
    "study_id",
    "image_path",
    "split",
    "findings",
    "impression",
    "view",
    "labels",
    "heatmap_path",
    "fixations_path",
    "gaze_format",
    "meta",
)
SPLITS = ("train", "val", "test")
LABEL_VALUES = (1.0, 0.0, -1.0)


@dataclass
class Study:
    """One study: its image(s), report sections, labels and optional expert gaze."""

    study_id: str
    image_paths: list[str]
    split: str
    findings: str = ""
    impression: str = ""
    view: str = ""
    labels: dict[str, float | None] = field(default_factory=dict)
    heatmap_path: str | None = None
    fixations_paths: list[str] = field(default_factory=list)
    gaze_format: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def report_text(self) -> str:
        """Findings then impression, normalised (what is embedded and indexed)."""
        return join_report(self.findings, self.impression)

    @property
    def has_expert(self) -> bool:
        """True when the study carries an expert map (heatmap or gaze fixations)."""
        return bool(self.heatmap_path or self.fixations_paths)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split_multi(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    return [v for v in str(value).split("|") if v]


def _json_field(value: Any, column: str, where: str) -> dict:
    """A JSON-object column (a string in CSV, already parsed in JSONL) as a dict; ManifestError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, dict):
        return value
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                f"{where}: column '{column}' is not valid JSON ({exc.msg}): {value[:80]!r}; it must be a JSON object"
            ) from exc
    if not isinstance(parsed, dict):
        kind = "JSON list" if isinstance(parsed, list) else f"JSON {type(parsed).__name__}"
        raise ManifestError(f"{where}: column '{column}' must be a JSON object, got a {kind}: {str(value)[:80]!r}")
    return parsed


def _labels_field(value: Any, where: str) -> dict[str, float | None]:
    """The ``labels`` column: a JSON object of observation -> 1 / 0 / -1 / null (NaN counts as null)."""
    labels: dict[str, float | None] = {}
    for key, v in _json_field(value, "labels", where).items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            labels[str(key)] = None
        elif not isinstance(v, bool) and isinstance(v, (int, float)) and float(v) in LABEL_VALUES:
            labels[str(key)] = float(v)
        else:
            raise ManifestError(
                f"{where}: column 'labels' gives {key!r} the value {v!r}; each label must be "
                "1 (positive), 0 (negative), -1 (uncertain) or null (not mentioned)"
            )
    return labels


def _resolve(path: str, root: Path) -> str:
    return path if os.path.isabs(path) else str(root / path)


def _row_to_study(row: dict[str, Any], root: Path, where: str, number: int) -> Study:
    """Row ``number`` (1-based, header excluded) at ``where`` (path:line) as a Study; ManifestError if bad."""
    study_id = row.get("study_id")
    if study_id is None or not str(study_id).strip():
        raise ManifestError(f"{where} (row {number}): study_id is empty; every row needs a unique, non-empty study_id")
    # Name the study too: a line number alone is hard to act on in a large file.
    in_row = f"{where} (row {number}, study {str(study_id)!r})"
    split = str(row.get("split") or "").strip().lower()
    if split not in SPLITS:
        raise ManifestError(f"{where}: split must be one of {SPLITS}, got {row.get('split')!r}")
    images = [_resolve(p, root) for p in _split_multi(row.get("image_path"))]
    if not images:
        raise ManifestError(f"{where}: study {row.get('study_id')!r} has no image_path")
    heatmap = row.get("heatmap_path") or None
    return Study(
        study_id=str(study_id),
        image_paths=images,
        split=split,
        findings=str(row.get("findings") or ""),
        impression=str(row.get("impression") or ""),
        view=str(row.get("view") or ""),
        labels=_labels_field(row.get("labels"), in_row),
        heatmap_path=_resolve(heatmap, root) if heatmap else None,
        fixations_paths=[_resolve(p, root) for p in _split_multi(row.get("fixations_path"))],
        gaze_format=str(row.get("gaze_format") or ""),
        meta=_json_field(row.get("meta"), "meta", in_row),
    )


def read_manifest(path: str | os.PathLike, *, split: str | None = None) -> list[Study]:
    """Read a CSV or JSONL manifest; relative paths resolve against the manifest's folder.

    Raises :class:`ManifestError` naming the file, line and problem for missing columns,
    bad JSON, unknown splits or duplicate study ids. File existence is checked by
    :func:`find_missing_files` (training skips such rows instead of failing).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    root = path.parent
    try:
        rows = _read_rows(path)
    except UnicodeDecodeError:
        from eclip_core.data.encoding import not_utf8_message

        raise ManifestError(not_utf8_message(path, "manifest")) from None
    studies, seen = [], set()
    for n, (where, row) in enumerate(rows, 1):
        study = _row_to_study(row, root, where, n)
        if study.study_id in seen:
            raise ManifestError(f"{where}: duplicate study_id {study.study_id!r}")
        seen.add(study.study_id)
        if split is None or study.split == split:
            studies.append(study)
    return studies


def _read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(path:line, row)`` per study row of a JSONL or CSV manifest (UTF-8, with or without a BOM)."""
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        with path.open(encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise ManifestError(f"{path}:{n}: each line must be a JSON object, got {type(row).__name__}")
                rows.append((f"{path}:{n}", row))
        for where, row in rows:
            missing = [c for c in REQUIRED_COLUMNS if c not in row]
            if missing:
                raise ManifestError(f"{where}: missing required key(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
        return rows
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ManifestError(
                f"manifest {path} lacks required column(s) {missing}; it has {header}. "
                f"Required: {list(REQUIRED_COLUMNS)}"
            )
        line = reader.line_num
        for row in reader:  # line of the row's start: quoted fields may span lines
            rows.append((f"{path}:{line + 1}", row))
            line = reader.line_num
    return rows


def find_missing_files(studies: Iterable[Study]) -> list[tuple[Study, str]]:
    """Studies that reference files that do not exist, with a message naming the file."""
    bad = []
    for s in studies:
        for p in [*s.image_paths, *([s.heatmap_path] if s.heatmap_path else []), *s.fixations_paths]:
            if not os.path.isfile(p):
                bad.append((s, f"study {s.study_id}: file not found: {p}"))
                break
    return bad


def _relative(path: str, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path


def write_manifest(studies: Iterable[Study], path: str | os.PathLike) -> None:
    """Write studies as CSV or JSONL (by suffix), paths relative to the manifest's folder, atomically."""
    from eclip_core.atomic import atomic_path

    path = Path(path)
    root = path.parent
    records = []
    for s in studies:
        records.append(
            {
                "study_id": s.study_id,
                "image_path": [_relative(p, root) for p in s.image_paths],
                "split": s.split,
                "findings": s.findings,
                "impression": s.impression,
                "view": s.view,
                "labels": s.labels,
                "heatmap_path": _relative(s.heatmap_path, root) if s.heatmap_path else "",
                "fixations_path": [_relative(p, root) for p in s.fixations_paths],
                "gaze_format": s.gaze_format,
                "meta": s.meta,
            }
        )
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".jsonl", ".json"):
            with tmp.open("w", encoding="utf-8") as fh:
                for r in records:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=list(ALL_COLUMNS))
                w.writeheader()
                for r in records:
                    r = dict(r)
                    r["image_path"] = "|".join(r["image_path"])
                    r["fixations_path"] = "|".join(r["fixations_path"])
                    r["labels"] = json.dumps(r["labels"]) if r["labels"] else ""
                    r["meta"] = json.dumps(r["meta"]) if r["meta"] else ""
                    w.writerow(r)
