"""The CheXpert-style rule labeler: sentences -> mentions -> polarity -> report labels.

Report labels follow the CheXpert aggregation: per observation, positive if any sentence is positive,
else uncertain if any is uncertain, else negative if mentioned, else not mentioned (None / NaN).
"No Finding" is positive exactly when the text is non-empty and no other observation except Support
Devices is positive or uncertain; otherwise it is not mentioned. Laterality, severity and location do
not enter the labels. Sentences are split with :func:`eclip_core.text.split_sentences`; a sentence's
observations are cached, since report corpora repeat sentences heavily.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable

import numpy as np
from tqdm.auto import tqdm

from eclip_core.labeler import rules
from eclip_core.labeler.vocabulary import ANATOMICAL, find_mentions
from eclip_core.labels import CHEXPERT_OBSERVATIONS
from eclip_core.text import split_sentences

log = logging.getLogger(__name__)

NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"
_INDEX = {name: i for i, name in enumerate(CHEXPERT_OBSERVATIONS)}

# Size descriptors that turn an anatomical mention ("heart size", "mediastinum") into a label.
# "Borderline" grades size (IU annotators code "Cardiomegaly/borderline"), so it counts as enlarged.
_DESC_ABNORMAL = re.compile(
    r"\b(?:enlarg\w*|large|larger|prominen\w*|widen\w*|wide|increased?|increasing|dilat\w*|globular|"
    r"cardiomegaly|big|abnormal\w*|borderline)\b"
)
_DESC_UNCERTAIN = re.compile(r"\b(?:equivocal\w*|questionabl\w*|possibl\w*)\b")
_DESC_NORMAL = re.compile(
    r"\b(?:normal\w*|within (?:the )?normal limits|wnl|unremarkable|upper limits? of normal|top normal|"
    r"top-normal|high normal|upper normal|small|not enlarged|maintained|preserved|negative)\b"
)
# A descriptor followed closely by another structure describes that one ("enlarged ... aorta").
_DESC_OTHER_NOUN = re.compile(
    r"(?:\s+[\w-]+){0,4}?\s+(?:aort\w*|hil\w*|trachea|arter\w*|lymph|nodes?|vessels?|vascul\w*|ventric\w*|"
    r"atri\w*|thyroid|esophag\w*|hernia|azygos)\b"
)
_LINK_VERB = re.compile(r"\b(?:is|are|was|were|appears?|remains?|seems?|looks?|be|been)\b")
_DESC_NEGATED = re.compile(r"\b(?:not|no|without|nor)\b(?:\s+\S+){0,2}\s*$")
# Clause around an anatomical mention in which its descriptor is looked for first.
_DESC_CLAUSE = re.compile(r"[,;:]|\b(?:but|however|although|whereas|while|with|and (?:the|there))\b")
_DESC_AFTER_STOP = re.compile(r"[;]|\b(?:but|however|although|whereas|while)\b")

# Explicit whole-study normal statements ("No acute cardiopulmonary disease."): sentence-level only.
_GLOBAL_NORMAL = re.compile(
    r"\bno (?:\w+ ){0,3}(?:disease|abnormalit(?:y|ies)|process|findings?|pathology|abnormality)\b"
    r"|\b(?:normal|negative|unremarkable|clear) (?:\w+ )?(?:chest|study|exam\w*|radiograph\w*|x-?\w*|film)\b"
    r"|\b(?:chest|study|exam\w*|radiograph\w*) (?:is |are )?(?:normal|negative|unremarkable)\b"
)


def _combine(old: float | None, new: float) -> float:
    """Positive beats uncertain beats negative (CheXpert's aggregation)."""
    if old is None:
        return new
    if 1.0 in (old, new):
        return 1.0
    if -1.0 in (old, new):
        return -1.0
    return 0.0


def _anatomical_polarity(s: str, hedges, breaks, start: int, end: int) -> float | None:
    """Label of an anatomical mention from the nearest size descriptor, or None without one."""
    clauses = [m.start() for m in _DESC_CLAUSE.finditer(s)]
    lo = max((c for c in clauses if c <= start), default=0)
    hi = min((c for c in clauses if c >= end), default=len(s))
    windows = [(lo, hi)]
    stop = _DESC_AFTER_STOP.search(s, end)
    windows.append((end, stop.start() if stop else len(s)))
    for a, b in windows:
        best = None
        for rx, kind in ((_DESC_ABNORMAL, "abn"), (_DESC_UNCERTAIN, "unc"), (_DESC_NORMAL, "norm")):
            for m in rx.finditer(s, a, b):
                if start <= m.start() < end:
                    continue  # inside the mention itself
                if m.start() >= end and _DESC_OTHER_NOUN.match(s, m.end()) and not _LINK_VERB.search(s, end, m.start()):
                    continue  # pre-modifies another structure, not predicated of this mention
                dist = m.start() - end if m.start() >= end else start - m.end()
                if best is None or dist < best[0]:
                    best = (dist, kind, m)
        if best is None:
            continue
        _, kind, m = best
        if kind == "norm":
            return rules.NEGATIVE
        if kind == "unc":
            return rules.UNCERTAIN
        if _DESC_NEGATED.search(s[: m.start()]):
            return rules.NEGATIVE
        return rules.polarity(s, hedges, min(start, m.start()), max(end, m.end()), breaks)
    return None


@functools.lru_cache(maxsize=200_000)
def _sentence_items(sentence: str) -> tuple[tuple[str, float], ...]:
    low = sentence.lower()
    s, hedges = rules.mask(low)
    breaks = rules.breaks_of(s)
    found: dict[str, float] = {}
    # Mentions are found on the unmasked text (a hedge may contain a mention word, e.g. "exclude").
    for start, end, phrase in find_mentions(low):
        if phrase.observation is None:
            continue
        if phrase.kind == ANATOMICAL:
            pol = _anatomical_polarity(s, hedges, breaks, start, end)
            if pol is None:
                continue
        else:
            pol = rules.polarity(s, hedges, start, end, breaks)
        found[phrase.observation] = _combine(found.get(phrase.observation), pol)
    if not any(v in (1.0, -1.0) for k, v in found.items() if k != SUPPORT_DEVICES) and _GLOBAL_NORMAL.search(s):
        found[NO_FINDING] = 1.0
    return tuple(sorted(found.items(), key=lambda kv: _INDEX[kv[0]]))


def sentence_observations(sentence: str) -> dict[str, float]:
    """Observations one sentence mentions, with polarity (1.0 / 0.0 / -1.0); unmentioned ones are absent.

    "No Finding": 1.0 appears for an explicit whole-study normal statement ("No acute disease.") that
    mentions nothing positive; the report-level "No Finding" always follows the CheXpert rule instead.

    >>> sentence_observations("No evidence of pneumothorax.")
    {'Pneumothorax': 0.0}
    >>> sentence_observations("Findings may represent atelectasis.")
    {'Atelectasis': -1.0}
    """
    return dict(_sentence_items(_as_text(sentence)))


def label_report(text: str | None) -> dict[str, float | None]:
    """CheXpert-style labels of one report (pass findings + impression; not indication/comparison).

    >>> labels = label_report("Heart size is normal. Small left pleural effusion. No pneumothorax.")
    >>> labels["Pleural Effusion"], labels["Pneumothorax"], labels["Cardiomegaly"], labels["Edema"]
    (1.0, 0.0, 0.0, None)
    >>> label_report("No acute cardiopulmonary abnormality.")["No Finding"]
    1.0
    """
    return dict(zip(CHEXPERT_OBSERVATIONS, _report_values(_as_text(text))))


def _as_text(text) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise TypeError(f"the labeler needs report text (str or None), got {type(text).__name__}: {text!r:.60}")
    return text


@functools.lru_cache(maxsize=50_000)
def _report_values(text: str) -> tuple[float | None, ...]:
    labels: dict[str, float | None] = {name: None for name in CHEXPERT_OBSERVATIONS}
    sentences = split_sentences(text)
    for sentence in sentences:
        for name, value in _sentence_items(sentence):
            if name == NO_FINDING:
                continue
            labels[name] = _combine(labels[name], value)
    findings = any(v in (1.0, -1.0) for k, v in labels.items() if k not in (NO_FINDING, SUPPORT_DEVICES))
    labels[NO_FINDING] = 1.0 if sentences and not findings else None
    return tuple(labels[name] for name in CHEXPERT_OBSERVATIONS)


def label_reports(texts: Iterable[str | None], progress: bool = False) -> np.ndarray:
    """Labels of many reports as a float array [n, 14] in CHEXPERT_OBSERVATIONS order; NaN = not mentioned.

    >>> label_reports(["No pneumothorax.", "Cardiomegaly."])[:, 9].tolist()  # Pneumothorax column
    [0.0, nan]
    """
    texts = list(texts)
    out = np.full((len(texts), len(CHEXPERT_OBSERVATIONS)), np.nan, dtype=np.float64)
    for i, text in enumerate(tqdm(texts, desc="labelling reports", disable=not progress)):
        out[i] = [np.nan if v is None else v for v in _report_values(_as_text(text))]
    return out


def clear_caches() -> None:
    """Forget cached sentence and report labels (for benchmarks measuring a cold start)."""
    _sentence_items.cache_clear()
    _report_values.cache_clear()


def labels_to_row(labels: dict[str, float | None]) -> np.ndarray:
    """A label dict -> one row [14] with NaN for None (the array form of :func:`label_report`)."""
    values = [labels.get(n) for n in CHEXPERT_OBSERVATIONS]
    return np.array([np.nan if v is None else float(v) for v in values])


__all__ = ["label_report", "label_reports", "sentence_observations", "labels_to_row", "clear_caches"]
