"""The files of an index folder: recorded at build (size and sha256 in the manifest), verified at load.

A truncated or damaged file must give one clear error naming it, not a traceback from FAISS or JSON, and
not an index that loads and then fails every query. Indexes built before the record existed are checked
for the files they need (and each file is parsed when loaded).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from rag_report.errors import CorruptIndexError

MANIFEST = "manifest.json"
FAISS_FILE = "default__vector_store.json"  # LlamaIndex's name for the FAISS store file (binary content)
REQUIRED_FILES = (MANIFEST, "docstore.json", "index_store.json", FAISS_FILE)
VERIFY_LEVELS = ("sha256", "size")
_CHUNK = 1 << 20


def rebuild_hint(directory: str | os.PathLike) -> str:
    """What to do about a broken index folder."""
    return (
        f"rebuild it with `rag-report index --manifest <manifest> --model <eCLIP folder> --out {directory}` "
        "(the default bundle: `rag-report build-default`)"
    )


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def record_files(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{relative name: {"bytes", "sha256"}}`` of every file in ``folder`` but the manifest (written last).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.bin").write_bytes(b"abc")
    >>> record_files(d)["a.bin"]["bytes"]
    3
    """
    folder = Path(folder)
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name != MANIFEST:
            out[name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return out


def needed_files(manifest: dict[str, Any]) -> list[str]:
    """The files a load reads: the recorded ones, else (older indexes) the fixed set plus the image sample."""
    recorded = manifest.get("files")
    if isinstance(recorded, dict) and recorded:
        names = [MANIFEST, *recorded]
    else:
        names = list(REQUIRED_FILES)
    sample = (manifest.get("typicality") or {}).get("file")
    if sample and sample not in names:
        names.append(sample)
    return names


def verify_files(directory: Path, manifest: dict[str, Any], level: str = "sha256") -> None:
    """Raise :class:`CorruptIndexError` naming the first file that is missing, of the wrong size or (level
    "sha256") whose checksum differs from the one recorded at build."""
    if level not in VERIFY_LEVELS:
        raise ValueError(f"verify must be one of {VERIFY_LEVELS}, got {level!r}")
    missing = [f for f in needed_files(manifest) if not (directory / f).is_file()]
    if missing:
        raise CorruptIndexError(f"index folder {directory} is incomplete: missing {missing}; {rebuild_hint(directory)}")
    files = manifest.get("files")
    recorded: dict[str, Any] = files if isinstance(files, dict) else {}
    for name, rec in recorded.items():
        size = (directory / name).stat().st_size
        if size != rec.get("bytes"):
            raise CorruptIndexError(
                f"index folder {directory}: {name} has {size} bytes but was built with {rec.get('bytes')} (truncated "
                f"or overwritten); {rebuild_hint(directory)}"
            )
    if level == "sha256":
        for name, rec in recorded.items():
            if rec.get("sha256") and sha256_file(directory / name) != rec["sha256"]:
                raise CorruptIndexError(
                    f"index folder {directory}: {name} is corrupt (its sha256 differs from the one recorded at "
                    f"build); {rebuild_hint(directory)}"
                )


def is_index_dir(folder: Path) -> bool:
    """Whether ``folder`` holds the fixed files of an index (accepts a save interrupted by a kill)."""
    return all((folder / f).is_file() for f in REQUIRED_FILES)


def corrupt(directory: Path, name: str, exc: BaseException) -> CorruptIndexError:
    """The error for a file of the index that exists but cannot be parsed."""
    detail = str(exc).rsplit("Error: ", 1)[-1]  # FAISS prefixes its reason with the C++ function and line
    return CorruptIndexError(
        f"index folder {directory}: {name} cannot be read ({type(exc).__name__}: "
        f"{detail[:200]}); the file is truncated or corrupt; {rebuild_hint(directory)}"
    )
