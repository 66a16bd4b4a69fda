"""The types of grounded drafting: its knobs (:class:`GroundedConfig`), an evidence sentence it may state
(:class:`Candidate`) and what it returns (:class:`GroundedSentence`, :class:`GroundedDraft`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("findings", "impression")
ObservationsFn = Callable[[str], dict[str, float]]
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class GroundedConfig:
    """Knobs of grounded decoding; the defaults suit SmolLM2-135M with ~5 retrieved reports."""

    max_sentences: int = 9  # whole draft
    max_per_section: tuple[int, int] = (7, 3)  # findings, impression
    min_per_section: int = 1  # no END before this many sentences (sections with candidates)
    # Weight of log(support) / log(p_stop) added to the LLM log-probs. 8 was chosen on the val split: a
    # 135M LLM left to itself states findings only one of five retrieved reports has (docs/results/grounded_sweep.md).
    agreement_weight: float = 8.0
    similarity_temperature: float = 0.05  # report weights = softmax(similarity / T)
    near_duplicate: float = 0.8  # word-set Jaccard at or above which two sentences are the same
    contained: float = 0.9  # share of a candidate's words inside an emitted sentence = nothing new
    min_support: float = 0.1  # rarer candidates only when a section has nothing else to say
    block_redundant: bool = True
    end_bias: float = 0.0  # added to END scores (>0 = shorter drafts)
    max_prompt_reports: int = 5
    max_prompt_chars: int = 500  # per report section in the prompt
    max_candidates: int = 300  # per section, highest support kept
    observations: ObservationsFn | None = None  # None = eclip_core.labeler.sentence_observations


@dataclass
class Candidate:
    """One evidence sentence that the draft may state."""

    text: str
    section: str
    source_ids: list[str]
    support: float
    observations: dict[str, float]
    token_ids: tuple[int, ...] = ()
    words: frozenset[str] = frozenset()


@dataclass
class GroundedSentence:
    """One drafted sentence with its provenance."""

    text: str
    section: str
    source_ids: list[str]
    support: float
    logprob: float  # LLM log-probability of its tokens given everything before
    token_ids: list[int] = field(default_factory=list, repr=False)


@dataclass
class GroundedDraft:
    """The result of :func:`grounded_draft`."""

    sentences: list[GroundedSentence]
    n_candidates: dict[str, int]
    prompt_tokens: int
    forward_passes: int
    seconds: float
    llm_id: str
    observations_used: bool

    @property
    def findings(self) -> str:
        return " ".join(s.text for s in self.sentences if s.section == "findings")

    @property
    def impression(self) -> str:
        return " ".join(s.text for s in self.sentences if s.section == "impression")

    def sentences_from(self, source_id: str) -> list[str]:
        """The drafted sentences that came from report ``source_id``."""
        return [s.text for s in self.sentences if source_id in s.source_ids]

    def provenance(self) -> list[dict[str, Any]]:
        """Per-sentence provenance, JSON-safe: sentence, section, source_ids, support (fields of
        ``rag_report.report.SentenceProvenance`` plus the support)."""
        return [
            {
                "sentence": s.text,
                "section": s.section,
                "source_ids": list(s.source_ids),
                "support": round(float(s.support), 6),
            }
            for s in self.sentences
        ]
