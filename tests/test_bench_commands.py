"""Every ``python -m eval...`` command the README and docs/ name runs a module that exists and is a script, and
every import of an eval module in eval/ (lazy ones too) names a module and a name that exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"python -m (eval(?:\.\w+)+)")


def _named_modules() -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for module in COMMAND.findall(page.read_text(encoding="utf-8")):
            named.setdefault(module, []).append(str(page.relative_to(ROOT)))
    return named


def _is_script(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    if spec.submodule_search_locations is not None:  # a package: runs its __main__
        return importlib.util.find_spec(module + ".__main__") is not None
    return 'if __name__ == "__main__":' in Path(spec.origin).read_text(encoding="utf-8")


def test_the_docs_name_benchmark_commands():
    named = _named_modules()
    assert {"eval.bench.collect", "eval.bench.search.retrieval", "eval.bench.training.train_step"} <= set(named)


def test_every_named_command_runs_a_script():
    bad = {m: pages[:3] for m, pages in _named_modules().items() if not _is_script(m)}
    assert not bad, f"commands in the docs whose module is gone or is no script: {bad}"


def test_the_check_rejects_a_moved_module():
    assert not _is_script("eval.bench.retrieval")  # moved to eval.bench.search.retrieval
    assert not _is_script("eval.bench.page")  # a library module, not a script
    assert _is_script("eval.report_gen")  # a package with __main__


def _eval_imports() -> list[tuple[str, int, str, str | None]]:
    """(file, line, module, name or None) of every import of an eval module in eval/, inside functions too."""
    import ast

    found = []
    for path in sorted((ROOT / "eval").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "eval":
                found += [(rel, node.lineno, node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [(rel, node.lineno, a.name, None) for a in node.names if a.name.split(".")[0] == "eval"]
    return found


def test_every_import_of_an_eval_module_resolves():
    """Lazy imports (inside functions) run only on their path: a moved module or a removed name would
    fail there, at run time, unless checked here."""
    import importlib

    bad = []
    for rel, line, module, name in _eval_imports():
        if importlib.util.find_spec(module) is None:
            bad.append(f"{rel}:{line}: no module {module}")
        elif name is not None and not hasattr(mod := importlib.import_module(module), name):
            is_package = hasattr(mod, "__path__")
            if not (is_package and importlib.util.find_spec(f"{module}.{name}") is not None):
                bad.append(f"{rel}:{line}: {module} has no {name}")
    assert not bad, "\n".join(bad)


def test_the_import_check_sees_lazy_imports():
    imports = _eval_imports()
    lazy = ("eval/bench/drafting/grounded_sweep.py", "eval.report_gen.run", "select_studies")
    assert any((rel, module, name) == lazy for rel, _, module, name in imports)
