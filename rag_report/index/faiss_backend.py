"""The FAISS side of the report index: build settings, the three index kinds, search settings, the GPU.

Every kind scores unit vectors by inner product (cosine similarity): ``flat`` is exact, ``hnsw`` a graph,
``ivfpq`` inverted lists of product-quantised codes with an exact re-rank of the shortlist (for millions of
reports). A loaded flat or IVF index moves to GPU 0 when faiss-gpu (the ``gpu`` extra) sees a CUDA device.

>>> index, shape = make_faiss_index("flat", 4, 10, IndexParams())
>>> index.d, shape
(4, {})
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, TypeVar

import faiss
import numpy as np
from llama_index.vector_stores.faiss import FaissVectorStore

from rag_report.errors import RagReportError

log = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "hnsw", "ivfpq")


@dataclass
class IndexParams:
    """FAISS build and search settings; stored in the manifest, so a reload searches the same way.

    hnsw_m / ef_construction / ef_search: HNSW graph degree and beam widths.
    nlist / pq_m / pq_nbits: IVF lists and PQ code shape (0 = chosen from the corpus size and dim).
    nprobe / k_factor: IVF lists visited per query; exact re-ranking of k * k_factor PQ candidates.
    train_sample: IVF-PQ trains on at most this many vectors (bounded memory at millions of reports).
    """

    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int = 0
    pq_m: int = 0
    pq_nbits: int = 8
    nprobe: int = 32
    k_factor: int = 16
    train_sample: int = 200_000
    seed: int = 0


def check_index_type(index_type: str) -> None:
    """Refuse an index kind this module cannot build (RagReportError listing the kinds)."""
    if index_type not in INDEX_TYPES:
        raise RagReportError(f"unknown index_type {index_type!r}; choose one of {INDEX_TYPES}")


def _largest_divisor_at_most(d: int, limit: int) -> int:
    for m in range(max(1, min(d, limit)), 0, -1):
        if d % m == 0:
            return m
    return 1


def ivfpq_shape(params: IndexParams, dim: int, n_train: int) -> tuple[int, int, int]:
    """(nlist, pq_m, pq_nbits) for ``n_train`` training vectors of ``dim``.

    nlist ~ 4 sqrt(n) with >= 39 training points per list (FAISS's k-means minimum); PQ codes of dim/4
    sub-quantizers by default; fewer PQ bits for tiny corpora that could not train 256 centroids.

    >>> ivfpq_shape(IndexParams(), 256, 1_000_000)
    (4000, 64, 8)
    """
    nlist = params.nlist or int(4 * math.sqrt(max(n_train, 1)))
    nlist = max(1, min(nlist, n_train // 39 if n_train >= 39 else 1))
    pq_m = params.pq_m or _largest_divisor_at_most(dim, max(1, dim // 4))
    if dim % pq_m:
        raise RagReportError(f"IVF-PQ: pq_m={pq_m} must divide the embedding dim {dim}")
    # FAISS k-means wants >= 39 points per centroid; below that PQ training is slow and useless.
    nbits = min(params.pq_nbits, max(1, int(math.log2(max(n_train // 39, 2)))))
    return nlist, pq_m, nbits


_FaissIndex = TypeVar("_FaissIndex", bound=faiss.Index)


def _downcast(index: faiss.Index, kind: type[_FaissIndex]) -> _FaissIndex:
    """``faiss.downcast_index(index)``, which returns the concrete class, as the ``kind`` the caller expects."""
    concrete = faiss.downcast_index(index)
    if not isinstance(concrete, kind):
        raise RagReportError(f"expected a FAISS {kind.__name__}, got a {type(concrete).__name__}")
    return concrete


def make_faiss_index(index_type: str, dim: int, n_total: int, params: IndexParams) -> tuple[faiss.Index, dict]:
    """An empty (for IVF-PQ untrained) FAISS index for unit vectors, and the shape it resolved to."""
    check_index_type(index_type)
    if index_type == "flat":
        return faiss.IndexFlatIP(dim), {}
    if index_type == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = params.ef_construction
        return hnsw, {"hnsw_m": params.hnsw_m}
    if n_total < 10_000:
        log.warning("IVF-PQ over only %d reports: the exact 'flat' index is faster and exact at this size", n_total)
    nlist, pq_m, nbits = ivfpq_shape(params, dim, min(n_total, params.train_sample))
    # RFlat: PQ shortlists k * k_factor rows, then exact inner products rank them (exact scores).
    index = faiss.index_factory(dim, f"IVF{nlist},PQ{pq_m}x{nbits},RFlat", faiss.METRIC_INNER_PRODUCT)
    # Polysemous code training (FAISS's default for 8-bit PQ) costs minutes and only serves Hamming
    # pre-filtering, which we never use; the exact re-rank already fixes PQ's ordering.
    ivf = _downcast(_downcast(index, faiss.IndexRefine).base_index, faiss.IndexIVFPQ)
    ivf.do_polysemous_training = False  # type: ignore[attr-defined]  # in faiss, missing from its stub
    return index, {"nlist": nlist, "pq_m": pq_m, "pq_nbits": nbits}


def train_faiss_index(index: Any, vectors: np.ndarray, params: IndexParams) -> None:
    """Train IVF-PQ on a seeded sample of at most ``params.train_sample`` vectors (no-op otherwise)."""
    if index.is_trained:
        return
    n = len(vectors)
    sample = vectors
    if n > params.train_sample:
        rows = np.sort(np.random.default_rng(params.seed).choice(n, params.train_sample, replace=False))
        sample = vectors[rows]
    log.info("training IVF-PQ on %d of %d vectors", len(sample), n)
    index.train(np.ascontiguousarray(sample, dtype=np.float32))


def set_search_params(index: faiss.Index, index_type: str, params: IndexParams) -> None:
    """Apply efSearch (HNSW) or nprobe + k_factor (IVF-PQ) to a CPU FAISS index."""
    if index_type == "hnsw":
        _downcast(index, faiss.IndexHNSW).hnsw.efSearch = int(params.ef_search)
    elif index_type == "ivfpq":
        top = faiss.downcast_index(index)
        ivf = _downcast(top.base_index if isinstance(top, faiss.IndexRefine) else top, faiss.IndexIVF)
        ivf.nprobe = int(min(params.nprobe, ivf.nlist))
        if isinstance(top, faiss.IndexRefine):
            top.k_factor = float(params.k_factor)


def gpu_available() -> bool:
    """True when this faiss build has GPU support and sees a CUDA device (the ``gpu`` extra)."""
    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # noqa: BLE001 -- any probe failure simply means "no GPU"
        return False


def to_gpu(index: Any, index_type: str) -> tuple[Any, bool]:
    """A flat or IVF index on GPU 0 when faiss-gpu and CUDA are present; HNSW has no GPU version."""
    if index_type == "hnsw" or not gpu_available():
        return index, False
    try:
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index), True
    except Exception as exc:  # noqa: BLE001 -- e.g. an index kind without a GPU version: stay on CPU
        log.warning("could not move the %s index to the GPU (%s); searching on the CPU", index_type, exc)
        return index, False


class _BulkFaissVectorStore(FaissVectorStore):
    """A FaissVectorStore that adds each LlamaIndex insert batch with one FAISS call (not row by row)."""

    def add(self, nodes, **add_kwargs):  # noqa: ANN001 -- LlamaIndex signature
        if not nodes:
            return []
        start = self._faiss_index.ntotal
        self._faiss_index.add(np.asarray([n.get_embedding() for n in nodes], dtype=np.float32))
        return [str(start + i) for i in range(len(nodes))]


def bulk_vector_store(faiss_index: Any) -> FaissVectorStore:
    """The LlamaIndex vector store over ``faiss_index`` that the build fills (one FAISS add per batch)."""
    # pydantic's dataclass_transform makes mypy give the subclass an __init__ of its fields, hiding
    # FaissVectorStore's own __init__(faiss_index).
    return _BulkFaissVectorStore(faiss_index=faiss_index)  # type: ignore[call-arg]
