"""The batch: draft every study of a source, write its outputs atomically, store its SR, summarise.

Per study, under ``out/<study key>/`` (the key hashes the StudyInstanceUID; no patient identifier in any
name): ``sr.dcm`` (DICOM Comprehensive SR), ``fhir.json`` (FHIR R4 Bundle), ``draft.json``
(DraftReport.to_dict(), written last: its presence marks the study done) and ``row.json`` (its summary row).
Every file is written to a temporary sibling and renamed, so a Ctrl-C or a kill leaves each finished study
whole and no half-written file. ``resume`` skips a study whose outputs exist and were drafted by the same
models (eCLIP checkpoint, index, generation mode, LLM), retrying its send when that had failed.

Image embedding is batched across studies (``batch_size`` studies per forward pass). One bad study never
stops the batch: it gets a summary row that says why.

>>> from rag_report.handoff.runner import BatchConfig, run_batch            # doctest: +SKIP
>>> result = run_batch("exports/", BatchConfig(out="drafts/"))            # doctest: +SKIP
>>> result.counts                                                         # doctest: +SKIP
{'drafted': 498, 'skipped': 2}
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eclip_core.cli_config import cli
from eclip_core.data.dicom_views import assess_dataset
from eclip_core.errors import EClipError
from rag_report.errors import RagReportError
from rag_report.handoff.clock import StageTotals
from rag_report.handoff.send import CStoreSender, Sender, SendError, StowSender, parse_dimse
from rag_report.handoff.sources import DicomWebFilters, SourceError, open_source, shard
from rag_report.handoff.studies import Instance, StudyInput, rank_frontal
from rag_report.handoff.summary import SummaryRow, read_row, shard_name, write_row, write_summary
from rag_report.handoff.writer import write_outputs, writer_pool

if TYPE_CHECKING:
    from rag_report.pipeline import Embedded, ReportPipeline

log = logging.getLogger(__name__)

OUTPUT_FILES = ("sr.dcm", "fhir.json", "draft.json")
#: A drafted study's row while its outputs are being written (never in a summary on disk).
PENDING = "pending"
#: DraftReport.models entries that must match for ``resume`` to keep a study's outputs.
IDENTITY_KEYS = ("eclip_checkpoint", "index_id", "generation_mode", "llm_id")


@dataclass
class BatchConfig:
    """How ``rag-report batch`` runs (every field is a flag; the pipeline's flags are PipelineConfig's)."""

    #: Output folder: one sub-folder per study, and the summary CSV.
    out: str = field(default="", metadata=cli(metavar="DIR"))
    #: Skip studies whose outputs exist and were drafted by the same models; retry their failed sends.
    resume: bool = False
    #: Store each SR back: STOW-RS to the source PACS (or --stow-url), or C-STORE with --send-dimse.
    send: bool = False
    #: DICOMweb root to store the SRs in (default: the source, when it is a DICOMweb URL).
    stow_url: str | None = field(default=None, metadata=cli(metavar="URL"))
    #: Store the SRs with C-STORE to a DIMSE-only PACS: HOST:PORT:AET.
    send_dimse: str | None = field(default=None, metadata=cli(metavar="HOST:PORT:AET"))
    #: PACS search: StudyDate (20240101 or a range 20240101-20240131).
    study_date: str | None = None
    #: PACS search: ModalitiesInStudy (e.g. DX).
    modality: str | None = None
    #: PNG / JPEG files: one study per folder instead of one per file.
    images_per_folder: bool = False
    #: Studies whose images are embedded in one forward pass.
    batch_size: int = 16
    #: Processes that build and write the SR / FHIR / JSON outputs while drafting goes on (0: write in the
    #: drafting process, one study after another).
    writers: int = 1
    #: Torch threads of the drafting process (None: the CPU cores left beside the writers, at least 1; threads
    #: beyond the free cores spin-wait on each other and slow drafting down).
    threads: int | None = None

    def validate(self) -> BatchConfig:
        if not self.out:
            raise RagReportError("--out is required: the folder the drafts, SRs and FHIR bundles go to")
        if self.batch_size < 1:
            raise RagReportError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.writers < 0:
            raise RagReportError(f"writers must be >= 0, got {self.writers}")
        if self.threads is not None and self.threads < 1:
            raise RagReportError(f"threads must be >= 1, got {self.threads}")
        if self.send_dimse:
            parse_dimse(self.send_dimse)
        return self


@dataclass
class BatchResult:
    rows: list[SummaryRow]
    summary_path: Path
    #: ms per stage, summed over studies: the drafting process's stages (prepare, embed, draft, hand-off,
    #: wait for writer, send, summary) and, overlapping with them, the writer's ("write: sr", ...).
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(r.status for r in self.rows))

    @property
    def ok(self) -> bool:
        """No study failed and no send failed (skipped studies are fine: their rows say why)."""
        return not any(r.status == "error" or r.send_failed for r in self.rows)


def make_sender(config: BatchConfig, source: str) -> Sender | None:
    """The sender ``--send`` asks for, checked to answer now (a PACS that is down fails the batch before
    anything is drafted)."""
    if not config.send:
        return None
    if config.send_dimse:
        host, port, aet = parse_dimse(config.send_dimse)
        sender: Sender = CStoreSender(host, port, aet)
        _echo(host, port, aet)
        return sender
    url = config.stow_url or (source if source.startswith(("http://", "https://")) else None)
    if url is None:
        raise RagReportError("--send needs a PACS: a DICOMweb source URL, --stow-url URL or --send-dimse HOST:PORT:AET")
    stow = StowSender(url)
    try:
        stow.client.search_for_studies(limit=1)
    except Exception as exc:
        raise SourceError(
            f"cannot reach the PACS at {url} to store SRs ({type(exc).__name__}); nothing was drafted"
        ) from None
    return stow


def _echo(host: str, port: int, aet: str) -> None:
    from pynetdicom import AE

    ae = AE(ae_title="RAG_REPORT")
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context("1.2.840.10008.1.1")  # Verification
    assoc = ae.associate(host, port, ae_title=aet)
    if not assoc.is_established:
        raise SourceError(f"cannot reach the PACS {aet}@{host}:{port} (C-ECHO); nothing was drafted")
    assoc.release()


def expected_identity(pipe: ReportPipeline) -> dict[str, str]:
    """The DraftReport.models entries a draft by ``pipe`` will carry, for ``resume`` to compare."""
    from rag_report.drafting.drafters import LLM_MODES

    mode = pipe.resolve_mode(pipe.config.mode)
    return {
        "eclip_checkpoint": pipe.model.checkpoint_hash,
        "index_id": str(pipe.index.manifest.get("index_id", "")),
        "generation_mode": mode,
        "llm_id": getattr(pipe.llm(), "id", "") if mode in LLM_MODES else "",
    }


def finished(folder: Path, identity: dict[str, str]) -> bool:
    """Whether ``folder`` holds a study's outputs drafted by models of this ``identity``."""
    if not all((folder / name).is_file() for name in OUTPUT_FILES):
        return False
    try:
        models = json.loads((folder / "draft.json").read_text(encoding="utf-8")).get("models", {})
    except (OSError, ValueError, AttributeError):
        return False
    return all(str(models.get(k, "")) == v for k, v in identity.items())


@dataclass
class _Prepared:
    study: StudyInput
    row: SummaryRow
    instance: Instance | None
    source: Any  # the image as the loader reads it: a path or the file's bytes
    pixels: Any = None


class BatchRunner:
    """Runs one process's share of a batch with a loaded pipeline (see the module docstring)."""

    def __init__(
        self, pipe: ReportPipeline, config: BatchConfig, *, sender: Sender | None = None, progress: bool = True
    ) -> None:
        self.pipe, self.config, self.sender, self.progress = pipe, config.validate(), sender, progress
        self.out = Path(config.out)
        self.identity = expected_identity(pipe)
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[SummaryRow, Path, Future]] = []
        #: Where this run's time went (BatchResult.stages).
        self.clock = StageTotals()

    def run(self, studies: Sequence[StudyInput], summary_path: Path) -> BatchResult:
        from tqdm.auto import tqdm

        rows: list[SummaryRow] = []
        self.out.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=len(studies), unit="study", desc="batch", disable=not self.progress, dynamic_ncols=True)
        self._pool = writer_pool(self.config.writers) if studies else None
        import torch

        threads_before = torch.get_num_threads()
        torch.set_num_threads(self.config.threads or max(1, (os.cpu_count() or 1) - self.config.writers))
        try:
            for start in range(0, len(studies), self.config.batch_size):
                chunk = studies[start : start + self.config.batch_size]
                # The previous chunk's outputs were written while this chunk was prepared and drafted.
                earlier, self._pending = self._pending, []
                rows.extend(self._run_chunk(chunk))
                self._settle(earlier)
                bar.update(len(chunk))
                with self.clock.timed("summary"):
                    write_summary([r for r in rows if r.status != PENDING], summary_path)
            self._settle(self._pending)
        finally:
            torch.set_num_threads(threads_before)
            bar.close()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)  # a write under way finishes (atomic)
            # Also on Ctrl-C: the rows of every study whose outputs are whole.
            write_summary([r for r in rows if r.status != PENDING], summary_path)
        return BatchResult(rows, summary_path, dict(self.clock.ms))

    # -- one chunk: prepare (choose + read the image), embed together, draft and write each ---------------
    def _run_chunk(self, chunk: Sequence[StudyInput]) -> list[SummaryRow]:
        rows: list[SummaryRow] = []
        ready: list[_Prepared] = []
        for study in chunk:
            with self.clock.timed("prepare"):
                prepared = self._prepare(study)
            rows.append(prepared.row)
            if prepared.pixels is not None:
                ready.append(prepared)
        if ready:
            with self.clock.timed("embed"):
                embedded = self._embed(ready)
            for prepared, emb in zip(ready, embedded):
                self._draft(prepared, emb)
        return rows

    def _prepare(self, study: StudyInput) -> _Prepared:
        from rag_report.pipeline import read_image

        row = SummaryRow(study.key, "skipped", images=study.n_images)
        folder = self.out / study.key
        if self.config.resume and finished(folder, self.identity):
            previous = read_row(folder / "row.json") or row
            row = SummaryRow.from_dict({**previous.to_dict(), "status": "resumed"})
            if self.sender is not None and row.send != "stored":
                self._send(folder, row)
                write_row(row, folder / "row.json")
            return _Prepared(study, row, None, None)
        if study.problem:
            row.reason = study.problem
            return _Prepared(study, row, None, None)
        t = time.perf_counter()
        try:
            study.resolve()
        except Exception as exc:  # a PACS answer that fails mid-batch: this study only
            row.status, row.reason = "error", f"could not retrieve the study's metadata ({type(exc).__name__})"
            return _Prepared(study, row, None, None)
        row.images = study.n_images
        if study.images:
            candidates: list[Any] = list(study.images)
            reason = ""
        else:
            candidates, reason = rank_frontal(study.instances)
        if not candidates:
            row.reason = reason
            return _Prepared(study, row, None, None)
        failures = []
        for candidate in candidates:
            instance = candidate if isinstance(candidate, Instance) else None
            try:
                source = instance.image_source() if instance is not None else candidate
                row.fetch_ms = (time.perf_counter() - t) * 1000.0
                t_load = time.perf_counter()
                pixels = read_image(source)
                row.load_ms = (time.perf_counter() - t_load) * 1000.0
            except Exception as exc:  # unreadable pixels, a retrieve that failed, a decoder crash: the next image
                failures.append(type(exc).__name__)
                continue
            if instance is not None:
                row.view = assess_dataset(instance.header).view
            return _Prepared(study, row, instance, source, pixels)
        row.reason = f"no readable image: pixel data of all {len(failures)} candidate images failed to load or decode"
        return _Prepared(study, row, None, None)

    def _embed(self, ready: list[_Prepared]) -> list[Embedded]:
        embedded = self.pipe.embed_many([p.pixels for p in ready], batch_size=len(ready))
        for p, e in zip(ready, embedded):
            e.load_ms = p.row.load_ms
        return embedded

    def _draft(self, prepared: _Prepared, embedded: Embedded) -> None:
        row, study = prepared.row, prepared.study
        t = time.perf_counter()
        try:
            draft = self.pipe.generate(prepared.source, embedded=embedded)
        except Exception as exc:  # one study's failure, whatever it is, never stops the batch
            said = str(exc) if isinstance(exc, EClipError) else f"{type(exc).__name__}: {str(exc)[:200]}"
            row.status, row.reason = "error", f"drafting failed: {said}"
            log.warning("%s: drafting failed (%s)", study.key, type(exc).__name__)
            return
        finally:
            self.clock.add("draft", (time.perf_counter() - t) * 1000.0)
        row.status = PENDING
        row.typicality = draft.typicality
        row.positives = ";".join(draft.predicted_positive)
        for stage in ("load", "embed", "retrieve", "generate"):
            setattr(row, f"{stage}_ms", float(draft.timings_ms.get(stage, 0.0)))
        folder = self.out / study.key
        header = prepared.instance.header if prepared.instance is not None else None
        pixels = prepared.pixels if header is None else None  # a PNG study's stand-in SC is made from them
        future: Future = Future()
        if self._pool is not None:
            with self.clock.timed("hand-off to the writer"):
                future = self._pool.submit(write_outputs, folder, draft, header, pixels)
        else:
            try:
                future.set_result(write_outputs(folder, draft, header, pixels))
            except Exception as exc:
                future.set_exception(exc)
        self._pending.append((row, folder, future))

    def _settle(self, pending: list[tuple[SummaryRow, Path, Future]]) -> None:
        """Wait for written outputs; then send the SR and record the row."""
        for row, folder, future in pending:
            try:
                with self.clock.timed("wait for the writer"):
                    parts = future.result()
            except Exception as exc:  # a writer refusing a header, a full disk: this study only
                row.status = "error"
                row.reason = f"writing the outputs failed ({type(exc).__name__}: {str(exc)[:200]})"
                log.warning("%s: writing outputs failed (%s)", row.study, type(exc).__name__)
                continue
            for part, ms in parts.items():
                self.clock.add(f"write: {part}", ms)
            row.write_ms = sum(parts.values())
            row.status = "drafted"
            if self.sender is not None:
                with self.clock.timed("send"):
                    self._send(folder, row)
            row.total_ms = row.fetch_ms + row.load_ms + row.embed_ms + row.retrieve_ms + row.generate_ms
            row.total_ms += row.write_ms + row.send_ms
            with self.clock.timed("summary"):
                write_row(row, folder / "row.json")

    def _send(self, folder: Path, row: SummaryRow) -> None:
        import pydicom

        assert self.sender is not None
        t = time.perf_counter()
        try:
            self.sender.send(pydicom.dcmread(folder / "sr.dcm"))
            row.send = "stored"
        except SendError as exc:
            row.send = f"failed: {exc}"
            log.warning("%s: %s", row.study, exc)
        except Exception as exc:  # an unreadable sr.dcm of an earlier run
            row.send = f"failed: {type(exc).__name__}"
        row.send_ms = (time.perf_counter() - t) * 1000.0


def run_batch(
    source: str,
    config: BatchConfig,
    *,
    pipeline: ReportPipeline | None = None,
    pipeline_config: Any = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> BatchResult:
    """Draft this process's share (``rank`` of ``world_size``) of the studies in ``source`` (a folder, a
    manifest or a DICOMweb URL). The source is listed and the PACS checked before any model loads, so a
    wrong path or a PACS that is down fails at once with :class:`SourceError` and writes nothing."""
    from rag_report.pipeline import ReportPipeline

    config.validate()
    filters = DicomWebFilters(config.study_date, config.modality)
    studies = shard(open_source(source, filters=filters, images_per_folder=config.images_per_folder), rank, world_size)
    sender = make_sender(config, source)
    pipe = pipeline or ReportPipeline(pipeline_config, progress=progress)
    log.info("batch: %d studies for process %d of %d", len(studies), rank, world_size)
    runner = BatchRunner(pipe, config, sender=sender, progress=progress)
    return runner.run(studies, Path(config.out) / shard_name(rank, world_size))
