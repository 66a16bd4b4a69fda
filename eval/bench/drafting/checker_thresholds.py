"""Choose the draft checker's image thresholds on the validation split (default bundle, or a model + index).

    python -m eval.bench.drafting.checker_thresholds                      # the default bundle's val split
    python -m eval.bench.drafting.checker_thresholds --model DIR --index DIR --manifest MANIFEST --write

Runs the index's label classifiers on every val X-ray (as ``generate_report`` does) and prints, as JSON,
``rag_report.drafting.checker.choose_thresholds`` of their probabilities against the val reports' labels: per
observation the probability under which asserting it contradicts the image (the ``miss`` quantile over
the studies whose report states it) and over which denying it does (the ``1 - miss`` quantile over those
whose report does not). The default bundle's values are declared in ``rag_report.drafting.checker.DEFAULT_THRESHOLDS``;
``--write`` stores them in the index folder (``checker_thresholds.json``), where the pipeline reads them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eclip_core.runtime import setup_offline

setup_offline()  # before any Hugging Face library is imported


def val_thresholds(pipe, studies, *, miss: float = 0.02, min_count: int = 10, progress: bool = True, probs=None):
    """:func:`rag_report.drafting.checker.choose_thresholds` of ``pipe``'s label-classifier probabilities on
    ``studies`` (each study's first X-ray, as ``generate_report`` reads it; ``probs`` [n, 14] when already
    computed) against their report labels."""
    import numpy as np
    from tqdm.auto import tqdm

    from eclip_core.data.study_labels import study_label_rows
    from rag_report.drafting.checker import choose_thresholds

    if probs is None:
        rows = []
        for study in tqdm(studies, desc="val X-rays", disable=not progress):
            path = study.image_paths[0]
            out = pipe.predict_labels(pipe.embed(path), path)
            if out is None:
                raise SystemExit("the index has no label classifiers: nothing to choose thresholds for")
            rows.append(out)
        probs = np.stack(rows)
    return choose_thresholds(probs, study_label_rows(studies), miss=miss, min_count=min_count)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="eCLIP checkpoint folder (default: the bundle's)")
    p.add_argument("--index", default=None, help="report index folder (default: the bundle's)")
    p.add_argument("--manifest", default=None, help="manifest with a val split (default: the bundle's)")
    p.add_argument("--miss", type=float, default=0.02, help="share of true statements the check may remove")
    p.add_argument("--min-count", type=int, default=10, help="fewest val studies to check an observation")
    p.add_argument("--write", action="store_true", help="store them in the index folder for the pipeline")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    from eclip_core.data.manifest import read_manifest
    from rag_report.drafting.checker import THRESHOLDS_FILE, save_thresholds
    from rag_report.pipeline import PipelineConfig, ReportPipeline

    manifest = args.manifest
    if manifest is None:
        from rag_report.bundle import default_bundle

        manifest = str(default_bundle(build=True, progress=not args.no_progress).manifest_path)
    pipe = ReportPipeline(PipelineConfig(model_dir=args.model, index_dir=args.index), progress=False)
    val = [s for s in read_manifest(manifest, split="val") if s.report_text and s.image_paths]
    chosen = val_thresholds(pipe, val, miss=args.miss, min_count=args.min_count, progress=not args.no_progress)
    print(
        json.dumps(
            {"assert_floor": chosen.assert_floor, "deny_ceiling": chosen.deny_ceiling, "how": chosen.how}, indent=1
        )
    )
    if args.write:
        save_thresholds(chosen, Path(pipe.index.directory) / THRESHOLDS_FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
