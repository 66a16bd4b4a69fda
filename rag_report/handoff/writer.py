"""A study's outputs on disk: ``sr.dcm``, ``fhir.json``, then ``draft.json`` (the study's done mark), each
written to a temporary sibling and renamed; and the writer process that does it while drafting goes on.

The writer process is spawned (the drafting process holds torch's thread pools, which a forked child must
not inherit) and warmed up at once: importing highdicom and fhir.resources and building their first SR and
Bundle take seconds, which then overlap with drafting the first studies instead of stalling them.

>>> import tempfile, pathlib
>>> from rag_report.report import DraftReport
>>> draft = DraftReport("Clear lungs.", "No acute process.", [], [], {}, {}, {"eclip_checkpoint": "abc"}, "top1")
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "study-1"
>>> times = write_outputs(folder, draft, None)
>>> sorted(p.name for p in folder.iterdir()), sorted(times)
(['draft.json', 'fhir.json', 'sr.dcm'], ['fhir', 'json', 'sr'])
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eclip_core.atomic import atomic_path

if TYPE_CHECKING:
    from rag_report.report import DraftReport

#: The parts of a study's outputs, as write_outputs times them.
PARTS = ("sr", "fhir", "json")


def write_outputs(folder: Path, draft: DraftReport, header: Any, pixels: Any = None) -> dict[str, float]:
    """sr.dcm and fhir.json, then draft.json (the study's done mark), each atomically; returns the ms each
    part took (building + writing), keyed by :data:`PARTS`.

    ``header``: the source instance's header (the SR files into its study and references it); None for a
    PNG / JPEG study, whose stand-in Secondary Capture is made from ``pixels`` (UIDs from the pixels, no
    patient). Runs in a writer process too (everything it takes pickles).
    """
    from rag_report.formats.fhir import draft_to_fhir_json
    from rag_report.formats.sr import draft_to_sr, source_dataset_for_image

    times: dict[str, float] = {}
    t = time.perf_counter()
    source = header if header is not None else source_dataset_for_image(pixels)
    sr = draft_to_sr(draft, [source])
    with atomic_path(folder / "sr.dcm") as tmp:
        sr.save_as(tmp, enforce_file_format=True)
    times["sr"], t = _since(t), time.perf_counter()
    bundle = draft_to_fhir_json(draft, study_instance_uid=str(source.get("StudyInstanceUID", "")) or None)
    with atomic_path(folder / "fhir.json") as tmp:
        tmp.write_text(bundle, encoding="utf-8")
    times["fhir"], t = _since(t), time.perf_counter()
    with atomic_path(folder / "draft.json") as tmp:
        tmp.write_text(draft.to_json(indent=1), encoding="utf-8")
    times["json"] = _since(t)
    return times


def _since(t: float) -> float:
    return (time.perf_counter() - t) * 1000.0


def writer_pool(n: int) -> ProcessPoolExecutor | None:
    """``n`` writer processes (None for 0), started and warming up while the caller goes on."""
    if n < 1:
        return None
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_start_writer)
    for _ in range(n):
        pool.submit(_ready)  # starts the processes now; their warm-up overlaps with the first drafts
    return pool


def _ready() -> None:
    """A no-op task: submitting it makes the pool start a process."""


def _start_writer() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the batch, which lets a write under way finish
    try:
        warm_up()
    except Exception:  # a warm-up is an optimisation: the first real study reports any real problem
        pass


def warm_up() -> None:
    """Import the SR and FHIR writers and build one of each in memory (nothing is written), so that the
    first study pays no one-off cost (imports, pydantic schema building)."""
    from rag_report.formats.fhir import draft_to_fhir_json
    from rag_report.formats.sr import draft_to_sr, source_dataset_for_image
    from rag_report.report import DraftReport

    draft = DraftReport(
        "Warm-up.",
        "Warm-up.",
        [],
        [],
        {},
        {},
        {"eclip_checkpoint": "warm-up"},
        "top1",
        predicted_labels={"Cardiomegaly": 0.9},
        predicted_positive=["Cardiomegaly"],
    )
    draft_to_sr(draft, [source_dataset_for_image()])
    draft_to_fhir_json(draft, study_instance_uid="1.2.3")
