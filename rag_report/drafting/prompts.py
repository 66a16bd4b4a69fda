"""Prompt texts for drafting from retrieved reports (grounded and free modes).

Retrieved reports are passed as any objects (or dicts) with ``findings`` and ``impression`` (see
:func:`report_fields`), most similar first. Long reports are clipped so the prompt stays bounded.

>>> p = few_shot_user_message([{"findings": "Lungs clear.", "impression": "Normal."}])
>>> "Example report 1" in p and "FINDINGS: Lungs clear." in p
True
"""

from __future__ import annotations

from collections.abc import Sequence

from eclip_core.text import normalize_report_text
from rag_report.protocols import ReportInput

SYSTEM_RADIOLOGIST = (
    "You are an expert radiologist. You write concise, factual chest X-ray reports with a FINDINGS "
    "section and an IMPRESSION section."
)

FREE_INSTRUCTION = (
    "The reports above belong to chest X-rays that look most similar to a new chest X-ray. Write the report "
    "of the new chest X-ray in the same style. State only findings supported by the similar reports. "
    "Use exactly this format:\nFINDINGS: <findings>\nIMPRESSION: <impression>"
)

GROUNDED_INSTRUCTION = (
    "The reports above belong to chest X-rays that look most similar to a new chest X-ray. Write the report "
    "of the new chest X-ray: state the findings most of the similar reports agree on, each once."
)

FINDINGS_HEADER = "FINDINGS:"
IMPRESSION_HEADER = "IMPRESSION:"


def report_fields(report: ReportInput) -> tuple[str, str]:
    """(findings, impression) of a report given as an object with attributes or a mapping."""
    if isinstance(report, dict):
        return str(report.get("findings") or ""), str(report.get("impression") or "")
    return str(getattr(report, "findings", "") or ""), str(getattr(report, "impression", "") or "")


def _clip(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return cut.rstrip(",;: ") + " ..."


def format_report(report: ReportInput, max_chars: int = 600) -> str:
    """One report as "FINDINGS: ...\\nIMPRESSION: ..." with normalised, clipped sections."""
    findings, impression = (normalize_report_text(t) for t in report_fields(report))
    lines = []
    if findings:
        lines.append(f"{FINDINGS_HEADER} {_clip(findings, max_chars)}")
    if impression:
        lines.append(f"{IMPRESSION_HEADER} {_clip(impression, max_chars)}")
    return "\n".join(lines)


def few_shot_user_message(
    reports: Sequence[ReportInput], instruction: str = FREE_INSTRUCTION, max_reports: int = 5, max_chars: int = 600
) -> str:
    """The user turn: the retrieved reports as numbered examples, then the instruction."""
    blocks = []
    for i, rep in enumerate(list(reports)[:max_reports], start=1):
        body = format_report(rep, max_chars=max_chars)
        if body:
            blocks.append(f"Example report {i}:\n{body}")
    return "\n\n".join(blocks + [instruction])
