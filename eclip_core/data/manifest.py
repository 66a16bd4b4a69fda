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
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from eclip_core.errors import ManifestError
from eclip_core.text import join_report

REQUIRED_COLUMNS = ("study_id", "image_path", "split")
ALL_COLUMNS = (
    "study_id", "image_path", "split", "findings", "impression", "view", "labels",
    "heatmap_path", "fixations_path", "gaze_format", "meta",
)
SPLITS = ("train", "val", "test")


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
    if value in (None, ""):
        return {}
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: column '{column}' is not valid JSON ({exc.msg}): {str(value)[:80]!r}") from exc
    if not isinstance(parsed, dict):
        raise ManifestError(f"{where}: column '{column}' must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _resolve(path: str, root: Path) -> str:
    return path if os.path.isabs(path) else str(root / path)


def _row_to_study(row: dict[str, Any], root: Path, where: str) -> Study:
    split = str(row.get("split") or "").strip().lower()
    if split not in SPLITS:
        raise ManifestError(f"{where}: split must be one of {SPLITS}, got {row.get('split')!r}")
    images = [_resolve(p, root) for p in _split_multi(row.get("image_path"))]
    if not images:
        raise ManifestError(f"{where}: study {row.get('study_id')!r} has no image_path")
    heatmap = row.get("heatmap_path") or None
    return Study(
        study_id=str(row["study_id"]),
        image_paths=images,
        split=split,
        findings=str(row.get("findings") or ""),
        impression=str(row.get("impression") or ""),
        view=str(row.get("view") or ""),
        labels=_json_field(row.get("labels"), "labels", where),
        heatmap_path=_resolve(heatmap, root) if heatmap else None,
        fixations_paths=[_resolve(p, root) for p in _split_multi(row.get("fixations_path"))],
        gaze_format=str(row.get("gaze_format") or ""),
        meta=_json_field(row.get("meta"), "meta", where),
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
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((f"{path}:{n}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
        for where, row in rows:
            missing = [c for c in REQUIRED_COLUMNS if c not in row]
            if missing:
                raise ManifestError(f"{where}: missing required key(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
    else:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise ManifestError(
                    f"manifest {path} lacks required column(s) {missing}; it has {header}. "
                    f"Required: {list(REQUIRED_COLUMNS)}"
                )
            rows = [(f"{path}:{n + 2}", r) for n, r in enumerate(reader)]
    studies, seen = [], set()
    for where, row in rows:
        study = _row_to_study(row, root, where)
        if study.study_id in seen:
            raise ManifestError(f"{where}: duplicate study_id {study.study_id!r}")
        seen.add(study.study_id)
        if split is None or study.split == split:
            studies.append(study)
    return studies


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
        records.append({
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
        })
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
