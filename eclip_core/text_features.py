"""A locked text tower's features, computed once per report and kept (in memory and in a folder).

A locked Hugging Face text tower stays in eval mode, so a report's pooled features (before the trainable
projection) never change: training, the index and a later run on the same reports can share them. Each
report is encoded on its own, trimmed to its own length, on one CPU thread, so its features depend on the
report alone: not on the batch it came in, the thread count or an earlier run that stored it. One thread
is also the cheaper way to encode one short report (two threads spend ~1.6x the CPU on the same pass),
and :meth:`TextFeatureCache.fill` runs several such passes side by side.

>>> import torch
>>> class Tower(torch.nn.Module):  # a stand-in HF text tower: mean of the token ids' embeddings
...     config = type("C", (), {"pad_token_id": 0})()
...     def __init__(self):
...         super().__init__()
...         self.emb = torch.nn.Embedding(10, 2)
...     def transformer(self, input_ids, attention_mask):
...         return self.emb(input_ids)
...     def pooler(self, hidden, mask):
...         return hidden.sum(1) / mask.sum(1, keepdim=True)
>>> cache = TextFeatureCache(Tower())
>>> tokens = torch.tensor([[1, 2, 0], [3, 0, 0], [1, 2, 0]])
>>> cache.fill(tokens), len(cache), cache.fill(tokens)
(2, 2, 0)
>>> cache.features(tokens).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

#: File name stem of a stored cache (the tower's fingerprint follows). "1t": the values of one-thread passes.
FILE_STEM = "text-features-1t-"
_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def one_cpu_thread() -> Iterator[None]:
    """torch's intra-op threads set to one for the duration (process-wide; restored after)."""
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


class TextFeatureCache:
    """Report token rows -> the locked text tower's pooled features, one pass per distinct report."""

    def __init__(self, text: nn.Module) -> None:
        self.text = text
        self.values: dict[bytes, torch.Tensor] = {}
        #: wall and CPU seconds spent in the tower's passes (a training run's log)
        self.seconds, self.cpu_seconds = 0.0, 0.0

    def __len__(self) -> int:
        return len(self.values)

    # ------------------------------------------------------------------ computing
    def _one(self, row: torch.Tensor) -> torch.Tensor:
        pad = self.text.config.pad_token_id
        used = (row != pad).nonzero()
        row = row[: int(used.max()) + 1 if used.numel() else row.shape[0]][None]
        mask = (row != pad).long()
        with torch.no_grad():
            return self.text.pooler(self.text.transformer(input_ids=row, attention_mask=mask), mask)[0]

    def fill(self, tokens: torch.Tensor, workers: int = 1, progress: bool = False) -> int:
        """Encode the rows of ``tokens`` [N, L] not seen yet (each once), ``workers`` passes side by side on a
        CPU; returns how many were encoded. The values are the same whatever ``workers`` is."""
        rows: dict[bytes, torch.Tensor] = {}
        for row in tokens:
            key = row.cpu().numpy().tobytes()
            if key not in self.values:
                rows.setdefault(key, row)
        if not rows:
            return 0
        started, started_cpu = time.perf_counter(), time.process_time()
        on_cpu = next(self.text.parameters()).device.type == "cpu"
        with one_cpu_thread() if on_cpu else contextlib.nullcontext():
            bar = tqdm(total=len(rows), desc="text features", unit="report", disable=not progress)
            with ThreadPoolExecutor(max(1, workers if on_cpu else 1)) as pool:  # torch releases the GIL in its ops
                for key, value in zip(rows, pool.map(self._one, rows.values())):
                    self.values[key] = value
                    bar.update()
            bar.close()
        self.seconds += time.perf_counter() - started
        self.cpu_seconds += time.process_time() - started_cpu
        return len(rows)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, L] token ids -> [N, H] pooled features (misses encoded first)."""
        self.fill(tokens)
        return torch.stack([self.values[row.cpu().numpy().tobytes()] for row in tokens]).to(tokens.device)

    # ------------------------------------------------------------------ persistence
    def fingerprint(self) -> str:
        """sha256 (16 hex) of the frozen tower's weights (what the features depend on; the projection not)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.text.state_dict().items()):
            if not name.startswith("proj"):
                digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def path(self, folder: str | os.PathLike) -> Path:
        return Path(folder) / f"{FILE_STEM}{self.fingerprint()}.pt"

    def load(self, folder: str | os.PathLike) -> int:
        """Add the features stored in ``folder`` for this tower; returns how many were loaded."""
        path = self.path(folder)
        if not path.is_file():
            return 0
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file: recompute (it is only a cache)
            logger.warning("ignoring unreadable text-feature cache %s (%s)", path, exc)
            return 0
        keys, values = stored["keys"], stored["values"]
        for i in range(keys.shape[0]):
            self.values.setdefault(keys[i].numpy().tobytes(), values[i])
        return int(keys.shape[0])

    def save(self, folder: str | os.PathLike) -> Path | None:
        """Write the features to ``folder`` (atomically), keyed by the tower's weights; None when there is
        nothing to write."""
        from eclip_core.atomic import atomic_path

        if not self.values or len({len(k) for k in self.values}) != 1:  # rows of several context lengths
            return None
        keys = torch.from_numpy(np.stack([np.frombuffer(k, dtype=np.uint8) for k in self.values]))
        path = self.path(folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({"keys": keys, "values": torch.stack([v.cpu() for v in self.values.values()])}, tmp)
        return path
