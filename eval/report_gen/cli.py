"""Command line: ``python -m eval.report_gen [--quick] [--suite report|embedding|tower|real] ...``.

Every flag is a field of :class:`ReportGenConfig` (report suite; its ``pipeline`` is a
:class:`~rag_report.pipeline.PipelineConfig`, whose fields are flags of their own name: ``--model``,
``--index``, ``--llm``, ``--k``, ``--label-boost``, ...), :class:`EmbeddingSuiteConfig` or
:class:`TowerSuiteConfig` or :class:`RealSuiteConfig` (eclip_core.cli_config). Flags the suites have in common (``--manifest``,
``--seeds``, ``--variants``, ``--out-dir``, ...) set the field of whichever suite runs. ``--config FILE`` reads
the chosen suite's config from JSON or YAML first. Nothing reaches the network
(:func:`eclip_core.runtime.setup_offline` runs first).
"""

from __future__ import annotations

import logging
import shlex
import sys

from eclip_core.cli_config import ConfigParser
from eclip_core.errors import ConfigError
from eclip_core.runtime import OFFLINE_ENV, setup_offline  # noqa: F401  (OFFLINE_ENV: kept importable here)
from eval.report_gen.config import QUICK_FREE_STUDIES, QUICK_LLM_STUDIES, ReportGenConfig

#: Without --quick and without a limit of their own, the LLM rows run on this many studies (free mode on fewer).
FULL_LLM_STUDIES = 20
FULL_FREE_STUDIES = 5


def _suite_classes():
    from eval.report_gen.embedding_suite import EmbeddingSuiteConfig
    from eval.report_gen.tower_suite import TowerSuiteConfig

    return EmbeddingSuiteConfig, TowerSuiteConfig


def _real_suite_class():
    from eval.report_gen.real_suite import RealSuiteConfig

    return RealSuiteConfig


def build_parser() -> ConfigParser:
    EmbeddingSuiteConfig, TowerSuiteConfig = _suite_classes()
    p = ConfigParser(
        prog="python -m eval.report_gen",
        description="Benchmark report drafting (random / CLIP / eCLIP / LLM / oracle) on one split, or the "
        "embedding suite (eCLIP vs CLIP, ablation ladder). Defaults: the embedded default bundle.",
    )
    p.add_argument(
        "--suite",
        choices=("report", "embedding", "tower", "real"),
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
    p.add_dataclass(
        EmbeddingSuiteConfig,
        title="embedding suite (EmbeddingSuiteConfig; --suite embedding)",
        share=True,
        help_prefix="embedding suite: ",
        flags={
            "model": "--model-config",
            "batch_size": "--train-batch-size",
            "lr": "--train-lr",
            "k": "--label-precision-k",
        },
    )
    p.add_dataclass(
        TowerSuiteConfig,
        title="tower suite (TowerSuiteConfig; --suite tower)",
        share=True,
        help_prefix="tower suite: ",
        flags={"batch_size": "--train-batch-size", "lr": "--train-lr"},
    )
    p.add_dataclass(
        _real_suite_class(),
        title="real suite (RealSuiteConfig; --suite real)",
        share=True,
        help_prefix="real suite: ",
        flags={"batch_size": "--train-batch-size", "lr": "--train-lr", "steps": "--train-steps"},
    )
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
    EmbeddingSuiteConfig, TowerSuiteConfig = _suite_classes()
    suites = {"embedding": EmbeddingSuiteConfig, "tower": TowerSuiteConfig, "real": _real_suite_class()}
    cls = suites[args.suite]
    return args.suite, parser.config(args, cls, overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    setup_offline()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        suite, cfg = configs_from_args(argv, parser)
    except ConfigError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from eclip_core.cpu_memory import keep_freed_memory

    keep_freed_memory()  # as every command-line entry point does
    if suite == "embedding":
        from eval.report_gen.embedding_suite import run_embedding_suite

        result = run_embedding_suite(cfg)
    elif suite == "tower":
        from eval.report_gen.tower_suite import run_tower_suite

        result = run_tower_suite(cfg)
    elif suite == "real":
        from eval.report_gen.real_suite import run_real_suite

        result = run_real_suite(cfg)
    else:
        from eval.report_gen.run import run_report_gen

        result = run_report_gen(cfg)
    md = result["outputs"]["markdown"]
    with open(md, encoding="utf-8") as fh:
        sys.stdout.write(fh.read())
    sys.stdout.write("\nwritten: " + ", ".join(result["outputs"].values()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
