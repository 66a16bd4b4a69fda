"""The one page writer: every benchmark and study writes its Markdown page (docs/perf/<area>.md,
docs/results/<area>.md) through :func:`write_page`, so pages share encoding, line ending, atomic
replacement and the echo."""

from __future__ import annotations

import sys
from pathlib import Path

from eclip_core.atomic import atomic_path


def write_page(out: str | Path, page: list[str] | str, *, echo: bool = True) -> Path:
    """Write ``page`` (its lines, or its text) as one Markdown page ending in one newline, making the
    folders; echo it to stdout unless ``echo`` is false. Returns the path.

    >>> import tempfile
    >>> path = write_page(Path(tempfile.mkdtemp()) / "perf" / "x.md", ["# X", "", "| a |"], echo=False)
    >>> path.read_text(encoding="utf-8")
    '# X\\n\\n| a |\\n'
    """
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (page if isinstance(page, str) else "\n".join(page)).rstrip("\n") + "\n"
    with atomic_path(path) as tmp:  # a reader (collect, a browser) never sees half a page
        tmp.write_text(text, encoding="utf-8")
    if echo:
        sys.stdout.write(text)
    return path
