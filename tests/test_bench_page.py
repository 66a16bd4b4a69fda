"""Benchmark and study pages go through the one page writer (eval.bench.page.write_page)."""

from __future__ import annotations

import ast
from pathlib import Path

from eval.bench.page import write_page

EVAL = Path(__file__).resolve().parents[1] / "eval"
#: The writer itself, and the generator of the summary pages (it rewrites README.md's block in place).
WRITERS = {EVAL / "bench" / "page.py", EVAL / "bench" / "collect.py"}


def test_write_page_makes_folders_ends_with_one_newline_and_echoes(tmp_path, capsys):
    path = write_page(tmp_path / "perf" / "x.md", ["# X", "", "| a | b |", "", ""])
    assert path == tmp_path / "perf" / "x.md"
    assert path.read_text(encoding="utf-8") == "# X\n\n| a | b |\n"
    assert capsys.readouterr().out == "# X\n\n| a | b |\n"
    write_page(path, "# Y\nbody", echo=False)  # text instead of lines; replaces the page
    assert path.read_text(encoding="utf-8") == "# Y\nbody\n"
    assert capsys.readouterr().out == ""
    assert [p.name for p in path.parent.iterdir()] == ["x.md"]  # no temporary left beside it


def _direct_text_writes(path: Path) -> list[str]:
    """Source of every ``<x>.write_text(<text>)`` / ``open(..., "w")`` call in ``path`` whose text is not JSON."""
    source = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "write_text":
            text = ast.get_source_segment(source, node.args[0]) if node.args else ""
            if "json.dumps" not in (text or ""):
                found.append(ast.get_source_segment(source, node) or "")
        if isinstance(func, ast.Name) and func.id == "open":
            modes = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
            if any("w" in str(m) and "b" not in str(m) for m in modes):
                found.append(ast.get_source_segment(source, node) or "")
    return found


def test_no_page_is_written_by_hand():
    bad = {
        str(p.relative_to(EVAL.parent)): writes
        for p in sorted(EVAL.rglob("*.py"))
        if p not in WRITERS and (writes := _direct_text_writes(p))
    }
    assert not bad, f"text written beside eval.bench.page.write_page (route pages through it): {bad}"


def test_the_check_finds_a_hand_written_page(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('from pathlib import Path\nPath("o.md").write_text("\\n".join(["# T"]))\n')
    assert _direct_text_writes(module) == ['Path("o.md").write_text("\\n".join(["# T"]))']
