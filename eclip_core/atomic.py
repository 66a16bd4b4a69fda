"""Atomic file and folder writes: write to a temporary sibling, then rename.

A crash mid-write never leaves a half-written file where a reader expects a whole one. Folders are
replaced through :mod:`eclip_core.safe_dir` (several renames, recoverable at every step).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "a.txt").read_text()
    'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the final file the usual permissions (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(
    path: str | os.PathLike, *, validate: Callable[[Path], bool] | None = None, durable: bool = True
) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` whole.

    Crash-safe: a kill at any instant leaves a complete previous or new version, which the loaders find
    (:mod:`eclip_core.safe_dir`); leftovers of a killed save are cleaned by the next save or load.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for text in ("v1", "v2"):
    ...     with atomic_dir(d / "f") as tmp:
    ...         _ = (tmp / "a.txt").write_text(text)
    >>> (d / "f" / "a.txt").read_text(), [p.name for p in d.iterdir()]
    ('v2', ['f'])
    """
    from eclip_core.safe_dir import replace_dir

    with replace_dir(path, validate=validate, durable=durable) as tmp:
        yield tmp
