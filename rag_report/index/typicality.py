"""Image typicality: how like the corpus's own X-rays a query image is (k-NN cosine to a sample of them).

At build, each sampled corpus X-ray is scored against the others (leave-one-out); the 1st percentile of
those scores is the floor under which a query image is unlike the corpus (e.g. not a chest X-ray).

>>> record = typicality_record(np.eye(12, dtype=np.float32))
>>> record["k"], record["sample"], record["floor"]
(10, 12, 0.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rag_report.index.files import IMAGE_SAMPLE_FILE

#: The k of the k-NN typicality: a query's k-th largest cosine to the sample.
TYPICALITY_K = 10


def typicality_scores(queries: np.ndarray, sample: np.ndarray, k: int, *, leave_one_out: bool = False) -> np.ndarray:
    """k-th largest cosine between each unit query [n, D] and the unit sample [m, D] (k-NN typicality).

    ``leave_one_out``: the queries are the sample itself; each row's own match is skipped.

    >>> s = np.eye(3, dtype=np.float32)
    >>> typicality_scores(s[:1], s, 1).tolist(), typicality_scores(s, s, 1, leave_one_out=True).tolist()
    ([1.0], [0.0, 0.0, 0.0])
    """
    sims = np.asarray(queries, dtype=np.float32) @ np.asarray(sample, dtype=np.float32).T
    if leave_one_out:
        np.fill_diagonal(sims, -np.inf)
    k = max(1, min(int(k), sims.shape[1] - (1 if leave_one_out else 0)))
    return np.partition(sims, -k, axis=1)[:, -k]


def typicality_record(image_sample: np.ndarray) -> dict[str, Any] | None:
    """The manifest's ``typicality`` entry for unit sample embeddings [m, D] (None for m <= k): k, the
    floor (1st percentile of the sample's leave-one-out scores), their median, m and the sample's file."""
    if len(image_sample) <= TYPICALITY_K:
        return None
    loo = typicality_scores(image_sample, image_sample, TYPICALITY_K, leave_one_out=True)
    return {
        "k": TYPICALITY_K,
        "floor": float(np.percentile(loo, 1.0)),
        "median": float(np.median(loo)),
        "sample": len(image_sample),
        "file": IMAGE_SAMPLE_FILE,
    }
