"""Prompt texts for drafting from retrieved reports (grounded and free modes).

Retrieved reports are passed as any objects (or dicts) with ``findings`` and ``impression`` (see
:func:`report_fields`), most similar first. Long reports are clipped so the prompt stays bounded.

>>> p = few_shot_user_message([{"findings": "Lungs clear.", "impression": "Normal."}])
>>> "Example report 1" in p and "FINDINGS: Lungs clear." in p
True

Drafting writes FINDINGS and IMPRESSION separately, as LaB-RAG does: :func:`section_user_message` shows each
retrieved report's labels ("Labels: Cardiomegaly, Pleural Effusion") before that one section of it, then the
new X-ray's predicted labels (and, for the impression, the findings drafted) before the answer.

>>> print(section_user_message([{"findings": "Mild cardiomegaly.", "impression": "Cardiomegaly."}], "impression",
...                            predicted=["Cardiomegaly"], findings="The heart is enlarged."))
Example report 1:
Labels: Cardiomegaly
IMPRESSION: Cardiomegaly.
<BLANKLINE>
New chest X-ray:
Labels: Cardiomegaly
FINDINGS: The heart is enlarged.
<BLANKLINE>
The reports above belong to chest X-rays that look most similar to the new chest X-ray. Write the IMPRESSION of the new chest X-ray: a short summary of its findings, consistent with its labels.
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
HEADERS = {"findings": FINDINGS_HEADER, "impression": IMPRESSION_HEADER}

#: The instruction of each section's prompt (:func:`section_user_message`).
SECTION_INSTRUCTIONS = {
    "findings": (
        "The reports above belong to chest X-rays that look most similar to the new chest X-ray. Write the "
        "FINDINGS of the new chest X-ray in the same style: state the findings its labels name and the similar "
        "reports support, each once."
    ),
    "impression": (
        "The reports above belong to chest X-rays that look most similar to the new chest X-ray. Write the "
        "IMPRESSION of the new chest X-ray: a short summary of its findings, consistent with its labels."
    ),
}


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


def report_labels(report: ReportInput) -> list[str]:
    """The positive observations of a retrieved report: its ``labels`` (attribute or key) when it has them,
    else the labeler's on its text.

    >>> report_labels({"findings": "Mild cardiomegaly. No effusion.", "impression": ""})
    ['Cardiomegaly']
    """
    from eclip_core.labeler import label_report
    from eclip_core.labels import CHEXPERT_OBSERVATIONS
    from eclip_core.text import join_report

    labels = report.get("labels") if isinstance(report, dict) else getattr(report, "labels", None)
    if not labels:
        labels = label_report(join_report(*report_fields(report)))
    return [o for o in CHEXPERT_OBSERVATIONS if labels.get(o) == 1.0]


def labels_line(names: Sequence[str]) -> str:
    """ "Labels: X, Y" (LaB-RAG's format); no positive observation reads "Labels: No Finding".

    >>> labels_line(["Cardiomegaly", "Pleural Effusion"]), labels_line([])
    ('Labels: Cardiomegaly, Pleural Effusion', 'Labels: No Finding')
    """
    return "Labels: " + (", ".join(names) if names else "No Finding")


def section_user_message(
    reports: Sequence[ReportInput],
    section: str,
    *,
    predicted: Sequence[str] | None = None,
    findings: str | None = None,
    instruction: str | None = None,
    max_reports: int = 5,
    max_chars: int = 600,
) -> str:
    """The user turn that asks for one ``section`` ("findings" or "impression") of the new report: each
    retrieved report with that section, as "Labels: ..." then the section; then the new X-ray's
    ``predicted`` labels (None: not stated) and, for the impression, its drafted ``findings``; then the
    instruction (:data:`SECTION_INSTRUCTIONS`)."""
    header = HEADERS[section]
    blocks = []
    for i, rep in enumerate(list(reports)[:max_reports], start=1):
        text = normalize_report_text(report_fields(rep)[0 if section == "findings" else 1])
        if text:
            blocks.append(f"Example report {i}:\n{labels_line(report_labels(rep))}\n{header} {_clip(text, max_chars)}")
    new = []
    if predicted is not None:
        new.append(labels_line([p for p in predicted if p != "No Finding"]))
    if section == "impression" and findings:
        new.append(f"{FINDINGS_HEADER} {findings}")
    if new:
        blocks.append("New chest X-ray:\n" + "\n".join(new))
    return "\n\n".join(blocks + [instruction or SECTION_INSTRUCTIONS[section]])


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
