"""The batch summary: one row per study (key, status, reason, images, typicality, positives, timings), no
patient identifier in it. Written atomically as CSV; each study's row is also kept beside its outputs
(``row.json``) so a resumed batch reports the studies it skips and retries their failed sends.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_summary([SummaryRow("study-0123", "drafted", images=2, positives="Cardiomegaly")], d / "summary.csv")
>>> read_summary(d / "summary.csv")[0]["positives"]
'Cardiomegaly'
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from eclip_core.atomic import atomic_path

#: Study statuses: drafted (outputs written this run), resumed (outputs of an earlier run with the same
#: models kept), skipped (nothing to draft: the reason says why), error (drafting or writing failed).
STATUSES = ("drafted", "resumed", "skipped", "error")
#: Stages timed per study, in ms (the summary's *_ms columns).
STAGES = ("fetch", "load", "embed", "retrieve", "generate", "write", "send")


@dataclass
class SummaryRow:
    """One study's line of the summary. ``send`` is "" (not asked), "stored" or "failed: <why>"."""

    study: str
    status: str
    reason: str = ""
    images: int = 0
    view: str = ""
    typicality: float | None = None
    positives: str = ""
    send: str = ""
    fetch_ms: float = 0.0
    load_ms: float = 0.0
    embed_ms: float = 0.0
    retrieve_ms: float = 0.0
    generate_ms: float = 0.0
    write_ms: float = 0.0
    send_ms: float = 0.0
    total_ms: float = 0.0

    @property
    def send_failed(self) -> bool:
        return self.send.startswith("failed")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SummaryRow:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


COLUMNS = tuple(f.name for f in fields(SummaryRow))


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 1 else f"{value:.4f}"
    return "" if value is None else value


def write_summary(rows: list[SummaryRow], path: str | os.PathLike) -> None:
    """The rows as CSV, replacing ``path`` whole (a kill mid-write leaves the previous summary)."""
    with atomic_path(path) as tmp:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(v) for k, v in row.to_dict().items()})


def read_summary(path: str | os.PathLike) -> list[dict[str, str]]:
    with Path(path).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_row(row: SummaryRow, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(row.to_dict(), indent=1), encoding="utf-8")


def read_row(path: str | os.PathLike) -> SummaryRow | None:
    try:
        return SummaryRow.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def shard_name(rank: int, world_size: int) -> str:
    """``summary.csv`` for one process; ``summary-rank0-of-2.csv`` ... for each of several."""
    return "summary.csv" if world_size == 1 else f"summary-rank{rank}-of-{world_size}.csv"
