"""The LLM benchmark's page from measured rows (rows by hand), and its evidence: the nearest Open-I reports."""

from __future__ import annotations

import argparse

from eval.bench.drafting import llm as L
from eval.bench.drafting.evidence import QUERY_UID, evidence_reports


def _row(quant: str, threads: int, tok_s: float, prefill_layers: int = 3) -> dict:
    return {
        "quant": quant,
        "threads": threads,
        "prefill_layers": prefill_layers,
        "prefill_s": 0.25,
        "prefill_tokens": 512,
        "load_s": 1.5,
        "rss_model_mb": 100.0,
        "rss_mb": 900.0,
        "peak_mb": 1000.0,
        "tok_s": tok_s,
        "new_tokens": 48,
        "draft_s": 2.0,
        "draft_passes": 12,
        "draft_prompt_tokens": 500,
        "draft_tokens": 40,
        "draft_sentences": 4,
        "plain_same_tokens_s": 4.0,
        "draft_text": f"FINDINGS: {quant} draft. IMPRESSION: ok.",
        "llm_id": "SmolLM2-135M/fp32",
    }


def test_tables_give_ratios_to_fp32_and_to_plain_generation():
    a = argparse.Namespace(new_tokens=48, threads=[1, 2])
    rows = [_row("none", 1, 10.0), _row("nf4", 1, 15.0), _row("none", 2, 20.0), _row("nf4", 2, 10.0)]
    names = L._case_names(rows)
    assert names["nf4"] == "nf4 (bitsandbytes + dense bf16 prefill)" and names["none"] == "fp32"
    gen = L._generation_table(a, rows, names)
    assert gen[0].startswith("## Greedy generation (48 new tokens")
    body = [line for line in gen if line.startswith("| fp32") or line.startswith("| nf4")]
    assert [line.split(" | ")[7] for line in body] == ["1.00", "1.50", "1.00", "0.50"]  # per thread count
    draft = L._draft_table(a, rows, names)
    assert f"nearest to {QUERY_UID} by TF-IDF" in draft[1]
    assert all(line.endswith("| 4.00 | 0.50 |") for line in draft if line.startswith(("| fp32", "| nf4")))
    # the drafts of the first thread count only
    assert [line for line in draft if line.startswith("- ")] == [
        "- fp32: FINDINGS: none draft. IMPRESSION: ok.",
        "- nf4 (bitsandbytes + dense bf16 prefill): FINDINGS: nf4 draft. IMPRESSION: ok.",
    ]


def test_nf4_without_the_dense_prefill_says_so():
    names = L._case_names([_row("none", 1, 10.0), _row("nf4", 1, 12.0, prefill_layers=0)])
    assert names["nf4"] == "nf4 (default; dense bf16 prefill not available on this CPU)"


def test_evidence_is_the_nearest_other_reports_best_first():
    reports = evidence_reports(3)
    assert len(reports) == 3 and QUERY_UID not in {r["study_id"] for r in reports}
    sims = [r["similarity"] for r in reports]
    assert sims == sorted(sims, reverse=True) and 0 < sims[-1] <= sims[0] <= 1 + 1e-9  # cosine; a twin report: 1
    assert all(r["findings"] and r["impression"] for r in reports)
