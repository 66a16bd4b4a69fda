"""Modality centering: the stored report vectors and the queries, each centred by its own modality's mean.

CLIP-style models put images and reports in two separate cones (the modality gap), and a cosine across the
gap is dominated by each vector's offset from its own cone's centre, so every X-ray lands on the same few
"hub" reports. The index stores ``normalize(t - mean_reports)`` and queries become
``normalize(q - mean_of_their_modality)``; both means are in the manifest (the image mean from a seeded
sample of the corpus's own X-rays).

>>> space = corpus_space(np.array([[1.0, 0.0], [0.0, 1.0]]), image_sample=np.array([[1.0, 1.0]] * 11))
>>> space.vectors.astype(float).round(3).tolist(), [round(m, 3) for m in space.centering["image_mean"]]
([[0.707, -0.707], [-0.707, 0.707]], [0.707, 0.707])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rag_report.errors import RagReportError
from rag_report.index.typicality import typicality_record
from rag_report.retrieval.embedding import unit_rows

MODALITIES = ("image", "text")


@dataclass
class CorpusSpace:
    """The report vectors as stored, and the manifest entries that say how they were made."""

    vectors: np.ndarray  # [n, D] unit rows, centred when ``centering`` is set
    centering: dict[str, list[float]] | None  # {"text_mean", "image_mean"}; None: raw cosine
    typicality: dict[str, Any] | None  # rag_report.index.typicality.typicality_record; None: no sample
    image_sample: np.ndarray | None  # the unit sample embeddings to store (with ``typicality``)


def corpus_space(
    vectors: np.ndarray, image_mean: np.ndarray | None = None, image_sample: np.ndarray | None = None
) -> CorpusSpace:
    """Unit report vectors [n, D], centred when an image mean is given or taken from ``image_sample``."""
    # eCLIP already returns unit vectors; normalising again makes inner product = cosine by construction.
    vectors = unit_rows(vectors)
    dim = vectors.shape[1]
    typicality = None
    if image_sample is not None:
        image_sample = unit_rows(np.atleast_2d(image_sample))
        if image_sample.shape[1] != dim:
            raise RagReportError(f"image_sample has dim {image_sample.shape[1]}, the report vectors {dim}")
        if image_mean is None:
            image_mean = image_sample.astype(np.float64).mean(axis=0).astype(np.float32)
        typicality = typicality_record(image_sample)
    if image_mean is None:
        return CorpusSpace(vectors, None, typicality, image_sample)
    image_mean = np.asarray(image_mean, dtype=np.float32).reshape(-1)
    if image_mean.shape[0] != dim:
        raise RagReportError(f"image_mean has dim {image_mean.shape[0]}, the report vectors {dim}")
    text_mean = vectors.astype(np.float64).mean(axis=0).astype(np.float32)
    centering = {"text_mean": text_mean.tolist(), "image_mean": image_mean.tolist()}
    return CorpusSpace(unit_rows(vectors - text_mean), centering, typicality, image_sample)


def center_queries(
    vectors: np.ndarray, centering: dict[str, list[float]] | None, modality: str, dim: int, where: str = "the index"
) -> np.ndarray:
    """eCLIP embeddings [n, D] (or [D]) of ``modality`` -> unit vectors comparable with the stored ones:
    centred by that modality's mean when ``centering`` is set, else just normalised."""
    if modality not in MODALITIES:
        raise RagReportError(f"modality must be one of {MODALITIES}, got {modality!r}")
    q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    if q.shape[1] != dim:
        raise RagReportError(f"query vectors have dim {q.shape[1]}, {where} holds dim {dim}")
    if centering:
        q = unit_rows(q) - np.asarray(centering[f"{modality}_mean"], dtype=np.float32)
    return unit_rows(q)
