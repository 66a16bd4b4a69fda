"""The rows of the summary pages (docs/RESULTS.md, docs/PERFORMANCE.md): for each, its page, its target and
how to read the measured number and verdict from the page; and the order of the detailed pages.

To summarise a new page, add a :class:`Row` to :data:`SUMMARY` (and the page's stem to :data:`ORDER`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eval.bench import summary_readers as read
from eval.bench.page_reader import Page

#: Order of the detailed pages in each list; pages not named here follow, alphabetically.
ORDER = {
    "perf": [
        "train_step",
        "train_step_2threads",
        "train_step_vitb16",
        "cpu_memory",
        "phantom",
        "data_io",
        "labeler",
        "retrieval",
        "retrieval_hnsw_1m",
        "retrieval_reports",
        "retrieval_reports_hnsw_1m",
        "llm",
        "llm_no_bf16",
        "llm_auto",
        "pipeline",
        "pipeline_no_bf16",
        "pipeline_fp32",
        "pipeline_default",
        "free_stop",
        "app",
        "batch",
        "cold_start",
        "tower_cost",
    ],
    "results": [
        "labeler",
        "phantom",
        "data_io",
        "report_gen",
        "report_gen_quick",
        "grounded_sweep",
        "ood",
        "embedding",
        "llm_paired",
        "real",
    ],
}


@dataclass(frozen=True)
class Row:
    """One summary row: ``read(page) -> (measured, verdict)``; command defaults to the page's."""

    what: str
    page: str
    target: str
    read: Callable[[Page], tuple[str, str]]
    command: str | None = None
    readme: bool = False  # also a row of README.md's "Results at a glance"


SUMMARY: dict[str, list[Row]] = {
    "results": [
        Row(
            "Labeler vs NegBio expert labels (real Open-I text, 8 observations)",
            "results/labeler.md",
            "micro-F1 >= 0.90",
            read.labeler,
            readme=True,
        ),
        Row(
            "Phantom X-rays carry their findings (CNN from scratch)",
            "results/phantom.md",
            "every scored kind AUROC >= 0.85",
            read.learnability,
        ),
        Row("Report sectioning (real text, 8 layouts)", "results/data_io.md", "-", read.sectioning),
        Row(
            "eCLIP top-1 over random retrieval, clinical micro-F1(14), 763 test studies",
            "results/report_gen.md",
            ">= 0.15",
            read.margin,
            readme=True,
        ),
        Row(
            "Paper eCLIP: grounded LLM draft vs top-1, clinical micro-F1(14), same studies",
            "results/report_gen.md",
            ">= top-1",
            read.grounded,
        ),
        Row(
            "Default draft (`generate_report(image)`), clinical micro-F1(5) / macro-F1(14), test split",
            "results/report_gen.md",
            ">= 0.60 / >= 0.36",
            read.default_f1,
            readme=True,
        ),
        Row(
            "Checked default draft (top-1), test split: drafts with a defect the checker removes; clinical F1",
            "results/llm_paired.md",
            "0 defects; F1 not below 0.563 / 0.331",
            read.checked_default,
            readme=True,
        ),
        Row(
            "Checked grounded LLM vs top-1, same studies (95 % CI of the difference)",
            "results/llm_paired.md",
            "LLM default only if not worse on micro-F1(5) and better on ROUGE-L or CIDEr",
            read.llm_paired,
            readme=True,
        ),
        Row(
            "Label-boosted top-1: distinct drafts over the test split",
            "results/report_gen.md",
            ">= 150",
            read.boost_distinct,
            readme=True,
        ),
        Row(
            "Label classifiers on the X-ray's embedding: test AUROC, mean over observations with >= 10 positives",
            "results/report_gen.md",
            ">= 0.88",
            read.classifier_auroc,
            readme=True,
        ),
        Row(
            "Label-boosted grounded LLM vs label-boosted top-1, same studies",
            "results/report_gen.md",
            ">= top-1 (else top-1 is the default)",
            read.boost_grounded_vs_top1,
        ),
        Row(
            "Full benchmark from an empty cache (bundle, paper eCLIP and CLIP baselines, all systems)",
            "results/report_gen.md",
            "<= 30 min",
            read.wall(r"took \*\*(\d+) min (\d+) s\*\*", 30),
            readme=True,
        ),
        Row(
            "`--quick` benchmark, models cached",
            "results/report_gen_quick.md",
            "<= 5 min",
            read.wall(r"\*\*(\d+) min (\d+) s wall\*\*", 5),
            readme=True,
        ),
        Row(
            "Warnings on images unlike the corpus",
            "results/ood.md",
            "warn on every non-X-ray, <= 2 % false alarms",
            read.ood,
        ),
        Row(
            "eCLIP vs CLIP, 3 seeds, default budget",
            "results/embedding.md",
            "-",
            read.embedding,
            command=read.EMBEDDING_COMMAND,
        ),
        Row(
            "eCLIP (paper objective) vs CLIP on the pretrained tower (Lite0 224 px, trunk locked), val, paired by seed",
            "results/tower.md",
            "-",
            read.tower_pair,
            command=read.TOWER_PAIR_COMMAND,
        ),
    ],
    "perf": [
        Row(
            "Hospital hand-off: `rag-report batch` over a folder, default bundle, SR + FHIR written",
            "perf/batch.md",
            ">= 8 studies/s",
            read.batch_folder,
            readme=True,
        ),
        Row(
            "Hospital hand-off: 200 studies PACS (Orthanc, DICOMweb) -> drafts -> SRs stored",
            "perf/batch.md",
            "<= 120 s",
            read.batch_pacs,
            readme=True,
        ),
        Row(
            "eCLIP training step without expert batch vs CLIP step (eclip-small, 1 thread)",
            "perf/train_step.md",
            "<= 1.05x",
            read.step("eCLIP step, no expert batch"),
        ),
        Row(
            "eCLIP training step with expert batch vs CLIP step (eclip-small, 1 thread)",
            "perf/train_step.md",
            "<= 1.6x",
            read.step("eCLIP step, expert batch (B/2 mixed pairs)"),
            readme=True,
        ),
        Row(
            "eCLIP expert step vs CLIP step (eclip-small, 2 threads)",
            "perf/train_step_2threads.md",
            "<= 1.6x",
            read.step("eCLIP step, expert batch (B/2 mixed pairs)"),
        ),
        Row(
            "eCLIP step without expert batch vs CLIP step (ViT-B/16, 2 threads)",
            "perf/train_step_vitb16.md",
            "<= 1.05x",
            read.step("eCLIP step, no expert batch"),
        ),
        Row(
            "eCLIP expert step vs CLIP step (ViT-B/16, 2 threads)",
            "perf/train_step_vitb16.md",
            "<= 1.6x",
            read.step("eCLIP step, expert batch (B/2 mixed pairs)"),
        ),
        Row("Embedding throughput (eclip-small, 1 thread, 512x512 inputs)", "perf/train_step.md", "-", read.throughput),
        Row("Keeping freed memory (glibc), speed-up", "perf/cpu_memory.md", "-", read.cpu_memory),
        Row(
            "Phantom data set build, 3,927 studies, 2 workers",
            "perf/phantom.md",
            "<= 180 s on 2 idle cores",
            read.phantom_build,
        ),
        Row("Expert heatmap from gaze (EGD-CXR, 150 fixations, 2500x2000)", "perf/data_io.md", "-", read.heatmap),
        Row("Labeler speed (3,927 reports)", "perf/labeler.md", "-", read.labeler_speed),
        Row("LlamaIndex retriever over raw FAISS (100k reports)", "perf/retrieval.md", "<= 2x", read.overhead),
        Row(
            "HNSW, 1M report-like vectors (library default graph)",
            "perf/retrieval_reports_hnsw_1m.md",
            "recall@10 >= 0.95",
            read.recall("HNSWFlat", "M=32, efConstruction=200"),
            readme=True,
        ),
        Row(
            "IVF-PQ + exact re-rank, 1M report-like vectors",
            "perf/retrieval_reports.md",
            "recall@10 >= 0.95",
            read.recall("IVF-PQ"),
        ),
        Row(
            "IVF-PQ + exact re-rank, 1M random vectors (hard case)",
            "perf/retrieval.md",
            "recall@10 >= 0.95",
            read.recall("IVF-PQ"),
        ),
        Row(
            "One grounded draft, SmolLM2-135M, CPU with AVX512-BF16",
            "perf/llm.md",
            "-",
            read.draft("nf4 (bitsandbytes + dense bf16 prefill)", "fp32", "1"),
        ),
        Row(
            "One grounded draft, SmolLM2-135M, CPU without AVX512-BF16",
            "perf/llm_no_bf16.md",
            "-",
            read.draft("fp32", "nf4 (default; dense bf16 prefill not available on this CPU)", "2"),
        ),
        Row(
            "Quantization `auto` (fp32 here) vs `nf4`, grounded draft, CPU without AVX512-BF16",
            "perf/llm_auto.md",
            "<= 0.7x",
            read.auto,
        ),
        Row(
            "Warm `generate_report` with no arguments (checked, label-boosted top-1)",
            "perf/pipeline_default.md",
            "p50 <= 150 ms",
            read.latency("top1", 150),
            readme=True,
        ),
        Row(
            "Warm `generate_report`, grounded, CPU with AVX512-BF16 (nf4)",
            "perf/pipeline.md",
            "p50 <= 2500 ms",
            read.latency("grounded", 2500),
            readme=True,
        ),
        Row("Warm pipeline process memory", "perf/pipeline.md", "<= 3 GB", read.rss, readme=True),
        Row(
            "Warm `generate_report`, grounded, CPU without AVX512-BF16, `--quantization none` (what `auto` loads)",
            "perf/pipeline_fp32.md",
            "p50 <= 2500 ms",
            read.latency("grounded", 2500),
            readme=True,
        ),
        Row(
            "Warm `generate_report`, grounded, CPU without AVX512-BF16, `--quantization nf4` forced",
            "perf/pipeline_no_bf16.md",
            "p50 <= 2500 ms",
            read.latency("grounded", 2500),
        ),
        Row("Free mode: stop at the first repetition loop (10 drafts)", "perf/free_stop.md", "-", read.free_stop),
        Row("App over HTTP vs the library call", "perf/app.md", "<= 1.3x", read.app, readme=True),
        Row(
            "First `rag-report generate --example` from an empty cache (build the default bundle, draft)",
            "perf/cold_start.md",
            "<= 7 min",
            read.wall(r"CPU-min; (\d+) min (\d+) s wall on this machine\*\*", 7),
        ),
        Row(
            "Image tower per X-ray embedded, the default bundle's Lite0 128 px vs a ResNet from scratch (1 thread)",
            "perf/tower_cost.md",
            "-",
            read.tower_cost,
        ),
    ],
}
