"""LlamaIndex embedding adapter over eCLIP's towers.

Documents (reports) and text queries go through eCLIP's text tower; :meth:`EClipEmbedding.embed_image`
goes through the image tower into the same space, which is what makes the retrieval cross-modal.
All vectors are L2-normalised float32, so inner product = cosine similarity.

Example (a tiny random-init model; real use loads a trained checkpoint):

>>> from eclip_core.model import EClip                      # doctest: +SKIP
>>> emb = EClipEmbedding.from_model(EClip.from_config("eclip-tiny"))  # doctest: +SKIP
>>> len(emb.get_text_embedding("Heart size normal."))        # doctest: +SKIP
64
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from llama_index.core import Settings
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms.mock import MockLLM

from rag_report.errors import RagReportError
from rag_report.protocols import EmbeddingModel, QueryEmbedder

log = logging.getLogger(__name__)


class NoModelError(RagReportError):
    """A query had to be embedded but the index was loaded without an eCLIP model."""


def configure_llama_settings() -> None:
    """Make sure LlamaIndex never falls back to OpenAI: an unset global LLM becomes a MockLLM.

    A user-set ``Settings.llm`` is left alone; embedding models are always passed explicitly.
    """
    # Reading Settings.llm while unset would resolve the OpenAI default; peek at the private slot instead.
    # A MockLLM instance, not None: `Settings.llm = None` makes llama-index PRINT "LLM is explicitly
    # disabled. Using MockLLM." to stdout, which broke `rag-report ... --json | json.tool`.
    if getattr(Settings, "_llm", None) is None:
        Settings.llm = MockLLM()


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32; zero rows stay zero).

    >>> unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class EClipEmbedding(BaseEmbedding):
    """A LlamaIndex ``BaseEmbedding`` backed by an ``eclip_core.model.EClip`` (or none, for vector-only use).

    ``model_name`` carries the checkpoint hash, so LlamaIndex's own records name the model that made the
    vectors. With ``model=None`` every embedding call raises :class:`NoModelError` (an index loaded for
    vector search only).
    """

    _model: EmbeddingModel | None = PrivateAttr(default=None)
    _dim: int = PrivateAttr(default=0)
    _text_mean: np.ndarray | None = PrivateAttr(default=None)

    def __init__(
        self,
        model: EmbeddingModel | None = None,
        *,
        dim: int | None = None,
        checkpoint_hash: str | None = None,
        embed_batch_size: int = 64,
        text_mean: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        name = f"eclip-{checkpoint_hash or (model.checkpoint_hash if model is not None else 'none')}"
        super().__init__(model_name=name, embed_batch_size=embed_batch_size, **kwargs)
        self._model = model
        self._dim = int(dim if dim is not None else (model.embed_dim if model is not None else 0))
        # Set for a modality-centred index (rag_report.index): what LlamaIndex asks for through its own
        # protocol (query engines, as_retriever) must land in the index's space; embed_texts stays raw.
        self._text_mean = None if text_mean is None else np.asarray(text_mean, dtype=np.float32).reshape(-1)

    @classmethod
    def from_model(cls, model: EmbeddingModel, embed_batch_size: int = 64) -> EClipEmbedding:
        """Adapter over ``model`` (anything with embed_texts / embed_images / embed_dim / checkpoint_hash)."""
        return cls(model, embed_batch_size=embed_batch_size)

    @classmethod
    def class_name(cls) -> str:
        return "EClipEmbedding"

    @property
    def model(self) -> EmbeddingModel | None:
        return self._model

    def set_model(self, model: EmbeddingModel | None) -> None:
        """Embed with ``model`` from now on (the same checkpoint, e.g. another loaded copy of it; the caller
        checks that its ``checkpoint_hash`` is the one the vectors were made with)."""
        self._model = model

    @property
    def dim(self) -> int:
        return self._dim

    def _require_model(self) -> EmbeddingModel:
        if self._model is None:
            raise NoModelError(
                "this index was loaded without an eCLIP model, so text or image queries cannot be embedded; "
                "pass model=EClip.from_pretrained(<checkpoint>) to ReportIndex.load, or query with vectors"
            )
        return self._model

    # -- text tower ---------------------------------------------------------------------------------
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> [n, D] float32 unit vectors (one call of the text tower, batched by embed_batch_size)."""
        model = self._require_model()
        return np.asarray(
            model.embed_texts(list(texts), batch_size=self.embed_batch_size, progress=False), dtype=np.float32
        )

    def index_space_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> [n, D] unit vectors comparable with the index's stored ones (centred when it is)."""
        vectors = self.embed_texts(texts)
        return vectors if self._text_mean is None else unit_rows(vectors - self._text_mean)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.index_space_texts([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.index_space_texts(texts).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        # Reports and queries share the text tower: a query is embedded exactly like a stored report.
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)

    # -- image tower ---------------------------------------------------------------------------------
    def embed_image(self, image: Any) -> np.ndarray:
        """One image (path, PIL, numpy, DICOM path, bytes) -> [D] float32 unit vector via the image tower."""
        model = self._require_model()
        return np.asarray(model.embed_images([image], batch_size=1, progress=False), dtype=np.float32)[0]


if TYPE_CHECKING:  # mypy checks here that the classes implement the protocols their readers use
    from eclip_core.model import EClip

    def _implements(adapter: EClipEmbedding, model: EClip) -> tuple[QueryEmbedder, EmbeddingModel]:
        return adapter, model
