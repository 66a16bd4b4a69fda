"""ReportIndex: a loaded report index (build, build_from_vectors, load; search and the stored vectors).

See :mod:`rag_report.index` for what the folder holds, how the vectors are made, and an example.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from llama_index.core.schema import MetadataMode
from tqdm.auto import tqdm

from eclip_core.data.manifest import Study
from eclip_core.stage_clock import StageClock
from rag_report.errors import EmptyCorpusError, RagReportError
from rag_report.index.centering import center_queries, corpus_space
from rag_report.index.classifier_fit import fit_label_classifiers
from rag_report.index.corpus_images import sample_image_embeddings
from rag_report.index.faiss_backend import IndexParams, check_index_type, set_search_params
from rag_report.index.files import read_image_sample
from rag_report.index.nodes import corpus_nodes
from rag_report.index.store import (
    check_model,
    open_index_folder,
    place_store,
    read_classifiers,
    read_faiss_store,
    read_vector_index,
    write_index,
)
from rag_report.index.typicality import typicality_scores
from rag_report.protocols import EmbeddingModel, ReportIndexLike
from rag_report.retrieval.embedding import EClipEmbedding, configure_llama_settings
from rag_report.retrieval.embedding import unit_rows as _unit
from rag_report.retrieval.image_views import CLASSIFIER_VIEWS
from rag_report.retrieval.label_classifiers import LabelClassifiers

log = logging.getLogger(__name__)


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
    #: Label classifiers of label boost (rag_report.retrieval.label_classifiers), None when the index has none.
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
        clock: StageClock | None = None,
        text_features: str | os.PathLike | None = None,
    ) -> ReportIndex:
        """Embed every report with the text tower (in batches, with a progress bar), index, persist atomically.

        ``center``: estimate the image-embedding mean from a seeded sample of at most ``calibration_images``
        of the corpus studies' own X-rays (unreadable ones are skipped) and store modality-centred vectors
        (module docstring); without readable X-rays the index stays uncentred, with a warning.
        ``label_classifiers``: fit the label classifiers of label boost on every readable corpus X-ray
        (thresholds on ``val_studies`` when given, else cross-validated) and store them with the index;
        ``classifier_views`` "image+tiles" lets them read the X-rays' tiles too
        (:mod:`rag_report.retrieval.image_views`).
        Raises EmptyCorpusError for zero reports, RagReportError for an unknown index type or duplicate ids.
        Returns the index loaded back from ``out_dir`` (so what you use is what was saved). ``clock`` times
        its passes (:class:`eclip_core.stage_clock.StageClock`). ``text_features``: the folder where training
        stored a locked text tower's report features (``TrainConfig.text_feature_cache_dir``); the reports
        it holds are not encoded again, the others once each (:mod:`eclip_core.text_features`).
        """
        clock = clock or StageClock()
        check_index_type(index_type)
        if classifier_views not in CLASSIFIER_VIEWS:
            raise RagReportError(f"unknown classifier_views {classifier_views!r}; choose one of {CLASSIFIER_VIEWS}")
        params = params or IndexParams()
        configure_llama_settings()
        nodes = corpus_nodes(studies)
        if not nodes:
            raise EmptyCorpusError(
                f"cannot build an index at {out_dir}: the corpus ({corpus_name!r}) has no studies with report "
                "text; pass studies whose findings or impression are non-empty"
            )
        t0 = time.time()
        embed = EClipEmbedding.from_model(model, embed_batch_size=batch_size)
        with clock.stage("index: reports"):
            _stored_text_features(
                model, [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes], text_features
            )
            vectors = _embed_reports(embed, nodes, batch_size, progress)
        classifiers, embedded = None, None
        if label_classifiers:
            classifiers, embedded = fit_label_classifiers(
                model, studies, val_studies, progress=progress, views=classifier_views, clock=clock
            )
        with clock.stage("index: image sample"):
            sample = (
                sample_image_embeddings(model, studies, calibration_images, params.seed, progress, embedded)
                if center
                else None
            )
        done = clock.start("index: FAISS and files")
        write_index(
            nodes,
            corpus_space(vectors, image_sample=sample),
            out_dir,
            checkpoint_hash=model.checkpoint_hash,
            embed=embed,
            index_type=index_type,
            corpus_name=corpus_name,
            params=params,
            t0=t0,
            label_classifiers=classifiers,
        )
        index = cls.load(out_dir, model=model)
        done()
        return index

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
        check_index_type(index_type)
        configure_llama_settings()
        nodes = corpus_nodes(studies)
        vectors = np.asarray(vectors, dtype=np.float32)
        if not nodes:
            raise EmptyCorpusError(f"cannot build an index at {out_dir}: the corpus ({corpus_name!r}) has no reports")
        if vectors.ndim != 2 or len(vectors) != len(studies) or len(nodes) != len(studies):
            raise RagReportError(
                f"build_from_vectors: {len(studies)} studies ({len(nodes)} with report text) but "
                f"vectors of shape {vectors.shape}; give one vector per study, all with text"
            )
        t0 = time.time()
        write_index(
            nodes,
            corpus_space(vectors, image_mean=image_mean, image_sample=image_sample),
            out_dir,
            checkpoint_hash=checkpoint_hash,
            embed=EClipEmbedding(model, dim=vectors.shape[1], checkpoint_hash=checkpoint_hash),
            index_type=index_type,
            corpus_name=corpus_name,
            params=params or IndexParams(),
            t0=t0,
            label_classifiers=label_classifiers,
        )
        return cls.load(out_dir, model=model)

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
        directory, manifest = open_index_folder(directory, verify)
        check_model(directory, manifest, model)
        dim, centering = int(manifest.get("embed_dim", 0)), manifest.get("centering")
        configure_llama_settings()
        embed = EClipEmbedding(
            model,
            dim=dim,
            checkpoint_hash=manifest.get("eclip_checkpoint_hash"),
            text_mean=centering["text_mean"] if centering else None,
        )
        store = read_faiss_store(directory, manifest)
        sample = read_image_sample(directory, manifest, dim)
        store, on_gpu = place_store(store, manifest.get("index_type", "flat"), device)
        vindex, study_ids = read_vector_index(directory, store, embed)
        return cls(
            directory=directory,
            manifest=manifest,
            vector_index=vindex,
            embed_model=embed,
            study_ids=study_ids,
            on_gpu=on_gpu,
            _row_of={sid: i for i, sid in enumerate(study_ids)},
            _image_sample=sample,
            label_classifiers=read_classifiers(directory, manifest),
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
        return center_queries(
            vectors, self.manifest.get("centering"), modality, self.dim, where=f"the index {self.directory}"
        )

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


def _stored_text_features(model: EmbeddingModel, texts: list[str], folder: str | os.PathLike | None) -> None:
    """Give a locked text tower the features stored in ``folder`` and encode the missing reports up front
    (side by side: cheaper than batch by batch); nothing for other models or without a folder."""
    target: Any = getattr(model, "model", model)  # the model inside an EmbeddingMemo
    if folder is not None and callable(getattr(target, "use_text_features", None)) and target.use_text_features(folder):
        target.precompute_text_features(texts)


def _embed_reports(embed: EClipEmbedding, nodes: Sequence, batch_size: int, progress: bool) -> np.ndarray:
    """The text-tower embeddings [n, D] of the nodes' embedded text, in batches with a progress bar."""
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc="embed reports", unit="batch", disable=not progress):
        chunks.append(np.asarray(embed.get_text_embedding_batch(texts[start : start + batch_size]), dtype=np.float32))
    return np.concatenate(chunks)


if TYPE_CHECKING:  # mypy checks here that the classes implement the protocols their readers use

    def _implements(index: ReportIndex) -> ReportIndexLike:
        return index
