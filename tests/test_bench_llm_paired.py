"""The paired LLM benchmark's timing loop: both variants every round, order alternating, same evidence."""

from __future__ import annotations

import types

from eval.bench.drafting.llm_paired import time_rounds


def test_rounds_alternate_the_order_and_share_the_evidence():
    calls = []

    def drafter(name):
        def draft(reports):
            calls.append((name, reports[0]))
            return types.SimpleNamespace(findings=f"{name} f", impression="i")

        return draft

    sets = [("q1", ["e1"]), ("q2", ["e2"])]
    res = time_rounds({"auto": drafter("auto"), "nf4": drafter("nf4")}, sets, rounds=4)
    assert calls == [
        ("auto", "e1"),
        ("nf4", "e1"),
        ("nf4", "e2"),
        ("auto", "e2"),
        ("auto", "e1"),
        ("nf4", "e1"),
        ("nf4", "e2"),
        ("auto", "e2"),
    ]
    for name in ("auto", "nf4"):
        assert len(res[name]["wall"]) == len(res[name]["cpu"]) == 4
        assert all(t >= 0 for t in res[name]["wall"])
        assert res[name]["text"][0] == f"FINDINGS: {name} f IMPRESSION: i"
