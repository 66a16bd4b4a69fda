"""An embedding model that remembers the image vectors it made, for a build that reads the same X-rays twice.

The default bundle embeds its validation X-rays (and their tiles) to set the label classifiers' thresholds,
again for the similarity floor and again for the draft checker's thresholds. Wrapped in
:class:`EmbeddingMemo`, the model embeds each image once: an image path is remembered by its path, an
image given as an array by its pixels (shape, dtype and bytes), so the checker's tiles of a val X-ray read
again from disk are recognised. Images not seen before are embedded in the caller's batches exactly as the
model would embed them; a remembered vector is the one made the first time (in another batch, so it can
differ from a fresh pass by float rounding, ~1e-7). The weights must not change while the memo lives.

>>> import numpy as np
>>> class Mean:  # a stand-in model: the mean pixel, counting its passes
...     embed_dim, checkpoint_hash, passes = 1, "x", 0
...     def embed_images(self, xs, batch_size=32, progress=False):
...         self.passes += len(xs)
...         return np.array([[np.asarray(x).mean()] for x in xs], np.float32)
>>> memo = EmbeddingMemo(Mean())
>>> a, b = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
>>> memo.embed_images([a, b]).tolist(), memo.embed_images([b.copy(), a]).tolist(), memo.model.passes
([[0.0], [1.0]], [[1.0], [0.0]], 2)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Iterable
from functools import cached_property
from typing import Any

import numpy as np

from rag_report.protocols import EmbeddingModel


def image_key(source: Any) -> Hashable | None:
    """What identifies an image: its path, or an array's shape, dtype and pixel bytes (None: not remembered)."""
    if isinstance(source, (str, os.PathLike)):
        return ("path", os.fspath(source))
    if isinstance(source, np.ndarray):
        data = np.ascontiguousarray(source)
        return ("array", data.shape, data.dtype.str, hashlib.sha1(data.tobytes()).digest())
    return None


class EmbeddingMemo:
    """``model`` (an :class:`~rag_report.protocols.EmbeddingModel`) whose image embeddings are made once each."""

    def __init__(self, model: EmbeddingModel) -> None:
        self.model = model
        self._vectors: dict[Hashable, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    @property
    def embed_dim(self) -> int:
        return self.model.embed_dim

    @cached_property
    def checkpoint_hash(self) -> str:
        """The model's (hashing the weights once: they do not change while the memo lives)."""
        return self.model.checkpoint_hash

    def embed_images(self, sources: Iterable[Any], batch_size: int = 32, progress: bool = True) -> np.ndarray:
        items = list(sources)
        keys = [image_key(s) for s in items]
        new: dict[Hashable, int] = {}
        todo: list[int] = []
        for i, key in enumerate(keys):
            if key is None or (key not in self._vectors and key not in new):
                if key is not None:
                    new[key] = len(todo)
                todo.append(i)
        fresh = (
            np.asarray(self.model.embed_images([items[i] for i in todo], batch_size=batch_size, progress=progress))
            if todo
            else np.zeros((0, self.embed_dim), np.float32)
        )
        for key, row in new.items():
            self._vectors[key] = fresh[row]
        self.misses += len(todo)
        self.hits += len(items) - len(todo)
        unkeyed = iter(fresh[[row for row, i in enumerate(todo) if keys[i] is None]])
        rows = [next(unkeyed) if key is None else self._vectors[key] for key in keys]
        return np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, self.embed_dim), np.float32)

    def embed_texts(self, texts: Iterable[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        return self.model.embed_texts(texts, batch_size=batch_size, progress=progress)

    def __getattr__(self, name: str) -> Any:  # the rest of the model (image_size, transform, ...) as it is
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)
