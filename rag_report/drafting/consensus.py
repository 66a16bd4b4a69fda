"""Extractive drafts without an LLM: the top-1 report (CXR-RePaiR style) and a top-k consensus.

Consensus keeps the sentences that a similarity-weighted majority of the retrieved reports state
(same normalised text), in the order they usually appear, and drops sentences that repeat an
observation already stated with the same polarity. Both draw only on sentences that pass
:mod:`rag_report.drafting.hygiene` (no de-identification tokens, dates, ages or names; comparison-free; complete).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eclip_core.text import split_sentences
from rag_report.drafting.candidates import content_words
from rag_report.drafting.hygiene import clean_sentence, clean_sentences
from rag_report.protocols import ReportLike

_NON_WORD = re.compile(r"[^a-z0-9 ]+")
#: A sentence -> its labelled observations (``eclip_core.labeler.sentence_observations``).
ObservationsFn = Callable[[str], Mapping[str, float]]


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


def top1_draft(
    reports: Sequence[ReportLike], observations: ObservationsFn | None = None, replace_min_overlap: float = 0.5
) -> list[SourcedSentence]:
    """The first report (the nearest, or the best after label boost) as a draft, sentence by sentence.

    A sentence that may not enter a draft (:mod:`rag_report.drafting.hygiene`: a de-identification token, a
    comparison, a date ...) is replaced, in place, by the clean sentence of the same section of another
    retrieved report that says the same (no finding the dropped sentence does not state and no observation
    with another polarity, by ``observations``; at least ``replace_min_overlap`` word overlap), and otherwise
    left out; each sentence cites the report it comes
    from. When the first report has no usable sentence, the next one is the draft.

    >>> from types import SimpleNamespace as R
    >>> a = R(study_id="A", similarity=0.9, findings="The heart and pulmonary XXXX are normal. No effusion.", impression="")
    >>> b = R(study_id="B", similarity=0.5, findings="The heart and pulmonary vasculature are normal.", impression="")
    >>> [(s.text, s.source_ids) for s in top1_draft([a, b], observations=lambda s: {})]
    [('The heart and pulmonary vasculature are normal.', ['B']), ('No effusion.', ['A'])]
    """
    from rag_report.drafting.hygiene import clean_sentence

    for i, best in enumerate(reports):
        out: list[SourcedSentence] = []
        used: set[str] = set()
        for section in ("findings", "impression"):
            for raw in split_sentences(getattr(best, section)):
                clean: str | None = clean_sentence(raw)
                source: ReportLike | None = best
                if clean is None:
                    clean, source = _replacement(
                        raw, section, [*reports[:i], *reports[i + 1 :]], used, observations, replace_min_overlap
                    )
                if clean is not None and source is not None and clean.lower() not in used:
                    used.add(clean.lower())
                    out.append(SourcedSentence(clean, section, [source.study_id], float(source.similarity)))
        if any(s.source_ids == [best.study_id] for s in out):
            return out
    return []


def add_unstated_normals(
    draft: list[SourcedSentence],
    reports: Sequence[ReportLike],
    observations: ObservationsFn,
    predicted: Mapping[str, bool] | None = None,
    max_added: int = 3,
) -> list[SourcedSentence]:
    """``draft`` with up to ``max_added`` normal statements about what it leaves unsaid, appended to its
    findings: the clean findings sentences of the next retrieved reports (in rank order) that state only
    negative observations, none of which the draft mentions (either way) and none of which the image's
    classifiers predict present (``predicted``). A sentence with a positive, uncertain or "No Finding"
    statement is never added, so the draft's findings stay those of the first report: it only reads as a
    complete report (heart, lungs, pleura, bones) the way the corpus's reports do.

    >>> from types import SimpleNamespace as R
    >>> obs = {"Heart size is normal.": {"Cardiomegaly": 0.0}, "No pleural effusion.": {"Pleural Effusion": 0.0},
    ...        "Small effusion.": {"Pleural Effusion": 1.0}, "Cardiomegaly.": {"Cardiomegaly": 1.0}}
    >>> a = R(study_id="A", similarity=0.9, findings="Cardiomegaly.", impression="")
    >>> b = R(study_id="B", similarity=0.8, findings="Heart size is normal. No pleural effusion.", impression="")
    >>> draft = [SourcedSentence("Cardiomegaly.", "findings", ["A"])]
    >>> [(s.text, s.source_ids) for s in add_unstated_normals(draft, [a, b], lambda t: obs.get(t, {}))]
    [('Cardiomegaly.', ['A']), ('No pleural effusion.', ['B'])]
    >>> [s.text for s in add_unstated_normals(draft, [a, b], lambda t: obs.get(t, {}), {"Pleural Effusion": True})]
    ['Cardiomegaly.']
    """
    from rag_report.drafting.hygiene import clean_sentence

    said: set[str] = set()
    for sentence in draft:
        said.update(observations(sentence.text))
    used = {s.text.lower() for s in draft}
    added: list[SourcedSentence] = []
    for report in reports:  # the draft's own report adds nothing: its clean sentences are all used
        for raw in split_sentences(report.findings):
            clean = clean_sentence(raw)
            if clean is None or clean.lower() in used or len(added) >= max_added:
                continue
            obs = observations(clean)
            if not obs or "No Finding" in obs or any(v != 0.0 for v in obs.values()):
                continue
            if said.intersection(obs) or (predicted and any(predicted.get(o) for o in obs)):
                continue
            added.append(SourcedSentence(clean, "findings", [report.study_id], float(report.similarity)))
            used.add(clean.lower())
            said.update(obs)
    if not added:
        return draft
    n_findings = sum(s.section == "findings" for s in draft)
    return [*draft[:n_findings], *added, *draft[n_findings:]]


def add_predicted_findings(
    draft: list[SourcedSentence],
    reports: Sequence[ReportLike],
    observations: ObservationsFn,
    predicted: Mapping[str, bool] | None,
    max_added: int = 2,
) -> list[SourcedSentence]:
    """``draft`` with up to ``max_added`` sentences, appended to its findings, that state a finding the
    image's classifiers predict present (``predicted``) but the draft does not state: for each such
    observation in turn, the first clean findings sentence of the retrieved reports (in rank order) that
    states it positive, every other observation it states being ones the draft leaves unsaid, predicted
    present when positive and not predicted present when negative. So the evidence, not the classifier,
    words the finding, and each added sentence cites its report. "No Finding" is never added, and nothing
    is added to a draft that states "No Finding" when the classifiers predict it too; when they do not, the
    draft checker drops that sentence (it asserts "No Finding" against the image), so the draft is completed
    as if it were not there (e.g. "No acute bone abnormality.", which the labeler reads as "No Finding").

    >>> from types import SimpleNamespace as R
    >>> obs = {"Heart size is normal.": {"Cardiomegaly": 0.0}, "Small left effusion.": {"Pleural Effusion": 1.0},
    ...        "Cardiomegaly.": {"Cardiomegaly": 1.0}}
    >>> a = R(study_id="A", similarity=0.9, findings="Heart size is normal.", impression="")
    >>> b = R(study_id="B", similarity=0.8, findings="Cardiomegaly. Small left effusion.", impression="")
    >>> draft = [SourcedSentence("Heart size is normal.", "findings", ["A"])]
    >>> pred = {"Cardiomegaly": True, "Pleural Effusion": True}
    >>> [(s.text, s.source_ids) for s in add_predicted_findings(draft, [a, b], lambda t: obs.get(t, {}), pred)]
    [('Heart size is normal.', ['A']), ('Small left effusion.', ['B'])]
    """
    from rag_report.drafting.hygiene import clean_sentence

    if not predicted or max_added <= 0:
        return draft
    said: dict[str, float] = {}
    for sentence in draft:
        said.update(observations(sentence.text))
    if said.get("No Finding") == 1.0 and predicted.get("No Finding"):
        return draft
    said.pop("No Finding", None)
    wanted = [o for o, on in predicted.items() if on and o != "No Finding" and o not in said]
    used = {s.text.lower() for s in draft}
    added: list[SourcedSentence] = []
    for target in wanted:
        if len(added) >= max_added or target in said:  # an earlier addition may have stated it
            continue
        for report in reports:
            found = None
            for raw in split_sentences(report.findings):
                clean = clean_sentence(raw)
                if clean is None or clean.lower() in used:
                    continue
                obs = observations(clean)
                if obs.get(target) != 1.0 or any(o in said for o in obs):
                    continue
                if all(bool(predicted.get(o)) == (v == 1.0) for o, v in obs.items()):
                    found = clean
                    break
            if found is not None:
                added.append(SourcedSentence(found, "findings", [report.study_id], float(report.similarity)))
                used.add(found.lower())
                said.update(observations(found))
                break
    if not added:
        return draft
    n_findings = sum(s.section == "findings" for s in draft)
    return [*draft[:n_findings], *added, *draft[n_findings:]]


def _says_no_more(candidate: Mapping[str, float], original: Mapping[str, float]) -> bool:
    """The candidate states no observation against the original and no positive finding it lacks."""
    for name, value in candidate.items():
        if name in original and original[name] != value:
            return False
        if name not in original and value != 0.0:
            return False
    return True


def _replacement(
    raw: str,
    section: str,
    others: Sequence[ReportLike],
    used: set[str],
    observations: ObservationsFn | None,
    min_overlap: float,
) -> tuple[str, ReportLike] | tuple[None, None]:
    """The clean sentence of ``others`` (same section) that says what ``raw`` says, or (None, None)."""
    words = content_words(raw)
    if not words:
        return None, None
    want = observations(raw) if observations else {}
    best: tuple[str, ReportLike] | tuple[None, None] = (None, None)
    best_score = min_overlap
    for rep in others:
        for cand in split_sentences(getattr(rep, section)):
            clean = clean_sentence(cand)
            if clean is None or clean.lower() in used:
                continue
            other = content_words(clean)
            score = len(words & other) / len(words | other)
            if score >= best_score and (observations is None or _says_no_more(observations(clean), want)):
                if score > best_score or best[0] is None:
                    best, best_score = (clean, rep), score
    return best


def consensus_draft(
    reports: Sequence[ReportLike],
    *,
    threshold: float = 0.5,
    observations: ObservationsFn | None = None,
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
        groups: dict[str, dict[str, Any]] = {}
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
            chosen += [
                SourcedSentence(s, section, [best.study_id], weights[0])
                for s in clean_sentences(split_sentences(getattr(best, section)))
            ]
            continue
        kept.sort(key=lambda g: sum(g["pos"]) / len(g["pos"]))
        stated: set[tuple[str, float]] = set()
        for g in sorted(kept, key=lambda g: -g["weight"]):
            obs = observations(g["text"]) if observations else {}
            sig = {(k, float(v)) for k, v in obs.items()}
            g["drop"] = bool(sig) and sig <= stated
            stated |= sig
        chosen += [
            SourcedSentence(g["text"], section, g["sources"], g["weight"] / total) for g in kept if not g["drop"]
        ]
    return chosen
