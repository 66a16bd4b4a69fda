"""Writing a benchmark's Markdown page (docs/perf/<area>.md) and echoing it to stdout."""

from __future__ import annotations

import sys
from pathlib import Path


def write_page(out: str | Path, lines: list[str]) -> Path:
    """Write ``lines`` as one Markdown page (folders created) and print it; returns the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    path.write_text(text, encoding="utf-8")
    sys.stdout.write(text + "\n")
    return path
