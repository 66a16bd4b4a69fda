"""Report metrics: NLG (pycocoevalcap engine), clinical F1 (the project's labeler), `evaluate` modules.

Plain functions for the harness: :func:`eval.metrics.nlg.compute_nlg`,
:func:`eval.metrics.clinical.clinical_f1_from_texts`. The same metrics as `evaluate` modules, loaded
offline from the project's own files (never a hub)::

    import evaluate
    from eval.metrics import module_path
    nlg = evaluate.load(module_path("cxr_nlg"))
    nlg.compute(predictions=["No effusion."], references=["No pleural effusion."], meteor=False)
"""

from __future__ import annotations

from pathlib import Path

MODULES_DIR = Path(__file__).resolve().parent / "modules"
MODULE_NAMES = ("cxr_nlg", "clinical_f1")


def module_path(name: str) -> str:
    """Folder of a local `evaluate` metric module (``cxr_nlg`` or ``clinical_f1``), for evaluate.load.

    >>> Path(module_path("cxr_nlg")).name
    'cxr_nlg'
    """
    if name not in MODULE_NAMES:
        raise ValueError(f"unknown metric module {name!r}; available: {MODULE_NAMES}")
    return str(MODULES_DIR / name)


def load_metric(name: str):
    """``evaluate.load`` of a local module, offline."""
    import evaluate

    return evaluate.load(module_path(name))


__all__ = ["module_path", "load_metric", "MODULES_DIR", "MODULE_NAMES"]
