"""Batch-embed the images or the reports of a manifest to ``<out>.npy`` + ``<out>.ids.txt``.

Under ``accelerate launch`` every process embeds a contiguous shard and the main process concatenates
the shards in manifest order; in one process it simply runs through the rows.

    python -m eclip_core.embed --model runs/eclip/model --manifest data/manifest.csv \\
        --what images --split test --out out/test_images

>>> # embed_manifest("runs/eclip/model", "m.csv", "reports", "out/reports")  -> (Path(.npy), Path(.ids.txt))
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from eclip_core.atomic import atomic_path
from eclip_core.cpu_memory import keep_freed_memory
from eclip_core.errors import ConfigError, EClipError

logger = logging.getLogger(__name__)
WHAT = ("images", "reports")


def _shard(n: int, rank: int, world: int) -> tuple[int, int]:
    per = -(-n // world)
    return min(n, rank * per), min(n, (rank + 1) * per)


def embed_manifest(
    model_dir: str | Path,
    manifest: str | Path,
    what: str,
    out: str | Path,
    split: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    cpu: bool = False,
) -> tuple[Path, Path]:
    """Embed ``what`` ("images": first image of each study; "reports": findings + impression) of the
    manifest rows (optionally one split). Writes float32 [n, D] ``<out>.npy`` and one study id per line
    in ``<out>.ids.txt``; returns both paths."""
    import torch
    from accelerate import Accelerator

    from eclip_core.data.manifest import read_manifest
    from eclip_core.model import EClip

    if what not in WHAT:
        raise ConfigError(f"what must be one of {WHAT}, got {what!r}")
    acc = Accelerator(cpu=cpu or not torch.cuda.is_available())  # see eclip_core.train
    studies = read_manifest(manifest, split=split)
    model = EClip.from_pretrained(model_dir, device=acc.device)
    lo, hi = _shard(len(studies), acc.process_index, acc.num_processes)
    part = studies[lo:hi]
    show = progress and acc.is_local_main_process
    if what == "images":
        vectors = model.embed_images([s.image_paths[0] for s in part], batch_size=batch_size, progress=show)
    else:
        vectors = model.embed_texts([s.report_text for s in part], batch_size=batch_size, progress=show)
    out = Path(out)
    npy, ids = out.with_name(out.name + ".npy"), out.with_name(out.name + ".ids.txt")
    if acc.num_processes > 1:
        # Pad shards to equal length for the collective, then drop the padding in order.
        per = -(-len(studies) // acc.num_processes)
        padded = np.zeros((per, model.embed_dim), np.float32)
        padded[: len(vectors)] = vectors
        gathered = acc.gather(torch.from_numpy(padded).to(acc.device)).cpu().numpy()
        chunks = [
            gathered[
                r * per : r * per
                + (_shard(len(studies), r, acc.num_processes)[1] - _shard(len(studies), r, acc.num_processes)[0])
            ]
            for r in range(acc.num_processes)
        ]
        vectors = np.concatenate(chunks)
    if acc.is_main_process:
        with atomic_path(npy) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, vectors.astype(np.float32))
        with atomic_path(ids) as tmp:
            tmp.write_text("".join(f"{s.study_id}\n" for s in studies), encoding="utf-8")
        logger.info("wrote %d %s embeddings (dim %d) to %s", len(vectors), what, vectors.shape[1], npy)
    acc.wait_for_everyone()
    return npy, ids


def main(argv: list[str] | None = None) -> int:
    from eclip_core.runtime import setup_offline

    setup_offline()
    p = argparse.ArgumentParser(prog="python -m eclip_core.embed", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="folder written by EClip.save_pretrained / training")
    p.add_argument("--manifest", required=True)
    p.add_argument("--what", choices=WHAT, default="images")
    p.add_argument("--out", required=True, help="output prefix: writes <out>.npy and <out>.ids.txt")
    p.add_argument("--split", default=None, choices=("train", "val", "test"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--cpu", action="store_true", help="force the CPU even when a GPU is present")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keep_freed_memory()  # a whole-process job: reuse batch buffers (speed-up: docs/perf/cpu_memory.md)
    try:
        embed_manifest(
            args.model, args.manifest, args.what, args.out, args.split, args.batch_size, args.progress, args.cpu
        )
    except EClipError as exc:
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
