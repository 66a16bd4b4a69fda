"""Where built artifacts live: $RAG_REPORT_HOME (default ~/.cache/rag_report)."""

from __future__ import annotations

import os
from pathlib import Path


def rag_report_home() -> Path:
    """Root folder for cached artifacts (phantom data, checkpoints, indexes, LLM folders).

    >>> isinstance(rag_report_home(), Path)
    True
    """
    root = os.environ.get("RAG_REPORT_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "rag_report")
    return Path(root)
