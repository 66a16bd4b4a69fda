"""Lazy re-exports for the rooms' packages (retrieval/, drafting/, llm/): a name is imported on first use.

Importing a room's package then loads none of its modules, so ``import rag_report.drafting.hygiene`` (or the
CLI's ``--help``) does not pay for torch or LlamaIndex. The package lists its names for mypy in an
``if TYPE_CHECKING:`` block; tests/test_rooms.py keeps that block and the map given here equal.

>>> names, getattr_ = lazy_exports("json", {"decoder": ("JSONDecodeError",)})
>>> names, getattr_("JSONDecodeError").__name__
(['JSONDecodeError'], 'JSONDecodeError')
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, Sequence[str]], fallback: str | None = None
) -> tuple[list[str], Callable[[str], Any]]:
    """``(__all__, __getattr__)`` for ``package``, whose submodule ``m`` defines the names ``modules[m]``.

    ``fallback``: a submodule asked for any other name that does not start with ``__`` (the names, private
    ones included, of a module the package replaced); without it such a name raises AttributeError.
    """
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = exports.get(name, None if name.startswith("__") else fallback)
        if module is not None:
            try:
                return getattr(importlib.import_module(f"{package}.{module}"), name)
            except AttributeError:
                pass
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return sorted(exports), __getattr__
