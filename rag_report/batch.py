"""``python -m rag_report.batch SOURCE --out DIR``: ``rag-report batch`` as a module, for launchers.

Under ``accelerate launch -m rag_report.batch ...`` or ``torchrun -m rag_report.batch ...`` every process
reads RANK and WORLD_SIZE from its environment, drafts every WORLD_SIZE-th study from its RANK (in study
key order) and writes its own summary shard (``summary-rank0-of-2.csv`` ...); no process group is needed.

Example::

    python -m rag_report.batch exports/ --out drafts/
    torchrun --nproc-per-node 2 -m rag_report.batch exports/ --out drafts/
"""

from __future__ import annotations

import os
import sys

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


def main(argv: list[str] | None = None) -> int:
    from rag_report.cli import main as cli_main

    return cli_main(["batch", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
