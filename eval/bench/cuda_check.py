"""Device check: the CUDA code paths (which the CPU test suite cannot exercise), in one short run.

    python -m eval.bench.cuda_check --out DIR                      # on a CUDA machine (minutes on one GPU)
    python -m eval.bench.cuda_check --device cpu --quick --out DIR # the same code paths on the CPU

Writes DIR/cuda_check.md and DIR/cuda_check.json; every section records ok / failed (with the error) /
skipped (with why), and the exit status is 1 if any section failed. Sections:

1. environment: torch, CUDA device, bf16 support, versions of open_clip, bitsandbytes, faiss.
2. training through ``eclip_core.train`` (accelerate) on a synthetic blob data set with eclip-tiny, in fp32,
   bf16 and fp16 mixed precision, expert batches injected: finite losses, the loss falling, step time and
   peak GPU memory.
3. the training-step benchmark (``eval.bench.training.train_step.measure_steps``) on the device: CLIP vs eCLIP
   steps with and without an expert batch, fp32 and bf16 autocast, paired per-round ratios.
4. the frozen LLM through ``rag_report.llm.load_llm``: a model shaped like SmolLM2-135M-Instruct (random
   weights, so the check needs no model file) saved locally and loaded with
   quantization none / int8 / nf4 (bitsandbytes on CUDA): memory footprint, greedy tokens/s, and the
   4-bit model's first tokens against the unquantised one's.
5. faiss on the GPU when the installed faiss has GPU support (faiss-gpu, the ``gpu`` extra).

Install the project on the CUDA machine first (``pip install -e '.[gpu]'``; offline: from a wheel folder
with ``pip install --no-index --find-links WHEELS -e '.[gpu]'``). Without faiss-gpu (the ``gpu`` extra,
which needs the CUDA 12 runtime) section 5 reports "skipped"; every other section still runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from eclip_core.runtime import setup_offline  # noqa: E402

setup_offline()  # before any Hugging Face library is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402

from eval.bench.page import write_page  # noqa: E402

# SmolLM2-135M-Instruct's architecture (the default LLM), from its converted config.json.
SMOLLM2_SHAPE = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    vocab_size=49152,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    rope_theta=100000.0,
)
TINY_LLM_SHAPE = dict(
    SMOLLM2_SHAPE,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=512,
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_environment(device: torch.device) -> dict:
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(
            device=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            bf16=torch.cuda.is_bf16_supported(),
            cuda=torch.version.cuda,
        )
    for pkg in ("open_clip_torch", "transformers", "accelerate", "bitsandbytes", "faiss-cpu", "faiss-gpu-cu12"):
        out[pkg] = _version(pkg)
    return out


def check_training(device: torch.device, precisions: list[str], steps: int, workdir: Path) -> dict:
    """eclip-tiny through eclip_core.train on blob data, expert batches in every step after the cold start."""
    from eclip_core.config import EClipConfig, TrainConfig
    from eclip_core.train import train
    from eclip_core.training.synthetic import make_blob_dataset

    manifest = make_blob_dataset(workdir / "blobs", n=96, size=64, expert_fraction=0.4, seed=0)
    runs = {}
    for precision in precisions:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        cfg = TrainConfig(
            manifest=str(manifest),
            output_dir=str(workdir / f"run_{precision}"),
            steps=steps,
            batch_size=32,
            lr=1e-3,
            warmup_frac=0.05,
            weight_decay=0.0,
            p_start=1.0,
            p_peak=1.0,
            p_floor=1.0,
            cold_frac=0.1,
            mixed_precision=precision,
            cpu=device.type == "cpu",
            model=EClipConfig(name="eclip-tiny", clahe_p=0.0),
            progress=False,
            validate_images=False,
            log_every=max(1, steps // 10),
        )
        t0 = time.perf_counter()
        result = train(cfg)
        seconds = time.perf_counter() - t0
        losses = np.asarray(result.losses, dtype=float)
        k = max(1, len(losses) // 5)
        first, last = float(losses[:k].mean()), float(losses[-k:].mean())
        runs[precision] = {
            "steps": result.steps,
            "expert_steps": result.expert_steps,
            "finite": bool(np.isfinite(losses).all()),
            "loss_first_fifth": round(first, 4),
            "loss_last_fifth": round(last, 4),
            "loss_fell": last < first,
            "seconds_per_step": round(seconds / max(1, result.steps), 4),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None,
        }
        # a few steps (--quick) cannot be expected to lower the loss; a real check runs >= 30
        if not runs[precision]["finite"] or (steps >= 30 and not runs[precision]["loss_fell"]):
            raise AssertionError(f"{precision}: loss not finite or not falling: {runs[precision]}")
    return runs


def check_step_ratio(device: torch.device, model: str, batch_size: int, repeats: int, bf16: bool) -> dict:
    from eval.bench.training.train_step import measure_steps

    out = {}
    for name, dtype in [("fp32", None)] + ([("bf16 autocast", torch.bfloat16)] if bf16 else []):
        steps = measure_steps(
            model, batch_size, repeats, lock_text=True, before_rows=False, device=str(device), autocast_dtype=dtype
        )
        out[name] = {
            k: {"median_s": round(steps["median_s"][k], 4), "ratio": str(steps["ratio"][k])} for k in steps["median_s"]
        }
    return out


def _random_llm_folder(folder: Path, shape: dict) -> Path:
    """A LlamaForCausalLM of ``shape`` with seeded random weights and a word-level tokenizer, saved as a plain
    HF folder (what load_llm takes for a user's local model)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    # no end-of-sequence token: random weights would stop at it at random; every run makes max_new_tokens
    config = LlamaConfig(**shape, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    LlamaForCausalLM(config).save_pretrained(folder)
    vocab = {"<unk>": 0} | {f"w{i}": i for i in range(1, shape["vocab_size"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(folder)
    return folder


def check_llm(device: torch.device, quantizations: list[str], shape: dict, new_tokens: int, workdir: Path) -> dict:
    from rag_report.llm import LLMSpec, clear_llm_cache, load_llm

    folder = _random_llm_folder(workdir / "llm", shape)
    prompt = " ".join(f"w{(7 * i) % (shape['vocab_size'] - 1) + 1}" for i in range(64))
    out: dict[str, Any] = {"shape": {k: shape[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")}}
    reference = None
    for q in quantizations:
        clear_llm_cache()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        llm = load_llm(LLMSpec(path=str(folder), quantization=q, device=device.type))
        llm.generate(prompt, max_new_tokens=4)  # warm-up (kernels, caches)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        text = llm.generate(prompt, max_new_tokens=new_tokens)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        tokens = llm.encode(text)
        linear_types = sorted({type(m).__name__ for m in llm.model.modules() if "Linear" in type(m).__name__})
        out[q] = {
            "id": llm.id,
            "device": str(llm.device),
            "footprint_mib": round(llm.model.get_memory_footprint() / 2**20, 1),
            "tokens_per_s": round(len(tokens) / seconds, 1),
            "new_tokens": len(tokens),
            "linear_types": linear_types,
            "load_s": round(llm.load_seconds, 2),
        }
        if device.type == "cuda":
            out[q]["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        if reference is None:
            reference = tokens
        else:  # random weights: only how far the quantised model's greedy path follows the reference
            same = next(
                (i for i, (a, b) in enumerate(zip(tokens, reference)) if a != b), min(len(tokens), len(reference))
            )
            out[q]["tokens_agreeing_with_" + quantizations[0]] = same
        if q != "none" and not _has_bitsandbytes_layers(llm.model):
            raise AssertionError(f"quantization={q} but no bitsandbytes layers in the model: {linear_types}")
    clear_llm_cache()
    return out


def _has_bitsandbytes_layers(model: torch.nn.Module) -> bool:
    import bitsandbytes as bnb

    return any(isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)) for m in model.modules())


def check_faiss_gpu(device: torch.device) -> dict:
    try:
        import faiss
    except ImportError:
        return {"skipped": "faiss is not installed"}
    if device.type != "cuda" or not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
        return {"skipped": f"this faiss ({getattr(faiss, '__version__', '?')}) has no GPU support or sees no GPU"}
    rng = np.random.default_rng(0)
    base = rng.standard_normal((100_000, 256)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[:100] + 0.01 * rng.standard_normal((100, 256)).astype(np.float32)
    cpu_index = faiss.IndexFlatIP(256)
    cpu_index.add(base)
    gpu_index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, cpu_index)
    t0 = time.perf_counter()
    _, ids_gpu = gpu_index.search(queries, 10)
    gpu_ms = 1000 * (time.perf_counter() - t0)
    _, ids_cpu = cpu_index.search(queries, 10)
    agree = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids_gpu, ids_cpu)]))
    if agree < 0.99:
        raise AssertionError(f"GPU flat search agrees with the CPU's top-10 on only {agree:.3f}")
    return {
        "vectors": 100_000,
        "dim": 256,
        "top10_agreement_with_cpu": agree,
        "search_ms_100_queries": round(gpu_ms, 1),
    }


def _run(name: str, fn: Callable[[], dict], results: dict) -> None:
    t0 = time.perf_counter()
    try:
        value = fn()
        status = "skipped" if isinstance(value, dict) and set(value) == {"skipped"} else "ok"
        results[name] = {"status": status, "seconds": round(time.perf_counter() - t0, 1), "result": value}
    except Exception as exc:  # a failed section is recorded; the others still run
        results[name] = {
            "status": "failed",
            "seconds": round(time.perf_counter() - t0, 1),
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-4000:],
        }
    print(f"[cuda_check] {name}: {results[name]['status']} ({results[name]['seconds']} s)", file=sys.stderr, flush=True)


def render(results: dict, command: str) -> list[str]:
    lines = [
        "# CUDA device check",
        "",
        f"Command: `{command}`",
        "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| section | status | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v['status']} | {v['seconds']} |" for k, v in results.items()]
    for k, v in results.items():
        lines += [
            "",
            f"## {k}",
            "",
            "```json",
            json.dumps(v.get("result", {"error": v.get("error")}), indent=1, default=str),
            "```",
        ]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for cuda_check.md and cuda_check.json")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="tiny sizes (a self-test of the code paths)")
    p.add_argument("--step-model", default="ViT-B-16", help="backbone for the training-step ratios")
    args = p.parse_args(argv)
    command = "python -m eval.bench.cuda_check " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device (use --device cpu for a self-test)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    bf16 = device.type == "cpu" or torch.cuda.is_bf16_supported()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="cuda_check_") as tmp:
        work = Path(tmp)
        _run("environment", lambda: check_environment(device), results)
        precisions = ["no", "bf16"] if args.quick else ["no", "bf16", "fp16"]
        _run(
            "training (eclip_core.train, eclip-tiny)",
            lambda: check_training(device, precisions, 4 if args.quick else 60, work),
            results,
        )
        _run(
            f"training-step ratios ({'eclip-tiny' if args.quick else args.step_model})",
            lambda: check_step_ratio(
                device,
                "eclip-tiny" if args.quick else args.step_model,
                8 if args.quick else 64,
                2 if args.quick else 10,
                bf16,
            ),
            results,
        )
        quants = ["none", "nf4"] if args.quick else ["none", "int8", "nf4"]
        _run(
            "frozen LLM (rag_report.llm, bitsandbytes)",
            lambda: check_llm(
                device, quants, TINY_LLM_SHAPE if args.quick else SMOLLM2_SHAPE, 8 if args.quick else 128, work
            ),
            results,
        )
        _run("faiss on the GPU", lambda: check_faiss_gpu(device), results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cuda_check.json").write_text(
        json.dumps({"command": command, "results": results}, indent=1, default=str), encoding="utf-8"
    )
    write_page(out / "cuda_check.md", render(results, command))
    return 1 if any(v["status"] == "failed" for v in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
