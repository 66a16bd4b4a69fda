"""One documented report-text normalisation, applied identically to references, corpus and drafts.

Policy (stated in every benchmark output):

* De-identification tokens: Open-I writes ``XXXX`` (any run of 2+ capital X, possibly several
  separated by spaces), MIMIC writes ``___``. Every such run becomes the single token ``XXXX``.
* Whitespace is collapsed; a missing final period is added to non-empty sections.
* Case is kept for display; metric code lower-cases through :func:`tokenize_for_metrics`.
"""

from __future__ import annotations

import re

DEID_TOKEN = "XXXX"

_DEID_RUN = re.compile(r"(?:\b[Xx]{2,}\b|_{2,})(?:[\s,/-]*(?:\b[Xx]{2,}\b|_{2,}))*")
_SPACES = re.compile(r"\s+")
# Split after . ! ? followed by space + capital/digit, but not after common abbreviations or decimals.
_SENT_END = re.compile(r"(?<!\bDr)(?<!\bvs)(?<!\be\.g)(?<!\bi\.e)(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def normalize_report_text(text: str | None) -> str:
    """Normalise one report section.

    >>> normalize_report_text("Heart size  normal. XXXX XXXX are clear")
    'Heart size normal. XXXX are clear.'
    >>> normalize_report_text("Prior ___ study")
    'Prior XXXX study.'
    """
    if not text:
        return ""
    text = _DEID_RUN.sub(DEID_TOKEN, str(text))
    text = _SPACES.sub(" ", text).strip()
    if text and text[-1] not in ".!?":
        text += "."
    return text


def split_sentences(text: str | None) -> list[str]:
    """Split normalised report text into sentences (each ends with punctuation).

    >>> split_sentences("The heart is normal. No effusion. Lungs clear.")
    ['The heart is normal.', 'No effusion.', 'Lungs clear.']
    """
    text = normalize_report_text(text)
    if not text:
        return []
    parts = [p.strip() for p in _SENT_END.split(text)]
    return [p if p[-1] in ".!?" else p + "." for p in parts if p]


def tokenize_for_metrics(text: str) -> str:
    """Lower-case, separate punctuation: the text form fed to BLEU/METEOR/ROUGE/CIDEr.

    >>> tokenize_for_metrics("No effusion. Heart, normal.")
    'no effusion . heart , normal .'
    """
    text = normalize_report_text(text).lower()
    text = re.sub(r"([.,;:!?()])", r" \1 ", text)
    return _SPACES.sub(" ", text).strip()


def join_report(findings: str | None, impression: str | None) -> str:
    """The full text of a report as the project embeds and scores it: findings then impression.

    >>> join_report("Lungs clear", "No acute disease")
    'Lungs clear. No acute disease.'
    """
    parts = [normalize_report_text(findings), normalize_report_text(impression)]
    return " ".join(p for p in parts if p)
