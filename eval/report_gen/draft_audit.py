"""Audit drafts for the defects the draft checker must remove, with detectors of its own (not the checker's
patterns): comparison words, list numbering, cut sentences, views not given, other body regions, and an
impression observation that the findings and the image's prediction both lack.

>>> audit_draft("The heart is again enlarged.", "Cardiomegaly, question small bilateral pleural effusions 2.",
...             predicted={"Cardiomegaly": True})
{'comparison': 1, 'numbering': 1, 'cut': 0, 'view': 0, 'region': 0, 'impression': 1}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from eclip_core.text import split_sentences

KINDS = ("comparison", "numbering", "cut", "view", "region", "impression")

_COMPARISON = re.compile(
    r"\b(?:again|redemonstrat\w*|re-demonstrat\w*|stable|unchanged|persist\w*|no longer|new|newly|interval|"
    r"previously|compared|comparison|since|improv\w*|worsen\w*|resolv\w*|remains?|"
    r"(?:has|have|had)\s+(?:increased|decreased)|(?:increased|decreased)\s+(?:in\s+size|since|from|compared)|"
    r"(?:prior|previous)\s+(?:exam|examination|study|film|radiograph|x-ray|image)s?)\b",
    re.IGNORECASE,
)
_NUMBERING = re.compile(
    r"^\(?\d{1,2}\s*[.)](?:\s|[A-Za-z])|[A-Za-z,](?<!\brib)(?<!\bribs)(?<!\blevel)(?<!\b[TLC])\s+\d{1,2}\s*\.$", re.I
)
_CUT_END = re.compile(
    r"\b(?:a|an|the|and|or|of|with|to|for|in|on|at|by|as|but|than|suggest|consistent|compatible|no)\s*\.$",
    re.IGNORECASE,
)
_VIEW = re.compile(
    r"\blateral\s+(?:view|projection|radiograph|film)s?\b|\bon\s+the\s+lateral\s*(?:[.,;]|view)|"
    r"\b(?:frontal|pa|ap)\s+and\s+lateral\b|\bretrosternal\b",
    re.IGNORECASE,
)
_REGION = re.compile(r"\b(?:abdomen|abdominal|pelvis|pelvic|iliac|knees?|hips?|femurs?|forearms?)\b", re.IGNORECASE)


def sentence_defects(sentence: str) -> list[str]:
    """The defect kinds (of :data:`KINDS`, but "impression") one draft sentence shows.

    >>> sentence_defects("No cavitary lesion to suggest. active tuberculosis.")
    ['cut']
    """
    s = sentence.strip()
    out = []
    if _COMPARISON.search(s):
        out.append("comparison")
    if _NUMBERING.search(s):
        out.append("numbering")
    if not s[:1].isupper() and not s[:1].isdigit() or re.search(r"[.!?]\s+[a-z]", s) or _CUT_END.search(s):
        out.append("cut")
    if _VIEW.search(s):
        out.append("view")
    if _REGION.search(s):
        out.append("region")
    return out


def impression_lacks(findings: str, impression: str, predicted: Mapping[str, bool] | None) -> list[str]:
    """Impression sentences calling an observation present (or possible) that the findings do not state
    (nor a related one: rag_report.drafting.checker.RELATED) and the image does not predict."""
    from eclip_core.labeler import sentence_observations
    from rag_report.drafting.checker import RELATED, claims

    stated: set[str] = set()
    for s in split_sentences(findings):
        stated |= {o for o, v in claims(s, sentence_observations).items() if v in (1.0, -1.0)}
    bad = []
    for s in split_sentences(impression):
        for o, v in sentence_observations(s).items():
            if v not in (1.0, -1.0) or o == "No Finding":
                continue
            group = {o} | RELATED.get(o, frozenset())
            if not (group & stated) and not any((predicted or {}).get(g) for g in group):
                bad.append(s)
                break
    return bad


def audit_draft(findings: str, impression: str, predicted: Mapping[str, bool] | None = None) -> dict[str, int]:
    """Count of sentences of one draft with each defect kind."""
    counts = dict.fromkeys(KINDS, 0)
    for s in split_sentences(findings) + split_sentences(impression):
        for kind in sentence_defects(s):
            counts[kind] += 1
    counts["impression"] = len(impression_lacks(findings, impression, predicted))
    return counts


def audit_drafts(drafts: Iterable[tuple[str, str, Mapping[str, bool] | None]]) -> dict[str, int]:
    """Number of drafts (findings, impression, predicted) with at least one defect of each kind."""
    totals = dict.fromkeys(KINDS, 0)
    for findings, impression, predicted in drafts:
        for kind, n in audit_draft(findings, impression, predicted).items():
            totals[kind] += n > 0
    return totals
