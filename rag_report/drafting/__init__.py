"""Drafting: retrieved reports (+ the image's predicted labels) -> the sentences of a draft.

A draft passes the modules in this order:

1. :mod:`~rag_report.drafting.drafters`: the one registry of drafting modes; :func:`draft_reports` picks
   the mode every caller (pipeline, app, CLI, benchmark) asks for;
2. the mode: :mod:`~rag_report.drafting.consensus` (``top1`` and ``consensus``, no LLM), or
   :mod:`~rag_report.drafting.grounded` (the LLM composes from retrieved sentences only: its candidates come
   from :mod:`~rag_report.drafting.candidates`, its types from :mod:`~rag_report.drafting.grounded_types`) and
   :mod:`~rag_report.drafting.free` (the LLM writes), both prompted by :mod:`~rag_report.drafting.prompts`;
3. :mod:`~rag_report.drafting.hygiene`: every evidence sentence passes this gate before it may enter a
   draft (no de-identification tokens, identifying detail or comparisons with an unseen prior);
4. :mod:`~rag_report.drafting.checker` (its place; the module comes with the draft checker): checks the
   finished draft.

The LLM comes from :mod:`rag_report.llm`; the pipeline (:mod:`rag_report.pipeline`) wraps the draft into a
:class:`~rag_report.report.DraftReport`. Names are re-exported lazily (importing this package loads no torch);
``clean_sentence`` here is the hygiene gate's (:mod:`~rag_report.drafting.grounded` has its own normaliser).

>>> from rag_report.drafting import DRAFTERS, clean_sentence
>>> sorted(DRAFTERS)
['consensus', 'free', 'grounded', 'top1']
>>> clean_sentence("Stable cardiomegaly.")
'Cardiomegaly.'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag_report.lazy import lazy_exports

if TYPE_CHECKING:
    from rag_report.drafting.consensus import SourcedSentence as SourcedSentence
    from rag_report.drafting.consensus import add_predicted_findings as add_predicted_findings
    from rag_report.drafting.consensus import add_unstated_normals as add_unstated_normals
    from rag_report.drafting.consensus import consensus_draft as consensus_draft
    from rag_report.drafting.consensus import sentence_key as sentence_key
    from rag_report.drafting.consensus import top1_draft as top1_draft
    from rag_report.drafting.drafters import DRAFTERS as DRAFTERS
    from rag_report.drafting.drafters import LLM_MODES as LLM_MODES
    from rag_report.drafting.drafters import Drafted as Drafted
    from rag_report.drafting.drafters import DraftLimits as DraftLimits
    from rag_report.drafting.drafters import DraftSettings as DraftSettings
    from rag_report.drafting.drafters import draft_reports as draft_reports
    from rag_report.drafting.free import FreeConfig as FreeConfig
    from rag_report.drafting.free import FreeDraft as FreeDraft
    from rag_report.drafting.free import free_draft as free_draft
    from rag_report.drafting.free import loop_started as loop_started
    from rag_report.drafting.free import parse_sections as parse_sections
    from rag_report.drafting.free import truncate_repetition as truncate_repetition
    from rag_report.drafting.grounded import grounded_draft as grounded_draft
    from rag_report.drafting.grounded_types import GroundedConfig as GroundedConfig
    from rag_report.drafting.grounded_types import GroundedDraft as GroundedDraft
    from rag_report.drafting.grounded_types import GroundedSentence as GroundedSentence
    from rag_report.drafting.hygiene import clean_sentence as clean_sentence
    from rag_report.drafting.hygiene import clean_sentences as clean_sentences
    from rag_report.drafting.hygiene import has_comparison as has_comparison
    from rag_report.drafting.hygiene import has_deid_token as has_deid_token
    from rag_report.drafting.hygiene import has_identifying_detail as has_identifying_detail
    from rag_report.drafting.hygiene import is_complete_sentence as is_complete_sentence
    from rag_report.drafting.prompts import FINDINGS_HEADER as FINDINGS_HEADER
    from rag_report.drafting.prompts import FREE_INSTRUCTION as FREE_INSTRUCTION
    from rag_report.drafting.prompts import GROUNDED_INSTRUCTION as GROUNDED_INSTRUCTION
    from rag_report.drafting.prompts import IMPRESSION_HEADER as IMPRESSION_HEADER
    from rag_report.drafting.prompts import SYSTEM_RADIOLOGIST as SYSTEM_RADIOLOGIST
    from rag_report.drafting.prompts import few_shot_user_message as few_shot_user_message
    from rag_report.drafting.prompts import format_report as format_report
    from rag_report.drafting.prompts import report_fields as report_fields

# the modules of this room -> the names each defines (kept equal to the imports above by tests/test_rooms.py)
_MODULES: dict[str, tuple[str, ...]] = {
    "drafters": ("DRAFTERS", "LLM_MODES", "DraftLimits", "DraftSettings", "Drafted", "draft_reports"),
    "consensus": (
        "SourcedSentence",
        "add_predicted_findings",
        "add_unstated_normals",
        "consensus_draft",
        "sentence_key",
        "top1_draft",
    ),
    "prompts": (
        "FINDINGS_HEADER",
        "FREE_INSTRUCTION",
        "GROUNDED_INSTRUCTION",
        "IMPRESSION_HEADER",
        "SYSTEM_RADIOLOGIST",
        "few_shot_user_message",
        "format_report",
        "report_fields",
    ),
    "grounded_types": ("GroundedConfig", "GroundedDraft", "GroundedSentence"),
    "grounded": ("grounded_draft",),
    "free": ("FreeConfig", "FreeDraft", "free_draft", "loop_started", "parse_sections", "truncate_repetition"),
    "hygiene": (
        "clean_sentence",
        "clean_sentences",
        "has_comparison",
        "has_deid_token",
        "has_identifying_detail",
        "is_complete_sentence",
    ),
}
__all__, __getattr__ = lazy_exports(__name__, _MODULES)
