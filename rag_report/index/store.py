"""Writing an index folder (crash-safely, every file recorded) and reading it back (every file checked).

Writing: the unit vectors go into a FAISS index inside a LlamaIndex VectorStoreIndex, which persists
its stores; beside them the image sample and the label classifiers; the manifest last. The folder is
replaced atomically (eclip_core.atomic), so a kill at any instant leaves a complete old or new index.
Reading: a save killed mid-replacement is finished first, the manifest and the files it records are
verified, then each store is parsed, any failure named as the file that caused it (CorruptIndexError).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.schema import TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.storage.index_store import SimpleIndexStore
from llama_index.vector_stores.faiss import FaissVectorStore

from eclip_core.atomic import atomic_dir
from eclip_core.safe_dir import recover_dir
from eclip_core.save_errors import saving
from rag_report.errors import CorruptIndexError, IndexMismatchError, IndexNotFoundError
from rag_report.index.centering import CorpusSpace
from rag_report.index.faiss_backend import (
    IndexParams,
    bulk_vector_store,
    make_faiss_index,
    set_search_params,
    to_gpu,
    train_faiss_index,
)
from rag_report.index.files import (
    DOCSTORE_FILE,
    FAISS_FILE,
    GRAPH_STORE_FILE,
    INDEX_STORE_FILE,
    MANIFEST,
    is_index_dir,
    parse,
    read_manifest,
    rebuild_hint,
    record_files,
    verify_files,
)
from rag_report.index.manifest import build_manifest, estimated_bytes
from rag_report.protocols import EmbeddingModel
from rag_report.retrieval.embedding import EClipEmbedding
from rag_report.retrieval.label_classifiers import FILE_NAME as LABEL_CLASSIFIERS_FILE
from rag_report.retrieval.label_classifiers import LabelClassifiers

log = logging.getLogger(__name__)


# ============================================================================ writing
def _vector_index(
    nodes: list[TextNode], space: CorpusSpace, embed: EClipEmbedding, index_type: str, params: IndexParams
) -> tuple[VectorStoreIndex, dict]:
    """The in-memory VectorStoreIndex of ``nodes`` over a new FAISS index of ``space.vectors``, and its shape."""
    for node, vec in zip(nodes, space.vectors):
        node.embedding = vec.tolist()
    faiss_index, shape = make_faiss_index(index_type, int(space.vectors.shape[1]), len(nodes), params)
    train_faiss_index(faiss_index, space.vectors, params)
    set_search_params(faiss_index, index_type, params)
    storage = StorageContext.from_defaults(vector_store=bulk_vector_store(faiss_index))
    vindex = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed, show_progress=False)
    for node in nodes:  # the docstore copies are embedding-free; drop ours too (memory at scale)
        node.embedding = None
    return vindex, shape


def _persist(
    vindex: VectorStoreIndex,
    out_dir: str | os.PathLike,
    manifest: dict[str, Any],
    space: CorpusSpace,
    label_classifiers: LabelClassifiers | None,
    needed_bytes: int,
) -> None:
    """Write every file of the index into a fresh folder that then replaces ``out_dir``; the manifest last."""
    with saving("the report index", out_dir, needed_bytes), atomic_dir(out_dir, validate=is_index_dir) as tmp:
        vindex.storage_context.persist(persist_dir=str(tmp))
        if space.typicality is not None and space.image_sample is not None:
            np.save(tmp / space.typicality["file"], space.image_sample.astype(np.float32))
        if label_classifiers is not None:
            (tmp / LABEL_CLASSIFIERS_FILE).write_text(label_classifiers.to_json(), encoding="utf-8")
        manifest["files"] = record_files(tmp)  # what load verifies (sizes, sha256)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


def write_index(
    nodes: list[TextNode],
    space: CorpusSpace,
    out_dir: str | os.PathLike,
    *,
    checkpoint_hash: str,
    embed: EClipEmbedding,
    index_type: str,
    corpus_name: str,
    params: IndexParams,
    t0: float,
    label_classifiers: LabelClassifiers | None = None,
) -> None:
    """Index the report vectors of ``space`` (row i = ``nodes[i]``) and persist the folder ``out_dir``."""
    vindex, shape = _vector_index(nodes, space, embed, index_type, params)
    manifest = build_manifest(
        nodes,
        space,
        checkpoint_hash=checkpoint_hash,
        index_type=index_type,
        corpus_name=corpus_name,
        params=params,
        faiss_shape=shape,
        label_classifiers=label_classifiers,
        t0=t0,
    )
    sample = space.image_sample if space.typicality else None
    needed = estimated_bytes(space.vectors, nodes, index_type, params, sample)
    _persist(vindex, out_dir, manifest, space, label_classifiers, needed)
    log.info(
        "built %s index of %d reports (dim %d) at %s in %.1f s",
        index_type,
        len(nodes),
        manifest["embed_dim"],
        out_dir,
        time.time() - t0,
    )


# ============================================================================ reading
def open_index_folder(directory: str | os.PathLike, verify: str) -> tuple[Path, dict[str, Any]]:
    """The index folder (a save killed mid-replacement finished first) and its verified manifest."""
    folder = recover_dir(Path(directory), is_index_dir)
    if not folder.is_dir():
        raise IndexNotFoundError(
            f"index folder {folder} does not exist; build it with ReportIndex.build or `rag-report index`"
        )
    manifest = read_manifest(folder)
    verify_files(folder, manifest, verify)
    return folder, manifest


def check_model(directory: Path, manifest: dict[str, Any], model: EmbeddingModel | None) -> None:
    """Refuse a model other than the eCLIP checkpoint the index was built with (IndexMismatchError)."""
    if model is None:
        return
    need, dim = manifest.get("eclip_checkpoint_hash"), int(manifest.get("embed_dim", 0))
    have = model.checkpoint_hash
    if have != need or int(model.embed_dim) != dim:
        raise IndexMismatchError(
            f"index {directory} was built with eCLIP checkpoint {need} (dim {dim}), but the given model is "
            f"checkpoint {have} (dim {model.embed_dim}); load the checkpoint {need} or rebuild the index "
            "with this model"
        )


def read_faiss_store(directory: Path, manifest: dict[str, Any]) -> FaissVectorStore:
    """The FAISS vector store with the manifest's search settings, its size checked against the manifest."""
    store = parse(directory, FAISS_FILE, lambda: FaissVectorStore.from_persist_dir(str(directory)))
    params = IndexParams(**manifest.get("params", {}))
    set_search_params(store.client, manifest.get("index_type", "flat"), params)
    dim = int(manifest.get("embed_dim", 0))
    if store.client.ntotal != manifest.get("count") or store.client.d != dim:
        raise CorruptIndexError(
            f"index folder {directory}: FAISS holds {store.client.ntotal} vectors of dim "
            f"{store.client.d}, manifest says {manifest.get('count')} of dim {dim}; "
            f"{rebuild_hint(directory)}"
        )
    return store


def place_store(store: FaissVectorStore, index_type: str, device: str) -> tuple[FaissVectorStore, bool]:
    """The store searched on the GPU for device "auto" / "cuda" when faiss-gpu and CUDA are present."""
    if device not in ("auto", "cuda"):
        return store, False
    gpu_index, on_gpu = to_gpu(store.client, index_type)
    if device == "cuda" and not on_gpu:
        log.warning("device='cuda' asked but faiss-gpu/CUDA is unavailable; searching on the CPU")
    return (FaissVectorStore(faiss_index=gpu_index), True) if on_gpu else (store, False)


def read_vector_index(directory: Path, store: FaissVectorStore, embed: EClipEmbedding) -> tuple[Any, list[str]]:
    """The VectorStoreIndex over ``store`` with the folder's docstore, and the study id of each FAISS row."""
    folder = str(directory)
    docstore = parse(directory, DOCSTORE_FILE, lambda: SimpleDocumentStore.from_persist_dir(folder))
    index_store = parse(directory, INDEX_STORE_FILE, lambda: SimpleIndexStore.from_persist_dir(folder))
    storage = parse(
        directory,
        GRAPH_STORE_FILE,
        lambda: StorageContext.from_defaults(
            vector_store=store, docstore=docstore, index_store=index_store, persist_dir=folder
        ),
    )
    vindex = parse(directory, INDEX_STORE_FILE, lambda: load_index_from_storage(storage, embed_model=embed))
    rows = vindex.index_struct.nodes_dict
    study_ids = parse(directory, INDEX_STORE_FILE, lambda: [rows[str(i)] for i in range(store.client.ntotal)])
    return vindex, study_ids


def read_classifiers(directory: Path, manifest: dict[str, Any]) -> LabelClassifiers | None:
    """The label classifiers the manifest lists (None without), refused for another checkpoint."""
    record = manifest.get("label_classifiers")
    if not record:
        return None
    return LabelClassifiers.load(directory / record["file"], manifest.get("eclip_checkpoint_hash"))
