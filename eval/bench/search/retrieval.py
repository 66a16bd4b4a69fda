"""Retrieval benchmark: FAISS exact / HNSW / IVF-PQ vs a numpy matmul top-k, and the retriever's overhead.

For each corpus size (random unit vectors, the hard case for approximate search: no cluster structure):
single-query p50/p95 latency of numpy (matmul + argpartition), IndexFlatIP, HNSW and IVF-PQ(+exact
re-ranking), all in this process; recall@10 of the approximate indexes against exact search, with
efSearch / nprobe raised until recall@10 >= the target. Then, at one size, the LlamaIndex-based
EClipRetriever (precomputed query vector) against a raw ``faiss.search`` on the same index.

    python -m eval.bench.search.retrieval                          # 10k, 100k, 1M; writes docs/perf/retrieval.md
    python -m eval.bench.search.retrieval --sizes 10000 --queries 50 --out runs/retrieval_quick.md   # quick look
    python -m eval.bench.search.retrieval --sizes 1000000 --no-ivf --overhead-size 0 --build-threads 2 \
        --out docs/perf/retrieval_hnsw_1m.md                # HNSW at 1M on its own (long construction)
    python -m eval.bench.search.retrieval --data reports --out docs/perf/retrieval_reports.md   # report-like corpus
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.bench.page import write_page

log = logging.getLogger("bench.retrieval")


@dataclass
class Row:
    size: int
    method: str
    params: str
    build_s: float
    p50_ms: float
    p95_ms: float
    speedup: float  # numpy p50 / this p50 (>1: faster than numpy)
    recall: float | None


def unit_vectors(n: int, dim: int, seed: int, chunk: int = 200_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):  # chunked: no float64 temporaries of the full matrix
        x = rng.standard_normal((min(chunk, n - s), dim), dtype=np.float32)
        out[s : s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


@dataclass
class ReportLikeData:
    """A corpus shaped like real report embeddings, and real image-embedding queries.

    ``reference`` = the default bundle's indexed report embeddings (eCLIP text tower), ``queries`` = its
    eCLIP image embeddings of test-split X-rays (what the product sends to the index). Synthetic corpora
    are a smoothed bootstrap of ``reference``: a real report's vector plus Gaussian noise with the real
    vectors' covariance scaled by ``bandwidth``^2, re-normalised. They keep the real data's clusters
    (many reports say nearly the same thing) and its covariance spectrum.
    """

    reference: np.ndarray
    queries: np.ndarray
    bandwidth: float
    source: str

    def corpus(self, n: int, seed: int, chunk: int = 200_000) -> np.ndarray:
        rng = np.random.default_rng(seed)
        ref = self.reference.astype(np.float64)
        cov = np.cov(ref, rowvar=False)
        vals, vecs = np.linalg.eigh(cov)
        root = (vecs * np.sqrt(np.clip(vals, 0, None))).T  # z @ root ~ N(0, cov)
        out = np.empty((n, ref.shape[1]), dtype=np.float32)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            base = ref[rng.integers(0, len(ref), size=m)]
            x = base + self.bandwidth * (rng.standard_normal((m, ref.shape[1])) @ root)
            out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out


def load_report_like(n_queries: int, bandwidth: float) -> ReportLikeData:
    """Reference vectors and queries from the default bundle (built if missing)."""
    from eclip_core.data.manifest import read_manifest
    from eclip_core.model import EClip
    from rag_report.bundle import default_bundle
    from rag_report.index import ReportIndex

    bundle = default_bundle(progress=False)
    model = EClip.from_pretrained(bundle.eclip_dir).eval()
    index = ReportIndex.load(bundle.index_dir, model=model)
    reference = index.vectors(index.study_ids)
    test = sorted((s for s in read_manifest(bundle.manifest_path) if s.split == "test"), key=lambda s: s.study_id)
    queries = model.embed_images([s.image_paths[0] for s in test[:n_queries]], progress=False)
    return ReportLikeData(
        reference,
        queries,
        bandwidth,
        f"default bundle {bundle.root.name}: {len(reference):,} report vectors, eCLIP "
        f"{index.manifest.get('eclip_checkpoint_hash', '?')}",
    )


def latencies(fn, queries: np.ndarray, warmup: int = 3) -> tuple[float, float]:
    for q in queries[:warmup]:
        fn(q)
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - t) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth)]))


def numpy_topk(x: np.ndarray, k: int):
    def run(q: np.ndarray) -> np.ndarray:
        s = x @ q
        top = np.argpartition(-s, k)[:k]
        return top[np.argsort(-s[top])]

    return run


def faiss_one(index, k: int):
    def run(q: np.ndarray):
        return index.search(q[None, :], k)

    return run


def tune(index, set_param, values, queries, truth, k, target) -> tuple[object, float]:
    """First parameter value whose batch recall@k reaches ``target`` (else the last one)."""
    rec = 0.0
    for v in values:
        set_param(index, v)
        _, found = index.search(queries, k)
        rec = recall_at(found, truth)
        log.info("  %s -> recall@%d %.3f", v, k, rec)
        if rec >= target:
            return v, rec
    return values[-1], rec


def bench_size(
    n: int,
    dim: int,
    n_queries: int,
    k: int,
    target: float,
    seed: int,
    hnsw_cfg: tuple[int, int],
    skip_hnsw: bool,
    train_sample: int,
    skip_ivf: bool = False,
    build_threads: int = 1,
    query_threads: int = 1,
    data: ReportLikeData | None = None,
) -> list[Row]:
    """The rows of one corpus size: numpy and exact FAISS, then HNSW and IVF-PQ tuned to ``target`` recall@k."""
    import faiss

    if data is None:
        x = unit_vectors(n, dim, seed)
        queries = unit_vectors(n_queries, dim, seed + 1)
    else:
        x, queries = data.corpus(n, seed), np.ascontiguousarray(data.queries[:n_queries], dtype=np.float32)
        dim = x.shape[1]
    flat = faiss.IndexFlatIP(dim)
    flat.add(x)
    _, truth = flat.search(queries, k)
    rows = _exact_rows(x, flat, queries, truth, k)
    np_p50 = rows[0].p50_ms
    if not skip_hnsw:
        rows.append(_hnsw_row(x, queries, truth, k, target, hnsw_cfg, build_threads, query_threads, np_p50))
        gc.collect()
    if not skip_ivf:
        rows.append(_ivf_row(x, queries, truth, k, target, train_sample, np_p50))
    del flat, x
    gc.collect()
    return rows


def _exact_rows(x: np.ndarray, flat, queries: np.ndarray, truth: np.ndarray, k: int) -> list[Row]:
    """The numpy matmul top-k (the baseline every speed-up is against) and FAISS's exact flat index."""
    n = len(x)
    np_p50, np_p95 = latencies(numpy_topk(x, k), queries)
    np_found = np.stack([numpy_topk(x, k)(q) for q in queries[:50]])
    rows = [Row(n, "numpy matmul + argpartition", "-", 0.0, np_p50, np_p95, 1.0, recall_at(np_found, truth[:50]))]
    p50, p95 = latencies(faiss_one(flat, k), queries)
    rows.append(Row(n, "FAISS IndexFlatIP (exact)", "-", 0.0, p50, p95, np_p50 / p50, 1.0))
    log.info("n=%d numpy p50 %.3f ms, flat p50 %.3f ms", n, np_p50, p50)
    return rows


def _hnsw_row(
    x: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    k: int,
    target: float,
    hnsw_cfg: tuple[int, int],
    build_threads: int,
    query_threads: int,
    np_p50: float,
) -> Row:
    """HNSW built with the library's factory, efSearch raised until recall@k reaches ``target``."""
    import faiss

    from rag_report.index import IndexParams, make_faiss_index, set_search_params

    n, dim = x.shape
    m, efc = hnsw_cfg
    params = IndexParams(hnsw_m=m, ef_construction=efc)
    hnsw, _ = make_faiss_index("hnsw", dim, n, params)
    faiss.omp_set_num_threads(build_threads)  # construction may use more threads than the queries
    t = time.perf_counter()
    hnsw.add(x)
    build = time.perf_counter() - t
    faiss.omp_set_num_threads(query_threads)
    log.info("n=%d HNSW M=%d efC=%d built in %.1f s (%d threads)", n, m, efc, build, build_threads)

    def set_ef(index, v):
        params.ef_search = v
        set_search_params(index, "hnsw", params)

    ef, rec = tune(hnsw, set_ef, [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192], queries, truth, k, target)
    p50, p95 = latencies(faiss_one(hnsw, k), queries)
    return Row(n, "FAISS HNSWFlat", f"M={m}, efConstruction={efc}, efSearch={ef}", build, p50, p95, np_p50 / p50, rec)


def _ivf_row(
    x: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, target: float, train_sample: int, np_p50: float
) -> Row:
    """IVF-PQ with exact re-ranking: nprobe raised until recall@k reaches ``target``, then k_factor if needed."""
    from rag_report.index import IndexParams, make_faiss_index, set_search_params, train_faiss_index

    n, dim = x.shape
    params = IndexParams(train_sample=min(n, train_sample), k_factor=32)
    ivf, shape = make_faiss_index("ivfpq", dim, n, params)
    t = time.perf_counter()
    train_faiss_index(ivf, x, params)
    ivf.add(x)
    build = time.perf_counter() - t
    log.info("n=%d IVF-PQ %s built in %.1f s", n, shape, build)

    def set_nprobe(index, v):
        params.nprobe = v
        set_search_params(index, "ivfpq", params)

    nlist = shape["nlist"]
    probes = sorted({p for p in (8, 16, 32, 64, 128, 256, 512, 1024, 2048, nlist // 2, nlist) if p <= nlist})
    nprobe, rec = tune(ivf, set_nprobe, probes, queries, truth, k, target)
    if rec < target:
        # Every list visited and still short: PQ mis-orders the shortlist; re-rank more candidates exactly.
        def set_kf(index, v):
            params.k_factor = v
            set_search_params(index, "ivfpq", params)

        _, rec = tune(ivf, set_kf, [64, 128, 256, 512], queries, truth, k, target)
    p50, p95 = latencies(faiss_one(ivf, k), queries)
    return Row(
        n,
        "FAISS IVF-PQ + exact re-rank (RFlat)",
        f"nlist={nlist}, PQ{shape['pq_m']}x{shape['pq_nbits']}, nprobe={nprobe}, k_factor={params.k_factor}, "
        f"trained on {params.train_sample}",
        build,
        p50,
        p95,
        np_p50 / p50,
        rec,
    )


def bench_overhead(n: int, dim: int, n_queries: int, k: int, seed: int) -> list[tuple[str, float, float, float]]:
    """EClipRetriever.retrieve_vector vs faiss search on the same flat index of n reports."""
    from eclip_core.data.manifest import Study
    from rag_report.index import ReportIndex
    from rag_report.retrieval.retriever import EClipRetriever

    x = unit_vectors(n, dim, seed)
    queries = unit_vectors(n_queries, dim, seed + 1)
    studies = [Study(f"R{i:07d}", ["-"], "train", findings=f"Synthetic report number {i}.") for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        index = ReportIndex.build_from_vectors(
            x, studies, Path(tmp) / "idx", checkpoint_hash="bench-random", corpus_name=f"random-{n}"
        )
        log.info("ReportIndex of %d built + persisted + reloaded in %.1f s", n, time.perf_counter() - t)
        retriever = EClipRetriever(index)
        raw_p50, raw_p95 = latencies(faiss_one(index.faiss_index, k), queries)
        out = [("raw faiss index.search (k=10)", raw_p50, raw_p95, 1.0)]
        cases = [
            ("EClipRetriever.retrieve_vector k=10, dedupe off", dict(dedupe=False, diversify=None)),
            ("EClipRetriever.retrieve_vector k=10, dedupe on (default)", dict(diversify=None)),
            ("EClipRetriever k=5 of top-100, k-means (paper)", dict(k=5, candidates=100, diversify="kmeans")),
        ]
        for name, kw in cases:
            kw = {"k": k, **kw}
            p50, p95 = latencies(lambda q, kw=kw: retriever.retrieve_vector(q, **kw), queries)
            out.append((name, p50, p95, p50 / raw_p50))
    return out


def write_markdown(path: Path, command: str, rows: list[Row], overhead, args, elapsed: float) -> None:
    import faiss

    lines = [
        "# Retrieval performance",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared), "
        f"{args.threads} thread(s) for BLAS and FAISS, Python {platform.python_version()}, faiss {faiss.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; total run {elapsed:.0f} s.",
        "",
        (
            f"Data: random unit vectors, dim {args.dim} (the eclip-small embedding dim), seeded; {args.queries} "
            "held-out random unit queries. Random vectors are the hard case for approximate search (no cluster "
            "structure; real report embeddings are clustered)."
            if args.data == "random"
            else f"Data: report-like vectors, a smoothed bootstrap of real report embeddings ({args.source}): each "
            f"vector is a real report's plus Gaussian noise with the real vectors' covariance x {args.bandwidth}^2, "
            f"re-normalised, seeded; queries: the eCLIP image embeddings of the first {args.queries} test-split "
            "X-rays of that bundle (the product's cross-modal queries; phantom images)."
        )
        + f" Single-query latency (one vector per call), k={args.k}. "
        f"Approximate indexes: efSearch / nprobe raised until recall@{args.k} against exact search >= {args.target}. "
        "Speed-up = numpy p50 / method p50, measured in the same process.",
        "",
        (
            f"HNSW is built only up to {args.hnsw_max_size:,} reports here (--hnsw-max-size); larger HNSW runs have "
            "their own file (docs/perf/retrieval_hnsw_1m.md). "
            if args.hnsw_max_size < max(args.sizes)
            else ""
        )
        + f"HNSW construction used {args.build_threads} thread(s). IVF-PQ trains on "
        f"at most {args.train_sample:,} vectors (--train-sample; nlist <= sample/39) with exact re-ranking of "
        "k x k_factor PQ candidates, so its scores are exact cosines.",
        "",
        "| corpus | method | parameters | build s | p50 ms | p95 ms | speed-up vs numpy | recall@10 |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rec = "-" if r.recall is None else f"{r.recall:.3f}"
        lines.append(
            f"| {r.size:,} | {r.method} | {r.params} | {r.build_s:.1f} | {r.p50_ms:.3f} | {r.p95_ms:.3f} "
            f"| {r.speedup:.2f}x | {rec} |"
        )
    if overhead:
        lines += [
            "",
            f"## LlamaIndex retriever overhead ({args.overhead_size:,} reports, flat index)",
            "",
            "EClipRetriever with a precomputed query vector (LlamaIndex VectorIndexRetriever -> FAISS -> docstore "
            "nodes -> RetrievedReport) against `faiss_index.search` on the same index. Target: <= 2x.",
            "",
            "| path | p50 ms | p95 ms | p50 / raw faiss |",
            "|---|---:|---:|---:|",
        ]
        for name, p50, p95, ratio in overhead:
            lines.append(f"| {name} | {p50:.3f} | {p95:.3f} | {ratio:.2f}x |")
    write_page(path, lines, echo=False)


def main(argv: list[str] | None = None) -> int:
    from eclip_core.runtime import setup_offline

    setup_offline()
    args = _parser().parse_args(argv)
    args.build_threads = args.build_threads or args.threads
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import faiss
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=args.threads)
    faiss.omp_set_num_threads(args.threads)
    t0 = time.time()
    data = load_report_like(args.queries, args.bandwidth) if args.data == "reports" else None
    args.source = data.source if data is not None else "random"
    rows = [row for n in args.sizes for row in _bench_one_size(args, n, data)]
    overhead = (
        bench_overhead(args.overhead_size, args.dim, args.queries, args.k, args.seed) if args.overhead_size else []
    )
    command = "python -m eval.bench.search.retrieval " + " ".join(argv if argv is not None else sys.argv[1:])
    write_markdown(Path(args.out), command.strip(), rows, overhead, args, time.time() - t0)
    log.info("wrote %s", args.out)
    return 0


def _bench_one_size(args: argparse.Namespace, n: int, data: ReportLikeData | None) -> list[Row]:
    return bench_size(
        n,
        args.dim,
        args.queries,
        args.k,
        args.target,
        args.seed,
        tuple(args.hnsw),
        skip_hnsw=n > args.hnsw_max_size,
        train_sample=args.train_sample,
        skip_ivf=args.no_ivf,
        build_threads=args.build_threads,
        query_threads=args.threads,
        data=data,
    )


def _parser() -> argparse.ArgumentParser:
    from rag_report.index import IndexParams

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument(
        "--hnsw",
        type=int,
        nargs=2,
        default=[IndexParams.hnsw_m, IndexParams.ef_construction],
        metavar=("M", "EF_CONSTRUCTION"),
        help="HNSW graph (default: the library's IndexParams)",
    )
    p.add_argument("--hnsw-max-size", type=int, default=10**9, help="skip HNSW above this corpus size")
    p.add_argument("--overhead-size", type=int, default=100_000, help="0 = skip the retriever overhead run")
    p.add_argument("--train-sample", type=int, default=20_000, help="IVF-PQ training sample (caps nlist at n/39)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS + OpenMP threads (1: single-query latency on a shared CPU; spinning thread pools "
        "of numpy and faiss otherwise fight each other and the neighbours)",
    )
    p.add_argument(
        "--build-threads",
        type=int,
        default=None,
        help="threads for HNSW construction (default: --threads); queries always use --threads",
    )
    p.add_argument("--no-ivf", action="store_true", help="skip IVF-PQ (e.g. an HNSW-only run at 1M)")
    p.add_argument(
        "--data",
        choices=("random", "reports"),
        default="random",
        help="random unit vectors, or report-like vectors bootstrapped from the default bundle's "
        "report embeddings with its test X-rays as queries",
    )
    p.add_argument(
        "--bandwidth",
        type=float,
        default=0.5,
        help="--data reports: noise scale relative to the real embeddings' spread",
    )
    p.add_argument("--out", default="docs/perf/retrieval.md")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
