"""The report-generation benchmark: ``python -m eval.report_gen`` (and ``--suite embedding``).

>>> from eval.report_gen import ReportGenConfig
>>> ReportGenConfig(quick=True).validate().limit
100
"""

from __future__ import annotations

from eval.report_gen.config import SYSTEMS, ReportGenConfig

__all__ = ["ReportGenConfig", "SYSTEMS", "run_report_gen"]


def run_report_gen(cfg: ReportGenConfig) -> dict:
    """Run the benchmark (see :func:`eval.report_gen.run.run_report_gen`)."""
    from eval.report_gen.run import run_report_gen as _run

    return _run(cfg)
