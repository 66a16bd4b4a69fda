"""Faster prompt processing for bitsandbytes 4-bit models on CPUs with bf16 matrix units.

Why: on a CPU with AVX512-BF16, bitsandbytes 0.50 repacks every 4-bit weight for its CPU kernel at the first
forward and sends all matmuls through it. That kernel is the fastest path for a few rows (one decoded token)
but slow for many rows: a prompt through it is slower than an fp32 dense matmul. For inputs with at least
``min_rows`` rows we dequantise the weight to bf16 and use a dense bf16 matmul (oneDNN uses AMX /
AVX512-BF16 there), with the same next-token argmax; the times of both paths are in docs/perf/llm.md
("evidence prompt forward" column). The bitsandbytes kernel itself computes in bf16, so this does not lower
precision below the default path.

Cost: a second copy of the 4-bit weights in the unpacked layout (the packed layout cannot be dequantised
with the public API), i.e. ~0.5 byte per quantised parameter (~60 MB for a 135M model, 3.6 GB for 7B).
Only installed on the CPU when bitsandbytes would pack (``support_avx512bf16_for_cpu``); CUDA untouched.

>>> from rag_report.llm import LLMSpec, load_llm                   # doctest: +SKIP
>>> llm = load_llm(LLMSpec(quantization="nf4", device="cpu"))    # installs it by default  # doctest: +SKIP
>>> enable_cpu_prefill(llm.model)                                # already done: 0 more  # doctest: +SKIP
0
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

# bitsandbytes is imported inside the functions: it is optional (without it there is no 4-bit layer to change).

#: Rows (tokens) from which the dense path wins: dequantising all weights costs about as much as a prompt
#: of this order through the 4-bit kernel (timings: docs/perf/llm.md).
DEFAULT_MIN_ROWS = 128


def _prefill_class(base: type) -> type:
    class CpuPrefillLinear4bit(base):
        """A bitsandbytes Linear4bit that uses a dequantised bf16 matmul for inputs with many rows."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows = x.numel() // max(x.shape[-1], 1)
            if x.device.type != "cpu" or self.training or rows < self.prefill_min_rows:
                return super().forward(x)
            from bitsandbytes.functional import dequantize_4bit

            weight = dequantize_4bit(self.prefill_qweight, self.prefill_state).to(torch.bfloat16)
            bias = None if self.bias is None else self.bias.to(torch.bfloat16)
            return F.linear(x.to(torch.bfloat16), weight, bias).to(x.dtype)

    return CpuPrefillLinear4bit


def enable_cpu_prefill(model: torch.nn.Module, min_rows: int = DEFAULT_MIN_ROWS) -> int:
    """Give every bitsandbytes 4-bit linear of a CPU ``model`` the dense bf16 path for >= ``min_rows`` rows.

    Must run before the model's first forward (bitsandbytes repacks the weights then). Returns how many
    layers were changed: 0 when bitsandbytes is absent, the model is not 4-bit, not on the CPU, the CPU
    lacks AVX512-BF16, or the model already ran.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    changed = 0
    classes: dict[type, type] = {}
    for module in model.modules():
        if not isinstance(module, bnb.nn.Linear4bit) or hasattr(module, "prefill_qweight"):
            continue
        state = getattr(module.weight, "quant_state", None)
        if (
            state is None
            or module.weight.device.type != "cpu"
            or not getattr(module, "support_avx512bf16_for_cpu", False)
            or getattr(state, "packing_format_for_cpu", False)
        ):
            continue
        module.prefill_qweight = module.weight.data.clone()
        module.prefill_state = copy.deepcopy(state)
        # nn.Module's __setattr__ is typed for tensors and modules; bitsandbytes has no types to narrow to.
        module.prefill_min_rows = int(min_rows)  # type: ignore[assignment]
        base = type(module)
        module.__class__ = classes.setdefault(base, _prefill_class(base))
        changed += 1
    return changed


def prefill_layers(model: torch.nn.Module) -> int:
    """How many layers of ``model`` carry the dense prefill path."""
    return sum(1 for m in model.modules() if hasattr(m, "prefill_qweight"))
