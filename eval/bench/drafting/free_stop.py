"""Benchmark: free-mode drafting with and without stopping at the first loop, in one process.

    python -m eval.bench.drafting.free_stop --n 10 --out docs/perf/free_stop.md

For the first ``n`` test studies of the default bundle (sorted by id, own study excluded), the retrieved,
k-means-diversified reports go to :func:`rag_report.drafting.free.free_draft` twice, greedy, 200 new tokens: with
``FreeConfig(stop_at_loop=False)`` (generate to the token limit, then cut at the first loop) and with the
default ``stop_at_loop=True`` (end generation once the cut is certain). Alternating per study, so machine
load hits both alike. Reports generated tokens, seconds, and whether the two drafts are identical.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from eclip_core.runtime import setup_offline  # noqa: E402
from eval.bench.page import write_page

setup_offline()  # before any Hugging Face library is imported


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--quantization", choices=("auto", "nf4", "int8", "none"), default="auto")
    p.add_argument("--out", default="docs/perf/free_stop.md")
    args = p.parse_args(argv)

    import torch

    from eclip_core.data.manifest import read_manifest
    from rag_report.bundle import default_bundle
    from rag_report.drafting.free import FreeConfig, free_draft
    from rag_report.pipeline import PipelineConfig, ReportPipeline

    bundle = default_bundle(build=True, progress=False)
    tests = sorted((s for s in read_manifest(bundle.manifest_path) if s.split == "test"), key=lambda s: s.study_id)
    pipe = ReportPipeline(PipelineConfig(quantization=args.quantization), progress=False)
    llm = pipe.llm()
    rows = []
    for s in tests[: args.n]:
        query = pipe.model.embed_images([s.image_paths[0]], progress=False)[0]
        reports = pipe.retriever.retrieve_vector(
            query,
            k=pipe.config.k,
            candidates=pipe.config.candidates,
            diversify=pipe.config.diversify,
            exclude_study_ids=[s.study_id],
        )
        out = {}
        for stop in (False, True):
            cfg = FreeConfig(num_beams=1, stop_at_loop=stop)
            t0 = time.perf_counter()
            d = free_draft(llm, reports, cfg)
            out[stop] = (time.perf_counter() - t0, len(llm.encode(d.raw_text)), d.findings + " | " + d.impression)
        rows.append((s.study_id, out))
    t_full = sum(r[1][False][0] for r in rows)
    t_stop = sum(r[1][True][0] for r in rows)
    tok_full = sum(r[1][False][1] for r in rows)
    tok_stop = sum(r[1][True][1] for r in rows)
    same = sum(r[1][False][2] == r[1][True][2] for r in rows)
    cmd = "python -m eval.bench.drafting.free_stop " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Free mode: stopping at the first loop",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f} when "
        f"written), torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. LLM `{llm.id}`; bundle {bundle.root.name}; "
        f"the first {len(rows)} test studies, greedy, 200 new tokens at most.",
        "",
        "| study | tokens (to the limit) | tokens (stop at loop) | s (to the limit) | s (stop at loop) | same draft |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for sid, out in rows:
        lines.append(
            f"| {sid} | {out[False][1]} | {out[True][1]} | {out[False][0]:.1f} | {out[True][0]:.1f} | "
            f"{'yes' if out[False][2] == out[True][2] else 'NO'} |"
        )
    lines += [
        "",
        f"Total: {tok_full} -> {tok_stop} generated tokens, {t_full:.1f} -> {t_stop:.1f} s "
        f"(**{t_stop / t_full:.2f}x** the time); identical drafts: {same} of {len(rows)}.",
        "",
    ]
    write_page(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
