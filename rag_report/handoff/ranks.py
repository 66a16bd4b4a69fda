"""Which share of the studies this process drafts, from the RANK / WORLD_SIZE a launcher (accelerate, torchrun)
sets; no process group is needed."""

from __future__ import annotations

import os

from rag_report.errors import RagReportError


def rank_and_world() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) from the environment a launcher sets; (0, 1) without one.

    >>> import os; os.environ.pop("RANK", None); os.environ.pop("WORLD_SIZE", None)
    >>> rank_and_world()
    (0, 1)
    """
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise RagReportError(
            f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} are not integers"
        ) from None
