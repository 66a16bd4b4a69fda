"""Negation and uncertainty rules of the labeler (NegEx-style cues with a clause scope).

A mention is judged inside its *scope*: the stretch of the sentence between the nearest scope breakers
("but", "however", "although", ";", "there is", ...) on either side. Within it:

1. a double-negative hedge ("cannot be excluded", "not ruled out") on either side -> uncertain;
2. a negation cue before the mention ("no", "without", "negative for", "free of", "clear of",
   "resolution of") or after it ("has resolved", "is not seen", "absent") -> negative;
3. an uncertainty cue before it ("may", "possible", "suspicious for", "versus", ...) or after it
   ("versus", "is suspected", "?") -> uncertain;
4. otherwise positive.

Pseudo-negations ("no change in", "no interval change") are masked out first so that "no change in the
small effusion" stays positive. Cues farther than :data:`MAX_CUE_WORDS` words from the mention do not
reach it (lists such as "no consolidation, effusion, or pneumothorax" stay inside that distance).
"""

from __future__ import annotations

import re

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0

#: A cue reaches a mention at most this many words away (NegEx uses 5-6; report lists are longer).
MAX_CUE_WORDS = 14

_PSEUDO_NEG = re.compile(
    r"\b(?:no|without|not)(?: (?:significant|appreciable|interval|definite|substantial|apparent|"
    r"other|further|major|marked|acute))*(?: (?:significant|interval))? (?:change|changes|increase|"
    r"decrease|progression|worsening|improvement|enlargement in size)\b(?: (?:in|of|from))?"
    r"|\bnot (?:significantly |substantially )?(?:changed|increased|decreased|worsened|improved)\b"
    r"|\bnot only\b|\bno longer (?:increased|enlarged)\b"
)

# Double negatives that mean "possible": found before negation so their "not" is not a negation cue.
_DOUBLE_NEG_UNC = re.compile(
    r"\b(?:cannot|can ?not|can't|could not|couldn't|not|unable to|difficult to|does not|doesn't|"
    r"may not|would not|to)(?: be)?(?: (?:entirely|completely|totally|definitely|fully|reliably|"
    r"confidently|excluded))?(?: be)? (?:exclude[ds]?|excluding|ruled? out|r/o)\b"
    r"|\b(?:rule[- ]out|r/o|exclude)\b"
)

_PRE_NEG = re.compile(
    r"\b(?:no|not|without|negative for|free of|clear of|absence of|absent|resolution of|resolved|"
    r"removal of|clearing of|rather than|neither|nor|never|none|ruled out|excluded|no evidence of|"
    r"no signs? of|interval resolution of|disappearance of)\b"
)

_POST_NEG = re.compile(
    r"\b(?:(?:has|have|had)(?: now)?(?: since)?(?: been)? (?:resolved|cleared|removed|withdrawn)"
    r"|(?:is|are|was|were)(?: now)? (?:resolved|gone|absent|cleared|removed)"
    r"|(?:is|are|was|were|has|have)?(?: been)? ?(?:not|no longer) (?:\w+ )?(?:seen|identified|present|"
    r"visualized|visualised|evident|appreciated|demonstrated|noted|detected|visible|apparent|"
    r"identifiable|shown|enlarged)"
    r"|resolved|absent|(?:is|are) negative|ruled out)\b"
)

_PRE_UNC = re.compile(
    r"\b(?:may|maybe|might|could|possible|possibly|probable|probably|likely|questionable|questionably|"
    r"question of|question|questioned|evaluation for|correlate|correlation|clinical setting|suspicious|"
    r"suspicion|suspect|suspected|suggest|suggests|suggesting|suggestive|suggestion|"
    r"concern|concerning|worrisome|differential|versus|vs|equivocal|indeterminate|uncertain|presumed|"
    r"presumably|favor|favors|favored|favoured|favoring|favouring|atypical|if|"
    r"perhaps|cannot be|not entirely clear|"
    r"would be (?:difficult|hard))\b|\?"
)

_POST_UNC = re.compile(
    r"\b(?:(?:is|are) (?:possible|likely|questioned|questionable|suspected|considered|not excluded|"
    r"a possibility|not entirely excluded)|versus|vs|(?:may|could|might) be (?:present|seen|noted)|"
    r"questioned|suspected|possibly|probably|not (?:entirely )?(?:excluded|ruled out)|"
    r"(?:is|are) (?:in|on) the differential|(?:would be|is|are) (?:a|another) consideration|"
    r"(?:is|are) (?:also )?possible)\b|\?"
)

# Scope breakers: a cue never reaches across one of these.
_BREAK = re.compile(
    r"[;:]|\b(?:but|however|although|though|except|aside from|apart from|other than|otherwise|which|"
    r"whereas|while|there (?:is|are|has|have|was|were|may|might|could)|(?:is|are) (?:seen|noted|present|"
    r"again seen)|"
    r"given|because|and (?:the|there|a|an))\b"
)
# Negation stops at these too ("no cardiomegaly with small effusions"), hedges do not ("may be
# compatible with atelectasis").
_BREAK_NEG_ONLY = re.compile(r"\b(?:with|consistent with|compatible with|due to|secondary to|related to)\b")

_WORD = re.compile(r"\S+")


def mask(sentence: str) -> tuple[str, list[tuple[int, int]]]:
    """Blank out pseudo-negations and return double-negative hedge spans (same string length).

    >>> mask("no change in the effusion")[0].strip()
    'the effusion'
    """

    def blank(m: re.Match[str]) -> str:
        return " " * len(m.group(0))

    s = _PSEUDO_NEG.sub(blank, sentence)
    hedges = [m.span() for m in _DOUBLE_NEG_UNC.finditer(s)]
    for a, b in hedges:
        s = s[:a] + " " * (b - a) + s[b:]
    return s, hedges


def _breaks(s: str) -> list[int]:
    return [m.start() for m in _BREAK.finditer(s)]


def _breaks_neg(s: str) -> list[int]:
    return [m.start() for m in _BREAK_NEG_ONLY.finditer(s)]


def _n_words(text: str) -> int:
    return len(_WORD.findall(text))


def _scope(breaks: list[int], start: int, end: int, length: int) -> tuple[int, int]:
    """Characters [lo, hi) of the clause around [start, end): bounded by the nearest breakers."""
    lo = max((b for b in breaks if b <= start), default=0)
    hi = min((b for b in breaks if b >= end), default=length)
    return lo, hi


def _cue_before(rx: re.Pattern[str], s: str, lo: int, start: int) -> bool:
    for m in rx.finditer(s, lo, start):
        if _n_words(s[m.end() : start]) <= MAX_CUE_WORDS:
            return True
    return False


def _cue_after(rx: re.Pattern[str], s: str, end: int, hi: int) -> bool:
    m = rx.search(s, end, hi)
    return bool(m and _n_words(s[end : m.start()]) <= MAX_CUE_WORDS)


def polarity(s: str, hedges: list[tuple[int, int]], start: int, end: int, breaks: list[int] | None = None) -> float:
    """Polarity (1.0 / 0.0 / -1.0) of the mention at ``s[start:end]``; ``s`` comes from :func:`mask`.

    >>> s, h = mask("no evidence of pneumothorax")
    >>> polarity(s, h, 15, 27)
    0.0
    """
    if breaks is None:
        breaks = _breaks(s)
    lo, hi = _scope(breaks, start, end, len(s))
    if any(lo <= a < hi and (a >= end or _n_words(s[b:start]) <= MAX_CUE_WORDS) for a, b in hedges):
        return UNCERTAIN
    nlo, nhi = _scope(_breaks_neg(s), start, end, len(s))
    if _cue_before(_PRE_NEG, s, max(lo, nlo), start) or _cue_after(_POST_NEG, s, end, min(hi, nhi)):
        return NEGATIVE
    if _cue_before(_PRE_UNC, s, lo, start) or _cue_after(_POST_UNC, s, end, hi):
        return UNCERTAIN
    return POSITIVE


def breaks_of(s: str) -> list[int]:
    """Positions of scope breakers in a masked sentence (computed once per sentence)."""
    return _breaks(s)


__all__ = ["mask", "polarity", "breaks_of", "POSITIVE", "NEGATIVE", "UNCERTAIN", "MAX_CUE_WORDS"]
