"""`rag-report`: build-default, train, index, generate, batch, serve.

Every command writes only its result to stdout (the report, or with ``--json`` one JSON document, also
for errors); logs, progress bars and library messages go to stderr.

Examples::

    rag-report build-default
    rag-report generate chest.dcm --mode grounded --k 5 --json
    rag-report generate --example
    rag-report index --manifest my.csv --model runs/eclip/final --out my-index
    rag-report batch exports/ --out drafts/
    rag-report batch http://pacs:8042/dicom-web --study-date 20240101-20240131 --out drafts/ --send
    rag-report train --config train.yaml
    rag-report serve --port 7860
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from eclip_core.cli_config import ConfigParser
from eclip_core.errors import EClipError
from eclip_core.runtime import setup_build_threads
from rag_report.cli_io import error_json, start_command, stdout_to_stderr
from rag_report.paths import text_feature_dir
from rag_report.retrieval.image_views import CLASSIFIER_VIEWS

#: Flags every command accepts, before or after the command name.
GLOBAL_FLAGS = ("--quiet", "-v", "--verbose")


def _add_pipeline_flags(p: ConfigParser) -> None:
    """Every PipelineConfig field as a flag, and ``--config`` (a JSON/YAML file of its fields)."""
    from rag_report.pipeline import PipelineConfig

    p.add_dataclass(
        PipelineConfig, title="pipeline (PipelineConfig; the default bundle when --model / --index are not given)"
    )
    p.add_config_option(help="JSON or YAML file of PipelineConfig fields; flags given override it")


def cmd_build_default(args: argparse.Namespace) -> str:
    from rag_report.bundle import DefaultBundleConfig, default_bundle, prepare_default_llm

    cfg = DefaultBundleConfig()
    cfg.train.steps = args.steps or cfg.train.steps
    bundle = default_bundle(cfg, build=True, progress=not args.quiet)
    paths = {"root": bundle.root, "eclip_checkpoint": bundle.eclip_dir, "index": bundle.index_dir}
    paths["manifest"], paths["llm"] = bundle.manifest_path, prepare_default_llm()  # LLM drafts start at once
    if args.json:
        return json.dumps({k: str(v) for k, v in paths.items()}, indent=2)
    return (
        f"default bundle ready: {bundle.root}\n  eCLIP checkpoint: {bundle.eclip_dir}\n"
        f"  index: {bundle.index_dir}\n  manifest: {bundle.manifest_path}\n  LLM: {paths['llm']}"
    )


def cmd_generate(args: argparse.Namespace) -> str:
    from rag_report.pipeline import PipelineConfig, ReportPipeline, read_image

    config = args.config_parser.config(args, PipelineConfig)  # a bad flag or file fails before anything loads
    image = args.image
    if args.example or image is None:
        from rag_report.bundle import default_bundle
        from rag_report.errors import BundleError

        examples = default_bundle(build=True, progress=not args.quiet).examples
        if not examples:
            raise BundleError(
                "the default bundle has no example images; rebuild it (rag-report build-default) or give an image path"
            )
        image = examples[0]
        print(f"example image (a held-out phantom test study): {image}", file=sys.stderr)
    read_image(image)  # a bad input is refused at once, before the models load
    pipe = ReportPipeline(config, progress=not args.quiet)
    draft = pipe.generate(image, exclude_study_ids=args.exclude_study or ())
    if args.json:
        return draft.to_json(indent=2)
    return draft_as_text(draft)


def draft_as_text(draft) -> str:
    """The report as ``rag-report generate`` prints it: the draft, what the image predicts (label
    classifiers), the evidence with similarity and label agreement, the draft's observations, timings."""
    lines = []
    if draft.simulated_data:
        lines.append("[simulated default bundle: phantom images, real Open-I report text; not for clinical use]\n")
    lines.append(draft.text or "(empty draft)")
    boost = draft.models.get("label_boost", "off")
    if draft.predicted_labels:
        shown = [f"{name} {draft.predicted_labels.get(name, float('nan')):.2f}" for name in draft.predicted_positive]
        lines.append(
            f"\nPREDICTED FROM THE IMAGE (label classifiers; label boost {boost}): "
            + (", ".join(shown) or "no observation predicted present")
        )
    else:
        lines.append("\nPREDICTED FROM THE IMAGE: n/a (the index has no label classifiers)")
    lines.append("\nEVIDENCE")
    for ev in draft.evidence:
        agreement = "" if ev.label_agreement is None else f"  label agreement {ev.label_agreement:.2f}"
        lines.append(
            f"  #{ev.rank} {ev.study_id}  similarity {ev.similarity:.3f}{agreement}  "
            f"sentences used: {len(ev.sentences_used)}"
        )
    positives = [k for k, v in draft.labels.items() if v == 1.0]
    lines.append(f"\nOBSERVATIONS IN THE DRAFT: {', '.join(positives) or 'none positive'}")
    if draft.models.get("quantization"):
        lines.append(f"LLM: {draft.models['llm_id']} ({draft.models['quantization_reason']})")
    lines.append("TIMINGS (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in draft.timings_ms.items()))
    lines += [f"WARNING: {w}" for w in draft.warnings]
    return "\n".join(lines)


def cmd_index(args: argparse.Namespace) -> str:
    from eclip_core.data.manifest import read_manifest
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex

    studies_all = read_manifest(args.manifest)
    chosen = studies_all if args.split == "all" else [s for s in studies_all if s.split == args.split]
    studies = [s for s in chosen if s.report_text]
    if not studies:
        from rag_report.errors import EmptyCorpusError

        rows = f"{len(chosen)} rows" if args.split == "all" else f"{len(chosen)} rows with split {args.split!r}"
        raise EmptyCorpusError(
            f"manifest {args.manifest}: none of its {rows} has report text (findings or "
            "impression), so there is nothing to index; fill those columns in, or choose "
            "another --split (train, val, test or all)"
        )
    if len(studies) < len(chosen):
        logging.getLogger("rag_report.cli").warning(
            "%d of %d rows have no report text and are not indexed", len(chosen) - len(studies), len(chosen)
        )
    # Indexing the train split: the manifest's val rows (never indexed) set the classifiers' thresholds.
    val = [s for s in studies_all if s.split == "val" and s.report_text] if args.split == "train" else []
    model = EClip.from_pretrained(args.model_dir).eval()
    index = ReportIndex.build(
        model,
        studies,
        args.out,
        index_type=args.index_type,
        progress=not args.quiet,
        corpus_name=args.corpus_name or Path(args.manifest).stem,
        val_studies=val,
        classifier_views=args.classifier_views,
        text_features=text_feature_dir(),  # `rag-report train` stores them there
    )
    if args.json:
        manifest = getattr(index, "manifest", {}) or {}
        return json.dumps(
            {
                "out": str(args.out),
                "reports": len(studies),
                "index_type": args.index_type,
                "index_id": str(manifest.get("index_id", "")),
                "eclip_checkpoint": model.checkpoint_hash,
            },
            indent=2,
        )
    return f"indexed {len(studies)} reports into {args.out}"


def cmd_batch(args: argparse.Namespace) -> str:
    """Draft every study of a folder, manifest or PACS (rag_report.handoff); exit 1 when a study or a send
    failed, 130 on Ctrl-C (finished studies stay whole; --resume goes on)."""
    from rag_report.handoff.ranks import rank_and_world
    from rag_report.handoff.runner import BatchConfig, run_batch
    from rag_report.pipeline import PipelineConfig

    parser = args.config_parser
    config = parser.config(args, BatchConfig, file_shared_with=(PipelineConfig,))
    pipeline_config = parser.config(args, PipelineConfig, file_shared_with=(BatchConfig,))
    rank, world = rank_and_world()
    try:
        result = run_batch(
            args.source, config, pipeline_config=pipeline_config, rank=rank, world_size=world, progress=not args.quiet
        )
    except KeyboardInterrupt:
        print("interrupted: finished studies are whole; run again with --resume to go on", file=sys.stderr)
        args.exit_code = 130
        return ""
    args.exit_code = 0 if result.ok else 1
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items())) or "no studies"
    if args.json:
        return json.dumps({"summary": str(result.summary_path), "counts": result.counts, "ok": result.ok}, indent=2)
    return f"{counts}; summary: {result.summary_path}"


def cmd_serve(argv: list[str]) -> int:
    # rag_report never imports apps: run the app module as its own program.
    os.execvp(sys.executable, [sys.executable, "-m", "apps.gradio_app", *argv])
    return 0  # pragma: no cover


def _common_flags() -> ConfigParser:
    # SUPPRESS: a flag given after the command name must not reset one given before it. A ConfigParser (with
    # no dataclass on it): the sub-parsers of a ConfigParser are ConfigParsers and take parents of that class.
    common = ConfigParser(add_help=False)
    common.add_argument(
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bars or library tables (stderr only carries warnings and errors)",
    )
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="info logs")
    return common


def build_parser() -> ConfigParser:
    # Each parser gets its own copies of the common flags: parents share their Action objects, and the
    # set_defaults below would otherwise give the sub-commands' --quiet a default that undoes a leading one.
    parser = ConfigParser(prog="rag-report", description=__doc__.split("\n\n")[0], parents=[_common_flags()])
    parser.set_defaults(quiet=False, verbose=False)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "build-default",
        parents=[_common_flags()],
        help="build the embedded default bundle (phantom data, eCLIP, index, LLM)",
    )
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the bundle's)")
    p.add_argument("--json", action="store_true", help="print the bundle's paths as JSON")
    p.set_defaults(func=cmd_build_default)

    p = sub.add_parser("generate", parents=[_common_flags()], help="draft a report for an image")
    p.add_argument("image", nargs="?", default=None, help="PNG, JPEG or DICOM file")
    p.add_argument("--example", action="store_true", help="use a held-out test image of the default bundle")
    p.add_argument("--json", action="store_true", help="print the DraftReport as JSON")
    p.add_argument("--exclude-study", action="append", help="study id to leave out of retrieval (repeatable)")
    _add_pipeline_flags(p)
    p.set_defaults(func=cmd_generate, config_parser=p)

    p = sub.add_parser("index", parents=[_common_flags()], help="build a report index from a manifest")
    p.add_argument("--manifest", required=True)
    p.add_argument("--model", dest="model_dir", required=True, help="eCLIP checkpoint folder")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="train", help="which split's reports to index, or 'all'")
    p.add_argument("--index-type", default="flat", choices=["flat", "hnsw", "ivfpq"])
    p.add_argument("--corpus-name", default=None)
    p.add_argument(
        "--classifier-views",
        default="image+tiles",
        choices=CLASSIFIER_VIEWS,
        help="what the label classifiers read: the X-ray's embedding, or also its tiles' (finer findings, "
        "five more forward passes per X-ray)",
    )
    p.add_argument("--json", action="store_true", help="print what was indexed as JSON")
    p.set_defaults(func=cmd_index)

    from rag_report.handoff.runner import BatchConfig

    p = sub.add_parser(
        "batch", parents=[_common_flags()], help="draft every study of a folder, manifest or PACS (SR + FHIR)"
    )
    p.add_argument("source", help="folder of DICOM / PNG / JPEG files, study manifest, or DICOMweb URL (http://...)")
    p.add_argument("--json", action="store_true", help="print the counts and the summary path as JSON")
    p.add_dataclass(BatchConfig, title="batch (BatchConfig)")
    _add_pipeline_flags(p)
    p.set_defaults(func=cmd_batch, config_parser=p)

    sub.add_parser("train", help="train eCLIP (`rag-report train --help`: its own flags)", add_help=False)
    sub.add_parser("serve", help="start the Gradio app (flags of python -m apps.gradio_app)", add_help=False)
    return parser


def _split_globals(argv: list[str]) -> tuple[set[str], list[str]]:
    """Leading global flags, and the rest (the command and its arguments)."""
    i = 0
    while i < len(argv) and argv[i] in GLOBAL_FLAGS:
        i += 1
    return set(argv[:i]), argv[i:]


def _builds(rest: list[str]) -> bool:
    """Whether the command trains or builds (the default bundle's first run among them): long CPU work
    that runs with :func:`eclip_core.runtime.setup_build_threads`."""
    if rest[:1] in (["build-default"], ["index"]):
        return True
    if rest[:1] in (["generate"], ["batch"], ["serve"]):
        from rag_report.bundle import bundle_root

        return not (bundle_root() / "bundle.json").is_file()
    return False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags, rest = _split_globals(argv)
    if rest[:1] == ["train"]:  # train / serve forward all their flags to their own parsers
        from rag_report.cli_train import main as train_main

        return train_main(rest[1:], quiet="--quiet" in flags, verbose=bool(flags & {"-v", "--verbose"}))
    verbose = bool({"-v", "--verbose"} & set(argv))
    if _builds(rest):
        setup_build_threads()  # before torch loads
    start_command(quiet="--quiet" in argv, level=logging.INFO if verbose else logging.WARNING)
    if rest[:1] == ["serve"]:
        return cmd_serve(rest[1:] + (["--quiet"] if "--quiet" in flags and "--quiet" not in rest else []))
    args = build_parser().parse_args(argv)  # values are checked when the command builds its config
    as_json = bool(getattr(args, "json", False))
    try:
        with stdout_to_stderr():
            out = args.func(args)
        rc = getattr(args, "exit_code", 0)
    except EClipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        out, rc = (error_json(exc) if as_json else ""), 2
    if out:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
