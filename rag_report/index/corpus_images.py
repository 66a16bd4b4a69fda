"""The corpus's own X-rays at index build: embedded once, skipping unreadable files, and sampled.

The first X-ray of every study that has a readable one is embedded for the label classifiers; a seeded
sample of at most ``limit`` of them gives the image mean of modality centering and the typicality sample.

>>> sample_positions(5, 3, seed=0) == sample_positions(5, 3, seed=0), sample_positions(2, 3, seed=0)
(True, [0, 1])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from eclip_core.data.manifest import Study
from eclip_core.errors import EClipError
from rag_report.protocols import EmbeddingModel
from rag_report.retrieval.embedding import unit_rows

log = logging.getLogger(__name__)

#: Embeddings of the corpus X-rays already made: (rows [n, D], the study position of each row).
Embedded = tuple[np.ndarray, list[int]]

_BATCH = 32


def embed_readable(
    model: EmbeddingModel, paths: Sequence[str], progress: bool, desc: str
) -> tuple[np.ndarray, list[int]]:
    """Image embeddings of the readable ``paths`` (unreadable ones skipped) and their positions."""
    vectors: list[np.ndarray] = []
    kept: list[int] = []
    for start in tqdm(range(0, len(paths), _BATCH), desc=desc, unit="batch", disable=not progress):
        batch = list(paths[start : start + _BATCH])
        try:
            vectors.extend(model.embed_images(batch, batch_size=_BATCH, progress=False))
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


def readable_paths(studies: Sequence[Study]) -> tuple[list[str], list[int]]:
    """The first X-ray path of every study that has an existing one, and those studies' positions."""
    pos = [i for i, s in enumerate(studies) if s.image_paths and os.path.isfile(s.image_paths[0])]
    return [studies[i].image_paths[0] for i in pos], pos


def embed_corpus_images(model: EmbeddingModel, studies: Sequence[Study], progress: bool, desc: str) -> Embedded:
    """Embeddings of every study's first readable X-ray, with the study position of each row."""
    paths, positions = readable_paths(studies)
    vectors, kept = embed_readable(model, paths, progress, desc)
    return vectors, [positions[i] for i in kept]


def sample_positions(n: int, limit: int, seed: int) -> list[int]:
    """A seeded, sorted sample of at most ``limit`` of ``range(n)`` (all of it when n <= limit)."""
    if n <= limit:
        return list(range(n))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n, size=limit, replace=False))


def sample_image_embeddings(
    model: EmbeddingModel,
    studies: Sequence[Study],
    limit: int,
    seed: int,
    progress: bool,
    embedded: Embedded | None = None,
) -> np.ndarray | None:
    """Unit image embeddings [n, D] of a seeded sample of the studies' first X-rays (None if none is readable).

    ``embedded``: the embeddings of every study's first X-ray already made (rows, study positions), from
    which the same sample is taken instead of embedding it again.
    """
    paths, positions = readable_paths(studies)
    pick = sample_positions(len(paths), limit, seed)
    if embedded is None:
        vectors, _ = embed_readable(model, [paths[i] for i in pick], progress, "calibrate image mean")
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
    return unit_rows(np.asarray(vectors))
