"""Benchmarks and studies; each writes a Markdown page with the command that produced it."""

from __future__ import annotations

from pathlib import Path


def write_lines(path: str | Path, lines: list[str]) -> None:
    """Write a page (parent folders made) and echo it to stdout."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
