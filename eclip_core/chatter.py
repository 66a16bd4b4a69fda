"""Third-party chatter: what is always hidden, and what ``--quiet`` hides.

Always (:func:`install_log_filters`, idempotent):

- transformers' "BertModel LOAD REPORT" table when its only entries are the BERT pooler weights marked
  UNEXPECTED: open_clip's HF text tower mean-pools and never builds the pooler, so every eclip-small model
  (every training run, every bundle build) printed a warning table about weights that are meant to be
  dropped. Any other load report still shows.
- faiss's loader INFO lines ("Could not load library with AVX2 support due to ModuleNotFoundError..."):
  faiss falls back to the build it has by itself; there is nothing for the user to do.

With ``--quiet`` (:func:`quiet_libraries`): no progress bars at all (tqdm, transformers' "Loading weights",
huggingface_hub) and transformers logs errors only (so no load report tables either).

>>> rec = logging.LogRecord("transformers.modeling_utils", logging.WARNING, "", 0,
...     "BertModel LOAD REPORT from: x\\nKey | Status\\n----+---\\npooler.dense.bias | UNEXPECTED", None, None)
>>> PoolerReportFilter().filter(rec)
False
"""

from __future__ import annotations

import logging
import os
import re
import sys

log = logging.getLogger(__name__)

#: Where transformers logs the load report of from_pretrained.
TRANSFORMERS_LOAD_LOGGER = "transformers.modeling_utils"
FAISS_LOADER_LOGGER = "faiss.loader"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class PoolerReportFilter(logging.Filter):
    """Drops a transformers load report whose every entry is an UNEXPECTED ``pooler.*`` weight."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = _ANSI.sub("", record.getMessage())
        except Exception:  # noqa: BLE001 - a record we cannot format is not ours to judge
            return True
        if "LOAD REPORT" not in msg:
            return True
        rows = []
        for line in msg.splitlines()[1:]:
            cells = [c.strip() for c in line.split("|")]
            if len(cells) < 2 or not cells[0] or cells[0] == "Key" or set(cells[0]) <= {"-", "+"}:
                continue
            rows.append((cells[0], cells[1]))
        if rows and all(k.startswith("pooler.") and status == "UNEXPECTED" for k, status in rows):
            log.debug("dropped the HF text tower's load report: its unused BERT pooler weights (%d)", len(rows))
            return False
        return True


_POOLER_FILTER = PoolerReportFilter()


def install_log_filters() -> None:
    """Hide the always-noise listed in the module docstring (safe to call many times)."""
    logger = logging.getLogger(TRANSFORMERS_LOAD_LOGGER)
    if _POOLER_FILTER not in logger.filters:
        logger.addFilter(_POOLER_FILTER)
    faiss_log = logging.getLogger(FAISS_LOADER_LOGGER)
    if faiss_log.level == logging.NOTSET:  # a level someone set on purpose stays
        faiss_log.setLevel(logging.WARNING)


def quiet_libraries() -> None:
    """Switch off every library progress bar and transformers' warnings (for ``--quiet`` runs).

    Environment variables cover libraries imported later (tqdm reads ``TQDM_DISABLE`` when it is imported);
    the calls cover those already imported. Callers' own bars follow their ``progress`` flags.
    """
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    install_log_filters()
