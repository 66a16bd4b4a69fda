"""eclip_core.cli_config (dataclass -> flags, --config files, errors) and eclip_core.runtime, then every
front end built with it: each PipelineConfig field is a flag of `rag-report generate`, of the app and of the
benchmark; existing flag names keep working; every --help prints."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from eclip_core.cli_config import ConfigParser, cli, field_specs, from_mapping
from eclip_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Inner:
    #: Size of the inner thing.
    size: int = 3
    kind: str = field(default="a", metadata=cli(choices=("a", "b")))


@dataclass
class Outer:
    #: Name of the run.
    name: str = "x"
    floor: float | None = None
    fast: bool = False
    #: share of
    #: something
    ratio: float = 0.5
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    pair: tuple[float, ...] = (0.0, 1.0)
    # A plain comment is no help.
    pick: str | None = field(default="kmeans", metadata=cli(choices=("kmeans", "mmr")))
    limit: int | None = field(default=None, metadata=cli(none=("none", "all")))
    path: str | None = field(default=None, metadata=cli(flags=("--where", "-w")))
    tags: list[str] = field(default_factory=list, metadata=cli(flags="--tag", append=True))
    inner: Inner = field(default_factory=Inner, metadata=cli(shorthand="kind"))
    secret: str = field(default="", metadata=cli(hidden=True))

    def validate(self) -> Outer:
        if self.ratio > 1:
            raise ValueError(f"ratio must be <= 1, got {self.ratio}")
        return self


@dataclass
class Other:
    name: str = "o"
    seeds: list[int] = field(default_factory=lambda: [7])
    pick: str = field(default="alpha", metadata=cli(choices=("alpha", "beta")))


def _parser() -> ConfigParser:
    p = ConfigParser(prog="demo")
    p.add_dataclass(Outer)
    p.add_config_option()
    return p


def _config(argv, **kw) -> Outer:
    p = _parser()
    return p.config(p.parse_args(argv), Outer, **kw)


def test_types_from_annotations():
    assert _config([]) == Outer()
    cfg = _config(
        [
            "--name",
            "y",
            "--floor",
            "0.25",
            "--fast",
            "--seeds",
            "3",
            "4",
            "--pair",
            "1",
            "2.5",
            "--inner-size",
            "5",
            "--inner-kind",
            "b",
            "-w",
            "/data",
            "--tag",
            "t1",
            "--tag",
            "t2",
        ]
    )
    assert cfg == Outer(
        name="y",
        floor=0.25,
        fast=True,
        seeds=[3, 4],
        pair=(1.0, 2.5),
        path="/data",
        tags=["t1", "t2"],
        inner=Inner(size=5, kind="b"),
    )
    assert isinstance(cfg.pair, tuple) and isinstance(cfg.inner.size, int)
    assert _config(["--fast", "--no-fast"]).fast is False
    assert from_mapping(Outer, {"seeds": "5", "tags": "one"}) == Outer(seeds=[5], tags=["one"])  # one value: a list


def test_none_words():
    cfg = _config(["--floor", "none", "--pick", "none", "--limit", "all"])
    assert (cfg.floor, cfg.pick, cfg.limit) == (None, None, None)
    assert _config(["--limit", "12", "--pick", "mmr"]).limit == 12
    with pytest.raises(ConfigError, match=r"--inner-size \(Inner.size\): 'none' is not an integer"):
        _config(["--inner-size", "none"])
    with pytest.raises(ConfigError, match=r"c.json: inner.size: none is not allowed here \(give an integer\)"):
        from_mapping(Outer, {"inner": {"size": None}}, "c.json")


def test_bad_values_name_the_flag_the_value_and_what_is_allowed():
    with pytest.raises(ConfigError) as exc:
        _config(["--inner-kind", "c"])
    assert str(exc.value) == "--inner-kind (Inner.kind): 'c' is not one of a, b"
    with pytest.raises(ConfigError, match=r"--pick \(Outer.pick\): 'x' is not one of kmeans, mmr; or none"):
        _config(["--pick", "x"])
    with pytest.raises(ConfigError, match=r"--seeds \(Outer.seeds\): 'three' is not an integer"):
        _config(["--seeds", "1", "three"])
    with pytest.raises(ConfigError, match=r"--ratio \(Outer.ratio\): 'half' is not a number"):
        _config(["--ratio", "half"])
    with pytest.raises(ConfigError, match=r"Outer: ratio must be <= 1, got 2.0"):  # the dataclass's validate()
        _config(["--ratio", "2"])
    with pytest.raises(SystemExit):  # an unknown flag is argparse's own error
        _parser().parse_args(["--secret", "x"])


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: from-file\nratio: 3e-1\nseeds: [5]\ninner:\n  size: 7\nfloor: null\n")
    cfg = _config(["--config", str(path)])
    assert (cfg.name, cfg.ratio, cfg.seeds, cfg.inner) == ("from-file", 0.3, [5], Inner(size=7))  # YAML's 3e-1 text
    cfg = _config(["--config", str(path), "--inner-size", "9", "--name", "flag"])
    assert (cfg.name, cfg.inner.size, cfg.inner.kind, cfg.seeds) == ("flag", 9, "a", [5])  # flags win, per field
    # defaults < file < flags < overrides
    cfg = _config(
        ["--config", str(path), "--fast"],
        defaults={"name": "d", "pair": [3, 4], "inner": {"kind": "b"}},
        overrides={"secret": "s"},
    )
    assert (cfg.name, cfg.pair, cfg.inner, cfg.fast, cfg.secret) == ("from-file", (3.0, 4.0), Inner(7, "b"), True, "s")
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"inner": "b"}))  # the shorthand: a value for the nested config sets its kind
    assert _config(["--config", str(js)]).inner == Inner(kind="b")


def test_yaml_words_are_words(tmp_path):
    # YAML 1.2 booleans: an unquoted yes / off is a word for a text field and true / false for a bool one.
    path = tmp_path / "c.yaml"
    path.write_text("name: yes\nfast: on\ninner:\n  kind: b\n")
    assert (_config(["--config", str(path)]).name, _config(["--config", str(path)]).fast) == ("yes", True)
    path.write_text("fast: off\n")
    assert _config(["--config", str(path), "--name", "off"]).fast is False


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "nmae: y\n",
            r"config file .*c.yaml: unknown Outer field\(s\) 'nmae' \(did you mean 'name'\?\); known: name, ",
        ),
        ("inner:\n  sise: 2\n", r"c.yaml: inner: unknown Inner field\(s\) 'sise' \(did you mean 'size'\?\)"),
        ("inner:\n  kind: z\n", r"c.yaml: inner.kind: 'z' is not one of a, b"),
        ("seeds: [1, x]\n", r"c.yaml: seeds: 'x' is not an integer"),
        ("pair: [1, a]\n", r"c.yaml: pair: 'a' is not a number"),
        ("fast: maybe\n", r"c.yaml: fast: 'maybe' is not true or false"),
        ("name: [yes]\n", r"c.yaml: name: \['yes'\] is not text"),
        ("- 1\n", r"c.yaml must hold a mapping"),
        ("a: [\n", r"c.yaml is not valid YAML"),
    ],
)
def test_config_file_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        _config(["--config", str(path)])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file .*nope.json does not exist"):
        _config(["--config", str(tmp_path / "nope.json")])


def test_help_comes_from_comments_and_metadata(capsys):
    text = " ".join(_parser().format_help().split())
    assert "Name of the run. (default: x)" in text
    assert "share of something (default: 0.5)" in text  # #: lines joined
    assert "plain comment" not in text
    assert "Size of the inner thing." in text and "{a,b}" in text and "{kmeans,mmr,none}" in text
    assert "--where PATH, -w PATH" not in text and "--where TEXT, -w TEXT" in text
    assert "--fast, --no-fast" in text and "--secret" not in text
    assert "Inner (Outer.inner)" in text  # nested dataclasses get their own group


def test_shared_flags_set_each_config_and_check_its_own_choices():
    p = ConfigParser(prog="demo")
    p.add_dataclass(Outer)
    p.add_dataclass(Other, share=True)
    args = p.parse_args(["--name", "n", "--seeds", "9"])
    assert p.config(args, Outer).name == "n" and p.config(args, Other).name == "n"
    assert p.config(args, Other).seeds == [9]
    args = p.parse_args(["--pick", "beta"])  # valid for Other only: each config checks its own choices
    assert p.config(args, Other).pick == "beta"
    with pytest.raises(ConfigError, match=r"--pick \(Outer.pick\): 'beta' is not one of kmeans, mmr"):
        p.config(args, Outer)
    assert "Also Other.name (default: o)." in " ".join(p.format_help().split())


def test_from_mapping():
    assert from_mapping(Outer, {"inner": {"size": "4"}, "tags": "one"}) == Outer(inner=Inner(size=4), tags=["one"])
    with pytest.raises(ConfigError, match="unknown Outer field"):
        from_mapping(Outer, {"bogus": 1})


def test_setup_offline_fills_gaps_only(monkeypatch):
    from eclip_core.runtime import OFFLINE_ENV, offline_env, setup_offline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for key in OFFLINE_ENV:
        if key != "HF_HUB_OFFLINE":
            monkeypatch.delenv(key, raising=False)
    setup_offline()
    assert all(os.environ[k] == v for k, v in OFFLINE_ENV.items())
    env = {"TRANSFORMERS_OFFLINE": "0"}
    setup_offline(env)
    assert env["TRANSFORMERS_OFFLINE"] == "0" and env["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert offline_env({}, OMP_NUM_THREADS="1") == {**OFFLINE_ENV, "OMP_NUM_THREADS": "1"}


def test_entry_points_set_the_offline_environment_through_one_function():
    # The 13 places that each set the variables themselves now call eclip_core.runtime (tests' conftest
    # keeps its own).
    hand_set = []
    for path in [
        *ROOT.glob("eclip_core/**/*.py"),
        *ROOT.glob("rag_report/*.py"),
        *ROOT.glob("apps/*.py"),
        *ROOT.glob("eval/**/*.py"),
    ]:
        if path.name == "runtime.py":
            continue
        text = path.read_text()
        if '"HF_HUB_OFFLINE"' in text or "HF_HUB_OFFLINE=" in text:
            hand_set.append(str(path.relative_to(ROOT)))
    assert hand_set == []


# ---------------------------------------------------------------------------------------- front ends
def _example_value(spec):
    """A value of the field's type that differs from its default."""
    if spec.meta.get("choices"):
        return next(c for c in reversed(spec.meta["choices"]) if c != spec.default)
    base = spec.element
    if base is int:
        return (spec.default or 0) + 2
    if base is float:
        return 0.125 if spec.default != 0.125 else 0.25
    if base is bool:
        return not spec.default
    return f"value-of-{spec.path[-1]}"


def _flag_args(parser, cls):
    """argv setting every field of ``cls`` to a non-default value, and those values."""
    argv, expected = [], {}
    flags = parser.flags_of(cls)
    for spec in field_specs(cls):
        value = _example_value(spec)
        expected[spec.path[-1]] = value
        flag = flags[spec.path[-1]][0]
        argv += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False else [flag, str(value)]
    return argv, expected


def _generate_parser():
    from rag_report.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return parser, sub.choices["generate"]


def test_every_pipeline_field_is_a_flag_of_generate_the_app_and_the_benchmark():
    from rag_report.pipeline import PipelineConfig

    names = {f.name for f in dataclasses.fields(PipelineConfig)}
    top, generate = _generate_parser()
    assert set(generate.flags_of(PipelineConfig)) == names
    argv, expected = _flag_args(generate, PipelineConfig)
    args = top.parse_args(["generate", "x.png", *argv])
    assert args.config_parser.config(args, PipelineConfig) == PipelineConfig(**expected)

    from apps.gradio_app import build_parser as app_parser
    from apps.gradio_app import parse_args

    assert set(app_parser().flags_of(PipelineConfig)) == names
    assert parse_args(argv)[1] == PipelineConfig(**expected)

    from eval.report_gen.cli import build_parser as bench_parser
    from eval.report_gen.cli import configs_from_args
    from eval.report_gen.config import ReportGenConfig

    bench = bench_parser()
    assert {p.split(".", 1)[1] for p in bench.flags_of(ReportGenConfig) if p.startswith("pipeline.")} == names
    _, cfg = configs_from_args(argv, bench)
    assert cfg.pipeline == PipelineConfig(**expected)


def test_new_generate_flags_and_their_errors(tmp_path, capsys, monkeypatch):
    from rag_report import cli
    from rag_report.pipeline import PipelineConfig

    monkeypatch.setattr("eclip_core.cpu_memory.keep_freed_memory", lambda *a, **k: False)
    top, generate = _generate_parser()
    args = top.parse_args(
        [
            "generate",
            "--label-boost",
            "filter",
            "--label-weight",
            "2",
            "--similarity-floor",
            "0.1",
            "--typicality-floor",
            "none",
            "--candidates",
            "40",
            "--diversify",
            "mmr",
        ]
    )
    cfg = generate.config(args, PipelineConfig)
    assert (
        cfg.label_boost,
        cfg.label_weight,
        cfg.similarity_floor,
        cfg.typicality_floor,
        cfg.candidates,
        cfg.diversify,
    ) == ("filter", 2.0, 0.1, None, 40, "mmr")
    # A bad value: one line on stderr, a JSON error with --json, exit code 2, before anything loads.
    assert cli.main(["generate", "x.png", "--label-boost", "sometimes", "--json"]) == 2
    out, err = capsys.readouterr()
    error = json.loads(out)["error"]
    assert error["type"] == "ConfigError"
    assert (
        error["message"] == "--label-boost (PipelineConfig.label_boost): 'sometimes' is not one of off, filter, rerank"
    )
    assert err.startswith("error: --label-boost")
    conf = tmp_path / "pipe.yaml"
    conf.write_text("k: 0\n")
    assert cli.main(["generate", "x.png", "--config", str(conf), "--json"]) == 2
    assert "k and candidates must be >= 1" in json.loads(capsys.readouterr().out)["error"]["message"]


def test_existing_benchmark_flags_keep_working():
    from eval.report_gen.cli import configs_from_args

    suite, cfg = configs_from_args(
        [
            "--quick",
            "--manifest",
            "m.csv",
            "--model",
            "m",
            "--index",
            "i",
            "--llm",
            "x.gguf",
            "--systems",
            "random",
            "oracle",
            "--llm-limit",
            "all",
            "--no-progress",
            "--no-meteor",
            "--label-boost",
            "off",
            "--label-weight",
            "0.5",
            "--diversify",
            "none",
            "--full-systems",
            "boost_grounded",
            "--free-limit",
            "5",
        ]
    )
    assert suite == "report" and cfg.quick and cfg.manifest == "m.csv" and cfg.limit == 100
    assert (cfg.pipeline.model_dir, cfg.pipeline.index_dir, cfg.pipeline.llm_path) == ("m", "i", "x.gguf")
    assert cfg.systems == ["random", "oracle"] and cfg.llm_limit == 15  # --quick caps "all" at 15
    assert not cfg.progress and not cfg.meteor and cfg.pipeline.label_boost == "off"
    assert cfg.pipeline.diversify is None and cfg.full_systems == ["boost_grounded"] and cfg.free_limit == 5
    assert cfg.command.startswith("python -m eval.report_gen --quick")
    _, cfg = configs_from_args([])
    assert (cfg.limit, cfg.llm_limit, cfg.free_limit) == (None, 20, 5)
    suite, cfg = configs_from_args(
        [
            "--suite",
            "embedding",
            "--steps",
            "3",
            "--seeds",
            "4",
            "5",
            "--variants",
            "clip",
            "--max-eval",
            "all",
            "--model-config",
            "eclip-small",
            "--train-batch-size",
            "8",
        ]
    )
    assert suite == "embedding" and (cfg.steps, cfg.seeds, cfg.variants, cfg.max_eval, cfg.model, cfg.batch_size) == (
        3,
        [4, 5],
        ["clip"],
        None,
        "eclip-small",
        8,
    )
    suite, cfg = configs_from_args(["--suite", "tower", "--seeds", "1", "--variants", "cnn128", "--num-workers", "0"])
    assert suite == "tower" and (cfg.seeds, cfg.variants, cfg.num_workers, cfg.eval_split) == (
        [1],
        ["cnn128"],
        0,
        "val",
    )
    with pytest.raises(ConfigError, match=r"--variants \(TowerSuiteConfig.variants\): 'eclip' is not one of vit224"):
        configs_from_args(["--suite", "tower", "--variants", "eclip"])
    with pytest.raises(ConfigError, match=r"--systems \(ReportGenConfig.systems\): 'gpt' is not one of random"):
        configs_from_args(["--systems", "gpt"])


def test_benchmark_config_file(tmp_path):
    from eval.report_gen.cli import configs_from_args
    from eval.report_gen.config import ReportGenConfig

    path = tmp_path / "bench.json"
    path.write_text(json.dumps({**ReportGenConfig().to_dict(), "seed": 3, "pipeline": {"k": 4, "candidates": 50}}))
    _, cfg = configs_from_args(["--config", str(path), "--k", "2"])
    assert (cfg.seed, cfg.pipeline.k, cfg.pipeline.candidates) == (3, 2, 50)
    assert cfg.llm_limit is None  # the file's own value (to_dict: None = all) beats the CLI's default of 100


def _help_of(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_every_front_end_prints_its_help(capsys, monkeypatch):
    monkeypatch.setattr("eclip_core.cpu_memory.keep_freed_memory", lambda *a, **k: False)
    from apps.gradio_app import main as app_main
    from eclip_core.train import main as train_main
    from eval.report_gen.cli import main as bench_main
    from rag_report.cli import main as cli_main

    for argv in (
        ["--help"],
        ["generate", "--help"],
        ["index", "--help"],
        ["build-default", "--help"],
        ["train", "--help"],
    ):
        assert _help_of(cli_main, argv, capsys).startswith("usage: rag-report")
    text = _help_of(cli_main, ["generate", "--help"], capsys)
    for flag in (
        "--label-boost {off,filter,rerank}",
        "--label-weight",
        "--similarity-floor",
        "--typicality-floor",
        "--candidates",
        "--diversify {kmeans,mmr,none}",
        "--config FILE",
        "--model DIR",
    ):
        assert flag in text, flag
    assert "--model-lock-text" in _help_of(train_main, ["--help"], capsys)
    assert "--label-boost" in _help_of(app_main, ["--help"], capsys)
    text = _help_of(bench_main, ["--help"], capsys)
    for flag in (
        "--llm-limit",
        "--quick",
        "--systems",
        "--steps",
        "--seeds",
        "--variants",
        "--model-config",
        "--label-boost",
        "--label-weight",
        "--train-lr",
        "--lock-text",
    ):
        assert flag in text, flag


def test_rag_report_serve_help_is_the_apps(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "rag_report.cli", "serve", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m apps.gradio_app") and "--label-boost" in proc.stdout


def test_config_modules_import_one_way_and_the_app_cache_lives_in_rag_report():
    import ast

    def imports(path: Path) -> set[str]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }

    assert {m for m in imports(ROOT / "eclip_core" / "cli_config.py") if m.startswith("eclip_core")} == {
        "eclip_core.errors"
    }
    assert "eclip_core.cli_config" in imports(ROOT / "eclip_core" / "config.py")  # config -> cli_config, never back
    users = [p for p in (ROOT / "eclip_core").rglob("*.py") if "rag_report_home" in p.read_text(encoding="utf-8")]
    assert users == [] and not (ROOT / "eclip_core" / "paths.py").exists()
    from rag_report.paths import rag_report_home

    assert rag_report_home().name  # $RAG_REPORT_HOME or ~/.cache/rag_report


def test_one_source_per_setting():
    from rag_report.drafting.drafters import DRAFTERS, LLM_MODES, DraftLimits, DraftSettings
    from rag_report.errors import RagReportError
    from rag_report.pipeline import MODES, PipelineConfig

    limits = {f.name for f in dataclasses.fields(DraftLimits)}
    assert limits == {"max_new_tokens", "max_sentences", "normal_statements", "finding_statements", "num_beams"}
    for cls in (PipelineConfig, DraftSettings):  # declared once, inherited (help text included)
        assert issubclass(cls, DraftLimits) and limits <= {f.name for f in dataclasses.fields(cls)}
    assert "Beams of free-mode generation" in " ".join(_parser_of(PipelineConfig).format_help().split())
    assert MODES == ("auto", "grounded", "free", "top1", "consensus") and set(LLM_MODES) < set(DRAFTERS)
    for bad in (PipelineConfig(label_boost="max"), PipelineConfig(label_weight=-1.0)):
        with pytest.raises(RagReportError, match="label"):
            bad.validate()
    assert PipelineConfig(label_weight=0.5).boost("filter").mode == "filter"


def _parser_of(cls) -> ConfigParser:
    p = ConfigParser(prog="x")
    p.add_dataclass(cls)
    return p


def test_default_bundle_settings_come_from_train_config_and_keep_their_keys():
    from eclip_core.config import TrainConfig
    from rag_report.bundle import DefaultBundleConfig, default_training

    cfg = DefaultBundleConfig()
    assert isinstance(cfg.train, TrainConfig) and cfg.train == default_training()
    assert cfg.key() == "9b67cb805567"  # pinned: a key that moves rebuilds every user's bundle
    cfg.train.steps = 50
    assert cfg.key() == "74a73dd68d7e"  # `rag-report build-default --steps 50`
    other = DefaultBundleConfig()
    other.train.mixup_alpha = 0.2  # any TrainConfig field now changes the bundle...
    assert other.key() not in ("9b67cb805567", "74a73dd68d7e")
    where = DefaultBundleConfig()
    where.train.output_dir, where.train.progress = "/elsewhere", False  # ...but not where or how visibly it runs
    assert where.key() == "9b67cb805567"


def test_bounds_and_choices_are_checked_for_flags_files_and_validate(tmp_path):
    from eclip_core.config import EClipConfig, TrainConfig
    from eclip_core.train import config_from_args

    with pytest.raises(ConfigError, match=r"^--lr \(TrainConfig.lr\): '-1': input should be greater than 0$"):
        config_from_args(["--lr", "-1"])
    path = tmp_path / "t.yaml"
    path.write_text("model:\n  clahe_p: 1.5\n")
    with pytest.raises(ConfigError, match=r"t.yaml: model.clahe_p: 1.5: input should be less than or equal to 1"):
        config_from_args(["--config", str(path)])
    with pytest.raises(ConfigError, match=r"^TrainConfig: batch_size: 1: input should be greater than or equal to 2"):
        TrainConfig(batch_size=1).validate()
    with pytest.raises(ConfigError, match=r"^EClipConfig: heatmap_norm: 'max' is not one of sample, batch$"):
        EClipConfig(heatmap_norm="max").validate()
    assert TrainConfig(output_dir=tmp_path, p_peak=1).validate().output_dir == tmp_path  # a path is text
