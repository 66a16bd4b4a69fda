"""FINDINGS / IMPRESSION sectioning of free-text radiology reports (MIMIC-CXR style).

Headings vary ("FINDINGS:", "Findings:", "FINDING:", "IMPRESSION:", "CONCLUSION:", "SUMMARY:",
"FINDINGS AND IMPRESSION:", "PA AND LATERAL CHEST RADIOGRAPH:"...), may sit alone on a line or be
followed by text on the same line, and some reports have no sections at all. Rules:

* A heading is, at the start of a line, either any upper-case phrase followed by ``:`` or a known
  section name (any case) followed by ``:`` or standing alone on its line. Inside findings or
  impression, an unknown heading ("CHEST:", "LEFT KNEE:") is a sub-heading and stays in the text.
* Findings = text under a findings-like heading; impression = text under an impression-like
  heading; a combined "findings and impression" section fills findings (impression stays empty
  unless it also has its own section). Several sections of the same kind are concatenated.
* Administrative sections (indication, history, ...) end at their first blank line; unlabelled
  text after them is report body.
* No findings and no impression heading: like the MIMIC-CXR section parser, the report's last
  paragraph that is not an administrative section (indication, technique, comparison,
  notification, ...) becomes the impression, and ``fallback`` is set.

>>> s = section_report("FINAL REPORT\\nINDICATION: cough\\n\\nFINDINGS: Lungs are clear.\\nIMPRESSION:\\n No acute process.")
>>> (s.findings, s.impression, s.fallback)
('Lungs are clear.', 'No acute process.', False)
>>> section_report("Heart size normal.\\n\\nNo pneumothorax.").impression
'No pneumothorax.'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FINDINGS_NAMES = ("findings", "finding", "report", "findings comments", "description")
IMPRESSION_NAMES = (
    "impression",
    "impressions",
    "conclusion",
    "conclusions",
    "summary",
    "opinion",
    "diagnosis",
    "interpretation",
)
COMBINED_NAMES = (
    "findings and impression",
    "impression and findings",
    "findings impression",
    "findings/impression",
    "impression/findings",
    "findings & impression",
)
ADMIN_NAMES = (
    "indication",
    "indications",
    "history",
    "clinical history",
    "clinical information",
    "reason for exam",
    "reason for examination",
    "examination",
    "exam",
    "technique",
    "comparison",
    "comparisons",
    "notification",
    "recommendation",
    "recommendations",
    "recommendation(s)",
    "wet read",
    "final report",
    "addendum",
    "procedure",
    "type of exam",
    "clinical indication",
    "reference exam",
    "study",
)
_KNOWN = set(FINDINGS_NAMES + IMPRESSION_NAMES + COMBINED_NAMES + ADMIN_NAMES)

# Upper-case heading + colon, or a known heading in any case + colon, at line start.
_HEADING = re.compile(
    r"^[ \t]*(?P<name>[A-Z][A-Z0-9 /&()'\-]{1,60}?|[A-Za-z][A-Za-z /&()\-]{1,40}?)[ \t]*:(?P<rest>.*)$"
)
_BARE = re.compile(r"^[ \t]*(?P<name>[A-Za-z][A-Za-z /&()\-]{1,40}?)[ \t]*$")
_WS = re.compile(r"\s+")


@dataclass
class ReportSections:
    """A sectioned report: findings, impression, every section by name, and whether the fallback ran."""

    findings: str = ""
    impression: str = ""
    sections: dict[str, str] = field(default_factory=dict)
    fallback: bool = False


def _key(name: str) -> str:
    return _WS.sub(" ", name.strip().lower())


def _is_heading(name: str, with_colon: bool) -> bool:
    key = _key(name)
    if key in _KNOWN:
        return True
    # Unknown names count only when upper-case with a colon (e.g. "PA AND LATERAL VIEWS:").
    return with_colon and name.strip() == name.strip().upper() and any(c.isalpha() for c in name)


def _kind(key: str) -> str:
    if key in COMBINED_NAMES or ("finding" in key and "impression" in key):
        return "combined"
    if key in FINDINGS_NAMES or key.startswith("finding"):
        return "findings"
    if key in IMPRESSION_NAMES or key.startswith("impression") or key.startswith("conclusion"):
        return "impression"
    return "other"


def _clean(lines: list[str]) -> str:
    return _WS.sub(" ", " ".join(lines)).strip()


def section_report(text: str | None) -> ReportSections:
    """Split one report into sections; see the module docstring for the rules."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    chunks: list[tuple[str, list[str]]] = [("preamble", [])]
    for line in text.split("\n"):
        m = _HEADING.match(line)
        if m and _is_heading(m.group("name"), True):
            key = _key(m.group("name"))
            if key not in _KNOWN and _kind(key) == "other" and _kind(chunks[-1][0]) != "other":
                # An unknown sub-heading inside findings/impression ("CHEST:", "LEFT KNEE:") is body text.
                chunks[-1][1].append(line)
                continue
            chunks.append((key, [m.group("rest")]))
            continue
        b = _BARE.match(line)
        if b and _key(b.group("name")) in _KNOWN:
            chunks.append((_key(b.group("name")), []))
            continue
        name, lines = chunks[-1]
        if not line.strip() and name in ADMIN_NAMES and any(x.strip() for x in lines):
            # Administrative sections are one paragraph; what follows a blank line is report body.
            chunks.append(("body", []))
            continue
        lines.append(line)
    out = ReportSections()
    findings, impression, combined = [], [], []
    for name, lines in chunks:
        body = _clean(lines)
        if name not in ("preamble", "body") or body:
            out.sections[name] = (out.sections[name] + " " + body).strip() if name in out.sections else body
        kind = _kind(name)
        if not body:
            continue
        {"findings": findings, "impression": impression, "combined": combined}.get(kind, []).append(body)
    out.findings = " ".join(findings + combined).strip()
    out.impression = " ".join(impression).strip()
    if not findings and not impression and not combined:
        out.impression = _last_paragraph(chunks)
        out.fallback = True
    return out


def _last_paragraph(chunks: list[tuple[str, list[str]]]) -> str:
    # Paragraphs (blank-line separated) of the non-administrative text, the last one wins.
    paragraphs: list[str] = []
    for name, lines in chunks:
        if name in ADMIN_NAMES:
            continue
        current: list[str] = []
        for line in lines + [""]:
            if line.strip():
                current.append(line)
            elif current:
                paragraphs.append(_clean(current))
                current = []
    return paragraphs[-1] if paragraphs else ""
