"""The size rules of the house (docs/ARCHITECTURE.md): no module over 500 lines, at most 8 functions over 80
lines (the training loop among them: its steps read as a list). A change that breaks one splits the module or
the function, or says here why not."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("eclip_core", "rag_report", "apps", "eval")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_LONG_FUNCTIONS = 8


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_the_rules_see_the_code():
    # an empty or mistaken scan would pass everything
    assert len(_modules()) > 100
    assert any(p.name == "train.py" and p.parent.name == "eclip_core" for p in _modules())


def test_no_module_is_over_500_lines():
    long = {
        str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concern): {long}"


def test_at_most_eight_functions_over_80_lines():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({lines})")
    assert any("train.py:train" in name for name in long)  # the one the rule names: the scan measures
    assert len(long) <= MAX_LONG_FUNCTIONS, f"{len(long)} functions over {MAX_FUNCTION_LINES} lines: {sorted(long)}"
