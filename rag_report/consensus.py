"""Extractive drafts without an LLM: the top-1 report (CXR-RePaiR style) and a top-k consensus.

Consensus keeps the sentences that a similarity-weighted majority of the retrieved reports state
(same normalised text), in the order they usually appear, and drops sentences that repeat an
observation already stated with the same polarity. Both draw only on sentences that pass
:mod:`rag_report.hygiene` (no de-identification tokens, dates, ages or names; comparison-free; complete).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from eclip_core.text import split_sentences
from rag_report.hygiene import clean_sentences

_NON_WORD = re.compile(r"[^a-z0-9 ]+")


@dataclass
class SourcedSentence:
    """A sentence chosen for the draft, with the ids of the reports that contain it."""

    text: str
    section: str
    source_ids: list[str] = field(default_factory=list)
    support: float = 0.0


def sentence_key(sentence: str) -> str:
    """Comparison key: lower case, punctuation removed, spaces collapsed.

    >>> sentence_key("No  pneumothorax.") == sentence_key("no pneumothorax")
    True
    """
    return " ".join(_NON_WORD.sub(" ", sentence.lower()).split())


def top1_draft(reports: Sequence) -> list[SourcedSentence]:
    """The sentences of the first report (the nearest, or the best after label boost) that may enter a
    draft, with that report as their source; the next report when none of its sentences may."""
    for best in reports:
        out = [SourcedSentence(s, section, [best.study_id], float(best.similarity))
               for section in ("findings", "impression") for s in clean_sentences(split_sentences(getattr(best, section)))]
        if out:
            return out
    return []


def consensus_draft(
    reports: Sequence,
    *,
    threshold: float = 0.5,
    observations: Callable[[str], dict] | None = None,
) -> list[SourcedSentence]:
    """Sentences stated by reports holding more than ``threshold`` of the total similarity weight.

    ``reports`` need ``study_id``, ``similarity``, ``findings``, ``impression``; ``observations`` maps a
    sentence to its labelled observations (for redundancy); falls back to the top-1 report's sentences
    for a section where nothing reaches the threshold.

    >>> from types import SimpleNamespace as R
    >>> rs = [R(study_id=str(i), similarity=1.0, findings=f, impression="")
    ...       for i, f in enumerate(["No effusion. Heart normal.", "Heart normal.", "Heart normal. Old rib fracture."])]
    >>> [s.text for s in consensus_draft(rs)]
    ['Heart normal.']
    """
    if not reports:
        return []
    weights = [max(float(r.similarity), 0.0) + 1e-6 for r in reports]
    total = sum(weights)
    chosen: list[SourcedSentence] = []
    for section in ("findings", "impression"):
        groups: dict[str, dict] = {}
        for r, w in zip(reports, weights):
            sentences = clean_sentences(split_sentences(getattr(r, section)))
            seen_here: set[str] = set()
            for pos, s in enumerate(sentences):
                key = sentence_key(s)
                if not key or key in seen_here:
                    continue
                seen_here.add(key)
                g = groups.setdefault(key, {"text": s, "weight": 0.0, "sources": [], "pos": []})
                g["weight"] += w
                g["sources"].append(r.study_id)
                g["pos"].append(pos / max(len(sentences), 1))
        kept = [g for g in groups.values() if g["weight"] > threshold * total]
        if not kept:
            best = reports[0]
            chosen += [SourcedSentence(s, section, [best.study_id], weights[0])
                       for s in clean_sentences(split_sentences(getattr(best, section)))]
            continue
        kept.sort(key=lambda g: sum(g["pos"]) / len(g["pos"]))
        stated: set[tuple[str, float]] = set()
        for g in sorted(kept, key=lambda g: -g["weight"]):
            obs = observations(g["text"]) if observations else {}
            sig = {(k, float(v)) for k, v in obs.items()}
            g["drop"] = bool(sig) and sig <= stated
            stated |= sig
        chosen += [SourcedSentence(g["text"], section, g["sources"], g["weight"] / total) for g in kept if not g["drop"]]
    return chosen
