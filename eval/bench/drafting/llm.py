"""LLM backend benchmark: load time, memory, greedy tokens/s (fp32 / int8 / nf4) and grounded drafting time.

Each (quantization, threads) case runs in its own subprocess, so RSS numbers are that model's alone.
Ratios are against fp32 at the same thread count (tokens/s) and against plain greedy generation of the
same number of tokens in the same process (grounded drafting).

    python -m eval.bench.drafting.llm --out docs/perf/llm.md

``--paired A B`` instead times grounded drafts with quantization A against B in one process, alternating
within rounds, and reports the paired ratio (eval.bench.drafting.llm_paired):

    python -m eval.bench.drafting.llm --paired auto nf4 --rounds 24 --threads 1 --out docs/perf/llm_auto.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eclip_core.runtime import setup_offline  # noqa: E402
from eval.bench.drafting.evidence import QUERY_UID, evidence_reports
from eval.bench.drafting.llm_paired import run_paired
from eval.bench.page import write_page

setup_offline()  # before any Hugging Face library is imported

PROMPT = "Describe the normal appearance of the heart and lungs on a frontal chest X-ray."


NOTES = """## Notes

- The CPU is shared: compare rows of one run, not runs. With the machine oversubscribed, 2 torch threads
  are often SLOWER than 1 (OpenMP threads spin-wait on each other); a tiny model's decoding was 7x faster
  on 1 thread in the same conditions. On a dedicated machine 2 threads win.
- bitsandbytes 0.50 on a CPU with AVX512-BF16 repacks 4-bit weights for its own bf16 kernel: fast for
  one decoded token, but a long prompt through it runs ~2x slower than fp32. "nf4" in the tables is what
  `quantization="auto"` (the default) loads on such a CPU, and it sends inputs of >= 128 rows through a dequantised dense bf16 matmul instead
  (`rag_report.llm.cpu_prefill`, AMX/AVX512-BF16); "nf4, bitsandbytes kernel only" is bitsandbytes as shipped
  (`LLMSpec(cpu_prefill=False)`). int8 has no fused CPU kernel without the `kernels` package (fetched from
  a hub), so it dequantises inside every matmul. 4-bit and 8-bit shrink the
  weights: model.get_memory_footprint() = 513 MB fp32, 209 MB int8, 159 MB nf4 (measured separately).
  The process RSS does not show it: bitsandbytes reads the fp32 checkpoint and quantises in place, and the
  allocator keeps the freed fp32 pages ("model RSS" = RSS after loading minus before). The saving matters
  on CUDA, where `auto` loads nf4 (not measured here: no GPU).
- Grounded drafting costs one forward pass for the prompt plus one per free token choice; once a single
  candidate remains on a trie path its remaining tokens go in one pass (forward passes column)."""


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: Benchmark cases: name -> (LLMSpec.quantization, LLMSpec.cpu_prefill).
CASES = {"none": ("none", True), "int8": ("int8", True), "nf4": ("nf4", True), "nf4-kernel": ("nf4", False)}


def worker(case: str, threads: int, new_tokens: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from rag_report.drafting.grounded import grounded_draft
    from rag_report.llm import LLMSpec, load_llm
    from rag_report.llm.cpu_prefill import prefill_layers

    reports = evidence_reports()
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    quant, cpu_prefill = CASES[case]
    llm = load_llm(LLMSpec(quantization=quant, device="cpu", cpu_prefill=cpu_prefill))
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    from rag_report.drafting.grounded import GroundedConfig
    from rag_report.drafting.prompts import GROUNDED_INSTRUCTION, SYSTEM_RADIOLOGIST, few_shot_user_message

    gcfg = GroundedConfig()
    evidence_prompt = llm.chat_prompt(
        few_shot_user_message(reports, GROUNDED_INSTRUCTION, gcfg.max_prompt_reports, gcfg.max_prompt_chars),
        SYSTEM_RADIOLOGIST,
    )
    evidence_ids = torch.tensor([llm.encode(evidence_prompt)])

    def prefill() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            llm.model(input_ids=evidence_ids, logits_to_keep=1)
        return time.perf_counter() - t

    ids = torch.tensor([llm.encode(llm.chat_prompt(PROMPT))])

    def greedy(n: int) -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            llm.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                min_new_tokens=n,
                max_new_tokens=n,
                pad_token_id=llm.eos_token_ids[0],
            )
        return time.perf_counter() - t

    greedy(4)  # warm-up
    prefill()
    prefill_s = min(prefill() for _ in range(3))
    gen_s = min(greedy(new_tokens) for _ in range(2))
    draft_times, draft = [], None
    for _ in range(3):
        draft = grounded_draft(llm, reports)
        draft_times.append(draft.seconds)
    n_draft_tokens = sum(len(s.token_ids) for s in draft.sentences)
    plain_s = greedy(n_draft_tokens)
    return {
        "quant": case,
        "threads": threads,
        "prefill_layers": prefill_layers(llm.model),
        "prefill_s": prefill_s,
        "prefill_tokens": evidence_ids.shape[1],
        "load_s": load_s,
        "rss_model_mb": rss_loaded - base_rss,
        "rss_mb": rss_loaded,
        "peak_mb": _peak_mb(),
        "tok_s": new_tokens / gen_s,
        "new_tokens": new_tokens,
        "draft_s": sorted(draft_times)[1],
        "draft_passes": draft.forward_passes,
        "draft_prompt_tokens": draft.prompt_tokens,
        "draft_tokens": n_draft_tokens,
        "draft_sentences": len(draft.sentences),
        "plain_same_tokens_s": plain_s,
        "draft_text": f"FINDINGS: {draft.findings} IMPRESSION: {draft.impression}",
        "llm_id": llm.id,
    }


def convert_worker() -> dict:
    from rag_report.llm import convert_gguf, default_gguf_path

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        convert_gguf(default_gguf_path(), Path(tmp) / "conv")
        return {"convert_s": time.perf_counter() - t0, "peak_mb": _peak_mb()}


def _run(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "eval.bench.drafting.llm", *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    a = _parser().parse_args(argv)
    if a.convert:
        print(json.dumps(convert_worker()))
        return
    if a.worker:
        print(json.dumps(worker(a.worker, a.threads[0], a.new_tokens)))
        return
    cmd = "python -m eval.bench.drafting.llm " + " ".join(argv if argv is not None else sys.argv[1:])
    if a.paired:
        run_paired(a.paired[0], a.paired[1], rounds=a.rounds, threads=a.threads[0], out=a.out, command=cmd)
        return

    from rag_report.llm import convert_gguf, default_gguf_path

    convert_gguf(default_gguf_path())  # the cached folder every case loads from
    load_before = os.getloadavg()
    conv = _run(["--convert"])
    rows = [
        _run(["--worker", q, "--threads", str(t), "--new-tokens", str(a.new_tokens)])
        for t in a.threads
        for q in a.quant
    ]
    load_after = os.getloadavg()
    name = _case_names(rows)
    lines = _header(a, cmd, conv, rows, (load_before[0], load_after[0]))
    lines += _generation_table(a, rows, name) + _draft_table(a, rows, name) + ["", NOTES]
    write_page(a.out, lines)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/perf/llm.md")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quant", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument(
        "--paired",
        nargs=2,
        metavar=("A", "B"),
        default=None,
        help="time grounded drafts with quantization A against B in one process, alternating "
        "within rounds (eval.bench.drafting.llm_paired); e.g. --paired auto nf4",
    )
    ap.add_argument("--rounds", type=int, default=24, help="rounds of --paired")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--convert", action="store_true", help=argparse.SUPPRESS)
    return ap


def _case_names(rows: list[dict]) -> dict[str, str]:
    """The table name of each case; nf4 says so where the dense bf16 prefill did not install (no AVX512-BF16)."""
    names = {
        "none": "fp32",
        "int8": "int8 (bitsandbytes)",
        "nf4": "nf4 (bitsandbytes + dense bf16 prefill)",
        "nf4-kernel": "nf4, bitsandbytes kernel only",
    }
    return {
        k: (
            v
            if k != "nf4" or all(r.get("prefill_layers", 1) for r in rows if r["quant"] == "nf4")
            else "nf4 (default; dense bf16 prefill not available on this CPU)"
        )
        for k, v in names.items()
    }


def _header(a: argparse.Namespace, cmd: str, conv: dict, rows: list[dict], loads: tuple[float, float]) -> list[str]:
    """Title, command, machine (with the load average around the run) and the one-time conversion."""
    return [
        "# LLM backends: load, memory, tokens/s, grounded drafting",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other processes (load average "
        f"{loads[0]:.1f} before, {loads[1]:.1f} after), Python {platform.python_version()}; "
        f"model {rows[0]['llm_id'].split('/')[0]}; each case in its own process.",
        "",
        f"One-time GGUF -> HF folder conversion: {conv['convert_s']:.1f} s, peak RSS {conv['peak_mb']:.0f} MB.",
        "",
    ]


def _generation_table(a: argparse.Namespace, rows: list[dict], name: dict[str, str]) -> list[str]:
    """Load, memory and greedy tokens/s per case, against fp32 at the same thread count."""
    fp32 = {r["threads"]: r["tok_s"] for r in rows if r["quant"] == "none"}
    lines = [
        f"## Greedy generation ({a.new_tokens} new tokens, same prompt; ratio = tokens/s / fp32 tokens/s at "
        "the same thread count)",
        "",
        "| quantization | torch threads | load (s) | RSS after load (MB) | model RSS (MB) | peak RSS (MB) "
        "| tokens/s | ratio vs fp32 | evidence prompt forward (s) | prompt tokens |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {name[r['quant']]} | {r['threads']} | {r['load_s']:.1f} | {r['rss_mb']:.0f} | "
            f"{r['rss_model_mb']:.0f} | {r['peak_mb']:.0f} | {r['tok_s']:.1f} | "
            f"{r['tok_s'] / fp32[r['threads']]:.2f} | {r['prefill_s']:.3f} | {r['prefill_tokens']} |"
        )
    return lines


def _draft_table(a: argparse.Namespace, rows: list[dict], name: dict[str, str]) -> list[str]:
    """One grounded draft per case against plain greedy generation of as many tokens, and the drafts."""
    lines = [
        "",
        f"## One grounded draft (5 Open-I reports nearest to {QUERY_UID} by TF-IDF; median of 3)",
        "",
        "Baseline: plain greedy generation of the same number of tokens in the same process (ratio = grounded "
        "/ plain; the grounded time includes encoding the ~500-token evidence prompt and the labeler).",
        "",
        "| quantization | torch threads | draft (s) | sentences | tokens | forward passes | prompt tokens "
        "| plain greedy, same tokens (s) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {name[r['quant']]} | {r['threads']} | {r['draft_s']:.2f} | {r['draft_sentences']} | "
            f"{r['draft_tokens']} | {r['draft_passes']} | {r['draft_prompt_tokens']} | "
            f"{r['plain_same_tokens_s']:.2f} | {r['draft_s'] / r['plain_same_tokens_s']:.2f} |"
        )
    lines += ["", "Drafts (fp32 and nf4 should agree closely; every sentence is one of the evidence's):", ""]
    for r in rows:
        if r["threads"] == a.threads[0]:
            lines.append(f"- {name[r['quant']]}: {r['draft_text']}")
    return lines


if __name__ == "__main__":
    main()
