"""HTML/Markdown views of a DraftReport for the page: evidence (similarity, label agreement), observations
(in the draft and predicted from the image), timings, models, banner.

Pure functions (text in, text out) so they are tested without a browser. Every piece of report text
is HTML-escaped: report corpora are user data and gr.HTML does not sanitise.

>>> from rag_report.report import Evidence
>>> ev = Evidence("s1", 1, 0.91, "Heart normal. No effusion.", "No acute disease.", sentences_used=["No effusion."])
>>> "<mark>No effusion.</mark>" in evidence_html([ev])
True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

from eclip_core.labels import CHEXPERT_OBSERVATIONS
from eclip_core.text import split_sentences
from rag_report.drafting.consensus import sentence_key
from rag_report.report import SIMULATED_NOTICE, DraftReport, Evidence, SentenceCheck

#: Display name and CSS class of each label value (CheXpert convention: 1 / 0 / -1 / None).
LABEL_STATES = {1.0: ("positive", "pos"), 0.0: ("negative", "neg"), -1.0: ("uncertain", "unc")}
NOT_MENTIONED = ("not mentioned", "nm")


def label_state(value: float | None) -> str:
    """'positive' | 'negative' | 'uncertain' | 'not mentioned' for a CheXpert-style label value.

    >>> [label_state(v) for v in (1.0, 0.0, -1.0, None, float("nan"))]
    ['positive', 'negative', 'uncertain', 'not mentioned', 'not mentioned']
    """
    return LABEL_STATES.get(value, NOT_MENTIONED)[0] if value == value else NOT_MENTIONED[0]


def _marked_section(text: str, used_keys: set[str]) -> tuple[str, int]:
    parts, hits = [], 0
    for sentence in split_sentences(text):
        esc = html.escape(sentence)
        if sentence_key(sentence) in used_keys:
            parts.append(f"<mark>{esc}</mark>")
            hits += 1
        else:
            parts.append(esc)
    return " ".join(parts), hits


def evidence_html(evidence: Sequence[Evidence]) -> str:
    """Ranked cards of the retrieved reports; the sentences the draft used are wrapped in <mark>; each
    card shows its similarity and, when retrieved with label boost, its label agreement.

    Matching uses the same sentence key as the consensus drafter (case and punctuation folded), so a
    used sentence is marked even where the draft re-punctuated it.
    """
    if not evidence:
        return "<div class='ev-empty'>No evidence yet: upload an image and press Generate.</div>"
    cards = []
    for ev in sorted(evidence, key=lambda e: e.rank):
        used = {sentence_key(s) for s in ev.sentences_used}
        findings, n_f = _marked_section(ev.findings, used)
        impression, n_i = _marked_section(ev.impression, used)
        width = max(0.0, min(1.0, float(ev.similarity))) * 100.0
        body = ""
        if findings:
            body += f"<p><b>FINDINGS:</b> {findings}</p>"
        if impression:
            body += f"<p><b>IMPRESSION:</b> {impression}</p>"
        agreement = ""
        if ev.label_agreement is not None:
            agreement = (
                f"<span class='ev-agree' title='{AGREEMENT_TITLE}'>label agreement "
                f"{float(ev.label_agreement):.2f}</span>"
            )
        cards.append(
            f"<div class='ev-card'><div class='ev-head'><span class='ev-rank'>#{ev.rank}</span> "
            f"<span class='ev-id'>{html.escape(str(ev.study_id))}</span> "
            f"<span class='ev-sim'>similarity {ev.similarity:.3f}</span>"
            f"<span class='ev-bar'><span style='width:{width:.0f}%'></span></span>{agreement}"
            f"<span class='ev-used'>{n_f + n_i} sentence(s) used</span></div>{body}</div>"
        )
    return "<div class='ev-list'>" + "".join(cards) + "</div>"


def checks_html(checks: Sequence[SentenceCheck]) -> str:
    """What the draft checker did to each drafted sentence: a small table (sentence, action, why, the
    sentence that stands and the report it comes from); only the rows where it changed something are
    listed, with a count of the sentences it kept as drafted. Empty when nothing was checked.

    >>> from rag_report.report import SentenceCheck as C
    >>> out = checks_html([C("No effusion.", "findings", "kept", result="No effusion."),
    ...                    C("Stable <b>cardiomegaly</b>.", "findings", "dropped", "comparison")])
    >>> "1 kept as drafted" in out and "&lt;b&gt;" in out and "dropped" in out
    True
    """
    if not checks:
        return ""
    kept = sum(c.action == "kept" for c in checks)
    rows = [
        f"<tr class='chk-{html.escape(c.action)}'><td>{html.escape(c.sentence)}</td><td>{html.escape(c.action)}</td>"
        f"<td>{html.escape(c.reason)}</td><td>{html.escape(c.result)}"
        + (f" <span class='ev-id'>({html.escape(', '.join(c.source_ids))})</span>" if c.action == "replaced" else "")
        + "</td></tr>"
        for c in checks
        if c.action != "kept"
    ]
    table = (
        "<table class='chk-table'><tr><th>drafted</th><th>checker</th><th>why</th><th>in the draft</th></tr>"
        + "".join(rows)
        + "</table>"
        if rows
        else ""
    )
    return f"<div class='chk'><b>Draft checker:</b> {kept} kept as drafted, {len(checks) - kept} changed.{table}</div>"


#: Tooltip of an evidence card's label agreement.
AGREEMENT_TITLE = (
    "Jaccard agreement of this report&#39;s positive observations with those predicted from the image (label boost)"
)


def labels_html(
    labels: Mapping[str, float | None],
    predicted: Mapping[str, float] | None = None,
    predicted_positive: Iterable[str] = (),
) -> str:
    """The 14 CheXpert-style observations in canonical order: each one's state in the draft (a coloured
    chip) beside its probability predicted from the image by the index's label classifiers (a bar; the
    ones predicted present, at their classifier's threshold, are marked ●).

    ``predicted`` None: nothing drafted yet (no column values); empty: the index has no label classifiers
    (the page says so).
    """
    present = set(predicted_positive)
    rows = []
    for name in CHEXPERT_OBSERVATIONS:
        value = labels.get(name)
        state = label_state(value)
        css = next((c for s, c in (*LABEL_STATES.values(), NOT_MENTIONED) if s == state), "nm")
        chip = f"<span class='obs obs-{css}' title='{state}'>{html.escape(name)}<small>{state}</small></span>"
        rows.append(
            f"<div class='obs-row'>{chip}{_predicted_cell(name, (predicted or {}).get(name), name in present)}</div>"
        )
    legend = (
        "<div class='obs-legend'>Chip: the observation in the draft (CheXpert-style labeler). "
        "Bar: its probability predicted from the image (label classifiers); ● predicted present.</div>"
    )
    note = ""
    if predicted is not None and not predicted:
        note = "<div class='obs-note'>No image predictions: this index has no label classifiers.</div>"
    return f"<div class='obs-table'>{legend}<div class='obs-grid'>{''.join(rows)}</div>{note}</div>"


def _predicted_cell(name: str, probability: float | None, present: bool) -> str:
    if probability is None or probability != probability:
        return "<span class='pred pred-na'>–</span>"
    p = max(0.0, min(1.0, float(probability)))
    verdict = "predicted present" if present else "predicted absent"
    return (
        f"<span class='pred{' pred-on' if present else ''}' title='{html.escape(name)}: {verdict} "
        f"(probability {p:.2f})'><span class='pred-bar'><span style='width:{p * 100:.0f}%'></span></span>"
        f"<b>{p:.2f}</b>{'<i>●</i>' if present else ''}</span>"
    )


def details_markdown(draft: DraftReport, handler_ms: float | None = None) -> str:
    """Model identities as a Markdown table, then the timings (ms) on one line."""
    rows = [("generation mode", draft.mode)]
    rows += [(k.replace("_", " "), v or "(none)") for k, v in draft.models.items() if k != "generation_mode"]
    lines = ["| model | identity |", "|---|---|"] + [f"| {_md(a)} | `{_md(str(b))}` |" for a, b in rows]
    times = [f"{_md(k)} {v:.0f}" for k, v in draft.timings_ms.items()]
    if handler_ms is not None:
        times.append(f"in the app {handler_ms:.0f}")
    text = "\n".join(lines) + "\n\n**Timings (ms):** " + " · ".join(times)
    if draft.typicality is not None:
        # The corpus X-rays sit in a narrow band, so four decimals: two would show every image as equal.
        verdict = "below" if draft.typicality < draft.typicality_floor else "within"
        text += (
            f"\n\n**Image typicality:** {draft.typicality:.4f} ({verdict} the corpus's usual range, "
            f"floor {draft.typicality_floor:.4f})"
        )
    return text


def precision_markdown(quantization: str, device: str = "auto") -> str:
    """The LLM precision the page drafts with, as resolved for this machine (one line).

    >>> precision_markdown("int8")
    '**LLM precision:** int8 (as configured)'
    """
    from rag_report.llm.precision import choose_quantization

    if device not in ("cpu", "cuda"):
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return f"**LLM precision:** {_md(choose_quantization(quantization, device).describe())}"


def status_markdown(draft: DraftReport | None = None, warnings: Iterable[str] = ()) -> str:
    """Warnings of a draft (and of the app) as a Markdown list; empty when there are none."""
    items = list(warnings) + (list(draft.warnings) if draft is not None else [])
    return "\n".join(f"- ⚠️ {_md(w)}" for w in items)


def banner_html(simulated: bool) -> str:
    """The banner shown while the embedded default bundle (simulated images) is in use."""
    if not simulated:
        return ""
    return f"<div class='sim-banner' role='alert'><b>SIMULATED DATA.</b> {html.escape(SIMULATED_NOTICE)}</div>"


def _md(text: str) -> str:
    # Markdown table cells: escape the pipe and HTML so model ids or paths cannot break the table.
    return html.escape(str(text)).replace("|", "\\|")
