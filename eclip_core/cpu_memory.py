"""Keep freed memory in the process on glibc, so CPU training and embedding do not page-fault their
buffers anew every step.

A training or embedding step allocates and frees the same activation buffers (MBs to tens of MBs) again and
again. glibc returns large freed blocks to the kernel (mmap'ed chunks, and the top of the heap past a trim
threshold), so the next step touches fresh pages and pays a minor page fault (plus zeroing) per 4 KiB.
Raising both thresholds makes steady-state steps reuse the same pages: embedding stops page-faulting and
gets faster, and training steps stop varying with what ran before them (the numbers:
docs/perf/cpu_memory.md). The cost is that the process keeps its peak heap instead of shrinking after a
spike. Entry points call this; importing the library never does.

>>> applied = keep_freed_memory()  # False off glibc (macOS, Windows, musl): nothing to do there
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2, which is 32 MiB on 64-bit builds
_MMAP_THRESHOLD_MAX = 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)
_applied = False


def keep_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap threshold to its maximum and its trim threshold to ``trim_threshold`` bytes for
    this process; True if applied (idempotent), False where the C library is not glibc."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    except (OSError, AttributeError) as err:  # a static or unusual libc: keep the defaults
        logger.debug("mallopt unavailable: %s", err)
        return False
    _applied = ok
    return ok
