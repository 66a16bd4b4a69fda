"""Benchmarks and studies, arranged by the stage of the product they measure. Each is a script that
writes one Markdown page (``docs/perf/<area>.md`` for speed and memory, ``docs/results/<area>.md`` for
quality) through :func:`eval.bench.page.write_page`, with the command that reproduces it on the page.

Rooms, in the order a chest X-ray travels:

- ``training/``: what an eCLIP training step costs (``train_step``: CLIP vs eCLIP steps, embedding
  throughput) and what keeping freed memory buys (``cpu_memory``).
- ``data/``: getting studies in: image loading, gaze heatmaps and report sectioning (``data_io``), the
  phantom data set build (``phantom``), the labeler and report metrics (``labeler``).
- ``search/``: FAISS exact / HNSW / IVF-PQ search and the retriever's overhead (``retrieval``).
- ``drafting/``: the LLM behind a draft: load, memory, tokens/s and grounded-draft time per precision
  (``llm``, paired precisions in ``llm_paired``), free mode's loop stop (``free_stop``), grounded
  drafting settings vs top-1 (``grounded_sweep``).
- ``serving/``: the whole pipeline warm (``pipeline``: latency split and peak memory), the app over
  HTTP vs the library call (``app_latency``), warnings on images unlike the corpus (``ood``).

Shared by all of them, at this level: ``page`` (the one page writer), ``stats`` (paired ratios with
bootstrap intervals for interleaved timings), ``collect`` (the summary pages docs/RESULTS.md and
docs/PERFORMANCE.md, read from the detailed pages by ``page_reader``, one row per entry of
``summary_rows``) and ``cuda_check`` (the CUDA code paths in one run on a GPU machine). Each script runs
as ``python -m eval.bench.<room>.<name>``, for example::

    python -m eval.bench.search.retrieval --sizes 10000 --queries 50 --out runs/retrieval_quick.md
    python -m eval.bench.collect --check
"""
