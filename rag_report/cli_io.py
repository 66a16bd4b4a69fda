"""Keeping the command line's stdout machine-readable.

Libraries print: llama-index announces its MockLLM, C extensions write to file descriptor 1, a future
dependency may add a banner. So while a command works, everything written to stdout (Python-level and
fd-level) goes to stderr; the command's result is written to the real stdout once it is done. Then
``rag-report generate --json | python -m json.tool`` always sees exactly one JSON document.

>>> import io, contextlib
>>> err = io.StringIO()
>>> with contextlib.redirect_stderr(err), stdout_to_stderr():
...     print("chatter")
>>> err.getvalue()
'chatter\\n'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from eclip_core.chatter import install_log_filters, quiet_libraries
from eclip_core.cpu_memory import keep_freed_memory
from eclip_core.runtime import setup_offline


def start_command(
    *, quiet: bool = False, level: int = logging.WARNING, log_format: str = "%(levelname)s %(name)s: %(message)s"
) -> None:
    """What every command line does before its work: the offline environment, library chatter off with
    ``quiet`` (before the libraries load: some read their switches at import), the log filters and format,
    and freed memory kept for reuse instead of page-faulted anew (a whole-process command)."""
    setup_offline()
    if quiet:
        quiet_libraries()
    install_log_filters()
    logging.basicConfig(level=level, format=log_format)
    keep_freed_memory()


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both OSError and ValueError
        return None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send stdout to stderr for the duration: ``sys.stdout`` and, where it is a real file, fd 1 too."""
    out_fd, err_fd = _fileno(sys.stdout), _fileno(sys.stderr)
    saved = None
    if out_fd is not None and err_fd is not None and out_fd != err_fd:
        sys.stdout.flush()
        saved = os.dup(out_fd)
        os.dup2(err_fd, out_fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None and out_fd is not None:
            for stream in (sys.stdout, sys.__stdout__):  # what was buffered meanwhile belongs to stderr
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.flush()
            os.dup2(saved, out_fd)
            os.close(saved)


def error_json(exc: BaseException) -> str:
    """The JSON a ``--json`` command prints instead of its result when it fails.

    >>> error_json(ValueError("bad.png: blank"))
    '{"error": {"type": "ValueError", "message": "bad.png: blank"}}'
    """
    return json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}})
