"""``python -m rag_report.batch SOURCE --out DIR``: ``rag-report batch`` as a module, for launchers.

Under ``accelerate launch -m rag_report.batch ...`` or ``torchrun -m rag_report.batch ...`` every process
reads RANK and WORLD_SIZE from its environment, drafts every WORLD_SIZE-th study from its RANK (in study
key order) and writes its own summary shard (``summary-rank0-of-2.csv`` ...); no process group is needed.

Example::

    python -m rag_report.batch exports/ --out drafts/
    torchrun --nproc-per-node 2 -m rag_report.batch exports/ --out drafts/
"""

from __future__ import annotations

import sys

from rag_report.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["batch", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
