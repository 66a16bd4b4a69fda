"""What each layer of rag_report needs of the objects it is handed, as ``typing.Protocol`` classes.

The drafting code does not care which class it gets, only what it reads; these protocols name that, so
signatures say it instead of ``Any`` and mypy checks both sides:

* :class:`ReportLike`: a retrieved report as the drafters read it (``study_id``, ``similarity``,
  ``findings``, ``impression``): :class:`rag_report.retrieval.retriever.RetrievedReport`,
  :class:`rag_report.report.Evidence`, or any object with those attributes (grounded mode and the prompts
  also take dicts with those keys).
* :class:`DraftingLLM`: the frozen LLM as grounded, free, the drafter registry and the pipeline use it:
  :class:`rag_report.llm.FrozenLLM`, or a stand-in with the same members.
* :class:`EmbeddingModel`: the eCLIP model as the index and the retriever use it:
  :class:`eclip_core.model.EClip`.
* :class:`ReportIndexLike`: the report index as the retriever and the pipeline use it:
  :class:`rag_report.index.ReportIndex`; with :class:`QueryEmbedder` (its ``embed_model``,
  :class:`rag_report.retrieval.embedding.EClipEmbedding`) and :class:`LabelClassifiersLike` (its
  ``label_classifiers``, :class:`rag_report.retrieval.label_classifiers.LabelClassifiers`).
* :class:`DraftLike`: a drafted report as the SR and FHIR writers read it (:class:`rag_report.report.DraftReport`).
* :class:`LLMSpecLike`: what was loaded, as a :class:`DraftingLLM` reports it (:class:`rag_report.llm.LLMSpec`).

This module sits at the bottom of rag_report: it imports none of the classes it describes (each of those
modules states, for mypy only, that its class implements its protocol), and importing it loads neither
torch nor LlamaIndex.

>>> from types import SimpleNamespace
>>> report: ReportLike = SimpleNamespace(study_id="s1", similarity=0.7, findings="Clear.", impression="Normal.")
>>> report.study_id
's1'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

if TYPE_CHECKING:  # torch only for annotations: importing the protocols must not load it
    import torch

__all__ = [
    "DraftLike",
    "DraftingLLM",
    "EmbeddingModel",
    "LLMSpecLike",
    "LabelClassifiersLike",
    "QueryEmbedder",
    "ReportIndexLike",
    "ReportInput",
    "ReportLike",
]


class DraftLike(Protocol):
    """A drafted report as the SR and FHIR writers read it (:class:`rag_report.report.DraftReport`)."""

    @property
    def findings(self) -> str: ...

    @property
    def impression(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def models(self) -> dict[str, str]: ...

    @property
    def mode(self) -> str: ...

    @property
    def simulated_data(self) -> bool: ...

    @property
    def warnings(self) -> list[str]: ...

    @property
    def predicted_labels(self) -> dict[str, float]: ...

    @property
    def predicted_positive(self) -> list[str]: ...


class ReportLike(Protocol):
    """A report to draft from: its id, its similarity to the query, and its two sections."""

    @property
    def study_id(self) -> str: ...

    @property
    def similarity(self) -> float: ...

    @property
    def findings(self) -> str: ...

    @property
    def impression(self) -> str: ...


#: What grounded mode and the prompts accept: a report object, or a dict with the same keys.
ReportInput: TypeAlias = ReportLike | dict[str, Any]


class LLMSpecLike(Protocol):
    """Which LLM was loaded and how (the concrete precision, never "auto", once loaded)."""

    @property
    def path(self) -> str | None: ...

    @property
    def quantization(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def dtype(self) -> str | None: ...


class DraftingLLM(Protocol):
    """A frozen causal LM with its tokenizer, as the drafting modes use it."""

    @property
    def id(self) -> str:
        """Names the weights and the precision (provenance)."""
        ...

    @property
    def spec(self) -> LLMSpecLike:
        """What was loaded (path, resolved quantization, device, dtype)."""
        ...

    @property
    def model(self) -> torch.nn.Module:
        """The transformers causal LM (grounded mode calls it with ``input_ids``, ``cache``, ``use_cache``
        and ``logits_to_keep``)."""
        ...

    @property
    def tokenizer(self) -> Any:
        """The transformers tokenizer (no common typed base class)."""
        ...

    @property
    def device(self) -> torch.device: ...

    @property
    def n_parameters(self) -> int: ...

    @property
    def eos_token_ids(self) -> tuple[int, ...]: ...

    def encode(self, text: str) -> list[int]: ...

    def chat_prompt(self, user: str, system: str | None = None, assistant_prefix: str = "") -> str: ...

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int = ...,
        num_beams: int = ...,
        no_repeat_ngram_size: int = ...,
        repetition_penalty: float = ...,
        stop_when: Callable[[str], bool] | None = ...,
    ) -> str: ...


class EmbeddingModel(Protocol):
    """The eCLIP towers as unit-vector embedders, named by the hash of their weights."""

    @property
    def embed_dim(self) -> int: ...

    @property
    def checkpoint_hash(self) -> str: ...

    def embed_images(self, sources: Iterable[Any], batch_size: int = ..., progress: bool = ...) -> np.ndarray: ...

    def embed_texts(self, texts: Iterable[str], batch_size: int = ..., progress: bool = ...) -> np.ndarray: ...


class QueryEmbedder(Protocol):
    """The index's embedding adapter as the retriever queries it: texts and images into the index's model."""

    def set_model(self, model: EmbeddingModel | None) -> None: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_image(self, image: Any) -> np.ndarray: ...


class LabelClassifiersLike(Protocol):
    """Per-observation classifiers over an image's features, as label boost and the pipeline read them."""

    @property
    def views(self) -> str:
        """What the features are (rag_report.retrieval.image_views.CLASSIFIER_VIEWS)."""
        ...

    @property
    def observations(self) -> tuple[str, ...]: ...

    @property
    def thresholds(self) -> np.ndarray: ...

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray: ...

    def as_dict(self, probabilities: np.ndarray) -> dict[str, float]: ...


class ReportIndexLike(Protocol):
    """A loaded report index: the stored report vectors, their LlamaIndex nodes and the manifest."""

    @property
    def directory(self) -> Path: ...

    @property
    def manifest(self) -> dict[str, Any]: ...

    @property
    def embed_model(self) -> QueryEmbedder: ...

    @property
    def vector_index(self) -> Any:
        """The LlamaIndex VectorStoreIndex (its retriever maps FAISS rows to nodes)."""
        ...

    @property
    def label_classifiers(self) -> LabelClassifiersLike | None: ...

    @property
    def model(self) -> EmbeddingModel | None: ...

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def __contains__(self, study_id: object) -> bool: ...

    def to_index_space(self, vectors: np.ndarray, modality: str = ...) -> np.ndarray: ...

    def vectors(self, study_ids: Sequence[str]) -> np.ndarray: ...

    def typicality(self, image_vectors: np.ndarray) -> np.ndarray | None: ...
