"""Every ``python -m eval...`` command the README and docs/ name runs a module that exists and is a script."""

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
