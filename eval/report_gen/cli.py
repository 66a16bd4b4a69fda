"""Command line: ``python -m eval.report_gen [--quick] [--suite report|embedding] ...``.

Every flag maps to a field of :class:`ReportGenConfig` (report suite) or :class:`EmbeddingSuiteConfig`
(embedding suite). Nothing reaches the network: HF/evaluate offline variables are set before imports.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

from eval.report_gen.config import SYSTEMS

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_EVALUATE_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
}


def _none_or_int(value: str) -> int | None:
    return None if value.lower() in ("none", "all", "0") else int(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m eval.report_gen",
        description="Benchmark report drafting (random / CLIP / eCLIP / LLM / oracle) on one split, or the "
                    "embedding suite (eCLIP vs CLIP, ablation ladder). Defaults: the embedded default bundle.")
    p.add_argument("--suite", choices=("report", "embedding", "tower"), default="report",
                   help="report: the drafting systems side by side; embedding: eCLIP vs CLIP and the ablation "
                        "ladder; tower: which image tower learns most in the default's training budget (val split)")
    p.add_argument("--manifest", help="study manifest (CSV/JSONL); default: the default bundle's phantom data")
    p.add_argument("--split", default="test")
    p.add_argument("--model", help="eCLIP checkpoint folder (default: the bundle's)")
    p.add_argument("--index", help="report index folder built with --model (default: the bundle's)")
    p.add_argument("--paper-model", help="eCLIP checkpoint trained with the paper's objective, for the eCLIP rows "
                   "(default bundle: trained with the same budget; with --manifest: --model)")
    p.add_argument("--paper-index", help="index built with --paper-model (default: built from the train split)")
    p.add_argument("--clip-model", help="CLIP baseline checkpoint (default bundle: trained with the same budget)")
    p.add_argument("--clip-index", help="index built with --clip-model (default: built from the train split)")
    p.add_argument("--llm", help="local LLM folder or .gguf file (default: SmolLM2-135M-Instruct)")
    p.add_argument("--quantization", default="auto", choices=("auto", "nf4", "int8", "none"),
                   help="LLM precision (auto: nf4 on CUDA and on CPUs with AVX512-BF16/AMX, else none)")
    p.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS), metavar="SYSTEM",
                   help="subset of: " + ", ".join(SYSTEMS))
    p.add_argument("--limit", type=_none_or_int, default=None, help="at most N test studies (sorted by id)")
    p.add_argument("--llm-limit", type=_none_or_int, default=-1,
                   help="grounded LLM row on the first N of them (default: 100; --quick: 30; 'all' for all)")
    p.add_argument("--free-limit", type=_none_or_int, default=-1,
                   help="free-mode LLM row on the first N (default: 30; --quick: 10)")
    p.add_argument("--quick", action="store_true",
                   help="<= 100 studies, grounded LLM on 30, free LLM on 10, cached models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--diversify", default="kmeans", choices=("kmeans", "mmr", "none"))
    p.add_argument("--label-boost", default=None, choices=("off", "filter", "rerank"),
                   help="label boost of the default model's rows (default: the pipeline's)")
    p.add_argument("--label-weight", type=float, default=None, help="rerank weight of label agreement")
    p.add_argument("--full-systems", nargs="+", default=[], metavar="SYSTEM",
                   help="LLM systems to run on every study despite --llm-limit (e.g. boost_grounded)")
    p.add_argument("--max-sentences", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--num-beams", type=int, default=1, help="free mode beams (1 = greedy; the paper uses 4)")
    p.add_argument("--out-dir", default=None, help="output folder (default runs/report_gen or runs/embedding)")
    p.add_argument("--name", default=None, help="output file stem (default report_gen / embedding)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java; slow JVM start)")
    # Embedding suite budget.
    p.add_argument("--steps", type=int, default=None, help="embedding suite: training steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="embedding suite: seeds (default 0 1 2)")
    p.add_argument("--variants", nargs="+", default=None, help="embedding suite: ablation variants to train")
    p.add_argument("--model-config", default=None, help="embedding suite: model config name (eclip-small)")
    p.add_argument("--train-batch-size", type=int, default=None, help="embedding suite: training batch size")
    p.add_argument("--max-eval", type=_none_or_int, default=None, help="embedding suite: cap on test studies")
    p.add_argument("--lock-text", action=argparse.BooleanOptionalAction, default=None,
                   help="embedding suite: freeze the text tower except its projection (as the default bundle does)")
    p.add_argument("--train-lr", type=float, default=None, help="embedding suite: learning rate")
    p.add_argument("--num-workers", type=int, default=None, help="embedding suite: data-loader processes per run")
    p.add_argument("--include-runs", nargs="+", default=None, metavar="JSON",
                   help="embedding suite: result JSON files of earlier runs (same budget) to merge into the table")
    return p


def main(argv: list[str] | None = None) -> int:
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from eclip_core.cpu_memory import keep_freed_memory

    keep_freed_memory()  # as every command-line entry point does
    command = "python -m eval.report_gen " + " ".join(shlex.quote(a) for a in argv)
    if args.suite == "embedding":
        from eval.report_gen.embedding_suite import EmbeddingSuiteConfig, run_embedding_suite

        cfg = EmbeddingSuiteConfig(manifest=args.manifest, out_dir=args.out_dir or "runs/embedding",
                                   name=args.name or "embedding", progress=not args.no_progress, command=command)
        for field_name, value in (("steps", args.steps), ("seeds", args.seeds), ("variants", args.variants),
                                  ("model", args.model_config), ("batch_size", args.train_batch_size),
                                  ("max_eval", args.max_eval), ("lock_text", args.lock_text),
                                  ("lr", args.train_lr), ("num_workers", args.num_workers),
                                  ("include_runs", args.include_runs)):
            if value is not None:
                setattr(cfg, field_name, value)
        result = run_embedding_suite(cfg)
    elif args.suite == "tower":
        from eval.report_gen.tower_suite import TowerSuiteConfig, run_tower_suite

        cfg = TowerSuiteConfig(manifest=args.manifest, out_dir=args.out_dir or "runs/tower", name=args.name or "tower",
                               progress=not args.no_progress, command=command)
        for field_name, value in (("seeds", args.seeds), ("variants", args.variants), ("num_workers", args.num_workers)):
            if value is not None:
                setattr(cfg, field_name, value)
        result = run_tower_suite(cfg)
    else:
        from eval.report_gen.config import ReportGenConfig
        from eval.report_gen.run import run_report_gen

        from dataclasses import replace

        from rag_report.pipeline import PipelineConfig

        base = PipelineConfig()
        pipeline = replace(
            base, model_dir=args.model, index_dir=args.index, llm_path=args.llm, quantization=args.quantization,
            k=args.k, candidates=args.candidates, diversify=None if args.diversify == "none" else args.diversify,
            max_sentences=args.max_sentences, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
            label_boost=args.label_boost or base.label_boost,
            label_weight=base.label_weight if args.label_weight is None else args.label_weight,
        )
        cfg = ReportGenConfig(
            manifest=args.manifest, split=args.split, pipeline=pipeline, paper_model=args.paper_model,
            paper_index=args.paper_index, clip_model=args.clip_model, clip_index=args.clip_index,
            systems=args.systems, limit=args.limit,
            llm_limit=(30 if args.quick else 100) if args.llm_limit == -1 else args.llm_limit,
            free_limit=(10 if args.quick else 30) if args.free_limit == -1 else args.free_limit,
            full_systems=args.full_systems, quick=args.quick, seed=args.seed,
            out_dir=args.out_dir or "runs/report_gen", name=args.name or "report_gen",
            progress=not args.no_progress, command=command, meteor=not args.no_meteor,
        )
        result = run_report_gen(cfg)
    md = result["outputs"]["markdown"]
    with open(md, encoding="utf-8") as fh:
        sys.stdout.write(fh.read())
    sys.stdout.write("\nwritten: " + ", ".join(result["outputs"].values()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
