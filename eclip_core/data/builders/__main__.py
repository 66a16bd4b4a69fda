"""Command line for the manifest builders.

python -m eclip_core.data.builders mimic --root /data/mimic-cxr-jpg --reports-root /data/mimic-cxr --out mimic.csv
python -m eclip_core.data.builders openi --png-dir NLMCXR_png --split-csv openi_r2gen_split.csv --out openi.csv
python -m eclip_core.data.builders openi-kaggle --root indiana --out openi.csv
python -m eclip_core.data.builders egd --egd-root egd-cxr --image-root /data/mimic-cxr-jpg --out egd/egd.csv
python -m eclip_core.data.builders reflacx --reflacx-root reflacx --image-root /data/mimic-cxr-jpg --out reflacx.csv
python -m eclip_core.data.builders covid --root covid-chestxray-dataset --patients dev_patients.txt --out covid.csv
"""

from __future__ import annotations

import argparse
import logging
import sys

from eclip_core.errors import EClipError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m eclip_core.data.builders", description="Write a study manifest.")
    sub = ap.add_subparsers(dest="dataset", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", required=True, help="manifest path (.csv or .jsonl)")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    p = sub.add_parser("mimic", help="MIMIC-CXR-JPG")
    p.add_argument("--root", required=True)
    p.add_argument("--reports-root")
    p.add_argument("--metadata-csv")
    p.add_argument("--split-csv")
    p.add_argument("--chexpert-csv")
    p.add_argument("--views", default="PA,AP", help="comma-separated ViewPosition values, or 'all'")
    p.add_argument("--max-images-per-study", type=int)
    p.add_argument("--label-reports", action="store_true")
    common(p)
    p = sub.add_parser("openi", help="NLMCXR PNG folder + XML reports")
    p.add_argument("--png-dir", required=True)
    p.add_argument("--reports", help="XML folder or NLMCXR_reports.tgz (default: torchxrayvision's copy)")
    p.add_argument("--split-csv")
    p.add_argument("--keep-unsplit", action="store_true")
    p.add_argument("--frontal-only", action="store_true")
    p.add_argument("--label-reports", action="store_true")
    common(p)
    p = sub.add_parser("openi-kaggle", help="indiana_reports.csv + indiana_projections.csv repack")
    p.add_argument("--root", required=True)
    p.add_argument("--images-dir")
    p.add_argument("--split-csv")
    p.add_argument("--keep-unsplit", action="store_true")
    p.add_argument("--frontal-only", action="store_true")
    p.add_argument("--label-reports", action="store_true")
    common(p)
    for name in ("egd", "reflacx"):
        p = sub.add_parser(name, help=f"{name.upper()} gaze joined with MIMIC images")
        p.add_argument(f"--{name}-root", required=True)
        p.add_argument("--image-root", required=True)
        p.add_argument("--reports-root")
        p.add_argument("--image-suffix", default=".jpg", help="'.jpg' for MIMIC-CXR-JPG, '.dcm' for DICOM")
        if name == "egd":
            p.add_argument("--split-csv")
        else:
            p.add_argument("--include-discarded", action="store_true")
        common(p)
    p = sub.add_parser("covid", help="COVID-19 image data collection (a git clone): frontal X-rays with notes")
    p.add_argument("--root", required=True, help="the clone (holds metadata.csv and images/)")
    p.add_argument("--patients", help="keep only the patient ids listed in this file (one a line)")
    p.add_argument("--keep-without-notes", action="store_true", help="keep X-rays without clinical notes")
    p.add_argument("--seed", type=int, default=0, help="seed of the patient-disjoint split")
    common(p)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run one builder; returns 0 on success, 2 on bad input (the error is printed to stderr)."""
    from eclip_core.data import builders as b

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    progress = not args.no_progress
    try:
        if args.dataset == "mimic":
            views = None if args.views.lower() == "all" else [v.strip() for v in args.views.split(",") if v.strip()]
            out = b.build_mimic_manifest(
                args.root,
                args.out,
                reports_root=args.reports_root,
                metadata_csv=args.metadata_csv,
                split_csv=args.split_csv,
                chexpert_csv=args.chexpert_csv,
                views=views,
                max_images_per_study=args.max_images_per_study,
                label_reports=args.label_reports,
                progress=progress,
            )
        elif args.dataset == "openi":
            out = b.build_openi_manifest(
                args.png_dir,
                args.out,
                reports=args.reports,
                split_csv=args.split_csv,
                drop_unsplit=not args.keep_unsplit,
                frontal_only=args.frontal_only,
                label_reports=args.label_reports,
                progress=progress,
            )
        elif args.dataset == "openi-kaggle":
            out = b.build_openi_kaggle_manifest(
                args.root,
                args.out,
                images_dir=args.images_dir,
                split_csv=args.split_csv,
                drop_unsplit=not args.keep_unsplit,
                frontal_only=args.frontal_only,
                label_reports=args.label_reports,
                progress=progress,
            )
        elif args.dataset == "egd":
            out = b.build_egd_manifest(
                args.egd_root,
                args.image_root,
                args.out,
                reports_root=args.reports_root,
                image_suffix=args.image_suffix or None,
                split_csv=args.split_csv,
                progress=progress,
            )
        elif args.dataset == "covid":
            notes = {"keep_without_notes": args.keep_without_notes}
            out = b.build_covid_manifest(args.root, args.out, patients=args.patients, seed=args.seed, **notes)
        else:
            out = b.build_reflacx_manifest(
                args.reflacx_root,
                args.image_root,
                args.out,
                reports_root=args.reports_root,
                image_suffix=args.image_suffix or None,
                include_discarded=args.include_discarded,
                progress=progress,
            )
    except EClipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
