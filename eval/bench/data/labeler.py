"""Benchmark the labeler and the report metrics; writes docs/perf/labeler.md.

    python -m eval.bench.data.labeler            # ~1-2 minutes on 2 cores (METEOR's JVM start dominates)

Measured in one process, as ratios against a baseline measured next to it:

* labeler throughput on the 3,955 Open-I reports, cold and warm sentence cache, against the obvious
  implementation of the same vocabulary (one regex alternation with a named group per phrase);
* NLG metrics on N report pairs (each Open-I report scored against another one): BLEU+ROUGE-L+CIDEr,
  METEOR's first call (JVM start) and its later calls; clinical F1 (labeling both sides) on the same pairs.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import re
import sys
import time
from pathlib import Path

from eval.bench.page import write_page

ROOT = Path(__file__).resolve().parents[3]
log = logging.getLogger(__name__)


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def _baseline_named_groups(texts: list[str]) -> float:
    """Seconds to find mentions with one named group per phrase (the design replaced by find_mentions)."""
    from eclip_core.labeler import vocabulary
    from eclip_core.text import split_sentences

    _, table, _ = vocabulary._compiled()
    rx = re.compile(r"(?<![\w-])(?:" + "|".join(f"(?P<p{i}>{p.pattern})" for i, p in enumerate(table)) + ")")
    sentences = [s.lower() for t in texts for s in split_sentences(t)]
    t0 = time.perf_counter()
    for s in sentences:
        for m in rx.finditer(s):
            table[int(m.lastgroup[1:])]
    return time.perf_counter() - t0


def _mentions_only(texts: list[str]) -> float:
    from eclip_core.labeler.vocabulary import find_mentions
    from eclip_core.text import split_sentences

    sentences = [s.lower() for t in texts for s in split_sentences(t)]
    list(find_mentions("warm up"))
    t0 = time.perf_counter()
    for s in sentences:
        for _ in find_mentions(s):
            pass
    return time.perf_counter() - t0


def run(n_pairs: int = 500, seed: int = 0) -> dict:
    from eclip_core.data.openi import load_openi_reports
    from eclip_core.labeler import core, label_reports
    from eval.metrics import clinical, nlg

    texts = [r.report_text for r in load_openi_reports() if r.report_text]
    res: dict = {"n_reports": len(texts)}
    core.clear_caches()
    res["label_cold_s"], _ = _timed(label_reports, texts)
    res["label_warm_s"], _ = _timed(label_reports, texts)
    res["mentions_new_s"] = _mentions_only(texts)
    res["mentions_named_groups_s"] = _baseline_named_groups(texts)

    rng = random.Random(seed)
    hyps = rng.sample(texts, n_pairs)
    refs = rng.sample(texts, n_pairs)
    res["n_pairs"] = n_pairs
    res["nlg_no_meteor_s"], _ = _timed(nlg.compute_nlg, hyps, refs, meteor=False)
    if nlg.java_available():
        res["meteor_start_s"], _ = _timed(nlg.meteor_scorer)
        gts, r = nlg.prepare(hyps, refs)
        res["meteor_first_s"], _ = _timed(nlg.meteor_scorer().compute_score, gts, r)
        res["meteor_next_s"], _ = _timed(nlg.meteor_scorer().compute_score, gts, r)
    core.clear_caches()
    res["clinical_s"], _ = _timed(clinical.clinical_f1_from_texts, hyps, refs)
    return res


def render(res: dict, command: str) -> str:
    n = res["n_reports"]
    lines = [
        "# Labeler and report metrics",
        "",
        f"Command: `{command}` (from the project root). Machine: {platform.machine()}, {os.cpu_count()} CPU cores "
        f"(shared with other jobs while measured), Python {platform.python_version()}.",
        "",
        "| what | time | rate | ratio vs baseline |",
        "|---|---|---|---|",
        f"| label_reports, {n} Open-I reports, cold sentence cache | {res['label_cold_s']:.2f} s | "
        f"{n / res['label_cold_s']:,.0f} reports/s | baseline |",
        f"| label_reports, same reports, warm cache | {res['label_warm_s']:.2f} s | "
        f"{n / res['label_warm_s']:,.0f} reports/s | {res['label_cold_s'] / res['label_warm_s']:.1f}x faster |",
        f"| mention search, one alternation without groups (used) | {res['mentions_new_s']:.2f} s | | "
        f"{res['mentions_named_groups_s'] / res['mentions_new_s']:.1f}x faster than baseline |",
        f"| mention search, one named group per phrase (baseline) | {res['mentions_named_groups_s']:.2f} s | | "
        "baseline |",
        f"| BLEU-1..4 + ROUGE-L + CIDEr, {res['n_pairs']} report pairs | {res['nlg_no_meteor_s']:.2f} s | "
        f"{res['n_pairs'] / res['nlg_no_meteor_s']:,.0f} pairs/s | baseline |",
    ]
    if "meteor_first_s" in res:
        base = res["nlg_no_meteor_s"]
        lines += [
            f"| METEOR first call (JVM start + warm-up), {res['n_pairs']} pairs | "
            f"{res['meteor_start_s'] + res['meteor_first_s']:.2f} s | | "
            f"{(res['meteor_start_s'] + res['meteor_first_s']) / base:.1f}x the other four |",
            f"| METEOR later call, same pairs (JVM reused) | {res['meteor_next_s']:.2f} s | "
            f"{res['n_pairs'] / res['meteor_next_s']:,.0f} pairs/s | {res['meteor_next_s'] / base:.2f}x |",
        ]
    else:
        lines.append("| METEOR | skipped: no java on PATH | | |")
    lines += [
        f"| clinical F1 (label both sides, cold cache), {res['n_pairs']} pairs | {res['clinical_s']:.2f} s | "
        f"{res['n_pairs'] / res['clinical_s']:,.0f} pairs/s | {res['clinical_s'] / res['nlg_no_meteor_s']:.2f}x "
        "BLEU+ROUGE+CIDEr |",
        "",
        "Reading: report corpora repeat sentences heavily; labels are cached per sentence and per report text, so",
        "re-labelling a corpus (every benchmark system is scored against the same references) costs little.",
        "The METEOR JVM costs seconds to start (more on a loaded machine), which is why one scorer is kept per",
        "process. Timings were taken on a shared 2-core machine under load; treat them as lower bounds.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from eclip_core.runtime import setup_offline

    setup_offline()
    ap = argparse.ArgumentParser(description="Benchmark the labeler and the report metrics.")
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "perf" / "labeler.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    res = run(args.pairs)
    command = ("python -m eval.bench.data.labeler " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    write_page(args.out, render(res, command), echo=False)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
