"""What the label classifiers read of an X-ray: its embedding, optionally with its tiles' embeddings.

The image tower sees the whole X-ray at its input size (128 px for the default bundle), where a rib
fracture or a small nodule is a pixel or two. The ``"image+tiles"`` view also embeds the image's four
quadrants and its centre, each half the image's height and width, so at twice the tower's scale, and
appends the mean of those five tile embeddings to the image's own embedding (the mean beat the
element-wise maximum and the five tiles side by side in 5-fold cross-validation on the default
bundle's train split). The tower stays frozen; the tiles only cost five more forward passes per image.

>>> import numpy as np
>>> [t.shape for t in image_tiles(np.zeros((256, 200), np.float32))]
[(128, 100), (128, 100), (128, 100), (128, 100), (128, 100)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag_report.errors import RagReportError

#: "image": the image embedding alone; "image+tiles": with the mean of its five tile embeddings.
CLASSIFIER_VIEWS = ("image", "image+tiles")


def image_tiles(pixels: np.ndarray) -> list[np.ndarray]:
    """The four quadrants and the centre of a grey image [H, W], each [H // 2, W // 2]."""
    if pixels.ndim != 2 or min(pixels.shape) < 2:
        raise RagReportError(f"tiles need a grey image [H, W] of at least 2x2 pixels, got shape {pixels.shape}")
    h, w = pixels.shape
    th, tw = h // 2, w // 2
    corners = [(0, 0), (0, w - tw), (h - th, 0), (h - th, w - tw), ((h - th) // 2, (w - tw) // 2)]
    return [pixels[y : y + th, x : x + tw] for y, x in corners]


def classifier_features(
    model: Any, images: Sequence[np.ndarray], image_vectors: np.ndarray, views: str, batch_size: int = 32
) -> np.ndarray:
    """The classifiers' input [n, D] ("image") or [n, 2D] ("image+tiles") for grey images [H, W] in [0, 1]
    whose embeddings ``image_vectors`` [n, D] the caller already has.

    >>> class Mean:  # a stand-in embedding: the mean pixel
    ...     def embed_images(self, xs, batch_size=32, progress=False):
    ...         return np.array([[x.mean()] for x in xs], np.float32)
    >>> img = np.zeros((4, 4), np.float32); img[:2, :2] = 1.0   # tile means 1, 0, 0, 0 and 0.25 (centre)
    >>> classifier_features(Mean(), [img], Mean().embed_images([img]), "image+tiles").tolist()
    [[0.25, 0.25]]
    """
    vectors = np.asarray(image_vectors, dtype=np.float32)
    if views not in CLASSIFIER_VIEWS:
        raise RagReportError(f"unknown classifier views {views!r}; choose one of {CLASSIFIER_VIEWS}")
    if views == "image":
        return vectors
    if len(images) != len(vectors):
        raise RagReportError(f"{len(images)} images but {len(vectors)} embeddings")
    if not len(images):
        return np.zeros((0, 2 * vectors.shape[-1]), np.float32)
    tiles = [tile for pixels in images for tile in image_tiles(np.asarray(pixels))]
    tile_vectors = np.asarray(model.embed_images(tiles, batch_size=batch_size, progress=False), dtype=np.float32)
    pooled = tile_vectors.reshape(len(images), -1, tile_vectors.shape[-1]).mean(axis=1)
    return np.concatenate([vectors, pooled], axis=1)
