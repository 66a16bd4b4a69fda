"""Two LLM precisions in one process, timed on the same grounded drafts in alternating order.

    python -m eval.bench.drafting.llm --paired auto nf4 --rounds 24 --threads 1 --out docs/perf/llm_auto.md

Both models are loaded once and warmed up; each round drafts one evidence set (the 5 Open-I reports
nearest by TF-IDF to one of a few fixed query reports, in turn) with both, the order alternating from
round to round. On a shared CPU the load changes from minute to minute, so the ratio is taken within each
round and summarised by its median and bootstrap interval (:func:`eval.bench.stats.paired_ratio`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from eval.bench.drafting.evidence import evidence_reports
from eval.bench.page import write_page

#: Query reports whose TF-IDF neighbours are the evidence sets (the first is eval.bench.drafting.evidence.QUERY_UID).
QUERY_UIDS = ("CXR3166", "CXR500", "CXR1000", "CXR1500", "CXR2000", "CXR2500", "CXR3000", "CXR3500")
#: The share of nf4's warm grounded-draft time that "auto" should take at most where it resolves otherwise.
TARGET = 0.7


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _evidence_sets() -> list[tuple[str, list[dict]]]:
    from eclip_core.data.openi import load_openi_reports

    have = {r.uid for r in load_openi_reports() if r.findings and r.impression}
    return [(uid, evidence_reports(5, uid)) for uid in QUERY_UIDS if uid in have]


def time_rounds(drafters: dict, sets: list, rounds: int) -> dict[str, dict[str, list]]:
    """Per variant: wall and CPU seconds and draft texts per round; the variant order alternates."""
    names = list(drafters)
    out = {n: {"wall": [], "cpu": [], "text": [], "passes": []} for n in names}
    for r in range(rounds):
        _, reports = sets[r % len(sets)]
        for name in names if r % 2 == 0 else names[::-1]:
            w, c = time.perf_counter(), time.process_time()
            draft = drafters[name](reports)
            out[name]["wall"].append(time.perf_counter() - w)
            out[name]["cpu"].append(time.process_time() - c)
            out[name]["text"].append(f"FINDINGS: {draft.findings} IMPRESSION: {draft.impression}")
            out[name]["passes"].append(int(getattr(draft, "forward_passes", 0)))
    return out


def run_paired(a: str, b: str, *, rounds: int, threads: int, out: str, command: str) -> str:
    """Measure, write the page to ``out``, return its text."""
    import torch

    torch.set_num_threads(threads)
    from eval.bench.stats import p50_ratio, paired_ratio
    from rag_report.drafting.grounded import grounded_draft
    from rag_report.llm import LLMSpec, load_llm
    from rag_report.llm.precision import choose_quantization, has_bf16_matmul

    sets = _evidence_sets()
    load_before = os.getloadavg()[0]
    llms = {q: load_llm(LLMSpec(quantization=q, device="cpu")) for q in (a, b)}
    drafters = {q: (lambda reports, llm=llm: grounded_draft(llm, reports)) for q, llm in llms.items()}
    for q in drafters:  # warm-up: first forward passes, allocator, tokenizer caches
        drafters[q](sets[0][1])
    res = time_rounds(drafters, sets, rounds)
    load_after = os.getloadavg()[0]
    ratios = {
        "p50": {k: p50_ratio(res[a][k], res[b][k]) for k in ("wall", "cpu")},
        "paired": {k: paired_ratio(res[a][k], res[b][k]) for k in ("wall", "cpu")},
    }
    same = np.mean([x == y for x, y in zip(res[a]["text"], res[b]["text"])])
    p50 = {q: {k: float(np.median(res[q][k])) for k in ("wall", "cpu", "passes")} for q in (a, b)}
    bf16 = has_bf16_matmul()
    lines = [
        f"# LLM precision `{a}` against `{b}`: paired grounded drafts",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {platform.machine()}, {_cpu_model()}, {os.cpu_count()} cores shared with other jobs (load "
        f"average {load_before:.1f} before, {load_after:.1f} after); bf16 matrix instructions "
        f"(AVX512-BF16 or AMX): {'yes' if bf16 else 'no'}; torch {torch.__version__}, {threads} thread(s). "
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| quantization | loads as | LLM | warm draft p50, wall (s) | p50, CPU time (s) | forward passes p50 |",
        "|---|---|---|---:|---:|---:|",
    ]
    for q in (a, b):
        lines.append(
            f"| `{q}` | {choose_quantization(q, 'cpu').describe()} | `{llms[q].id}` | "
            f"{p50[q]['wall']:.2f} | {p50[q]['cpu']:.2f} | {p50[q]['passes']:.0f} |"
        )
    lines += [
        "",
        f"| `{a}` / `{b}` | wall time | CPU time | target | verdict (CPU time) |",
        "|---|---|---|---|---|",
        f"| ratio of the p50s | {ratios['p50']['wall']} | {ratios['p50']['cpu']} | <= {TARGET}x | "
        f"{ratios['p50']['cpu'].verdict(TARGET)} |",
        f"| median of per-round ratios | {ratios['paired']['wall']} | {ratios['paired']['cpu']} | <= {TARGET}x | "
        f"{ratios['paired']['cpu'].verdict(TARGET)} |",
        "",
        f"{rounds} rounds after one warm-up draft per model; each round drafts one of {len(sets)} evidence sets "
        f"(the 5 Open-I reports nearest by TF-IDF to {', '.join(u for u, _ in sets)}, in turn) with both "
        "models, in alternating order. Intervals: 95 % bootstrap over rounds, resampling both models' times "
        "of a round together (`eval.bench.stats.p50_ratio` for the ratio of the p50s, "
        "`eval.bench.stats.paired_ratio` for the median of per-round ratios). CPU time is this process's, so "
        "time spent waiting for a core on the shared machine is left out; a target is *met* when the whole "
        f"CPU-time interval is at or under it. The two models wrote the same draft in {same:.0%} of the "
        "rounds: a different precision can pick other evidence sentences, so the two may do different work "
        "for the same input, and the two ratios differ.",
    ]
    print(json.dumps({q: {k: res[q][k] for k in ("wall", "cpu", "passes")} for q in (a, b)}))
    text = "\n".join(lines) + "\n"
    write_page(out, text)
    return text
