"""quantization="auto": nf4 on CUDA and on CPUs with AVX512-BF16/AMX, fp32 ("none") elsewhere; the choice is
what loads and what a draft reports."""

from __future__ import annotations

import pytest
from test_llm_support import make_tiny_llama

from rag_report.llm import LLMSpec, clear_llm_cache, load_llm, precision
from rag_report.llm.precision import choose_quantization, cpu_flags, draft_model_entries, has_bf16_matmul
from rag_report.pipeline import PipelineConfig


def test_defaults_are_auto():
    assert LLMSpec().quantization == "auto" and PipelineConfig().quantization == "auto"


@pytest.mark.parametrize(
    "device, flags, bnb, expected",
    [
        ("cuda", frozenset(), True, "nf4"),
        ("cpu", frozenset({"avx2", "fma"}), True, "none"),
        ("cpu", frozenset({"avx512f", "avx512_bf16"}), True, "nf4"),
        ("cpu", frozenset({"amx_bf16", "amx_tile"}), True, "nf4"),
        ("cpu", frozenset({"avx512f", "avx512_vnni"}), True, "none"),  # AVX-512 alone is not enough
        ("cuda", frozenset(), False, "none"),  # no bitsandbytes: nothing to quantize with
    ],
)
def test_auto_resolution(device, flags, bnb, expected):
    choice = choose_quantization("auto", device, flags=flags, bnb_available=bnb)
    assert choice.requested == "auto" and choice.resolved == expected
    assert choice.reason.startswith("auto:") and expected in choice.describe()


@pytest.mark.parametrize("q", ["nf4", "int8", "none"])
def test_explicit_choices_pass_through(q):
    assert choose_quantization(q, "cpu", flags=frozenset()).resolved == q


def test_cpu_flags_are_read_from_proc_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    real_path = precision.Path
    monkeypatch.setattr(precision, "Path", lambda p: real_path(info) if p == "/proc/cpuinfo" else real_path(p))
    cpu_flags.cache_clear()
    try:
        assert cpu_flags() == frozenset({"fpu", "avx2", "avx512_bf16"})
        assert has_bf16_matmul()
    finally:
        cpu_flags.cache_clear()


def test_without_flags_torch_is_asked(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert has_bf16_matmul(frozenset()) is True
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert has_bf16_matmul(frozenset()) is False


def test_auto_loads_the_resolved_precision(tmp_path, monkeypatch):
    folder = make_tiny_llama(tmp_path / "tiny")
    clear_llm_cache()
    # Force each CPU kind: the loaded model follows the resolution, and the cache is shared with the
    # explicit spelling of the same precision.
    monkeypatch.setattr(precision, "has_bf16_matmul", lambda flags=None: False)
    llm = load_llm(LLMSpec(path=str(folder), device="cpu"))
    assert llm.spec.quantization == "none" and llm.id.endswith("/float32")
    assert load_llm(LLMSpec(path=str(folder), device="cpu", quantization="none")) is llm
    assert draft_model_entries("auto", llm) == {
        "quantization": "none",
        "quantization_reason": "auto: CPU without AVX512-BF16/AMX, where fp32 drafts faster than 4-bit",
    }
    assert draft_model_entries("auto", None) == {"quantization": "", "quantization_reason": ""}
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    monkeypatch.setattr(precision, "has_bf16_matmul", lambda flags=None: True)
    llm4 = load_llm(LLMSpec(path=str(folder), device="cpu"))
    assert llm4.spec.quantization == "nf4" and any(isinstance(m, bnb.nn.Linear4bit) for m in llm4.model.modules())
    clear_llm_cache()
