"""The docstring examples of the packages run as tests (what ``--doctest-modules`` would do, but collected
by the plain ``python -m pytest tests`` command): one test per module with at least one example that is
not marked ``# doctest: +SKIP``, under ELLIPSIS and NORMALIZE_WHITESPACE.

Each module's examples run with the process state they could touch put back afterwards: the environment,
the Python / numpy / torch random generators, and ``tempfile``'s folder (pointed at the test's tmp_path, so
examples that write to ``tempfile.mkdtemp()`` leave nothing behind).
"""

from __future__ import annotations

import doctest
import importlib
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("eclip_core", "rag_report", "apps", "eval")
OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _runs_an_example(source: str) -> bool:
    """True when ``source`` holds a doctest example that is not marked +SKIP."""
    skip = doctest.OPTIONFLAGS_BY_NAME["SKIP"]
    return any(not ex.options.get(skip, False) for ex in doctest.DocTestParser().get_examples(source))


def modules_with_examples() -> list[str]:
    """Dotted names of the package modules whose source holds a runnable (non-skipped) example."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if ">>>" in text and _runs_an_example(text):
                parts = path.relative_to(ROOT).with_suffix("").parts
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = modules_with_examples()


def test_examples_are_found():
    assert len(MODULES) >= 50, MODULES  # a broken discovery would otherwise pass by collecting nothing
    assert "eclip_core.model" in MODULES and "rag_report.retrieval.retriever" not in MODULES  # the latter: all +SKIP


@pytest.fixture
def process_state_restored(monkeypatch, tmp_path):
    environ = dict(os.environ)
    states = random.getstate(), np.random.get_state()
    import torch

    torch_state = torch.get_rng_state()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield
    os.environ.clear()
    os.environ.update(environ)
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(torch_state)


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.usefixtures("process_state_restored")
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report: list[str] = []
    for test in finder.find(module, name):
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name}: no example ran (all skipped?)"
    assert result.failed == 0, "".join(report)
