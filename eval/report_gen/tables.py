"""Rows of the benchmark -> JSON (everything) and Markdown (the table a paper prints, with its policy)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from eclip_core.atomic import atomic_path
from eval.bench.page import write_page
from eval.report_gen.scoring import CLINICAL_COLUMNS, NLG_COLUMNS, POLICIES

CLINICAL_HEADERS = {
    "micro_f1_14": "micro-F1(14)",
    "macro_f1_14": "macro-F1(14)",
    "micro_f1_5": "micro-F1(5)",
    "macro_f1_5": "macro-F1(5)",
}
POLICY_TEXT = {
    "uncertain_as_negative": "uncertain -> negative",
    "uncertain_as_positive": "uncertain -> positive",
}


def portable_paths(text: str) -> str:
    """``text`` with this machine's folders written as a reader's: $RAG_REPORT_HOME, then ``~``.

    The published Markdown names where artifacts live without the measuring machine's own paths (the JSON
    keeps them).

    >>> import os; os.environ["RAG_REPORT_HOME"] = "/srv/cache/rr"
    >>> portable_paths("--manifest /srv/cache/rr/phantom/ab/manifest.csv")
    '--manifest $RAG_REPORT_HOME/phantom/ab/manifest.csv'
    >>> del os.environ["RAG_REPORT_HOME"]
    """
    from rag_report.paths import rag_report_home

    for folder, name in ((str(rag_report_home()), "$RAG_REPORT_HOME"), (str(Path.home()), "~")):
        if len(folder) > 1:
            text = text.replace(folder.rstrip("/") + "/", name + "/")
    return text


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def clinical_value(row: dict, policy: str, column: str) -> float | None:
    return ((row["metrics"].get("clinical") or {}).get(policy) or {}).get(column)


def markdown_table(rows: list[dict], *, k: int = 5, policy: str = "uncertain_as_negative") -> str:
    """The main table: NLG columns, clinical F1 under ``policy``, label-precision@k, distinct drafts, latency."""
    head = (
        ["system", "n"]
        + list(NLG_COLUMNS)
        + [CLINICAL_HEADERS[c] for c in CLINICAL_COLUMNS]
        + [f"label-P@{k}", "distinct drafts", "latency ms (mean)"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        m = row["metrics"]
        cells = [row["name"], str(m["n_studies"])]
        cells += [_fmt(m["nlg"].get(c)) for c in NLG_COLUMNS]
        cells += [_fmt(clinical_value(row, policy, c)) for c in CLINICAL_COLUMNS]
        distinct = m.get("distinct_drafts")
        cells += [
            _fmt(m.get(f"label_precision@{k}")),
            "n/a" if distinct is None else str(distinct),
            _fmt(m.get("latency_ms_mean"), 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def clinical_table(rows: list[dict]) -> str:
    """Clinical F1 of every system under both uncertain policies, side by side."""
    head = ["system"] + [
        f"{CLINICAL_HEADERS[c]} ({POLICY_TEXT[p].split()[-1][:3]})" for p in POLICIES for c in CLINICAL_COLUMNS
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["name"]] + [_fmt(clinical_value(row, p, c)) for p in POLICIES for c in CLINICAL_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _llm_sizes(sizes: dict) -> str:
    parts = []
    if sizes.get("llm_studies"):
        parts.append(f"LLM rows on the first {sizes['llm_studies']}")
    if sizes.get("free_studies"):
        parts.append(f"the free LLM row on the first {sizes['free_studies']}")
    if not parts:
        return ""
    text = " and ".join(parts) + " studies (sorted by id; each row's n says how many it scored)."
    return " " + text[0].upper() + text[1:]


def display_name(row: dict) -> str:
    """The row's name, marked when it is what ``generate_report(image)`` does with no arguments."""
    return row["name"] + (" [default]" if (row.get("meta") or {}).get("is_default") else "")


def classifier_table(scores: dict) -> str:
    """Per-observation AUROC of the label classifiers on the scored studies."""
    lines = ["| observation | positives | AUROC |", "|---|---|---|"]
    for name, v in scores["per_observation"].items():
        lines.append(f"| {name} | {v['positives']} | {_fmt(v['auroc'])} |")
    return "\n".join(lines)


def paired_table(paired: list[dict], rows: list[dict]) -> str:
    """Each LLM row and its model's top-1 row on the LLM row's studies (clinical F1, uncertain -> negative)."""
    names = {r["system"]: r["name"] for r in rows}
    lines = [
        "| LLM row | top-1 row | n | micro-F1(5) LLM vs top-1 | micro-F1(14) LLM vs top-1 | macro-F1(14) LLM vs top-1 |",
        "|---|---|---|---|---|---|",
    ]
    for p in paired:
        a, b = p["scores"][p["llm"]], p["scores"][p["top1"]]
        cells = " | ".join(f"{a[c]:.3f} vs {b[c]:.3f}" for c in ("micro_f1_5", "micro_f1_14", "macro_f1_14"))
        lines.append(f"| {names.get(p['llm'], p['llm'])} | {names.get(p['top1'], p['top1'])} | {p['n']} | {cells} |")
    return "\n".join(lines)


def render_markdown(result: dict) -> str:
    """The whole Markdown report of a run (tables, policy, normalisation, sizes, command)."""
    rows = [{**r, "name": display_name(r)} for r in result["rows"]]
    pipe = result["config"]["pipeline"]
    k = pipe["k"]
    out = [f"# Report-generation benchmark ({result['config']['split']} split)", ""]
    if result.get("simulated"):
        out += [f"> {result['simulated_notice']}", ""]
    out += [
        f"Command: `{portable_paths(result['command'])}`",
        "",
        *(
            [f"Measured on: {result['machine']}; {result['created'][:10]}.", ""]
            if result.get("machine") and result.get("created")
            else []
        ),
        f"Studies: {result['sizes']['test_studies']} {result['config']['split']} studies "
        f"({result['sizes']['skipped_no_report']} skipped for having no report text); corpus "
        f"{result['sizes']['corpus_reports']} reports.{_llm_sizes(result['sizes'])} Seed {result['config']['seed']}. "
        f"Retrieval k={k} of candidates={pipe['candidates']}: the eCLIP and CLIP rows as the paper retrieves "
        "(no label boost; k-means diversification for consensus and the LLM rows), the label boost rows with "
        f"label boost {pipe['label_boost']} (weight {pipe['label_weight']}) and diversify={pipe['diversify']}; "
        "top-1 drafts from the first report (the label boost top-1 row adds up to "
        f"{pipe.get('finding_statements', 0)} sentences of the next reports stating findings the image's "
        f"classifiers predict and it leaves unsaid, and up to {pipe.get('normal_statements', 0)} normal "
        "statements about what it leaves unsaid). "
        "[default] marks what `generate_report(image)` does with no arguments.",
        "",
        "Clinical F1 below: **" + POLICY_TEXT["uncertain_as_negative"] + "** (not mentioned = negative); "
        "both policies in the second table.",
        "",
        markdown_table(rows, k=k),
        "",
        "## Clinical F1 under both uncertain-label policies",
        "",
        "(neg): uncertain -> negative; (pos): uncertain -> positive. Not mentioned = negative in both.",
        "",
        clinical_table(rows),
        "",
    ]
    if result.get("paired"):
        out += ["## LLM rows against top-1 on the same studies", "", paired_table(result["paired"], rows), ""]
    scores = result.get("label_classifiers")
    if scores:
        mean = _fmt(scores["mean_auroc"])
        out += [
            "## Label classifiers (the default model's index)",
            "",
            f"Mean AUROC over the {scores['n_scored']} observations with >= {scores['min_positives']} positives "
            f"among the scored studies: {mean}.",
            "",
            classifier_table(scores),
            "",
        ]
    out += ["## Choices", ""]
    out += [f"- {c}" for c in result["choices"]]
    if result.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    out += ["", "## Models", ""] + [f"- {k_}: `{portable_paths(str(v))}`" for k_, v in result["models"].items()]
    return "\n".join(out) + "\n"


def write_outputs(result: dict, out_dir: str | Path, name: str) -> dict[str, Path]:
    """Write ``<name>.json`` and ``<name>.md`` atomically; returns their paths."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / f"{name}.json", "markdown": out_dir / f"{name}.md"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=json_default), encoding="utf-8")
    write_page(paths["markdown"], render_markdown(result), echo=False)
    return paths


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
