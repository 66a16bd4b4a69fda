"""Wall and CPU seconds of named stages of a long job (the default bundle's build, a training run).

CPU seconds count this process (all its threads) and its children that have finished (data-loader and
render workers once joined): on a shared machine they say what a stage costs better than the wall clock.

>>> clock = StageClock()
>>> with clock.stage("sum"):
...     _ = sum(range(1000))
>>> [s.name for s in clock.stages], clock.stages[0].cpu_s >= 0.0
(['sum'], True)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

try:
    import resource
except ImportError:  # not on Windows: CPU seconds of this process only
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have been waited for."""
    if resource is None:
        return time.process_time()
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's children that have been waited for (0 without ``resource``)."""
    if resource is None:
        return 0.0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class StageTime:
    """One stage: its name, wall seconds and CPU seconds (process + finished children)."""

    name: str
    wall_s: float
    cpu_s: float | None  # None: not measured on its own (a part of a stage timed elsewhere)


@dataclass
class StageClock:
    """Times stages with :meth:`stage` (logged at INFO as they end) or records ones timed elsewhere (:meth:`add`)."""

    stages: list[StageTime] = field(default_factory=list)
    logger: logging.Logger = field(default=log, repr=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        done = self.start(name)
        try:
            yield
        finally:
            done()

    def start(self, name: str) -> Callable[[], None]:
        """Start timing ``name``; call the returned function where the stage ends."""
        wall, cpu = time.perf_counter(), cpu_seconds()
        return lambda: self.add(name, time.perf_counter() - wall, cpu_seconds() - cpu)

    def add(self, name: str, wall_s: float, cpu_s: float | None) -> None:
        self.stages.append(StageTime(name, wall_s, cpu_s))
        cpu = "" if cpu_s is None else f", {cpu_s:.1f} CPU-s"
        self.logger.info("stage %s: %.1f s wall%s", name, wall_s, cpu)

    def as_dicts(self) -> list[dict]:
        return [asdict(s) for s in self.stages]
