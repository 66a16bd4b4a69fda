"""Cross-modal retrieval: an X-ray (or a text) -> the nearest reports of a :class:`ReportIndex`.

``EClipRetriever`` is a LlamaIndex ``BaseRetriever``: ``retrieve("text")`` / ``retrieve(QueryBundle)``
work as for any LlamaIndex retriever (a QueryBundle may carry a precomputed embedding, e.g. an image
embedding). The richer entry points return :class:`RetrievedReport` records:

* ``retrieve_image(image, k)``: eCLIP's image tower embeds the X-ray (path, PIL, numpy, DICOM, bytes);
* ``retrieve_text(query, k)``: the text tower embeds the query exactly as it embedded the reports;
* ``retrieve_vector(vector, k)``: a precomputed query vector.

Each takes ``candidates`` (pool size before diversification, 100 in the paper), ``diversify``
("kmeans" as in the paper, "mmr" or None), ``exclude_study_ids`` (leave the query's own study out when
evaluating) and ``dedupe`` (drop reports whose normalised text repeats a better-ranked one).

>>> from eclip_core.model import EClip                                          # doctest: +SKIP
>>> from rag_report.index import ReportIndex                                    # doctest: +SKIP
>>> model = EClip.from_pretrained("ckpt")                                       # doctest: +SKIP
>>> retriever = EClipRetriever(ReportIndex.load("idx", model=model), model)     # doctest: +SKIP
>>> [r.study_id for r in retriever.retrieve_image("chest.png", k=5, diversify="kmeans")]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from rag_report.errors import EmptyCorpusError, IndexMismatchError, RagReportError
from rag_report.protocols import EmbeddingModel, ReportIndexLike, ReportLike
from rag_report.retrieval.diversify import dedupe_key
from rag_report.retrieval.diversify import diversify as diversify_pool
from rag_report.retrieval.label_boost import LabelBoost, agreement, boost_order, positive_set

log = logging.getLogger(__name__)

_DEFAULT = object()  # "use the retriever's default" for keyword arguments where None is meaningful
DIVERSIFY_METHODS = ("kmeans", "mmr", None)


class RetrievalWarning(UserWarning):
    """Fewer reports than asked for (k larger than the corpus, or exclusions / duplicates used them up)."""


@dataclass
class RetrievedReport:
    """One retrieved report; ``similarity`` is the cosine between the query and the report embeddings
    (after modality centering when the index is centred)."""

    study_id: str
    similarity: float
    findings: str
    impression: str
    text: str
    labels: dict[str, float | None] = field(default_factory=dict)
    rank: int = 0
    view: str = ""
    split: str = ""
    simulated: bool = False
    #: Jaccard agreement of this report's positive labels with the image's predicted ones (None: no label
    #: boost in this retrieval).
    label_agreement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


def _to_report(nws: NodeWithScore, rank: int, predicted: frozenset[str] | None = None) -> RetrievedReport:
    md = nws.node.metadata
    labels = dict(md.get("labels") or {})
    return RetrievedReport(
        study_id=str(md.get("study_id", nws.node.node_id)),
        similarity=float(nws.score or 0.0),
        findings=str(md.get("findings", "")),
        impression=str(md.get("impression", "")),
        text=nws.node.get_content(),
        labels=labels,
        rank=rank,
        view=str(md.get("view", "")),
        split=str(md.get("split", "")),
        simulated=bool(md.get("simulated", False)),
        label_agreement=None if predicted is None else agreement(positive_set(labels), predicted),
    )


class EClipRetriever(BaseRetriever):
    """LlamaIndex retriever over a :class:`rag_report.index.ReportIndex` (see the module docstring).

    Constructor keywords set the defaults used by ``retrieve(...)`` and by the methods when an
    argument is omitted: k=5, candidates=100, diversify=None, dedupe=True, seed=0 (k-means), mmr_lambda=0.5.
    ``model`` defaults to the index's model and must be the checkpoint the index was built with.
    """

    def __init__(
        self,
        index: ReportIndexLike,
        model: EmbeddingModel | None = None,
        *,
        k: int = 5,
        candidates: int = 100,
        diversify: str | None = None,
        dedupe: bool = True,
        seed: int = 0,
        mmr_lambda: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if diversify not in DIVERSIFY_METHODS:
            raise RagReportError(f"unknown diversify method {diversify!r}; choose one of {DIVERSIFY_METHODS}")
        self.index = index
        if model is not None and model is not index.model:
            need = index.manifest.get("eclip_checkpoint_hash")
            if model.checkpoint_hash != need:
                raise IndexMismatchError(
                    f"index {index.directory} was built with eCLIP checkpoint {need}, the retriever was given "
                    f"checkpoint {model.checkpoint_hash}; load checkpoint {need} or rebuild the index"
                )
            index.embed_model.set_model(model)
        self.k, self.candidates, self.diversify = k, candidates, diversify
        self.dedupe, self.seed, self.mmr_lambda = dedupe, seed, mmr_lambda
        self._vector_retriever = index.vector_index.as_retriever(similarity_top_k=max(1, min(k, len(index))))

    # ------------------------------------------------------------------ LlamaIndex protocol
    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Text query (or a QueryBundle carrying a precomputed image embedding) with the retriever's defaults."""
        if query_bundle.embedding is not None:
            query, modality = np.asarray(query_bundle.embedding, dtype=np.float32), "image"
        else:
            query, modality = self.index.embed_model.embed_texts([query_bundle.query_str])[0], "text"
        return self._select(query, self.k, self.candidates, self.diversify, (), self.dedupe, modality)

    # ------------------------------------------------------------------ public entry points
    def retrieve_image(
        self,
        image: Any,
        k: int | None = None,
        *,
        candidates: int | None = None,
        diversify: Any = _DEFAULT,
        exclude_study_ids: Iterable[str] = (),
        dedupe: bool | None = None,
    ) -> list[RetrievedReport]:
        """Reports nearest to an X-ray (any ``eclip_core.data.image_io.load_image`` source)."""
        query = self.index.embed_model.embed_image(image)
        return self.retrieve_vector(
            query, k, candidates=candidates, diversify=diversify, exclude_study_ids=exclude_study_ids, dedupe=dedupe
        )

    def retrieve_text(
        self,
        query: str,
        k: int | None = None,
        *,
        candidates: int | None = None,
        diversify: Any = _DEFAULT,
        exclude_study_ids: Iterable[str] = (),
        dedupe: bool | None = None,
    ) -> list[RetrievedReport]:
        """Reports nearest to a text query (text tower, like the stored reports)."""
        vec = self.index.embed_model.embed_texts([query])[0]
        return self.retrieve_vector(
            vec,
            k,
            candidates=candidates,
            diversify=diversify,
            exclude_study_ids=exclude_study_ids,
            dedupe=dedupe,
            modality="text",
        )

    def retrieve_vector(
        self,
        query: np.ndarray,
        k: int | None = None,
        *,
        candidates: int | None = None,
        diversify: Any = _DEFAULT,
        exclude_study_ids: Iterable[str] = (),
        dedupe: bool | None = None,
        modality: str = "image",
        label_boost: LabelBoost | None = None,
        predicted_labels: frozenset[str] | None = None,
    ) -> list[RetrievedReport]:
        """Reports nearest to a precomputed eCLIP embedding [D] of an X-ray (``modality="image"``) or of a
        text (``"text"``), ranked 1..k by similarity.

        With ``label_boost`` (rerank / filter) and the image's ``predicted_labels`` (observation names), the
        candidate pool is ordered by label agreement as :mod:`rag_report.retrieval.label_boost` describes before the
        top k (or the diversified k, chosen among the best ``4k`` of that order) are taken; each report then
        carries its ``label_agreement``.
        """
        boost = label_boost if label_boost is not None and label_boost.active and predicted_labels is not None else None
        nodes = self._select(
            np.asarray(query, dtype=np.float32),
            self.k if k is None else k,
            self.candidates if candidates is None else candidates,
            self.diversify if diversify is _DEFAULT else diversify,
            exclude_study_ids,
            self.dedupe if dedupe is None else dedupe,
            modality,
            boost,
            predicted_labels,
        )
        shown = predicted_labels if boost is not None else None
        return [_to_report(n, i + 1, shown) for i, n in enumerate(nodes)]

    # ------------------------------------------------------------------ core
    def _search(self, query: np.ndarray, fetch: int) -> list[NodeWithScore]:
        # Through LlamaIndex's own vector retriever: FAISS rows -> docstore nodes, scores = inner products.
        self._vector_retriever.similarity_top_k = fetch
        return self._vector_retriever.retrieve(QueryBundle(query_str="", embedding=query.tolist()))

    def _select(
        self,
        query: np.ndarray,
        k: int,
        candidates: int,
        method: str | None,
        exclude_study_ids: Iterable[str],
        dedupe: bool,
        modality: str = "image",
        boost: LabelBoost | None = None,
        predicted: frozenset[str] | None = None,
    ) -> list[NodeWithScore]:
        if method not in DIVERSIFY_METHODS:
            raise RagReportError(f"unknown diversify method {method!r}; choose one of {DIVERSIFY_METHODS}")
        if int(k) < 1:
            raise RagReportError(f"k must be >= 1, got {k}")
        n = len(self.index)
        if n == 0:
            raise EmptyCorpusError(f"index {self.index.directory} holds no reports")
        query = query.reshape(-1)
        if query.shape[0] != self.index.dim:
            raise RagReportError(
                f"query vector has dim {query.shape[0]}, index {self.index.directory} holds dim {self.index.dim}"
            )
        norm = float(np.linalg.norm(query))
        if not np.isfinite(norm) or norm == 0.0:
            raise RagReportError("the query embedding is zero or not finite; cannot rank reports by similarity")
        query = self.index.to_index_space(query, modality)[0]  # normalised (and modality-centred)
        exclude = {s for s in exclude_study_ids}
        n_excluded = sum(1 for s in exclude if s in self.index)
        available = n - n_excluded
        if available <= 0:
            raise EmptyCorpusError(f"index {self.index.directory}: all {n} reports are excluded; nothing to retrieve")
        if k > available:
            msg = (
                f"asked for k={k} reports but index {self.index.directory} holds {available} eligible reports; "
                f"returning {available}"
            )
            warnings.warn(msg, RetrievalWarning, stacklevel=3)
            log.warning(msg)
            k = available
        pool_size = max(k, candidates) if (method or boost is not None) else k
        fetch = min(n, pool_size + n_excluded)
        while True:
            pool, seen = [], set()
            for hit in self._search(query, fetch):
                if hit.node.node_id in exclude:
                    continue
                if dedupe:
                    key = dedupe_key(hit.node.get_content())
                    if key in seen:
                        continue
                    seen.add(key)
                pool.append(hit)
            # Duplicates may have used up the window: widen it until the pool is full or the corpus is spent.
            if len(pool) >= pool_size or fetch >= n:
                break
            fetch = min(n, 2 * fetch)
        pool = pool[:pool_size]
        if boost is not None and predicted is not None:
            order = boost_order(
                [float(h.score or 0.0) for h in pool],
                [positive_set(h.node.metadata.get("labels")) for h in pool],
                predicted,
                boost.mode,
                boost.weight,
            )
            pool = [pool[i] for i in order][: 4 * k if method else k]
        if method and len(pool) > k:
            vectors = self.index.vectors([h.node.node_id for h in pool])
            positions = diversify_pool(method, query, vectors, k, seed=self.seed, mmr_lambda=self.mmr_lambda)
            chosen_rows = sorted(positions)  # keep the pool's order (boosted, else by similarity)
            pool = [pool[i] for i in chosen_rows]
        chosen = pool[:k]
        if len(chosen) < k:
            msg = f"only {len(chosen)} distinct reports remain for k={k} after removing duplicates"
            warnings.warn(msg, RetrievalWarning, stacklevel=3)
            log.warning(msg)
        return chosen


if TYPE_CHECKING:  # mypy checks here that the classes implement the protocols their readers use
    from rag_report.report import Evidence

    def _implements(retrieved: RetrievedReport, evidence: Evidence) -> tuple[ReportLike, ReportLike]:
        return retrieved, evidence
