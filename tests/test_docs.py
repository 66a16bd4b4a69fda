"""The user-facing docs read as the product's: no internal history, no measuring machine's paths, no
commands that need files a user does not have, valid relative links, and top pages in step with the
detailed pages they are generated from (``python -m eval.bench.collect``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKDOWN = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *DOCS.rglob("*.md")])
DATA = sorted(DOCS.rglob("*.json"))

#: Words of the team's internal process that mean nothing to a user.
HISTORY = re.compile(r"\bstop \d+\b|\bthis stop\b|\bthis session\b|\bsuperseded\b|\blent machines?\b", re.IGNORECASE)
#: Absolute paths of the machine a number was measured on (home, scratch and work folders).
MACHINE_PATH = re.compile(r"(?<![\w$~.-])/(?:work|tmp|root|home|Users|mnt/data)/")
#: Files a package user does not have: the team's shared reference folder beside the checkout.
SHARED = re.compile(r"\.\./shared\b")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _offences(pattern: re.Pattern, files: list[Path]) -> list[str]:
    out = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in pattern.finditer(line):
                out.append(f"{_rel(path)}:{n}: {m.group(0)!r} in: {line.strip()[:160]}")
    return out


def test_the_docs_exist():
    assert (ROOT / "README.md").is_file() and (ROOT / "CHANGELOG.md").is_file()
    assert {"RESULTS.md", "PERFORMANCE.md", "ARCHITECTURE.md"} <= {p.name for p in DOCS.glob("*.md")}


def test_no_internal_history_words():
    bad = _offences(HISTORY, MARKDOWN)
    assert not bad, "internal history words (say what is, not how the team got there):\n" + "\n".join(bad)


def test_no_machine_paths():
    bad = _offences(MACHINE_PATH, MARKDOWN + DATA)
    assert not bad, (
        "absolute paths of the measuring machine (write $RAG_REPORT_HOME/..., ~/..., or a path "
        "relative to the project):\n" + "\n".join(bad)
    )


def test_no_commands_that_read_the_shared_folder():
    bad = _offences(SHARED, MARKDOWN)
    assert not bad, (
        "../shared does not exist on a user's machine (ship the file as package data or take it "
        "by a flag):\n" + "\n".join(bad)
    )


def _without_code(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code removed."""
    lines, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((n, re.sub(r"`[^`]*`", "", line)))
    return lines


def test_relative_links_point_to_files_that_exist():
    bad = []
    for path in MARKDOWN:
        for n, line in _without_code(path.read_text(encoding="utf-8")):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
                    continue  # http(s), mailto, in-page anchors
                file = target.split("#", 1)[0]
                if not (path.parent / file).exists():
                    bad.append(f"{_rel(path)}:{n}: link to {target!r}, which does not exist")
    assert not bad, "broken links:\n" + "\n".join(bad)


#: A newcomer reads the README and the architecture page whole; no page is longer than a sitting.
PAGE_LIMITS = {"README.md": 12 * 1024, "docs/ARCHITECTURE.md": 12 * 1024}
PAGE_LIMIT = 16 * 1024


@pytest.mark.parametrize("path", MARKDOWN, ids=_rel)
def test_pages_are_short_enough_to_read(path):
    limit = PAGE_LIMITS.get(_rel(path), PAGE_LIMIT)
    assert path.stat().st_size <= limit, f"{_rel(path)} is {path.stat().st_size} bytes; keep it within {limit}"


SUMMARY_COLUMNS = ["what", "target", "measured", "verdict", "machine", "date", "command"]


@pytest.mark.parametrize("name", ["RESULTS.md", "PERFORMANCE.md"])
def test_top_pages_are_short_and_open_with_the_summary_table(name):
    path = DOCS / name
    assert path.stat().st_size < 16 * 1024, f"docs/{name} is {path.stat().st_size} bytes; keep it under 16 KB"
    lines = path.read_text(encoding="utf-8").splitlines()
    first_table = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    assert first_table is not None, f"docs/{name}: no table"
    before = lines[:first_table]
    assert not any(line.startswith("## ") for line in before), f"docs/{name}: a section comes before the summary"
    assert sum(1 for line in before if line.strip() and not line.startswith("#")) <= 1, (
        f"docs/{name}: more than one paragraph before the summary table"
    )
    header = [c.strip().lower() for c in lines[first_table].strip("|").split("|")]
    assert header == SUMMARY_COLUMNS, f"docs/{name}:{first_table + 1}: summary columns {header}"
    tables = sum(1 for i, line in enumerate(lines) if line.startswith("|") and not lines[i - 1].startswith("|"))
    assert tables == 1, f"docs/{name}: {tables} tables; hold one summary and link the detailed pages"
    body = [line for line in lines[first_table + 2 :] if line.startswith("|")]
    assert body, f"docs/{name}: the summary table is empty"
    missing = [line for line in body if "not on the page" in line]
    assert not missing, f"docs/{name}: rows whose page lacks their numbers:\n" + "\n".join(missing)


def test_top_pages_and_readme_are_in_step_with_the_detailed_pages():
    from eval.bench.collect import render, stale

    rendered = render(DOCS)
    assert {p.name for p in rendered.texts} == {"RESULTS.md", "PERFORMANCE.md", "README.md"}, rendered.warnings
    out_of_date = [_rel(p) for p in stale(rendered)]
    assert not out_of_date, f"{out_of_date} differ from the detailed pages: run python -m eval.bench.collect"


def test_collect_reads_numbers_from_the_pages(tmp_path):
    """The summary is read from the pages, not written into the generator: change a page, the row follows."""
    import shutil

    from eval.bench.collect import render

    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    import re

    page = docs / "perf" / "app.md"
    original = page.read_text(encoding="utf-8")

    def row_with(grounded: str, consensus: str) -> str:
        text = original
        for mode, ratio in (("grounded", grounded), ("consensus", consensus)):
            text = re.sub(rf"(\| {mode} \|[^\n]*?\*\*)[0-9.]+x(\*\*)", rf"\g<1>{ratio}\g<2>", text)
        page.write_text(text, encoding="utf-8")
        out = render(docs).texts[docs / "PERFORMANCE.md"]
        return next(line for line in out.splitlines() if "(perf/app.md)" in line)

    slow = row_with("1.45x", "1.05x")
    assert "1.45x (grounded), 1.05x (consensus)" in slow and "| missed |" in slow
    fast = row_with("1.12x", "1.05x")
    assert "1.12x (grounded), 1.05x (consensus)" in fast and "| met |" in fast
