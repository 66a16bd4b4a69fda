"""The manifest of an index folder: what the index was built from and how, written last at build.

It names the eCLIP checkpoint (a load with another model is refused), the dim and metric, the corpus and
its content hash (``index_id``), the FAISS kind and its settings, the modality centering means, the image
typicality record, the label classifiers, versions, build time, and (``files``, :mod:`rag_report.index.files`)
the size and sha256 of every other file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from llama_index.core.schema import TextNode

from eclip_core.safe_dir import recover_dir
from rag_report.errors import CorruptIndexError
from rag_report.index.centering import CorpusSpace
from rag_report.index.faiss_backend import IndexParams
from rag_report.index.files import MANIFEST, is_index_dir, verify_files
from rag_report.retrieval.label_classifiers import FILE_NAME as LABEL_CLASSIFIERS_FILE
from rag_report.retrieval.label_classifiers import LabelClassifiers

FORMAT_VERSION = 1
_VERSIONED = ("faiss-cpu", "faiss-gpu-cu12", "llama-index-core", "llama-index-vector-stores-faiss", "rag-report")


def versions() -> dict[str, str]:
    """Python's and the installed index packages' versions (those not installed are left out)."""
    out = {"python": platform.python_version()}
    for pkg in _VERSIONED:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def index_id(checkpoint_hash: str, index_type: str, nodes: Sequence[TextNode]) -> str:
    """16 hex digits naming the checkpoint, the index kind and the reports (ids and texts, in order)."""
    content = hashlib.sha256()
    for n in nodes:
        content.update(n.node_id.encode() + b"\0" + n.text.encode() + b"\0")
    return hashlib.sha256(f"{checkpoint_hash}|{index_type}|{content.hexdigest()}".encode()).hexdigest()[:16]


def _classifiers_record(label_classifiers: LabelClassifiers | None) -> dict[str, Any] | None:
    if label_classifiers is None:
        return None
    clf = label_classifiers
    return {
        "file": LABEL_CLASSIFIERS_FILE,
        "threshold_source": clf.threshold_source,
        "fitted": [o for o, f in zip(clf.observations, clf.fitted) if f],
        "validation": clf.validation,
    }


def build_manifest(
    nodes: Sequence[TextNode],
    space: CorpusSpace,
    *,
    checkpoint_hash: str,
    index_type: str,
    corpus_name: str,
    params: IndexParams,
    faiss_shape: dict,
    label_classifiers: LabelClassifiers | None,
    t0: float,
) -> dict[str, Any]:
    """The manifest of a new index (without ``files``, recorded once every other file is written)."""
    return {
        "format_version": FORMAT_VERSION,
        "index_id": index_id(checkpoint_hash, index_type, nodes),
        "eclip_checkpoint_hash": checkpoint_hash,
        "embed_dim": int(space.vectors.shape[1]),
        "normalization": "l2",
        "metric": "inner_product",
        # None: raw cosine. Else the stored vectors are normalize(t - text_mean) and queries are centred
        # by their modality's mean before the search (ReportIndex.to_index_space).
        "centering": space.centering,
        # None: no image sample. Else k-NN typicality of query X-rays among the sampled corpus X-rays
        # (ReportIndex.typicality), with the floor of the corpus's own usual range.
        "typicality": space.typicality,
        # None: no label classifiers (label boost off). Else the file and how its thresholds were set.
        "label_classifiers": _classifiers_record(label_classifiers),
        "corpus_name": corpus_name,
        "count": len(nodes),
        "index_type": index_type,
        "params": asdict(params),
        "faiss_shape": faiss_shape,
        "embedded_text": "Study.report_text (findings then impression, normalised); metadata excluded",
        "build_time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.time() - t0, 3),
        "versions": versions(),
    }


def estimated_bytes(
    vectors: np.ndarray, nodes: Sequence[TextNode], index_type: str, params: IndexParams, sample: np.ndarray | None
) -> int:
    """About how many bytes an index folder takes on disk (for the message of a full disk)."""
    n, dim = vectors.shape
    faiss_bytes = n * dim * 4
    if index_type == "hnsw":
        faiss_bytes += n * 2 * params.hnsw_m * 4  # level-0 neighbour lists
    elif index_type == "ivfpq":
        faiss_bytes += n * (dim // 4 + 16)  # PQ codes and ids next to the exact re-rank vectors
    # LlamaIndex's docstore holds each text about three times (text, findings/impression) plus ~1.5 KB of JSON.
    doc_bytes = sum(3 * len(node.text.encode("utf-8")) + 1536 for node in nodes)
    return int(faiss_bytes + doc_bytes + (sample.nbytes if sample is not None else 0))


def is_current_index(directory: str | os.PathLike) -> bool:
    """An index folder exists and records its modality centering and image typicality (indexes built before
    them: rebuild them, the models they were built with stay valid)."""
    path = recover_dir(directory, is_index_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if not ("centering" in manifest and "typicality" in manifest):
            return False
        verify_files(path.parent, manifest, level="size")  # a truncated file: not current, rebuild it
        return True
    except (ValueError, CorruptIndexError):
        return False
