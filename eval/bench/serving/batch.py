"""Hospital hand-off throughput: `rag-report batch` over generated DICOM studies, folder and PACS.

1. A folder of N studies (a PA and a lateral DX each, phantom pixels, synthetic patients), default settings
   (the default bundle), SR + FHIR written per study: studies/s and the share of time per stage; the same
   on the first studies with one image per forward pass, to show what batching the embedding buys.
2. With Orthanc installed: M of those studies uploaded to a throwaway Orthanc (DICOMweb, loopback), then
   PACS -> drafts -> SRs stored back (QIDO-RS search, WADO-RS metadata and image, STOW-RS) timed end to end.

    python -m eval.bench.serving.batch --studies 500 --pacs-studies 200 --out docs/perf/batch.md
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from eval.bench.page import write_page


def _write_studies(folder: Path, n: int, size: int) -> list[list[Path]]:
    from rag_report.handoff.synthetic import write_study

    return [write_study(folder / f"{i:04d}", i, views=("PA", "LL"), size=size) for i in range(n)]


def _run(pipe, source: str, out: Path, batch_size: int, send: bool = False):
    from rag_report.handoff.runner import BatchConfig, BatchRunner, make_sender
    from rag_report.handoff.sources import open_source

    config = BatchConfig(out=str(out), batch_size=batch_size, send=send)
    cpu_before = _cpu_s()
    t0 = time.perf_counter()
    studies = open_source(source)
    listed = time.perf_counter() - t0
    runner = BatchRunner(pipe, config, sender=make_sender(config, source), progress=False)
    result = runner.run(studies, out / "summary.csv")  # returns once its writer process has exited
    wall = time.perf_counter() - t0
    result.cpu_s = tuple(after - before for after, before in zip(_cpu_s(), cpu_before))
    return result, listed * 1000.0, wall


def _cpu_s() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its exited children (the writer processes)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def _cpu_line(result, wall_s: float) -> str:
    """CPU time per study of each process: what the rate is on two free cores, whatever else ran beside."""
    n = max(len(result.rows), 1)
    drafting, writer = (1000.0 * s / n for s in result.cpu_s)
    return (
        f"CPU time per study: drafting process {drafting:.0f} ms, writer process {writer:.0f} ms "
        f"({drafting + writer:.0f} ms in all, the writer's start-up included; the batch got "
        f"{sum(result.cpu_s) / wall_s:.2f} CPU cores of the 2 on average). On two cores left to the batch the "
        f"slower process bounds the rate at "
        f"{1000.0 / max(drafting, writer, 1e-9):.0f} studies/s; with the cores shared, the CPU the batch gets does."
    )


#: The drafting process's stages, in the order a study passes them; "draft" is split into the pipeline's own
#: retrieve and generate timings and what the rest of ``ReportPipeline.generate`` took.
DRAFTING = ("prepare", "embed", "draft", "hand-off to the writer", "wait for the writer", "send", "summary")


def _stage_table(result, list_ms: float, wall_s: float) -> list[str]:
    """The drafting process's wall time by stage (they add up to the wall time, "other" being what no
    stage names), then the writer process's busy time by part (it overlaps with the drafting process)."""
    stages = result.stages
    drafted = [r for r in result.rows if r.status == "drafted"]
    fetch, load = (sum(getattr(r, f"{s}_ms") for r in result.rows) for s in ("fetch", "load"))
    retrieve, generate = (sum(getattr(r, f"{s}_ms") for r in drafted) for s in ("retrieve", "generate"))
    totals = {
        "list (headers / search)": list_ms,
        "prepare: fetch (PACS retrieve)": fetch,
        "prepare: read pixels": load,
        "prepare: study bookkeeping (choose the image, resume check)": stages.get("prepare", 0.0) - fetch - load,
        "embed (batched forward pass, image + classifier views)": stages.get("embed", 0.0),
        "draft: retrieve": retrieve,
        "draft: generate (top-1 text + checks)": generate,
        "draft: assemble the DraftReport": stages.get("draft", 0.0) - retrieve - generate,
        "hand-off to the writer (queueing; pickling runs in a feeder thread)": stages.get(
            "hand-off to the writer", 0.0
        ),
        "wait for the writer (back-pressure)": stages.get("wait for the writer", 0.0),
        "send (STOW-RS / C-STORE)": stages.get("send", 0.0),
        "summary (CSV + row.json)": stages.get("summary", 0.0),
    }
    wall_ms = wall_s * 1000.0
    totals["other (loop, progress bar, writer start-up not overlapped)"] = wall_ms - sum(totals.values())
    lines = [
        "Drafting process (its stages add up to the wall time):",
        "",
        "| stage | total s | ms per study | share of wall time |",
        "|---|---|---|---|",
    ]
    n = max(len(result.rows), 1)
    for stage, ms in totals.items():
        if abs(ms) >= 0.5:
            lines.append(f"| {stage} | {ms / 1000:.1f} | {ms / n:.1f} | {100 * ms / wall_ms:.0f}% |")
    writer = {k.removeprefix("write: "): v for k, v in stages.items() if k.startswith("write: ")}
    busy = sum(writer.values())
    lines += [
        "",
        f"Writer process, in parallel: busy {busy / 1000:.1f} s of the {wall_s:.1f} s ({100 * busy / wall_ms:.0f}%); "
        + ", ".join(f"{_PART_NAMES.get(k, k)} {v / n:.1f} ms" for k, v in writer.items())
        + " per study.",
    ]
    return lines


_PART_NAMES = {"sr": "SR (build + write)", "fhir": "FHIR Bundle (build + validate + write)", "json": "draft JSON"}


def main(argv: list[str] | None = None) -> int:
    from eclip_core.runtime import setup_offline

    setup_offline()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--studies", type=int, default=500, help="studies in the folder run")
    p.add_argument("--pacs-studies", type=int, default=200, help="studies in the PACS run (0: skip it)")
    p.add_argument("--unbatched", type=int, default=100, help="studies run with batch size 1 (0: skip)")
    p.add_argument("--batch-size", type=int, default=16, help="studies embedded per forward pass")
    p.add_argument("--size", type=int, default=256, help="phantom image size (px)")
    p.add_argument("--config", default=None, help="PipelineConfig JSON/YAML (default: the default bundle)")
    p.add_argument(
        "--bundle-steps",
        type=int,
        default=None,
        help="use a default bundle trained for this many steps instead of the default's (same model size, so the "
        "same time per study; minutes instead of hours to build on a busy machine)",
    )
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--out", default="docs/perf/batch.md")
    args = p.parse_args(argv)

    import torch

    from eclip_core.cli_config import from_mapping, read_config_file
    from rag_report.pipeline import PipelineConfig, ReportPipeline

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-batch-"))
    t0 = time.perf_counter()
    _write_studies(work / "src", max(args.studies, args.pacs_studies), args.size)
    gen_s = time.perf_counter() - t0
    config = from_mapping(PipelineConfig, read_config_file(args.config)) if args.config else PipelineConfig()
    pipeline_name = "the default bundle" if args.config is None else f"`{Path(args.config).name}`"
    if args.bundle_steps:
        from rag_report.bundle import DefaultBundleConfig, default_bundle

        bundle = default_bundle(DefaultBundleConfig(steps=args.bundle_steps), build=True, progress=False)
        config = PipelineConfig(
            model_dir=str(bundle.eclip_dir), index_dir=str(bundle.index_dir), similarity_floor=bundle.similarity_floor
        )
        pipeline_name = (
            f"the default bundle's configuration trained for {args.bundle_steps} steps instead of "
            f"{DefaultBundleConfig().steps} (same model and index sizes), default PipelineConfig otherwise"
        )
    t0 = time.perf_counter()
    pipe = ReportPipeline(config, progress=False)
    load_s = time.perf_counter() - t0
    folder = work / "folder"
    shutil.copytree(work / "src", folder, dirs_exist_ok=True, ignore=_keep_first(args.studies))
    load_before = os.getloadavg()
    result, list_ms, wall = _run(pipe, str(folder), work / "out-folder", args.batch_size)
    rate = len(result.rows) / wall
    lines = [
        "# Hospital hand-off: batch throughput",
        "",
        f"Command: `python -m eval.bench.serving.batch {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"drafting on {max(1, (os.cpu_count() or 1) - 1)} torch thread(s) beside 1 writer process (the batch's "
        f"defaults); load average before / after the folder run "
        f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f} (1-minute; the batch's own two busy processes count towards the second). "
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Pipeline: {pipeline_name}, mode "
        f"{pipe.resolve_mode(pipe.config.mode)}, loaded in {load_s:.1f} s (not counted below). Studies: a PA and a "
        f"lateral DX of {args.size} px each (phantom pixels, synthetic patients), written in {gen_s:.0f} s "
        "(not counted).",
        "",
        f"## Folder: {len(result.rows)} studies, SR + FHIR + draft JSON per study, batch size {args.batch_size}",
        "",
        f"**{rate:.1f} studies/s** ({wall:.1f} s wall; {result.counts}); target >= 8 studies/s on 2 cores.",
        "",
        _cpu_line(result, wall),
        "",
        *_stage_table(result, list_ms, wall),
        "",
    ]
    _write_page(args.out, lines)  # each part's numbers are kept as soon as they are measured
    if args.unbatched:
        few = work / "few"
        shutil.copytree(work / "src", few, dirs_exist_ok=True, ignore=_keep_first(args.unbatched))
        one, _, wall_one = _run(pipe, str(few), work / "out-one", 1)
        same, _, wall_same = _run(pipe, str(few), work / "out-same", args.batch_size)
        lines += [
            f"Embedding batched across studies, on the first {len(one.rows)} studies: batch size 1 "
            f"{len(one.rows) / wall_one:.1f} studies/s (embed {_mean(one, 'embed'):.1f} ms per study), batch size "
            f"{args.batch_size} {len(same.rows) / wall_same:.1f} studies/s (embed {_mean(same, 'embed'):.1f} ms per study).",
            "",
        ]
        _write_page(args.out, lines)
    if args.pacs_studies:
        lines += _pacs_run(pipe, work, args)
        _write_page(args.out, lines)
    print("\n".join(lines))
    return 0


def _write_page(path: str, lines: list[str]) -> None:
    write_page(path, lines, echo=False)


def _mean(result, stage: str) -> float:
    drafted = [r for r in result.rows if r.status == "drafted"]
    return sum(getattr(r, f"{stage}_ms") for r in drafted) / max(len(drafted), 1)


def _keep_first(n: int):
    """A copytree ignore that keeps the first ``n`` study folders (0000 ... n-1) of the source."""

    def ignore(directory: str, names: list[str]) -> list[str]:
        return [name for name in names if name.isdigit() and int(name) >= n]

    return ignore


def _pacs_run(pipe, work: Path, args) -> list[str]:
    from eval.bench.serving.orthanc import OrthancServer, orthanc_binary

    if orthanc_binary() is None:
        return ["## PACS", "", "Skipped: Orthanc with its DICOMweb plugin is not installed.", ""]
    with OrthancServer(work / "orthanc") as pacs:
        t0 = time.perf_counter()
        for i in range(args.pacs_studies):
            for f in sorted((work / "src" / f"{i:04d}").glob("*.dcm")):
                pacs.upload(f).raise_for_status()
        upload_s = time.perf_counter() - t0
        result, list_ms, wall = _run(pipe, pacs.dicomweb_url, work / "out-pacs", args.batch_size, send=True)
        stored = sum(1 for r in result.rows if r.send == "stored")
        srs = sum(len(pacs.instances_of(sid, "SR")) for sid in pacs.study_ids().values())
    return [
        f"## PACS: {args.pacs_studies} studies from Orthanc (DICOMweb on loopback), SRs stored back (STOW-RS)",
        "",
        f"**{wall:.1f} s** from the QIDO-RS search to the last SR stored ({len(result.rows) / wall:.1f} studies/s; "
        f"{stored} SRs stored, {srs} SRs in the PACS afterwards); target <= 120 s. Upload of the "
        f"{2 * args.pacs_studies} source images beforehand: {upload_s:.0f} s (not counted).",
        "",
        *_stage_table(result, list_ms, wall),
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())
