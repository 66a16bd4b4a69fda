"""rag_report: eCLIP retrieval-augmented chest X-ray report drafting.

>>> from rag_report import generate_report      # doctest: +SKIP
>>> print(generate_report("chest.png").text)     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["generate_report", "ReportPipeline", "PipelineConfig", "DraftReport", "Evidence"]


def __getattr__(name: str) -> Any:  # lazy: importing the package must not load torch
    if name in ("generate_report", "ReportPipeline", "PipelineConfig"):
        from rag_report import pipeline

        return getattr(pipeline, name)
    if name in ("DraftReport", "Evidence"):
        from rag_report import report

        return getattr(report, name)
    raise AttributeError(name)
