"""Where a batch's wall time goes: milliseconds per stage, summed over studies, for throughput pages.

The drafting process's stages run one after another, so their sum plus what no stage names is its wall
time; the writer process's stages (SR, FHIR, JSON) overlap with them and are kept apart.

>>> clock = StageTotals()
>>> with clock.timed("embed"):
...     pass
>>> clock.add("write: SR", 12.5); clock.add("write: SR", 7.5)
>>> sorted(clock.ms), clock.ms["write: SR"]
(['embed', 'write: SR'], 20.0)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StageTotals:
    """Milliseconds summed per stage over many studies (no log line per study; a long job's stages, each
    logged with its CPU seconds, are :class:`eclip_core.stage_clock.StageClock`'s)."""

    #: Total ms per stage, in the order stages were first seen.
    ms: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, ms: float) -> None:
        self.ms[stage] = self.ms.get(stage, 0.0) + ms

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, (time.perf_counter() - t) * 1000.0)
