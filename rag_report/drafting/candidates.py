"""The candidates of grounded drafting: the retrieved reports' sentences that may enter a draft, per section,
merged across reports, each with its sources and its support (the similarity-weighted share of retrieved reports
that agree with it: same sentence, a near-duplicate, or the same observations with the same polarity).

>>> cands, _ = build_candidates([{"study_id": "A", "similarity": 0.9, "findings": "No effusion.", "impression": ""}])
>>> [(c.text, c.source_ids) for c in cands["findings"]]
[('No effusion.', ['A'])]
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eclip_core.text import DEID_TOKEN, normalize_report_text, split_sentences
from rag_report.drafting.grounded_types import _WORD, SECTIONS, Candidate, GroundedConfig, ObservationsFn
from rag_report.drafting.hygiene import clean_sentences
from rag_report.drafting.prompts import report_fields
from rag_report.protocols import ReportInput

log = logging.getLogger(__name__)


def _report_id(report: ReportInput, index: int) -> str:
    for key in ("study_id", "report_id", "id", "uid"):
        value = report.get(key) if isinstance(report, dict) else getattr(report, key, None)
        if value is not None:
            return str(value)
    return f"report{index}"


def _similarity(report: ReportInput) -> float:
    value = report.get("similarity") if isinstance(report, dict) else getattr(report, "similarity", None)
    return 1.0 if value is None or not math.isfinite(float(value)) else float(value)


def content_words(sentence: str) -> frozenset[str]:
    """Lower-case word set used for near-duplicate tests (the de-identification token dropped).

    >>> sorted(content_words("No pleural effusion, XXXX."))
    ['effusion', 'no', 'pleural']
    """
    return frozenset(w for w in _WORD.findall(sentence.lower()) if w != DEID_TOKEN.lower())


def contained_in(a: frozenset[str], b: frozenset[str], threshold: float) -> bool:
    """At least ``threshold`` of a's words are in b ("No focal airspace disease" in a longer negation list).

    >>> contained_in(content_words("No focal airspace disease."),
    ...              content_words("No pneumothorax, pleural effusion, or focal airspace disease."), 0.9)
    True
    """
    return bool(a) and len(a & b) / len(a) >= threshold


def near_duplicate(a: frozenset[str], b: frozenset[str], threshold: float) -> bool:
    """Word-set Jaccard >= threshold (identical empty sets count as duplicates)."""
    if not a or not b:
        return a == b
    return len(a & b) / len(a | b) >= threshold


def default_observations() -> ObservationsFn | None:
    """``eclip_core.labeler.sentence_observations`` when that module is importable, else None."""
    try:
        from eclip_core.labeler import sentence_observations
    except ImportError:
        log.warning("eclip_core.labeler is not available: grounded decoding blocks redundancy by text only")
        return None
    return sentence_observations


_REPEATED_STOPS = re.compile(r"\s*\.(?:\s*\.)+$")
NO_FINDING = "No Finding"
_NEUTRAL = {NO_FINDING, "Support Devices"}


def normalize_sentence(sentence: str) -> str:
    """Normalised sentence with a trailing run of stops (". ." / "..") reduced to one.

    The result is a substring of the normalised source text (:mod:`rag_report.drafting.hygiene` may then rewrite a
    comparison away before it becomes a candidate).

    >>> normalize_sentence("No acute abnormality. .")
    'No acute abnormality.'
    """
    return _REPEATED_STOPS.sub(".", normalize_report_text(sentence))


def _covered(obs: dict[str, float], stated: dict[str, set[float]]) -> bool:
    return bool(obs) and all(v in stated.get(k, ()) for k, v in obs.items())


def _contradicts(obs: dict[str, float], stated: dict[str, set[float]]) -> bool:
    """Same observation with another polarity, or a positive finding against "No Finding" (and back)."""
    if any(k in stated and v not in stated[k] for k, v in obs.items()):
        return True
    finding_stated = any(k not in _NEUTRAL and v != 0.0 for k, vs in stated.items() for v in vs)
    finding_here = any(k not in _NEUTRAL and v != 0.0 for k, v in obs.items())
    return (obs.get(NO_FINDING) == 1.0 and finding_stated) or (finding_here and 1.0 in stated.get(NO_FINDING, ()))


@dataclass
class _Report:
    rid: str
    weight: float
    sections: dict[str, list[str]]
    keys: set[str]
    words: list[frozenset[str]]
    stated: dict[str, set[float]]


def build_candidates(
    reports: Sequence[ReportInput],
    tokenizer_encode: Callable[[str], list[int]] | None = None,
    config: GroundedConfig | None = None,
    observations: ObservationsFn | None = None,
) -> tuple[dict[str, list[Candidate]], list[_Report]]:
    """Candidates per section (highest support first) and the parsed reports.

    ``reports``: objects or dicts with an id (study_id / report_id / id), ``similarity``, ``findings``,
    ``impression``. ``tokenizer_encode`` fills ``token_ids`` (of " " + text); candidates whose text has no
    word besides the de-identification token are dropped.
    """
    cfg = config or GroundedConfig()
    sims = [_similarity(r) for r in reports]
    top = max(sims) if sims else 0.0
    raw = [math.exp((s - top) / max(cfg.similarity_temperature, 1e-6)) for s in sims]
    total = sum(raw) or 1.0
    parsed: list[_Report] = []
    for i, report in enumerate(reports):
        # Only sentences that may enter a draft (rag_report.drafting.hygiene), cleaned, are candidates and evidence.
        secs = dict(
            zip(
                SECTIONS,
                (clean_sentences(normalize_sentence(x) for x in split_sentences(t)) for t in report_fields(report)),
            )
        )
        sents = secs["findings"] + secs["impression"]
        stated: dict[str, set[float]] = {}
        if observations is not None:
            for s in sents:
                for k, v in observations(s).items():
                    stated.setdefault(k, set()).add(float(v))
        parsed.append(
            _Report(
                _report_id(report, i),
                raw[i] / total,
                secs,
                {normalize_sentence(s).lower() for s in sents},
                [content_words(s) for s in sents],
                stated,
            )
        )

    out: dict[str, list[Candidate]] = {}
    for section in SECTIONS:
        by_key: dict[str, Candidate] = {}
        for rep in parsed:
            for sent in rep.sections[section]:
                text = normalize_sentence(sent)
                words = content_words(text)
                if not any(c.isalpha() for w in words for c in w):
                    continue
                cand = by_key.get(text.lower())
                if cand is None:
                    obs = {k: float(v) for k, v in observations(text).items()} if observations else {}
                    cand = by_key[text.lower()] = Candidate(text, section, [], 0.0, obs, words=words)
                if rep.rid not in cand.source_ids:
                    cand.source_ids.append(rep.rid)
        cands = list(by_key.values())
        for cand in cands:
            cand.support = sum(rep.weight for rep in parsed if _agrees(cand, rep, cfg.near_duplicate))
            cand.support = max(cand.support, 1e-6)
        cands.sort(key=lambda c: -c.support)
        cands = cands[: cfg.max_candidates]
        if tokenizer_encode is not None:
            for cand in cands:
                cand.token_ids = tuple(tokenizer_encode(" " + cand.text))
            cands = [c for c in cands if c.token_ids]
        out[section] = cands
    return out, parsed


def _agrees(cand: Candidate, rep: _Report, threshold: float) -> bool:
    if cand.text.lower() in rep.keys or any(near_duplicate(cand.words, w, threshold) for w in rep.words):
        return True
    return _covered(cand.observations, rep.stated)
