"""rag_report's rooms (retrieval/, drafting/, llm/): each package re-exports its modules' public names lazily,
its docstring walks through every module it holds, and importing a room loads no heavy dependency."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("retrieval", "drafting", "llm")


def _type_checking_imports(room: str) -> dict[str, str]:
    """name -> module, as the ``if TYPE_CHECKING:`` block of the room's __init__ imports it (what mypy sees)."""
    tree = ast.parse((ROOT / "rag_report" / room / "__init__.py").read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    out = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module, ast.unparse(node)
        prefix = f"rag_report.{room}."
        assert node.module.startswith(prefix), node.module
        for alias in node.names:
            assert alias.asname == alias.name, ast.unparse(node)  # an explicit re-export, not a rename
            out[alias.name] = node.module.removeprefix(prefix)
    return out


@pytest.mark.parametrize("room", ROOMS)
def test_the_lazy_exports_are_what_mypy_sees_and_resolve_to_the_modules_objects(room):
    package = importlib.import_module(f"rag_report.{room}")
    exports = {name: module for module, names in package._MODULES.items() for name in names}
    assert _type_checking_imports(room) == exports
    assert package.__all__ == sorted(exports)
    for name, module in exports.items():
        assert getattr(package, name) is getattr(importlib.import_module(f"rag_report.{room}.{module}"), name), name
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018


@pytest.mark.parametrize("room", ROOMS)
def test_the_docstring_names_every_module_of_the_room(room):
    package = importlib.import_module(f"rag_report.{room}")
    modules = sorted(p.stem for p in (ROOT / "rag_report" / room).glob("*.py") if p.stem != "__init__")
    assert len(modules) >= 3, modules
    doc = package.__doc__ or ""
    missing = [m for m in modules if f"rag_report.{room}.{m}`" not in doc]
    assert not missing, f"rag_report.{room}'s docstring does not walk through {missing}"


def test_the_llm_package_still_exports_what_the_flat_llm_module_did():
    import rag_report.llm as llm
    from rag_report.llm import loading

    public = [
        n
        for n, v in vars(loading).items()
        if not n.startswith("_") and getattr(v, "__module__", "") == loading.__name__
    ]
    assert {"FrozenLLM", "LLMSpec", "load_llm", "convert_gguf", "clear_llm_cache"} <= set(public)
    for name in [*public, "DEFAULT_GGUF", "DEFAULT_PACKAGE", "_resolve_folder", "_CACHE_LOCK"]:
        assert getattr(llm, name) is getattr(loading, name), name
    with pytest.raises(AttributeError):
        llm.__wrapped__  # noqa: B018  # dunder probes (inspect, doctest) do not fall through to loading


def test_importing_the_rooms_loads_no_heavy_dependency():
    code = (
        "import json, sys\n"
        "import rag_report.retrieval, rag_report.drafting, rag_report.llm, rag_report.pipeline\n"
        "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'llama_index.core', 'faiss') if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


MOVED = {
    "retrieval": ("retriever", "label_classifiers", "label_boost", "diversify", "image_views", "embedding"),
    "drafting": ("drafters", "consensus", "grounded", "free", "prompts", "hygiene", "checker"),
    "llm": ("precision", "cpu_prefill"),
}
OLD_PATH = re.compile(
    rf"(?<![\w.])rag_report\.({'|'.join(m for ms in MOVED.values() for m in ms)})(?!\w)"
    rf"|from rag_report import [^\n]*\b({'|'.join(m for ms in MOVED.values() for m in ms)})\b"
)


def test_no_module_or_flat_file_is_left_at_its_old_path():
    for room, modules in MOVED.items():
        for module in modules:
            assert not (ROOT / "rag_report" / f"{module}.py").exists(), module
            if module != "checker":
                assert (ROOT / "rag_report" / room / f"{module}.py").is_file(), module
    # (the old paths spelled in two pieces, so that the rewrite of old paths in a tree leaves this test alone)
    assert OLD_PATH.search("from rag_report" + ".grounded import x")
    assert OLD_PATH.search("from rag_report import " + "free")
    assert not OLD_PATH.search("from rag_report.drafting.grounded import x; rag_report.llm.precision")
    stale = [
        f"{path.relative_to(ROOT)}:{text[: match.start()].count(chr(10)) + 1}"
        for package in ("rag_report", "apps", "eval", "tests")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "test_rooms.py"
        for text in [path.read_text(encoding="utf-8")]
        for match in OLD_PATH.finditer(text)
    ]
    assert not stale, f"old module paths: {stale}"
