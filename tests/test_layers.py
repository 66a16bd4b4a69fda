"""The layers as checked contracts: import-linter's contracts (pyproject.toml) hold on the repository, fail on
a planted upward import, and no package holds an import cycle (grimp's import graph, TYPE_CHECKING
imports included, like the contracts)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("eval", "apps", "rag_report", "eclip_core")
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the packages and the pyproject.toml under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contracts_hold_on_the_repository():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout, result.stdout


def _copy_sources(dest: Path) -> None:
    """The packages' Python files and pyproject.toml (all the linter reads) under ``dest``."""
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            target = dest / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)


PACKAGE_CONTRACT = "Packages: eval -> apps -> rag_report -> eclip_core"
RAG_REPORT_CONTRACT = "rag_report: entry points -> retrieval, drafting, LLM -> errors, protocols, report types"


@pytest.mark.parametrize(
    ("module", "planted", "contract", "chain"),
    [
        # the model package importing the application
        (
            "eclip_core/_planted.py",
            "import rag_report\n",
            PACKAGE_CONTRACT,
            "- eclip_core._planted -> rag_report (l.1)",
        ),
        # the application importing the app above it
        ("rag_report/report.py", "import apps.render\n", PACKAGE_CONTRACT, "- rag_report.report -> apps.render (l."),
        # a bottom module of rag_report importing a middle one
        (
            "rag_report/errors.py",
            "import rag_report.retrieval.retriever\n",
            RAG_REPORT_CONTRACT,
            "- rag_report.errors -> rag_report.retrieval.retriever (l.",
        ),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path, module, planted, contract, chain):
    _copy_sources(tmp_path)
    clean = lint_imports(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr  # the copy alone keeps the contracts
    path = tmp_path / module
    path.write_text((path.read_text(encoding="utf-8") if path.exists() else "") + planted, encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"{contract} BROKEN" in result.stdout, result.stdout
    assert chain in result.stdout, result.stdout


def test_a_new_rag_report_module_must_be_placed_in_a_layer(tmp_path):
    _copy_sources(tmp_path)
    (tmp_path / "rag_report" / "unplaced.py").write_text("from rag_report.errors import RagReportError\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "rag_report.unplaced" in result.stdout and "not listed as layers" in result.stdout, result.stdout


# ---------------------------------------------------------------------------------------------- cycles
def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of a directed graph (Tarjan's algorithm, iterative).

    >>> sorted(map(sorted, strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}})))
    [['a', 'b'], ['c']]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_strongly_connected_finds_a_long_cycle_and_self_contained_nodes():
    graph = {f"m{i}": {f"m{(i + 1) % 50}"} for i in range(50)} | {"x": {"m0"}, "y": set()}
    components = sorted(strongly_connected(graph), key=len)
    assert [len(c) for c in components] == [1, 1, 50]


@pytest.fixture(scope="module")
def import_cycles() -> dict[str, list[list[str]]]:
    """Per package, its import cycles (strongly connected components of more than one module)."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=False)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(edges) > 100, sorted(edges)  # the whole of the four packages was read
    cycles: dict[str, list[list[str]]] = {p: [] for p in PACKAGES}
    for component in strongly_connected(edges):
        if len(component) > 1:
            cycles[component[0].split(".")[0]].append(component)
    return cycles


@pytest.mark.parametrize(
    "package",
    [
        "eval",
        "apps",
        "rag_report",
        "eclip_core",
    ],
)
def test_no_import_cycles(import_cycles, package):
    assert import_cycles[package] == [], f"import cycles in {package}: {import_cycles[package]}"


def test_the_cycle_check_sees_a_planted_cycle(tmp_path, monkeypatch):
    """The same graph and components find a cycle where one is (a guard against a check that cannot fail)."""
    pkg = tmp_path / "cyclic_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclic_pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyclic_pkg import a  # in a function: still an import\n")
    (pkg / "c.py").write_text("from cyclic_pkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclic_pkg", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert [c for c in strongly_connected(edges) if len(c) > 1] == [["cyclic_pkg.a", "cyclic_pkg.b"]]
