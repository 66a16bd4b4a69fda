"""Free-mode drafting: the paper's protocol (few-shot prompt of diversified retrieved reports, the LLM writes).

Defaults follow the eCLIP reference (beam 4, 200 new tokens). A repetition guard stops loops three times: at
generation (``no_repeat_ngram_size``), by ending generation once a loop has begun (:func:`loop_started`), and
afterwards (:func:`truncate_repetition` cuts the text at the first repeated sentence or word run). The answer is parsed into FINDINGS / IMPRESSION
(:func:`parse_sections`). Meant for capable LLMs (7B+); a 135 M model rambles (use grounded mode).

>>> from rag_report.llm import load_llm                              # doctest: +SKIP
>>> draft = free_draft(load_llm(), [{"findings": "Lungs clear.", "impression": "Normal."}])  # doctest: +SKIP
>>> draft.findings, draft.impression                                 # doctest: +SKIP
('The lungs are clear.', 'Normal chest.')
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from eclip_core.text import normalize_report_text
from rag_report.drafting.prompts import HEADERS, SYSTEM_RADIOLOGIST, section_user_message
from rag_report.errors import EmptyCorpusError
from rag_report.protocols import DraftingLLM, ReportInput

log = logging.getLogger(__name__)

_HEADER = re.compile(r"(?:^|\s|\*)(findings|impressions?|conclusions?)\s*\**\s*:", re.IGNORECASE)
_ANY_SENT_END = re.compile(r"(?<=[.!?])\s+")  # generated text may continue in lower case after a stop
_WORD_RUN = re.compile(r"\b(\w+)(?:\W+\1\b){3,}", re.IGNORECASE)  # the same word 4+ times in a row


@dataclass
class FreeConfig:
    """Generation settings of free mode (defaults: the eCLIP reference's beam 4, 200 new tokens)."""

    max_new_tokens: int = 200
    num_beams: int = 4
    no_repeat_ngram_size: int = 4
    repetition_penalty: float = 1.0
    max_prompt_reports: int = 5
    max_prompt_chars: int = 600
    max_sentence_words: int = 60  # a longer "sentence" is a run-on loop and is cut
    stop_at_loop: bool = True  # end generation once the guard would cut (same greedy draft, fewer tokens)


@dataclass
class FreeDraft:
    """The result of :func:`free_draft`."""

    findings: str
    impression: str
    raw_text: str
    truncated: bool
    seconds: float
    prompt_tokens: int
    llm_id: str
    warnings: list[str] = field(default_factory=list)


def truncate_repetition(text: str, max_sentence_words: int = 60) -> tuple[str, bool]:
    """Cut ``text`` at the first sign of a loop; return (kept text, whether anything was cut).

    A loop is a sentence already said (case-insensitive), a word repeated 4+ times in a row, or a run-on
    sentence longer than ``max_sentence_words`` words. Section headers survive.

    >>> truncate_repetition("Lungs clear. Heart normal. Lungs clear. Heart normal.")
    ('Lungs clear. Heart normal.', True)
    >>> truncate_repetition("No effusion effusion effusion effusion effusion.")
    ('', True)
    """
    sentences = _sentences(text)
    cut = _loop_start(sentences, max_sentence_words, last_complete=True)
    if cut is None:
        return " ".join(sentences), False
    return " ".join(sentences[:cut]), True


def loop_started(text: str, max_sentence_words: int = 60) -> bool:
    """Whether ``text``, a prefix of a generation, already holds the loop :func:`truncate_repetition` cuts at.

    What follows can only add text after the cut, so generation may stop here: the truncated result is the
    same. The last sentence may still be growing, so only the rules that more text cannot undo (a word run,
    a run-on sentence) apply to it.

    >>> loop_started("Lungs clear. Heart normal. Lungs clear")   # the repeat is not finished yet
    False
    >>> loop_started("Lungs clear. Heart normal. Lungs clear. H")
    True
    """
    return _loop_start(_sentences(text), max_sentence_words, last_complete=False) is not None


def _sentences(text: str) -> list[str]:
    return [p for p in _ANY_SENT_END.split(normalize_report_text(text)) if p]


def _loop_start(sentences: list[str], max_words: int, last_complete: bool) -> int | None:
    """Index of the first sentence that is a loop: said before, a word run, or a run-on sentence."""
    seen: set[str] = set()
    for i, sent in enumerate(sentences):
        complete = last_complete or i < len(sentences) - 1
        body = _HEADER.sub(" ", sent).strip().lower()
        if (complete and body and body in seen) or _WORD_RUN.search(sent) or len(sent.split()) > max_words:
            return i
        if body:
            seen.add(body)
    return None


def predicted_findings_line(findings: Sequence[str]) -> str:
    """The prompt line that tells the LLM what the image's label classifiers predict.

    >>> predicted_findings_line(["Cardiomegaly", "Pleural Effusion"])
    'Findings predicted from the new chest X-ray: cardiomegaly, pleural effusion.'
    >>> predicted_findings_line(["No Finding"])
    'Findings predicted from the new chest X-ray: none (a normal study).'
    """
    names = [f.lower() for f in findings if f != "No Finding"]
    return (
        "Findings predicted from the new chest X-ray: " + (", ".join(names) if names else "none (a normal study)") + "."
    )


def parse_sections(text: str) -> tuple[str, str, list[str]]:
    """Split generated text into (findings, impression, warnings) at FINDINGS: / IMPRESSION: headers.

    Text before any header counts as findings; "Conclusion:" counts as impression.

    >>> parse_sections("FINDINGS: Lungs clear. IMPRESSION: Normal chest")
    ('Lungs clear.', 'Normal chest.', [])
    """
    parts: dict[str, list[str]] = {"findings": [], "impression": []}
    current = "findings"
    pos = 0
    for m in _HEADER.finditer(text):
        parts[current].append(text[pos : m.start()])
        current = "findings" if m.group(1).lower().startswith("finding") else "impression"
        pos = m.end()
    parts[current].append(text[pos:])
    findings, impression = (normalize_report_text(" ".join(p).replace("*", " ")) for p in parts.values())
    warnings = []
    if not impression:
        warnings.append("The generated text has no IMPRESSION section.")
    if not findings and not impression:
        warnings.append("The LLM generated no report text.")
    return findings, impression, warnings


def _section_answer(text: str, section: str) -> str:
    """The text of ``section`` in generated ``text`` (which opens with that section's header)."""
    findings, impression, _ = parse_sections(text)
    return findings if section == "findings" else impression


def free_draft(
    llm: DraftingLLM,
    reports: Sequence[ReportInput],
    config: FreeConfig | None = None,
    predicted_findings: Sequence[str] | None = None,
) -> FreeDraft:
    """Draft a report freely from ``reports`` (most similar / diversified, as retrieved).

    As LaB-RAG does, FINDINGS and IMPRESSION are written separately (:func:`rag_report.drafting.prompts.
    section_user_message`): each prompt shows the retrieved reports' labels ("Labels: X, Y") before that
    section of each, and the new X-ray's predicted labels before the answer; the impression prompt also
    holds the findings just written. ``llm``: a :class:`rag_report.llm.FrozenLLM` (any
    :class:`rag_report.protocols.DraftingLLM`). ``reports``: objects or dicts with findings and impression.
    ``predicted_findings``: the observations the image's label classifiers predict (an empty list says none
    is predicted; None: not stated). Raises :class:`~rag_report.errors.EmptyCorpusError` when no report has
    any text.
    """
    cfg = config or FreeConfig()
    t0 = time.perf_counter()
    out = {"findings": "", "impression": ""}
    raws, warnings, truncated, prompt_tokens = [], [], False, 0
    for section in ("findings", "impression"):
        header = HEADERS[section]
        user = section_user_message(
            reports,
            section,
            predicted=predicted_findings,
            findings=out["findings"] or None,
            max_reports=cfg.max_prompt_reports,
            max_chars=cfg.max_prompt_chars,
        )
        if "Example report" not in user:
            continue  # no retrieved report has this section
        # Forcing the answer to open with the section header keeps even small models in the report format.
        prompt = llm.chat_prompt(user, SYSTEM_RADIOLOGIST, assistant_prefix=header)
        prompt_tokens += len(llm.encode(prompt))

        def stop(new: str, header: str = header) -> bool:
            # the loop guard would cut, or the model moved on to another section: what follows is dropped
            return loop_started(header + " " + new, cfg.max_sentence_words) or len(_HEADER.findall(new)) > 0

        raw = llm.generate(
            prompt,
            max_new_tokens=cfg.max_new_tokens,
            num_beams=cfg.num_beams,
            no_repeat_ngram_size=cfg.no_repeat_ngram_size,
            repetition_penalty=cfg.repetition_penalty,
            stop_when=stop if cfg.stop_at_loop else None,
        )
        raws.append(f"{header} {raw}")
        text, cut = truncate_repetition(header + " " + raw, cfg.max_sentence_words)
        truncated = truncated or cut
        out[section] = _section_answer(text, section)
    if not raws:
        raise EmptyCorpusError(
            f"Free mode got {len(reports)} retrieved report(s) with no findings or impression text; "
            "retrieve from a corpus with report text."
        )
    if not out["impression"]:
        warnings.append("The generated text has no IMPRESSION section.")
    if not out["findings"] and not out["impression"]:
        warnings.append("The LLM generated no report text.")
    if truncated:
        warnings.append("The LLM output repeated itself; it was cut at the first repetition.")
    secs = time.perf_counter() - t0
    log.info("Free draft in %.2f s (%d prompt tokens, truncated=%s)", secs, prompt_tokens, truncated)
    return FreeDraft(
        out["findings"],
        out["impression"],
        "\n".join(raws),
        truncated,
        secs,
        prompt_tokens,
        str(getattr(llm, "id", "?")),
        warnings,
    )
