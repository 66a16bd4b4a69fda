"""The paired bootstrap of LLM-vs-top-1 differences: its BLEU-4 is pycocoevalcap's, its intervals hold the
difference, and the default-mode rule reads them as documented."""

from __future__ import annotations

import numpy as np

from eval.report_gen.paired_ci import bleu_stats, corpus_bleu4, llm_wins, paired_bootstrap


def _reports(n: int) -> list[str]:
    from eclip_core.data.openi import load_openi_reports
    from eclip_core.text import join_report

    return [join_report(r.findings, r.impression) for r in load_openi_reports() if r.has_text][:n]


def test_corpus_bleu4_is_pycocoevalcaps():
    from eval.metrics.nlg import compute_nlg, prepare

    refs = _reports(120)
    hyps = refs[1:] + refs[:1]
    gts, res = prepare(hyps, refs)
    stats = np.stack([bleu_stats(gts[i][0], res[i][0]) for i in range(len(gts))])
    assert abs(corpus_bleu4(stats) - compute_nlg(hyps, refs, meteor=False)["BLEU-4"]) < 1e-9


def test_intervals_hold_the_difference_and_identical_systems_differ_by_zero():
    refs = _reports(80)
    a = refs[:40] + refs[41:] + refs[:1]  # half the drafts are the reference itself
    b = refs[1:] + refs[:1]
    out = paired_bootstrap(refs, a, b, n_boot=200)
    for m, c in out.items():
        assert c["low"] <= c["diff"] <= c["high"], m
        assert abs(c["diff"] - (c["a"] - c["b"])) < 1e-12
    assert out["ROUGE-L"]["low"] > 0 and out["micro_f1_5"]["diff"] > 0  # copying the reference wins
    same = paired_bootstrap(refs, b, b, n_boot=50)
    assert all(c["diff"] == c["low"] == c["high"] == 0.0 for c in same.values())
    assert not llm_wins(same)  # equal is not better on ROUGE-L or CIDEr
