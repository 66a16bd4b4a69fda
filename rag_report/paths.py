"""Where the application keeps what it builds: $RAG_REPORT_HOME (default ~/.cache/rag_report).

eclip_core takes its cache folders as parameters (``build_phantom_dataset(cache_dir=...)``,
``TrainConfig.text_feature_cache_dir``); rag_report and the tools above it fill them from here.
"""

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


def text_feature_dir() -> Path:
    """Where a locked text tower's features persist between training runs (TrainConfig.text_feature_cache_dir)."""
    return rag_report_home() / "text_features"
