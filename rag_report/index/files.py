"""The files of an index folder: recorded at build (size and sha256 in the manifest), verified at load.

A truncated or damaged file must give one clear error naming it, not a traceback from FAISS or JSON, and
not an index that loads and then fails every query. Indexes built before the record existed are checked
for the files they need (and each file is parsed when loaded).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rag_report.errors import CorruptIndexError

MANIFEST = "manifest.json"
FAISS_FILE = "default__vector_store.json"  # LlamaIndex's name for the FAISS store file (binary content)
DOCSTORE_FILE = "docstore.json"  # LlamaIndex's docstore: one TextNode per report
INDEX_STORE_FILE = "index_store.json"  # LlamaIndex's index store: FAISS row -> node id
GRAPH_STORE_FILE = "graph_store.json"  # LlamaIndex's (empty) graph store
REQUIRED_FILES = (MANIFEST, DOCSTORE_FILE, INDEX_STORE_FILE, FAISS_FILE)
IMAGE_SAMPLE_FILE = "image_sample.npy"  # unit eCLIP embeddings of the sampled corpus X-rays (typicality)
VERIFY_LEVELS = ("sha256", "size")
_CHUNK = 1 << 20
T = TypeVar("T")


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


def parse(directory: Path, name: str, read: Callable[[], T]) -> T:
    """``read()``, with any failure to parse a file of the index reported as CorruptIndexError naming it."""
    try:
        return read()
    except (ValueError, KeyError, TypeError, OSError, RuntimeError, EOFError) as exc:
        raise corrupt(directory, name, exc) from exc


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of an index folder (CorruptIndexError when it is missing or not a JSON object)."""
    path = directory / MANIFEST
    if not path.is_file():
        raise CorruptIndexError(
            f"index folder {directory} is incomplete: missing {[MANIFEST]}; {rebuild_hint(directory)}"
        )
    manifest = parse(directory, MANIFEST, lambda: json.loads(path.read_text(encoding="utf-8")))
    if not isinstance(manifest, dict):
        raise corrupt(directory, MANIFEST, ValueError(f"a JSON {type(manifest).__name__}, not an object"))
    return manifest


def read_image_sample(directory: Path, manifest: dict[str, Any], dim: int) -> np.ndarray | None:
    """The sampled corpus X-ray embeddings [m, dim] the manifest's typicality needs (None without it)."""
    info = manifest.get("typicality")
    if not info:
        return None
    name = info.get("file", IMAGE_SAMPLE_FILE)
    sample = parse(directory, name, lambda: np.load(directory / name, allow_pickle=False))
    expected = int(info.get("sample") or 0)
    if sample.ndim != 2 or sample.shape[1] != dim or (expected and len(sample) != expected):
        raise corrupt(directory, name, ValueError(f"shape {sample.shape}, expected ({expected or 'm'}, {dim})"))
    return np.asarray(sample, dtype=np.float32)
