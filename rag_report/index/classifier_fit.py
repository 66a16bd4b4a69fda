"""Fitting the label classifiers of label boost at index build, on the corpus's own X-rays and labels.

The classifiers themselves (fit, predict, file format) are :mod:`rag_report.retrieval.label_classifiers`; this
module gathers what they are fitted on: the embeddings of every readable corpus X-ray (and of its tiles,
:mod:`rag_report.retrieval.image_views`) against the study's labels, and the same for the validation studies.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
from tqdm.auto import tqdm

from eclip_core.data.image_io import load_nonblank_image
from eclip_core.data.manifest import Study
from eclip_core.data.study_labels import study_label_rows
from eclip_core.stage_clock import StageClock
from rag_report.index.corpus_images import Embedded, embed_corpus_images, embed_readable, readable_paths
from rag_report.protocols import EmbeddingModel
from rag_report.retrieval.image_views import classifier_features
from rag_report.retrieval.label_classifiers import LabelClassifiers

log = logging.getLogger(__name__)

#: Fewer readable corpus X-rays than this: no classifiers (label boost stays off).
MIN_IMAGES = 10


def fit_label_classifiers(
    model: EmbeddingModel,
    studies: Sequence[Study],
    val_studies: Sequence[Study] = (),
    *,
    progress: bool = True,
    embedded: Embedded | None = None,
    views: str = "image",
    clock: StageClock | None = None,
) -> tuple[LabelClassifiers | None, Embedded]:
    """Label classifiers (:mod:`rag_report.retrieval.label_classifiers`) over ``model``'s embeddings of the studies'
    X-rays (and of their tiles for ``views="image+tiles"``, :mod:`rag_report.retrieval.image_views`) against their
    labels (the manifest's, else the labeler's on the report), thresholds on ``val_studies`` (else
    cross-validated). Returns (classifiers or None without readable X-rays, the corpus embeddings (rows,
    study positions) for reuse). ``clock`` times its passes."""

    def stage(name: str):
        return clock.stage(name) if clock is not None else nullcontext()

    if embedded is None:
        with stage("index: corpus X-rays"):
            embedded = embed_corpus_images(model, studies, progress, "embed corpus X-rays")
    if len(embedded[1]) < MIN_IMAGES:
        log.warning("fewer than %d readable corpus X-rays: no label classifiers (label boost stays off)", MIN_IMAGES)
        return None, embedded
    rows = study_label_rows([studies[i] for i in embedded[1]])
    paths = [studies[i].image_paths[0] for i in embedded[1]]
    with stage("index: corpus tiles"):
        features = view_features(model, paths, embedded[0], views, progress, "embed corpus tiles")
    with stage("index: val X-rays and tiles"):
        val_x, val_rows = _validation_set(model, val_studies, views, progress) if val_studies else (None, None)
    with stage("index: fit classifiers"):
        clf = LabelClassifiers.fit(
            features,
            rows,
            checkpoint_hash=model.checkpoint_hash,
            val_embeddings=val_x,
            val_label_rows=val_rows,
            views=views,
        )
    return clf, embedded


def _validation_set(
    model: EmbeddingModel, val_studies: Sequence[Study], views: str, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The classifiers' features and label rows of the readable validation X-rays."""
    vpaths, vpos = readable_paths(val_studies)
    val_vectors, vkept = embed_readable(model, vpaths, progress, "embed val X-rays")
    val_x = view_features(model, [vpaths[i] for i in vkept], val_vectors, views, progress, "embed val tiles")
    return val_x, study_label_rows([val_studies[vpos[i]] for i in vkept])


def view_features(
    model: EmbeddingModel, paths: Sequence[str], vectors: np.ndarray, views: str, progress: bool, desc: str
) -> np.ndarray:
    """The classifiers' features of readable X-rays whose embeddings are ``vectors`` (a batch of images
    in memory at a time)."""
    if views == "image":
        return classifier_features(model, [], vectors, views)
    chunks = []
    for start in tqdm(range(0, len(paths), 32), desc=desc, unit="batch", disable=not progress):
        pixels = [load_nonblank_image(p) for p in paths[start : start + 32]]
        chunks.append(classifier_features(model, pixels, vectors[start : start + 32], views))
    return np.concatenate(chunks) if chunks else np.zeros((0, 2 * vectors.shape[-1]), np.float32)
