"""The report index: eCLIP text-tower embeddings of reports in a LlamaIndex VectorStoreIndex over FAISS.

One folder on disk holds everything, replaced crash-safely (a kill at any instant leaves a complete old or
new index for :meth:`ReportIndex.load`; see eclip_core.safe_dir):

* ``default__vector_store.json``: the FAISS index (binary, LlamaIndex's file name), row i = report i;
* ``docstore.json`` / ``index_store.json``: LlamaIndex's docstore (one TextNode per report, id =
  study_id, sections / labels / view / split / simulated as metadata) and the row -> node map;
* ``image_sample.npy`` (when the corpus X-rays were readable): their unit eCLIP embeddings (typicality);
* ``label_classifiers.json`` (when fitted): per-observation classifiers over the corpus X-ray embeddings,
  used by label boost (:mod:`rag_report.label_classifiers`, :mod:`rag_report.label_boost`);
* ``manifest.json``: eCLIP checkpoint hash, dim, normalisation, corpus, count, index type, search
  parameters, build time, versions, ``index_id``, and ``files``: the size and sha256 of every other file,
  verified by :meth:`ReportIndex.load` (CorruptIndexError naming a truncated or damaged file).

Metadata is excluded from embedding (and from LLM context), so the vector of a report is exactly the
text tower applied to the stored text. Vectors are L2-normalised and every index type scores by inner
product, i.e. cosine similarity.

Modality centering (on by default when the corpus has readable X-rays): CLIP-style models put images and
reports in two separate cones (the modality gap), and a cosine across the gap is dominated by each
vector's offset from its own cone's centre, so every X-ray lands on the same few "hub" reports. The index
stores ``normalize(t - mean_reports)`` and queries become ``normalize(q - mean_of_their_modality)``; both
means are in the manifest (the image mean from a seeded sample of the corpus's own X-rays). What it does to
retrieval and drafting on the default bundle: docs/results/report_gen.md.

>>> from eclip_core.model import EClip                                  # doctest: +SKIP
>>> from eclip_core.data.manifest import read_manifest                  # doctest: +SKIP
>>> model = EClip.from_config("eclip-tiny")                             # doctest: +SKIP
>>> idx = ReportIndex.build(model, read_manifest("m.csv"), "idx")       # doctest: +SKIP
>>> idx = ReportIndex.load("idx", model=model)                          # doctest: +SKIP
>>> scores, ids = idx.search(model.embed_texts(["No acute disease."]), k=3)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from eclip_core.atomic import atomic_dir
from eclip_core.data.manifest import Study
from eclip_core.safe_dir import recover_dir
from eclip_core.save_errors import saving
from rag_report.embedding import EClipEmbedding, configure_llama_settings
from rag_report.embedding import unit_rows as _unit
from rag_report.errors import (
    CorruptIndexError,
    EmptyCorpusError,
    IndexMismatchError,
    IndexNotFoundError,
    RagReportError,
)
from rag_report.image_views import CLASSIFIER_VIEWS, classifier_features
from rag_report.index_files import (
    FAISS_FILE,
    MANIFEST,
    REQUIRED_FILES,  # noqa: F401 -- re-exported: callers import it from here
    corrupt,
    is_index_dir,
    rebuild_hint,
    record_files,
    verify_files,
)

if TYPE_CHECKING:
    import faiss

    from rag_report.protocols import EmbeddingModel

log = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "hnsw", "ivfpq")
FORMAT_VERSION = 1
MODALITIES = ("image", "text")
IMAGE_SAMPLE_FILE = "image_sample.npy"  # unit eCLIP embeddings of the sampled corpus X-rays
from rag_report.label_classifiers import FILE_NAME as LABEL_CLASSIFIERS_FILE  # noqa: E402 -- fitted at build
from rag_report.label_classifiers import LabelClassifiers  # noqa: E402

TYPICALITY_K = 10
# Every metadata key is kept out of the embedded and the LLM-visible text: embed exactly what is stored.
METADATA_KEYS = ("study_id", "findings", "impression", "labels", "view", "split", "simulated")


# ============================================================================ FAISS construction
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


_FaissIndex = TypeVar("_FaissIndex", bound="faiss.Index")


def _downcast(index: faiss.Index, kind: type[_FaissIndex]) -> _FaissIndex:
    """``faiss.downcast_index(index)``, which returns the concrete class, as the ``kind`` the caller expects."""
    import faiss

    concrete = faiss.downcast_index(index)
    if not isinstance(concrete, kind):
        raise RagReportError(f"expected a FAISS {kind.__name__}, got a {type(concrete).__name__}")
    return concrete


def make_faiss_index(index_type: str, dim: int, n_total: int, params: IndexParams) -> tuple[faiss.Index, dict]:
    """An empty (for IVF-PQ untrained) FAISS index for unit vectors, and the shape it resolved to."""
    import faiss

    if index_type == "flat":
        return faiss.IndexFlatIP(dim), {}
    if index_type == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = params.ef_construction
        return hnsw, {"hnsw_m": params.hnsw_m}
    if index_type == "ivfpq":
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
    raise RagReportError(f"unknown index_type {index_type!r}; choose one of {INDEX_TYPES}")


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
    import faiss

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
        import faiss

        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # noqa: BLE001 -- any probe failure simply means "no GPU"
        return False


def _to_gpu(index: Any, index_type: str) -> tuple[Any, bool]:
    """A flat or IVF index on GPU 0 when faiss-gpu and CUDA are present; HNSW has no GPU version."""
    if index_type == "hnsw" or not gpu_available():
        return index, False
    import faiss

    try:
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index), True
    except Exception as exc:  # noqa: BLE001 -- e.g. an index kind without a GPU version: stay on CPU
        log.warning("could not move the %s index to the GPU (%s); searching on the CPU", index_type, exc)
        return index, False


def _bulk_vector_store(faiss_index: Any):
    """A FaissVectorStore that adds each LlamaIndex insert batch with one FAISS call (not row by row)."""
    from llama_index.vector_stores.faiss import FaissVectorStore

    class _BulkFaissVectorStore(FaissVectorStore):
        def add(self, nodes, **add_kwargs):  # noqa: ANN001 -- LlamaIndex signature
            if not nodes:
                return []
            start = self._faiss_index.ntotal
            self._faiss_index.add(np.asarray([n.get_embedding() for n in nodes], dtype=np.float32))
            return [str(start + i) for i in range(len(nodes))]

    # pydantic's dataclass_transform makes mypy give the subclass an __init__ of its fields, hiding
    # FaissVectorStore's own __init__(faiss_index).
    return _BulkFaissVectorStore(faiss_index=faiss_index)  # type: ignore[call-arg]


# ============================================================================ nodes
def study_to_node(study: Study):
    """The TextNode of one report: id = study_id, text = Study.report_text, metadata excluded from embedding.

    Its labels are the manifest's where given, else the labeler's reading of the report (label boost
    compares them with the image's predicted labels, so every report needs them)."""
    from llama_index.core.schema import TextNode

    from eclip_core.data.study_labels import study_labels

    metadata = {
        "study_id": study.study_id,
        "findings": study.findings,
        "impression": study.impression,
        "labels": study_labels(study),
        "view": study.view,
        "split": study.split,
        "simulated": bool((study.meta or {}).get("simulated", False)),
    }
    return TextNode(
        id_=study.study_id,
        text=study.report_text,
        metadata=metadata,
        excluded_embed_metadata_keys=list(METADATA_KEYS),
        excluded_llm_metadata_keys=list(METADATA_KEYS),
    )


def _corpus_nodes(studies: Sequence[Study]) -> list:
    nodes, seen, dupes, empty = [], set(), [], 0
    for s in studies:
        if s.study_id in seen:
            dupes.append(s.study_id)
            continue
        seen.add(s.study_id)
        if not s.report_text.strip():
            empty += 1
            continue
        nodes.append(study_to_node(s))
    if dupes:
        raise RagReportError(f"duplicate study_id(s) in the corpus: {sorted(set(dupes))[:10]}; ids must be unique")
    if empty:
        log.warning("skipped %d studies with no report text (nothing to embed)", empty)
    return nodes


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("faiss-cpu", "faiss-gpu-cu12", "llama-index-core", "llama-index-vector-stores-faiss", "rag-report"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


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


def _estimated_bytes(
    vectors: np.ndarray, nodes: Sequence, index_type: str, params: IndexParams, image_sample: np.ndarray | None
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
    return int(faiss_bytes + doc_bytes + (image_sample.nbytes if image_sample is not None else 0))


def _embed_readable(
    model: EmbeddingModel, paths: Sequence[str], progress: bool, desc: str
) -> tuple[np.ndarray, list[int]]:
    """Image embeddings of the readable ``paths`` (unreadable ones skipped) and their positions."""
    from eclip_core.errors import EClipError

    vectors: list[np.ndarray] = []
    kept: list[int] = []
    for start in tqdm(range(0, len(paths), 32), desc=desc, unit="batch", disable=not progress):
        batch = list(paths[start : start + 32])
        try:
            vectors.extend(model.embed_images(batch, batch_size=32, progress=False))
            kept.extend(range(start, start + len(batch)))
        except EClipError:  # one unreadable X-ray in the batch: embed its neighbours one by one
            for i, p in enumerate(batch):
                try:
                    vectors.extend(model.embed_images([p], batch_size=1, progress=False))
                    kept.append(start + i)
                except EClipError as exc:
                    log.debug("image %s skipped: %s", p, exc)
    dim = int(getattr(model, "embed_dim", 0))
    return (np.asarray(vectors, dtype=np.float32) if vectors else np.zeros((0, dim), np.float32)), kept


def _readable_paths(studies: Sequence[Study]) -> tuple[list[str], list[int]]:
    pos = [i for i, s in enumerate(studies) if s.image_paths and os.path.isfile(s.image_paths[0])]
    return [studies[i].image_paths[0] for i in pos], pos


def _sample_positions(n: int, limit: int, seed: int) -> list[int]:
    if n <= limit:
        return list(range(n))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _image_sample(
    model: EmbeddingModel,
    studies: Sequence[Study],
    limit: int,
    seed: int,
    progress: bool,
    embedded: tuple[np.ndarray, list[int]] | None = None,
) -> np.ndarray | None:
    """Unit image embeddings [n, D] of a seeded sample of the studies' first X-rays (None if none is readable).

    ``embedded``: the embeddings of every study's first X-ray already made (rows, study positions), from
    which the same sample is taken instead of embedding it again.
    """
    paths, positions = _readable_paths(studies)
    pick = _sample_positions(len(paths), limit, seed)
    if embedded is None:
        vectors, _ = _embed_readable(model, [paths[i] for i in pick], progress, "calibrate image mean")
    else:
        row_of = {study: row for row, study in enumerate(embedded[1])}
        rows = [row_of[positions[i]] for i in pick if positions[i] in row_of]
        vectors = embedded[0][rows]
    if not len(vectors):
        log.warning(
            "no readable corpus X-ray to estimate the image mean: the index stays uncentred "
            "(raw cross-modal cosine) and cannot tell how typical a query image is"
        )
        return None
    return _unit(np.asarray(vectors))


def fit_label_classifiers(
    model: EmbeddingModel,
    studies: Sequence[Study],
    val_studies: Sequence[Study] = (),
    *,
    progress: bool = True,
    embedded: tuple[np.ndarray, list[int]] | None = None,
    views: str = "image",
) -> tuple[LabelClassifiers | None, tuple[np.ndarray, list[int]]]:
    """Label classifiers (:mod:`rag_report.label_classifiers`) over ``model``'s embeddings of the studies'
    X-rays (and of their tiles for ``views="image+tiles"``, :mod:`rag_report.image_views`) against their
    labels (the manifest's, else the labeler's on the report), thresholds on ``val_studies`` (else
    cross-validated). Returns (classifiers or None without readable X-rays, the corpus embeddings (rows,
    study positions) for reuse)."""
    from eclip_core.data.study_labels import study_label_rows

    if embedded is None:
        paths, positions = _readable_paths(studies)
        vectors, kept = _embed_readable(model, paths, progress, "embed corpus X-rays")
        embedded = (vectors, [positions[i] for i in kept])
    if len(embedded[1]) < 10:
        log.warning("fewer than 10 readable corpus X-rays: no label classifiers (label boost stays off)")
        return None, embedded
    rows = study_label_rows([studies[i] for i in embedded[1]])
    features = _view_features(
        model, [studies[i].image_paths[0] for i in embedded[1]], embedded[0], views, progress, "embed corpus tiles"
    )
    val_x, val_rows = None, None
    if val_studies:
        vpaths, vpos = _readable_paths(val_studies)
        val_vectors, vkept = _embed_readable(model, vpaths, progress, "embed val X-rays")
        val_x = _view_features(model, [vpaths[i] for i in vkept], val_vectors, views, progress, "embed val tiles")
        val_rows = study_label_rows([val_studies[vpos[i]] for i in vkept])
    clf = LabelClassifiers.fit(
        features,
        rows,
        checkpoint_hash=model.checkpoint_hash,
        val_embeddings=val_x,
        val_label_rows=val_rows,
        views=views,
    )
    return clf, embedded


def _view_features(
    model: EmbeddingModel, paths: Sequence[str], vectors: np.ndarray, views: str, progress: bool, desc: str
) -> np.ndarray:
    """The classifiers' features of readable X-rays whose embeddings are ``vectors`` (a batch of images
    in memory at a time)."""
    from rag_report.pipeline import read_image  # the pipeline imports this module

    if views == "image":
        return classifier_features(model, [], vectors, views)
    chunks = []
    for start in tqdm(range(0, len(paths), 32), desc=desc, unit="batch", disable=not progress):
        pixels = [read_image(p) for p in paths[start : start + 32]]
        chunks.append(classifier_features(model, pixels, vectors[start : start + 32], views))
    return np.concatenate(chunks) if chunks else np.zeros((0, 2 * vectors.shape[-1]), np.float32)


def typicality_scores(queries: np.ndarray, sample: np.ndarray, k: int, *, leave_one_out: bool = False) -> np.ndarray:
    """k-th largest cosine between each unit query [n, D] and the unit sample [m, D] (k-NN typicality).

    ``leave_one_out``: the queries are the sample itself; each row's own match is skipped.

    >>> s = np.eye(3, dtype=np.float32)
    >>> typicality_scores(s[:1], s, 1).tolist(), typicality_scores(s, s, 1, leave_one_out=True).tolist()
    ([1.0], [0.0, 0.0, 0.0])
    """
    sims = np.asarray(queries, dtype=np.float32) @ np.asarray(sample, dtype=np.float32).T
    if leave_one_out:
        np.fill_diagonal(sims, -np.inf)
    k = max(1, min(int(k), sims.shape[1] - (1 if leave_one_out else 0)))
    return np.partition(sims, -k, axis=1)[:, -k]


# ============================================================================ reading the files
def _parse(directory: Path, name: str, read: Any) -> Any:
    """``read()``, with any failure to parse a file of the index reported as CorruptIndexError naming it."""
    try:
        return read()
    except (ValueError, KeyError, TypeError, OSError, RuntimeError, EOFError) as exc:
        raise corrupt(directory, name, exc) from exc


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise CorruptIndexError(
            f"index folder {directory} is incomplete: missing {[MANIFEST]}; {rebuild_hint(directory)}"
        )
    manifest = _parse(directory, MANIFEST, lambda: json.loads(path.read_text(encoding="utf-8")))
    if not isinstance(manifest, dict):
        raise corrupt(directory, MANIFEST, ValueError(f"a JSON {type(manifest).__name__}, not an object"))
    return manifest


def _read_image_sample(directory: Path, manifest: dict[str, Any], dim: int) -> np.ndarray | None:
    """The sampled corpus X-ray embeddings [m, dim] the manifest's typicality needs (None without it)."""
    info = manifest.get("typicality")
    if not info:
        return None
    name = info.get("file", IMAGE_SAMPLE_FILE)
    sample = _parse(directory, name, lambda: np.load(directory / name, allow_pickle=False))
    expected = int(info.get("sample") or 0)
    if sample.ndim != 2 or sample.shape[1] != dim or (expected and len(sample) != expected):
        raise corrupt(directory, name, ValueError(f"shape {sample.shape}, expected ({expected or 'm'}, {dim})"))
    return np.asarray(sample, dtype=np.float32)


# ============================================================================ the index
@dataclass
class ReportIndex:
    """A loaded report index. Build with :meth:`build`, reopen with :meth:`load`.

    ``vector_index`` is the LlamaIndex VectorStoreIndex (its retriever maps FAISS rows to nodes);
    ``faiss_index`` the raw FAISS index; ``manifest`` the manifest dict; ``study_ids[row]`` the study of
    each FAISS row; ``embed_model`` the LlamaIndex adapter (model=None: vector queries only).
    """

    directory: Path
    manifest: dict[str, Any]
    vector_index: Any
    embed_model: EClipEmbedding
    study_ids: list[str]
    on_gpu: bool = False
    _row_of: dict[str, int] = field(default_factory=dict, repr=False)
    _image_sample: np.ndarray | None = field(default=None, repr=False)
    #: Label classifiers of label boost (rag_report.label_classifiers), None when the index has none.
    label_classifiers: LabelClassifiers | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        model: EmbeddingModel,
        studies: Sequence[Study],
        out_dir: str | os.PathLike,
        *,
        index_type: str = "flat",
        batch_size: int = 64,
        progress: bool = True,
        corpus_name: str = "corpus",
        params: IndexParams | None = None,
        center: bool = True,
        calibration_images: int = 1000,
        label_classifiers: bool = True,
        val_studies: Sequence[Study] = (),
        classifier_views: str = "image",
    ) -> ReportIndex:
        """Embed every report with the text tower (in batches, with a progress bar), index, persist atomically.

        ``center``: estimate the image-embedding mean from a seeded sample of at most ``calibration_images``
        of the corpus studies' own X-rays (unreadable ones are skipped) and store modality-centred vectors
        (module docstring); without readable X-rays the index stays uncentred, with a warning.
        ``label_classifiers``: fit the label classifiers of label boost on every readable corpus X-ray
        (thresholds on ``val_studies`` when given, else cross-validated) and store them with the index;
        ``classifier_views`` "image+tiles" lets them read the X-rays' tiles too (:mod:`rag_report.image_views`).
        Raises EmptyCorpusError for zero reports, RagReportError for an unknown index type or duplicate ids.
        Returns the index loaded back from ``out_dir`` (so what you use is what was saved).
        """
        from llama_index.core.schema import MetadataMode

        if index_type not in INDEX_TYPES:
            raise RagReportError(f"unknown index_type {index_type!r}; choose one of {INDEX_TYPES}")
        if classifier_views not in CLASSIFIER_VIEWS:
            raise RagReportError(f"unknown classifier_views {classifier_views!r}; choose one of {CLASSIFIER_VIEWS}")
        params = params or IndexParams()
        configure_llama_settings()
        nodes = _corpus_nodes(studies)
        if not nodes:
            raise EmptyCorpusError(
                f"cannot build an index at {out_dir}: the corpus ({corpus_name!r}) has no studies with report "
                "text; pass studies whose findings or impression are non-empty"
            )
        t0 = time.time()
        embed = EClipEmbedding.from_model(model, embed_batch_size=batch_size)
        texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        chunks = []
        for start in tqdm(range(0, len(texts), batch_size), desc="embed reports", unit="batch", disable=not progress):
            chunks.append(
                np.asarray(embed.get_text_embedding_batch(texts[start : start + batch_size]), dtype=np.float32)
            )
        classifiers, embedded = None, None
        if label_classifiers:
            classifiers, embedded = fit_label_classifiers(
                model, studies, val_studies, progress=progress, views=classifier_views
            )
        sample = _image_sample(model, studies, calibration_images, params.seed, progress, embedded) if center else None
        cls._write(
            nodes,
            np.concatenate(chunks),
            out_dir,
            checkpoint_hash=model.checkpoint_hash,
            embed=embed,
            index_type=index_type,
            corpus_name=corpus_name,
            params=params,
            t0=t0,
            image_sample=sample,
            label_classifiers=classifiers,
        )
        return cls.load(out_dir, model=model)

    @classmethod
    def build_from_vectors(
        cls,
        vectors: np.ndarray,
        studies: Sequence[Study],
        out_dir: str | os.PathLike,
        *,
        checkpoint_hash: str,
        index_type: str = "flat",
        corpus_name: str = "corpus",
        params: IndexParams | None = None,
        model: EmbeddingModel | None = None,
        image_mean: np.ndarray | None = None,
        image_sample: np.ndarray | None = None,
        label_classifiers: LabelClassifiers | None = None,
    ) -> ReportIndex:
        """Index precomputed report vectors (row i = ``studies[i]``, e.g. embedded in bulk on GPUs).

        ``checkpoint_hash`` must name the eCLIP checkpoint that produced them (it is what ``load`` checks).
        ``image_mean`` (the mean eCLIP embedding of X-rays like the queries) turns on modality centering;
        ``image_sample`` (eCLIP embeddings [m, D] of such X-rays) does too, with the mean taken from it, and
        also enables :meth:`typicality`.
        Studies without report text are refused here (their rows would not match), as are duplicates.
        """
        if index_type not in INDEX_TYPES:
            raise RagReportError(f"unknown index_type {index_type!r}; choose one of {INDEX_TYPES}")
        configure_llama_settings()
        nodes = _corpus_nodes(studies)
        vectors = np.asarray(vectors, dtype=np.float32)
        if not nodes:
            raise EmptyCorpusError(f"cannot build an index at {out_dir}: the corpus ({corpus_name!r}) has no reports")
        if vectors.ndim != 2 or len(vectors) != len(studies) or len(nodes) != len(studies):
            raise RagReportError(
                f"build_from_vectors: {len(studies)} studies ({len(nodes)} with report text) but "
                f"vectors of shape {vectors.shape}; give one vector per study, all with text"
            )
        embed = EClipEmbedding(model, dim=vectors.shape[1], checkpoint_hash=checkpoint_hash)
        cls._write(
            nodes,
            vectors,
            out_dir,
            checkpoint_hash=checkpoint_hash,
            embed=embed,
            index_type=index_type,
            corpus_name=corpus_name,
            params=params or IndexParams(),
            t0=time.time(),
            image_mean=image_mean,
            image_sample=image_sample,
            label_classifiers=label_classifiers,
        )
        return cls.load(out_dir, model=model)

    @classmethod
    def _write(
        cls,
        nodes: list,
        vectors: np.ndarray,
        out_dir: str | os.PathLike,
        *,
        checkpoint_hash: str,
        embed: EClipEmbedding,
        index_type: str,
        corpus_name: str,
        params: IndexParams,
        t0: float,
        image_mean: np.ndarray | None = None,
        image_sample: np.ndarray | None = None,
        label_classifiers: LabelClassifiers | None = None,
    ) -> None:
        from llama_index.core import StorageContext, VectorStoreIndex

        # eCLIP already returns unit vectors; normalising again makes inner product = cosine by construction.
        vectors = _unit(vectors)
        centering, typicality = None, None
        if image_sample is not None:
            image_sample = _unit(np.atleast_2d(image_sample))
            if image_sample.shape[1] != vectors.shape[1]:
                raise RagReportError(
                    f"image_sample has dim {image_sample.shape[1]}, the report vectors {vectors.shape[1]}"
                )
            if image_mean is None:
                image_mean = image_sample.astype(np.float64).mean(axis=0).astype(np.float32)
            if len(image_sample) > TYPICALITY_K:
                # Leave-one-out over the sample: how typical a corpus X-ray is among the others; the 1st
                # percentile is the floor under which a query image is unlike the corpus.
                loo = typicality_scores(image_sample, image_sample, TYPICALITY_K, leave_one_out=True)
                typicality = {
                    "k": TYPICALITY_K,
                    "floor": float(np.percentile(loo, 1.0)),
                    "median": float(np.median(loo)),
                    "sample": len(image_sample),
                    "file": IMAGE_SAMPLE_FILE,
                }
        if image_mean is not None:
            image_mean = np.asarray(image_mean, dtype=np.float32).reshape(-1)
            if image_mean.shape[0] != vectors.shape[1]:
                raise RagReportError(f"image_mean has dim {image_mean.shape[0]}, the report vectors {vectors.shape[1]}")
            text_mean = vectors.astype(np.float64).mean(axis=0).astype(np.float32)
            centering = {"text_mean": text_mean.tolist(), "image_mean": image_mean.tolist()}
            vectors = _unit(vectors - text_mean)
        for node, vec in zip(nodes, vectors):
            node.embedding = vec.tolist()
        dim = int(vectors.shape[1])
        faiss_index, shape = make_faiss_index(index_type, dim, len(nodes), params)
        train_faiss_index(faiss_index, vectors, params)
        set_search_params(faiss_index, index_type, params)
        storage = StorageContext.from_defaults(vector_store=_bulk_vector_store(faiss_index))
        vindex = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed, show_progress=False)
        for node in nodes:  # the docstore copies are embedding-free; drop ours too (memory at scale)
            node.embedding = None
        content = hashlib.sha256()
        for n in nodes:
            content.update(n.node_id.encode() + b"\0" + n.text.encode() + b"\0")
        manifest = {
            "format_version": FORMAT_VERSION,
            "index_id": hashlib.sha256(f"{checkpoint_hash}|{index_type}|{content.hexdigest()}".encode()).hexdigest()[
                :16
            ],
            "eclip_checkpoint_hash": checkpoint_hash,
            "embed_dim": dim,
            "normalization": "l2",
            "metric": "inner_product",
            # None: raw cosine. Else the stored vectors are normalize(t - text_mean) and queries are centred
            # by their modality's mean before the search (ReportIndex.to_index_space).
            "centering": centering,
            # None: no image sample. Else k-NN typicality of query X-rays among the sampled corpus X-rays
            # (ReportIndex.typicality), with the floor of the corpus's own usual range.
            "typicality": typicality,
            # None: no label classifiers (label boost off). Else the file and how its thresholds were set.
            "label_classifiers": None
            if label_classifiers is None
            else {
                "file": LABEL_CLASSIFIERS_FILE,
                "threshold_source": label_classifiers.threshold_source,
                "fitted": [o for o, f in zip(label_classifiers.observations, label_classifiers.fitted) if f],
                "validation": label_classifiers.validation,
            },
            "corpus_name": corpus_name,
            "count": len(nodes),
            "index_type": index_type,
            "params": asdict(params),
            "faiss_shape": shape,
            "embedded_text": "Study.report_text (findings then impression, normalised); metadata excluded",
            "build_time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.time() - t0, 3),
            "versions": _versions(),
        }
        needed = _estimated_bytes(vectors, nodes, index_type, params, image_sample if typicality else None)
        with saving("the report index", out_dir, needed), atomic_dir(out_dir, validate=is_index_dir) as tmp:
            vindex.storage_context.persist(persist_dir=str(tmp))
            if typicality is not None and image_sample is not None:
                np.save(tmp / IMAGE_SAMPLE_FILE, image_sample.astype(np.float32))
            if label_classifiers is not None:
                (tmp / LABEL_CLASSIFIERS_FILE).write_text(label_classifiers.to_json(), encoding="utf-8")
            manifest["files"] = record_files(tmp)  # what load verifies (sizes, sha256)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        log.info(
            "built %s index of %d reports (dim %d) at %s in %.1f s",
            index_type,
            len(nodes),
            dim,
            out_dir,
            time.time() - t0,
        )

    # ------------------------------------------------------------------ load
    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        model: EmbeddingModel | None = None,
        *,
        device: str = "auto",
        verify: str = "sha256",
    ) -> ReportIndex:
        """Open an index folder. ``model`` (optional) must be the eCLIP checkpoint the index was built with.

        device: "auto" (GPU when faiss-gpu and CUDA are present), "cpu" or "cuda".
        verify: check every file against the size and sha256 recorded at build ("sha256", reads every byte)
        or only the size ("size"); indexes from before the record are checked for the files they need.
        A save killed mid-replacement is finished first (the newest complete version is put in place).
        Raises IndexNotFoundError (missing folder), CorruptIndexError (a missing, truncated or damaged file,
        named), IndexMismatchError (other checkpoint or dim).
        """
        from llama_index.core import StorageContext, load_index_from_storage
        from llama_index.core.storage.docstore import SimpleDocumentStore
        from llama_index.core.storage.index_store import SimpleIndexStore
        from llama_index.vector_stores.faiss import FaissVectorStore

        directory = recover_dir(Path(directory), is_index_dir)
        if not directory.is_dir():
            raise IndexNotFoundError(
                f"index folder {directory} does not exist; build it with ReportIndex.build or `rag-report index`"
            )
        manifest = _read_manifest(directory)
        verify_files(directory, manifest, verify)
        need, dim = manifest.get("eclip_checkpoint_hash"), int(manifest.get("embed_dim", 0))
        if model is not None:
            have = model.checkpoint_hash
            if have != need or int(model.embed_dim) != dim:
                raise IndexMismatchError(
                    f"index {directory} was built with eCLIP checkpoint {need} (dim {dim}), but the given model is "
                    f"checkpoint {have} (dim {model.embed_dim}); load the checkpoint {need} or rebuild the index "
                    "with this model"
                )
        configure_llama_settings()
        centering = manifest.get("centering")
        embed = EClipEmbedding(
            model, dim=dim, checkpoint_hash=need, text_mean=centering["text_mean"] if centering else None
        )
        store = _parse(directory, FAISS_FILE, lambda: FaissVectorStore.from_persist_dir(str(directory)))
        index_type = manifest.get("index_type", "flat")
        params = IndexParams(**manifest.get("params", {}))
        set_search_params(store.client, index_type, params)
        if store.client.ntotal != manifest.get("count") or store.client.d != dim:
            raise CorruptIndexError(
                f"index folder {directory}: FAISS holds {store.client.ntotal} vectors of dim "
                f"{store.client.d}, manifest says {manifest.get('count')} of dim {dim}; "
                f"{rebuild_hint(directory)}"
            )
        image_sample = _read_image_sample(directory, manifest, dim)
        docstore = _parse(directory, "docstore.json", lambda: SimpleDocumentStore.from_persist_dir(str(directory)))
        index_store = _parse(directory, "index_store.json", lambda: SimpleIndexStore.from_persist_dir(str(directory)))
        on_gpu = False
        if device in ("auto", "cuda"):
            gpu_index, on_gpu = _to_gpu(store.client, index_type)
            if device == "cuda" and not on_gpu:
                log.warning("device='cuda' asked but faiss-gpu/CUDA is unavailable; searching on the CPU")
            if on_gpu:
                store = FaissVectorStore(faiss_index=gpu_index)
        storage = _parse(
            directory,
            "graph_store.json",
            lambda: StorageContext.from_defaults(
                vector_store=store, docstore=docstore, index_store=index_store, persist_dir=str(directory)
            ),
        )
        vindex = _parse(directory, "index_store.json", lambda: load_index_from_storage(storage, embed_model=embed))
        rows = vindex.index_struct.nodes_dict
        study_ids = _parse(directory, "index_store.json", lambda: [rows[str(i)] for i in range(store.client.ntotal)])
        classifiers = None
        if manifest.get("label_classifiers"):
            classifiers = LabelClassifiers.load(directory / manifest["label_classifiers"]["file"], need)
        return cls(
            directory=directory,
            manifest=manifest,
            vector_index=vindex,
            embed_model=embed,
            study_ids=study_ids,
            on_gpu=on_gpu,
            _row_of={sid: i for i, sid in enumerate(study_ids)},
            _image_sample=image_sample,
            label_classifiers=classifiers,
        )

    # ------------------------------------------------------------------ queries
    @property
    def model(self) -> EmbeddingModel | None:
        return self.embed_model.model

    @property
    def faiss_index(self) -> Any:
        return self.vector_index.vector_store.client

    @property
    def dim(self) -> int:
        return int(self.manifest["embed_dim"])

    def __len__(self) -> int:
        return len(self.study_ids)

    def __contains__(self, study_id: object) -> bool:
        """Whether the index holds the report of ``study_id``."""
        return study_id in self._row_of

    def set_search_params(self, **changes: Any) -> None:
        """Change efSearch / nprobe / k_factor of a loaded (CPU) index, e.g. ``set_search_params(nprobe=64)``."""
        params = IndexParams(**{**self.manifest.get("params", {}), **changes})
        set_search_params(self.faiss_index, self.manifest.get("index_type", "flat"), params)
        self.manifest["params"] = asdict(params)

    @property
    def centered(self) -> bool:
        """Whether the index stores modality-centred vectors (see the module docstring)."""
        return bool(self.manifest.get("centering"))

    def typicality(self, image_vectors: np.ndarray) -> np.ndarray | None:
        """k-NN typicality of X-ray embeddings [n, D] (or [D]): the k-th largest cosine to the sampled corpus
        X-rays (k = manifest ``typicality.k``). Below ``manifest["typicality"]["floor"]`` an image is unlike
        the corpus (e.g. not a chest X-ray). None when the index holds no image sample."""
        info = self.manifest.get("typicality")
        if not info:
            return None
        if self._image_sample is None:
            self._image_sample = np.load(self.directory / info["file"])
        q = _unit(np.atleast_2d(np.asarray(image_vectors, dtype=np.float32)))
        return typicality_scores(q, self._image_sample, int(info["k"]))

    def to_index_space(self, vectors: np.ndarray, modality: str = "image") -> np.ndarray:
        """eCLIP embeddings [n, D] (or [D]) of ``modality`` ("image" or "text") -> unit vectors comparable with
        the stored ones: centred by that modality's mean when the index is centred, else just normalised."""
        if modality not in MODALITIES:
            raise RagReportError(f"modality must be one of {MODALITIES}, got {modality!r}")
        q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if q.shape[1] != self.dim:
            raise RagReportError(
                f"query vectors have dim {q.shape[1]}, the index {self.directory} holds dim {self.dim}"
            )
        if self.centered:
            q = _unit(q) - np.asarray(self.manifest["centering"][f"{modality}_mean"], dtype=np.float32)
        return _unit(q)

    def search(self, vectors: np.ndarray, k: int, modality: str = "image") -> tuple[np.ndarray, list[list[str]]]:
        """Raw FAISS search: query vectors [n, D] (or [D]) -> (similarities [n, k'], study ids per query).

        k' = min(k, len(self)); queries go through :meth:`to_index_space` first, so scores are cosine
        similarities (after modality centering when the index is centred).
        """
        q = self.to_index_space(vectors, modality)
        k = max(1, min(int(k), len(self)))
        scores, rows = self.faiss_index.search(np.ascontiguousarray(q), k)
        ids = [[self.study_ids[r] for r in row if r >= 0] for row in rows]
        return scores, ids

    def row_of(self, study_id: str) -> int:
        """FAISS row of a study (KeyError if absent)."""
        return self._row_of[study_id]

    def vectors(self, study_ids: Sequence[str]) -> np.ndarray:
        """Stored unit vectors of the given studies [n, D] (exact for flat, HNSW and IVF-PQ+RFlat), in the
        index's space (centred when :attr:`centered`)."""
        rows = np.asarray([self._row_of[s] for s in study_ids], dtype=np.int64)
        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            return np.asarray(self.faiss_index.reconstruct_batch(rows), dtype=np.float32).reshape(len(rows), self.dim)
        except RuntimeError:
            # Index kinds that cannot reconstruct (e.g. some GPU indexes): re-embed the stored text.
            texts = [self.node(s).text for s in study_ids]
            return self.to_index_space(self.embed_model.embed_texts(texts), "text")

    def node(self, study_id: str):
        """The stored TextNode of a study."""
        return self.vector_index.docstore.get_node(study_id)
