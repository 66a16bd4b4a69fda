"""Command line: ``python -m eval.report_gen [--quick] [--suite report|embedding|tower|real] ...``.

Every flag is a field of :class:`ReportGenConfig` (report suite; its ``pipeline`` is a
:class:`~rag_report.pipeline.PipelineConfig`, whose fields are flags of their own name: ``--model``,
``--index``, ``--llm``, ``--k``, ``--label-boost``, ...), :class:`EmbeddingSuiteConfig` or
:class:`TowerSuiteConfig` or :class:`RealSuiteConfig` (eclip_core.cli_config). Flags the suites have in common (``--manifest``,
``--seeds``, ``--variants``, ``--out-dir``, ...) set the field of whichever suite runs. ``--config FILE`` reads
the chosen suite's config from JSON or YAML first. Nothing reaches the network
(:func:`rag_report.cli_io.start_command` runs first).
"""

from __future__ import annotations

import importlib
import logging
import shlex
import sys

from eclip_core.cli_config import ConfigParser
from eclip_core.errors import ConfigError
from eval.report_gen.config import QUICK_FREE_STUDIES, QUICK_LLM_STUDIES, ReportGenConfig
from eval.report_gen.embedding_variants import EmbeddingSuiteConfig
from eval.report_gen.real_suite import RealSuiteConfig
from eval.report_gen.tower_variants import TowerSuiteConfig
from rag_report.cli_io import start_command

#: Without --quick and without a limit of their own, the LLM rows run on this many studies (free mode on fewer).
FULL_LLM_STUDIES = 20
FULL_FREE_STUDIES = 5
_TRAIN = {"batch_size": "--train-batch-size", "lr": "--train-lr"}
#: --suite -> its config, the flags its fields take where not --field-name, and "module:function" (of
#: eval.report_gen) that runs it. The suites' flags of one name are one flag, setting the chosen suite's field.
SUITES = {
    "report": (ReportGenConfig, {}, "run:run_report_gen"),
    "embedding": (
        EmbeddingSuiteConfig,
        {**_TRAIN, "model": "--model-config", "k": "--label-precision-k"},
        "embedding_suite:run_embedding_suite",
    ),
    "tower": (TowerSuiteConfig, _TRAIN, "tower_suite:run_tower_suite"),
    "real": (RealSuiteConfig, {**_TRAIN, "steps": "--train-steps"}, "real_suite:run_real_suite"),
}


def build_parser() -> ConfigParser:
    p = ConfigParser(
        prog="python -m eval.report_gen",
        description="Benchmark report drafting (random / CLIP / eCLIP / LLM / oracle) on one split, or the "
        "embedding suite (eCLIP vs CLIP, ablation ladder). Defaults: the embedded default bundle.",
    )
    p.add_argument(
        "--suite",
        choices=tuple(SUITES),
        default="report",
        help="report: the drafting systems side by side; embedding: eCLIP vs CLIP and the ablation "
        "ladder; tower: which image tower learns most in the default's training budget (val split); real: image towers on "
        "real X-rays (--manifest of the covid builder)",
    )
    p.add_config_option(
        help="JSON or YAML file of the chosen suite's config fields (ReportGenConfig, with a "
        "'pipeline' mapping; EmbeddingSuiteConfig; TowerSuiteConfig); flags given override it"
    )
    p.add_dataclass(
        ReportGenConfig,
        title="report suite (ReportGenConfig)",
        shown_defaults={
            "llm_limit": f"{FULL_LLM_STUDIES}; --quick: {QUICK_LLM_STUDIES}",
            "free_limit": f"{FULL_FREE_STUDIES}; --quick: {QUICK_FREE_STUDIES}",
        },
    )
    for suite, (cls, flags, _) in list(SUITES.items())[1:]:
        title, prefix = f"{suite} suite ({cls.__name__}; --suite {suite})", f"{suite} suite: "
        p.add_dataclass(cls, title=title, share=True, help_prefix=prefix, flags=flags)
    return p


def configs_from_args(argv: list[str], parser: ConfigParser | None = None):
    """(suite name, validated config) for ``argv``; ConfigError names the flag or field of a bad value."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    command = "python -m eval.report_gen " + " ".join(shlex.quote(a) for a in argv)
    overrides = {"command": command}
    if args.suite == "report":
        quick = bool(parser.values(args, ReportGenConfig).get("quick", False))
        defaults = {
            "llm_limit": QUICK_LLM_STUDIES if quick else FULL_LLM_STUDIES,
            "free_limit": QUICK_FREE_STUDIES if quick else FULL_FREE_STUDIES,
        }
        return args.suite, parser.config(args, ReportGenConfig, defaults=defaults, overrides=overrides)
    return args.suite, parser.config(args, SUITES[args.suite][0], overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    start_command(level=logging.INFO, log_format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        suite, cfg = configs_from_args(argv, parser)
    except ConfigError as exc:
        parser.error(str(exc))
    module, function = SUITES[suite][2].split(":")
    result = getattr(importlib.import_module(f"eval.report_gen.{module}"), function)(cfg)
    md = result["outputs"]["markdown"]
    with open(md, encoding="utf-8") as fh:
        sys.stdout.write(fh.read())
    sys.stdout.write("\nwritten: " + ", ".join(result["outputs"].values()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
