"""Failed writes (a full disk, a quota, an I/O error) as the project's SaveError / DiskFullError.

Savers wrap their writes in :func:`saving`; the write goes to a temporary folder (:mod:`eclip_core.safe_dir`),
so when it fails the version saved before is still in place, and the message says so, with the path and
about how many bytes the save needed.

>>> import errno
>>> try:
...     with saving("a model", "/data/run/model", 3 * 2**20):
...         raise OSError(errno.ENOSPC, "No space left on device")
... except DiskFullError as exc:
...     print(str(exc).split(":")[0])
disk full while saving a model to /data/run/model
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eclip_core.errors import DiskFullError, EClipError, SaveError

DISK_FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)
# How the libraries that write without an errno (safetensors, FAISS) word a full disk.
_DISK_FULL_WORDS = ("no space left", "disk quota", "storagefull", "not enough space", "quota exceeded")


def nested_nbytes(obj: Any) -> int:
    """Bytes of the arrays / tensors in ``obj`` (dicts, lists and tuples are walked; the rest counts 0).

    >>> import numpy as np
    >>> nested_nbytes({"a": np.zeros(4, np.float32), "b": [np.zeros(2, np.int64), "x"]})
    32
    """
    if isinstance(obj, dict):
        return sum(nested_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nested_nbytes(v) for v in obj)
    n = getattr(obj, "nbytes", None)
    return n if isinstance(n, int) else 0


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KB'``.

    >>> human_bytes(1536), human_bytes(3 * 2**30)
    ('1.5 KB', '3.0 GB')
    """
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def is_disk_full(exc: BaseException) -> bool:
    """An OSError with ENOSPC / EDQUOT, or a library error whose text says the disk is full."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    text = str(exc).lower()
    return any(w in text for w in _DISK_FULL_WORDS)


def is_write_failure(exc: BaseException) -> bool:
    """OSError, safetensors' SafetensorError, or a FAISS I/O RuntimeError (not programming errors)."""
    if isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("faiss" in text or "write error" in text or is_disk_full(exc))


def save_error(exc: BaseException, what: str, path: str | os.PathLike, bytes_needed: int) -> SaveError:
    """The SaveError (DiskFullError for a full disk) for ``exc`` raised while saving ``what`` to ``path``."""
    free = free_bytes(path)
    free_text = f"{human_bytes(free)} are free there" if free is not None else "free space unknown"
    kept = f"the version saved before at {path} (if any) is unchanged"
    if is_disk_full(exc) or (free is not None and free < bytes_needed):
        return DiskFullError(
            f"disk full while saving {what} to {path}: it needs about {human_bytes(bytes_needed)} "
            f"({bytes_needed} bytes), {free_text}; free some space or save somewhere else, then run again "
            f"({kept})"
        )
    return SaveError(
        f"could not save {what} to {path} ({type(exc).__name__}: {exc}); it needs about "
        f"{human_bytes(bytes_needed)}; check that the folder is writable, then run again ({kept})"
    )


@contextmanager
def saving(what: str, path: str | os.PathLike, bytes_needed: int) -> Iterator[None]:
    """Turn write failures inside the block into :class:`SaveError` / :class:`DiskFullError`."""
    try:
        yield
    except SaveError as exc:
        cause = exc.__cause__
        if cause is not None and is_write_failure(cause):  # a nested save (a model inside a checkpoint):
            raise save_error(cause, what, path, bytes_needed) from cause  # name the outer target
        raise
    except EClipError:
        raise
    except Exception as exc:  # noqa: BLE001 -- filtered: only write failures are translated
        if not is_write_failure(exc):
            raise
        raise save_error(exc, what, path, bytes_needed) from exc


def check_written(file: str | os.PathLike, at_least: int) -> None:
    """Raise OSError when ``file`` holds fewer than ``at_least`` bytes (a writer that lost data silently)."""
    size = os.path.getsize(file)
    if size < at_least:
        full = (free_bytes(file) or 0) < at_least - size
        raise OSError(
            errno.ENOSPC if full else errno.EIO,
            f"{file} holds {size} bytes after writing, expected at least {at_least}",
        )
