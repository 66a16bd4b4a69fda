"""Shared pieces of the manifest builders: tables, splits, MIMIC paths, labels, skip counting."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from eclip_core.errors import ManifestError
from eclip_core.labels import CHEXPERT_OBSERVATIONS

log = logging.getLogger(__name__)

DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def normalize_split(value: Any) -> str | None:
    """Map a dataset's split names (``validate``, ``validation``, ...) to train / val / test.

    >>> normalize_split("validate"), normalize_split(" Test "), normalize_split(None)
    ('val', 'test', None)
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return _SPLIT_ALIASES.get(str(value).strip().lower())


def id_str(value: Any) -> str:
    """A numeric id as text without a float tail (pandas turns ints into floats in mixed rows).

    >>> id_str(50000001.0), id_str("s5"), id_str(7)
    ('50000001', 's5', '7')
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    s = str(value).strip()
    return s[:-2] if s.endswith(".0") and s[:-2].isdigit() else s


def hash_split(key: str, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0) -> str:
    """Deterministic train/val/test assignment from a key (use the patient id to avoid leakage).

    >>> hash_split("p10000032") == hash_split("p10000032")
    True
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    u = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / float(1 << 48)
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def read_table(path: str | os.PathLike, required: Iterable[str], what: str, **kwargs: Any) -> pd.DataFrame:
    """Read a CSV (or .csv.gz) and check its columns; ManifestError names the file and the gaps."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{what} {path} does not exist")
    try:
        df = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise ManifestError(f"{what} {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise ManifestError(f"{what} {path} is not a readable CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ManifestError(f"{what} {path} lacks column(s) {missing}; it has {list(df.columns)[:25]}")
    return df


def find_first(root: Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` (also tried with .gz) that exists under ``root``."""
    for n in names:
        for cand in (root / n, root / f"{n}.gz"):
            if cand.is_file():
                return cand
    return None


def mimic_study_dir(subject_id: Any, study_id: Any) -> str:
    """``files/pXX/pSUBJECT/sSTUDY`` for MIMIC-CXR ids (numbers, or strings with/without p/s).

    >>> mimic_study_dir(10000032, "s50414267")
    'files/p10/p10000032/s50414267'
    """
    subj = str(subject_id).strip().lstrip("p").split(".")[0]
    study = str(study_id).strip().lstrip("s").split(".")[0]
    return f"files/p{subj[:2]}/p{subj}/s{study}"


_FILES_PART = re.compile(r"(?:^|/)(files/p\d{2}/p\d+/s\d+/[^/]+)$")
_STUDY_IN_PATH = re.compile(r"/s(\d+)/")


def mimic_relative_path(path: str) -> str:
    """The ``files/pXX/...`` tail of a MIMIC image path as datasets store it (any prefix dropped)."""
    p = str(path).replace("\\", "/")
    m = _FILES_PART.search(p)
    return m.group(1) if m else p.lstrip("/")


def mimic_image(
    image_root: Path, path: str, image_suffix: str | None, check_files: bool, skips: SkipCounter
) -> Path | None:
    """The local file of a MIMIC image path under ``image_root`` (suffix swapped when the images were
    converted, e.g. ``.dcm`` -> ``.jpg``), or None (counted in ``skips``) when it is missing."""
    rel = mimic_relative_path(path)
    if image_suffix:
        rel = str(Path(rel).with_suffix(image_suffix))
    image = Path(image_root) / rel
    if check_files and not image.is_file():
        skips.skip("image file missing", str(image))
        return None
    return image


def study_from_path(path: str) -> str | None:
    """The MIMIC study number in a ``.../sSTUDY/...`` path, or None."""
    m = _STUDY_IN_PATH.search("/" + str(path).replace("\\", "/"))
    return m.group(1) if m else None


def read_mimic_report(reports_root: Path | None, subject_id: Any, study_id: Any) -> str | None:
    """Text of ``files/pXX/pSUBJECT/sSTUDY.txt`` under ``reports_root``, or None if absent."""
    if reports_root is None:
        return None
    path = Path(reports_root) / f"{mimic_study_dir(subject_id, study_id)}.txt"
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace")


def chexpert_labels(row: Any, columns: dict[str, str] | None = None) -> dict[str, float | None]:
    """CheXpert observation -> 1/0/-1/None from a table row (NaN -> None).

    ``columns`` maps observation -> column name (default: the observation names themselves).
    """
    out: dict[str, float | None] = {}
    for obs in CHEXPERT_OBSERVATIONS:
        col = (columns or {}).get(obs, obs)
        if col not in row:
            continue
        v = row[col]
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = float("nan")
        out[obs] = None if math.isnan(f) else f
    return out


def label_text(findings: str, impression: str) -> dict[str, float | None]:
    """CheXpert-style labels of a report with the project's labeler (empty if it is unavailable)."""
    try:
        from eclip_core.labeler import label_report
    except ImportError:
        log.warning("eclip_core.labeler is not available; studies get no labels")
        return {}
    from eclip_core.text import join_report

    return label_report(join_report(findings, impression))


class SkipCounter:
    """Counts skipped rows by reason and logs one warning summarising them."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def skip(self, reason: str, example: str = "") -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, example)

    def report(self) -> None:
        if self.counts:
            detail = "; ".join(f"{n} {r} (e.g. {self.examples[r]})" for r, n in self.counts.most_common())
            log.warning("%s: skipped %d row(s): %s", self.what, sum(self.counts.values()), detail)


def finish_manifest(
    studies: list, skips: SkipCounter, out_path: str | os.PathLike, empty_message: str, what: str
) -> Path:
    """Log what was skipped, refuse an empty result with ``empty_message``, write the manifest; its path."""
    from eclip_core.data.manifest import write_manifest

    skips.report()
    if not studies:
        raise ManifestError(empty_message)
    out = Path(out_path)
    write_manifest(studies, out)
    log.info("wrote %d %s to %s", len(studies), what, out)
    return out
