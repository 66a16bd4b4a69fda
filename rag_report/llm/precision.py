"""Which LLM precision to load when the user asks for ``quantization="auto"`` (the default).

Why: bitsandbytes' 4-bit CPU path is only fast on CPUs with bf16 matrix instructions (AVX512-BF16 or
AMX-BF16): there it repacks the weights for its fused kernel and :mod:`rag_report.llm.cpu_prefill` adds a dense
bf16 prompt path. On every other CPU it dequantises each 4-bit weight to fp32 on every call, and plain
fp32 drafts faster (docs/perf/llm_no_bf16.md, docs/perf/llm_auto.md). So "auto" means:

- CUDA: ``nf4`` (4-bit weights; what large models need to fit);
- a CPU with AVX512-BF16 or AMX-BF16: ``nf4`` (the fast bf16 path);
- any other CPU, or bitsandbytes missing: ``none`` (fp32 on the CPU).

>>> choose_quantization("auto", "cuda", flags=frozenset()).resolved
'nf4'
>>> choose_quantization("auto", "cpu", flags=frozenset({"avx2"}), bnb_available=True).resolved
'none'
>>> choose_quantization("auto", "cpu", flags=frozenset({"avx512_bf16"}), bnb_available=True).resolved
'nf4'
>>> choose_quantization("int8", "cpu").describe()
'int8 (as configured)'
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

# torch is imported inside the one fallback probe: rag_report.pipeline imports this module and must not load it.

#: Every accepted value of ``quantization``; "auto" resolves to one of the others.
QUANTIZATIONS = ("auto", "nf4", "int8", "none")
#: CPU flags (as /proc/cpuinfo names them) with which bitsandbytes' 4-bit CPU path is fast.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class QuantizationChoice:
    """The precision asked for, the one used, and why (shown in DraftReport.models and the app)."""

    requested: str
    resolved: str
    reason: str

    def describe(self) -> str:
        """One line for people: ``"none (auto: ...)"`` or ``"nf4 (as configured)"``."""
        return f"{self.resolved} ({self.reason})"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / ARM spelling
            return frozenset(value.split())
    return frozenset()


def has_bf16_matmul(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU has AVX512-BF16 or AMX-BF16.

    Reads ``flags`` (default: /proc/cpuinfo); where no flags could be read (not Linux, a sandbox), asks
    torch's own CPU probe instead.
    """
    flags = cpu_flags() if flags is None else flags
    if flags:
        return bool(flags & BF16_FLAGS)
    try:
        import torch

        probe = torch.cpu
        return bool(probe._is_avx512_bf16_supported() or probe._is_amx_tile_supported())
    except (ImportError, AttributeError, RuntimeError):  # private API: absent in some torch builds
        return False


def _bitsandbytes_installed() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def choose_quantization(
    requested: str, device: str, *, flags: frozenset[str] | None = None, bnb_available: bool | None = None
) -> QuantizationChoice:
    """Resolve ``requested`` ("auto" or a concrete value) for ``device`` ("cpu" or "cuda").

    Concrete values pass through unchanged; validation of them is :class:`rag_report.llm.LLMSpec`'s job.
    """
    if requested != "auto":
        return QuantizationChoice(requested, requested, "as configured")
    bnb = _bitsandbytes_installed() if bnb_available is None else bnb_available
    if not bnb:
        return QuantizationChoice("auto", "none", "auto: bitsandbytes is not installed")
    if device == "cuda":
        return QuantizationChoice("auto", "nf4", "auto: 4-bit on CUDA")
    if has_bf16_matmul(flags):
        return QuantizationChoice("auto", "nf4", "auto: CPU with AVX512-BF16/AMX, 4-bit has a fast bf16 path")
    return QuantizationChoice("auto", "none", "auto: CPU without AVX512-BF16/AMX, where fp32 drafts faster than 4-bit")


def draft_model_entries(requested: str, llm: object | None) -> dict[str, str]:
    """``DraftReport.models`` entries for the LLM's precision: what was loaded and why.

    Empty strings when no LLM drafted (top1 / consensus), like ``llm_id``.
    """
    if llm is None:
        return {"quantization": "", "quantization_reason": ""}
    device = getattr(getattr(llm, "device", None), "type", "cpu")
    choice = choose_quantization(requested, device)
    loaded = getattr(getattr(llm, "spec", None), "quantization", choice.resolved)
    return {"quantization": loaded, "quantization_reason": choice.reason}
