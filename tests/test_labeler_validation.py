"""The labeler agrees with NegBio's expert labels on real Open-I text (micro-F1 >= 0.90).

The gold labels ship with the package (eval/data, public domain), so this runs on any install that has
torchxrayvision (which ships the report text).
"""

from __future__ import annotations

import pytest


def test_gold_labels_ship_with_their_notice():
    from eval.labeler_validation import DATA_DIR, GOLD_CSV, TESTSET_TXT

    assert (DATA_DIR / GOLD_CSV).is_file() and (DATA_DIR / TESTSET_TXT).is_file()
    assert "PUBLIC DOMAIN NOTICE" in (DATA_DIR / "NOTICE").read_text(encoding="utf-8")


def test_labeler_agrees_with_negbio_gold():
    pytest.importorskip("torchxrayvision")  # ships the Open-I report text
    from eval.labeler_validation import HEADLINE, validate

    results = validate(n_errors=0)  # the gold labels shipped in eval/data
    main = results[HEADLINE]
    assert main.n_reports > 3500
    assert main.micro_f1 >= 0.90, [(c.observation, round(c.f1, 3)) for c in main.categories]
    # every overlapping category is exercised and none is useless
    assert all(c.support > 0 and c.f1 > 0.6 for c in main.categories)
    # counting hedges as positive must not beat the policy the gold follows
    assert results["uncertain_as_positive"].micro_f1 < main.micro_f1


def test_page_reports_the_scores_it_was_given(tmp_path):
    pytest.importorskip("torchxrayvision")
    from eval.labeler_validation import DATA_DIR, HEADLINE, TESTSET_TXT, main, validate

    out = tmp_path / "labeler.md"
    assert main(["--errors", "2", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    full = validate(n_errors=0)
    test = validate(uids=(DATA_DIR / TESTSET_TXT).read_text().split(), n_errors=0)
    headline, other = full[HEADLINE], full["uncertain_as_positive"]
    sections = [line for line in page.splitlines() if line.startswith("## ")]
    assert sections == [
        f"## All {headline.n_reports} gold reports with text, {HEADLINE.replace('_', ' ')} (headline)",
        f"## Uncertain as positive ({other.n_reports} reports)",
        f"## NegBio's test split ({test[HEADLINE].n_reports} reports), {HEADLINE.replace('_', ' ')}",
        "## What remains wrong, by kind",
        f"## Kinds of sentences it gets wrong (first errors per category, {HEADLINE.replace('_', ' ')})",
    ]
    micro = [line for line in page.splitlines() if line.startswith("| **micro** |")]
    assert [line.rsplit("**", 2)[-2] for line in micro] == [
        f"{r.micro_f1:.3f}" for r in (headline, other, test[HEADLINE])
    ]
    assert "Command: `python -m eval.labeler_validation --errors 2 --out" in page
    error_rows = [line for line in page.splitlines() if line.startswith("| ") and "(uids)" not in line]
    assert any(line.count("CXR") >= 1 for line in error_rows)  # the uids of the first errors are listed
