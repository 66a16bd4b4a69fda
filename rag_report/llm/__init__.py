"""The frozen LLM that grounded and free drafting prompt (nothing here trains).

A draft passes the modules in this order:

1. :mod:`~rag_report.llm.precision`: which precision ``quantization="auto"`` loads on this machine;
2. :mod:`~rag_report.llm.loading`: :func:`load_llm` resolves the model (a local folder or a GGUF file,
   converted once), loads it with transformers (+ bitsandbytes), freezes and caches it as a
   :class:`FrozenLLM`;
3. :mod:`~rag_report.llm.cpu_prefill`: on CPUs with bf16 matrix units, long inputs (prompts) of a 4-bit
   model take a dense bf16 path.

Every name of the former flat module ``rag_report.llm`` (now :mod:`~rag_report.llm.loading`) is still
importable from ``rag_report.llm`` (lazily: importing this package loads no torch).

>>> from rag_report.llm import LLMSpec, QUANTIZATIONS
>>> LLMSpec().quantization in QUANTIZATIONS
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag_report.lazy import lazy_exports

if TYPE_CHECKING:
    from rag_report.llm.cpu_prefill import DEFAULT_MIN_ROWS as DEFAULT_MIN_ROWS
    from rag_report.llm.cpu_prefill import enable_cpu_prefill as enable_cpu_prefill
    from rag_report.llm.cpu_prefill import prefill_layers as prefill_layers
    from rag_report.llm.loading import DEFAULT_GGUF as DEFAULT_GGUF
    from rag_report.llm.loading import DEFAULT_PACKAGE as DEFAULT_PACKAGE
    from rag_report.llm.loading import FrozenLLM as FrozenLLM
    from rag_report.llm.loading import LLMSpec as LLMSpec
    from rag_report.llm.loading import clear_llm_cache as clear_llm_cache
    from rag_report.llm.loading import convert_gguf as convert_gguf
    from rag_report.llm.loading import converted_folder as converted_folder
    from rag_report.llm.loading import default_gguf_path as default_gguf_path
    from rag_report.llm.loading import load_llm as load_llm
    from rag_report.llm.precision import BF16_FLAGS as BF16_FLAGS
    from rag_report.llm.precision import QUANTIZATIONS as QUANTIZATIONS
    from rag_report.llm.precision import QuantizationChoice as QuantizationChoice
    from rag_report.llm.precision import choose_quantization as choose_quantization
    from rag_report.llm.precision import cpu_flags as cpu_flags
    from rag_report.llm.precision import draft_model_entries as draft_model_entries
    from rag_report.llm.precision import has_bf16_matmul as has_bf16_matmul

# the modules of this room -> the names each defines (kept equal to the imports above by tests/test_rooms.py)
_MODULES: dict[str, tuple[str, ...]] = {
    "precision": (
        "BF16_FLAGS",
        "QUANTIZATIONS",
        "QuantizationChoice",
        "choose_quantization",
        "cpu_flags",
        "draft_model_entries",
        "has_bf16_matmul",
    ),
    "loading": (
        "DEFAULT_GGUF",
        "DEFAULT_PACKAGE",
        "FrozenLLM",
        "LLMSpec",
        "clear_llm_cache",
        "convert_gguf",
        "converted_folder",
        "default_gguf_path",
        "load_llm",
    ),
    "cpu_prefill": ("DEFAULT_MIN_ROWS", "enable_cpu_prefill", "prefill_layers"),
}
# any other name of the former flat llm module (now loading; private ones included) still resolves
__all__, __getattr__ = lazy_exports(__name__, _MODULES, fallback="loading")
