"""The labeler agrees with NegBio's expert labels on real Open-I text (micro-F1 >= 0.90)."""
from __future__ import annotations

import pytest


def test_labeler_agrees_with_negbio_gold(shared_data):
    pytest.importorskip("torchxrayvision")  # ships the Open-I report text
    from eval.labeler_validation import HEADLINE, validate

    results = validate(shared_data, n_errors=0)
    main = results[HEADLINE]
    assert main.n_reports > 3500
    assert main.micro_f1 >= 0.90, [(c.observation, round(c.f1, 3)) for c in main.categories]
    # every overlapping category is exercised and none is useless
    assert all(c.support > 0 and c.f1 > 0.6 for c in main.categories)
    # counting hedges as positive must not beat the policy the gold follows
    assert results["uncertain_as_positive"].micro_f1 < main.micro_f1
