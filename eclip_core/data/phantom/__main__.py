"""``python -m eclip_core.data.phantom``: build (or reuse) the phantom data set and print its manifest path."""

from __future__ import annotations

import argparse
import logging

from eclip_core.data.phantom.build import build_phantom_dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eclip_core.data.phantom", description=__doc__)
    p.add_argument("--out-dir", default=None, help="output folder (or give --cache-dir)")
    p.add_argument("--cache-dir", default=None, help="cache root: the build goes to CACHE_DIR/phantom/<config-hash>")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (64..1024)")
    p.add_argument("--bits", type=int, default=8, choices=(8, 16), help="PNG bit depth")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gaze-fraction", type=float, default=0.15, help="fraction of train studies with gaze")
    p.add_argument("--limit", type=int, default=None, help="first N studies only")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.out_dir is None and a.cache_dir is None:
        p.error(
            "give --out-dir DIR, or --cache-dir DIR (rag-report's is $RAG_REPORT_HOME, ~/.cache/rag_report by default)"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = build_phantom_dataset(
        a.out_dir,
        size=a.size,
        seed=a.seed,
        gaze_fraction=a.gaze_fraction,
        progress=not a.quiet,
        bits=a.bits,
        limit=a.limit,
        workers=a.workers,
        force=a.force,
        cache_dir=a.cache_dir,
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
