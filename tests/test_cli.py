"""`rag-report` as users run it: clean stdout (JSON through json.loads), quiet stderr, early input checks,
`rag-report train`'s name and CPU defaults. Subprocess runs use the tiny world of conftest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_llm_support import make_tiny_llama

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "OMP_NUM_THREADS": "1",
}
#: What library chatter looks like on stderr: tqdm bars, transformers' weight loading and load tables,
#: faiss's loader lines.
CHATTER = ("%|", "Loading weights", "LOAD REPORT", "faiss.loader", "AVX2 support")


def _expected_auto_cpu() -> str:
    # Independent of rag_report.llm.precision: read the flags ourselves.
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "nf4" if {"avx512_bf16", "amx_bf16"} & set(flags) else "none"


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE}
    for key in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        env.pop(key, None)  # the command decides (--quiet), not this process's settings
    return subprocess.run(
        [sys.executable, "-m", "rag_report.cli", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(autouse=True)
def process_wide_memory_setting_untouched(monkeypatch):
    # cli.main tunes glibc's malloc for its whole process; in-process calls here must not do that to pytest's.
    monkeypatch.setattr("eclip_core.cpu_memory.keep_freed_memory", lambda *a, **k: False)


@pytest.fixture(scope="module")
def world(tiny_world):
    test = next(s for s in tiny_world["studies"] if s.split == "test")
    return {
        **tiny_world,
        "image": test.image_paths[0],
        "flags": [
            "--model",
            tiny_world["model_dir"],
            "--index",
            tiny_world["index_dir"],
            "--k",
            "3",
            "--candidates",
            "20",
        ],
    }


@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("cli-llm") / "tiny", seed=5)


@pytest.mark.slow
def test_generate_json_stdout_is_only_json(world, tiny_llm_dir):
    proc = run_cli("generate", world["image"], *world["flags"], "--mode", "grounded", "--llm", tiny_llm_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    draft = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert draft["mode"] == "grounded" and draft["text"].startswith(("FINDINGS:", "IMPRESSION:"))
    assert draft["models"]["llm_id"].startswith("tiny@")
    # quantization="auto" (the default) resolved for this CPU, and said so.
    assert draft["models"]["quantization"] == _expected_auto_cpu()
    assert draft["models"]["quantization_reason"].startswith("auto:")
    assert "MockLLM" not in proc.stdout + proc.stderr
    assert "Loading weights" in proc.stderr  # without --quiet the library's bar shows, on stderr


@pytest.mark.slow
def test_quiet_generate_has_no_bars_or_tables(world, tiny_llm_dir):
    proc = run_cli(
        "--quiet",
        "generate",
        world["image"],
        *world["flags"],
        "--mode",
        "grounded",
        "--llm",
        tiny_llm_dir,
        "--json",
        "-v",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mode"] == "grounded"
    for noise in CHATTER:
        assert noise not in proc.stderr, (noise, proc.stderr[-2000:])


@pytest.mark.slow
def test_index_json_and_quiet(world, tmp_path):
    proc = run_cli(
        "index",
        "--manifest",
        world["manifest"],
        "--model",
        world["model_dir"],
        "--out",
        tmp_path / "idx",
        "--json",
        "--quiet",
        "-v",
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    n_train = sum(1 for s in world["studies"] if s.split == "train" and s.report_text)
    assert out["reports"] == n_train and Path(out["out"]) == tmp_path / "idx"
    assert (tmp_path / "idx" / "manifest.json").is_file()
    # the default views read tiles; with val rows in the manifest, the thresholds are set on them
    clf = json.loads((tmp_path / "idx" / "label_classifiers.json").read_text())
    from eclip_core.model import EClip

    assert clf["views"] == "image+tiles"
    assert len(clf["mean"]) == 2 * EClip.from_pretrained(world["model_dir"]).embed_dim
    has_val = any(s.split == "val" and s.report_text for s in world["studies"])
    assert ("val" in clf["threshold_source"]) == has_val
    for noise in CHATTER:
        assert noise not in proc.stderr, (noise, proc.stderr[-2000:])


def test_error_with_json_is_json(world, tmp_path):
    missing = tmp_path / "DOES_NOT_EXIST.png"
    proc = run_cli("generate", missing, *world["flags"], "--json")
    assert proc.returncode == 2
    err = json.loads(proc.stdout)["error"]
    assert err["type"] == "ImageLoadError" and "DOES_NOT_EXIST.png" in err["message"]
    assert "error:" in proc.stderr


class _NotConstructed(Exception):
    pass


def test_rejected_image_fails_before_the_pipeline_loads(monkeypatch, tmp_path, capsys):
    import rag_report.pipeline as pipeline
    from rag_report import cli

    built = []

    class Spy:
        def __init__(self, *args, **kwargs):
            built.append(args)
            raise _NotConstructed()

    monkeypatch.setattr(pipeline, "ReportPipeline", Spy)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64), 9, np.uint8)).save(blank)
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"not an image" * 10)
    for bad, why in ((blank, "blank"), (junk, "not a recognised image")):
        assert cli.main(["generate", str(bad), "--model", "m", "--index", "i", "--json"]) == 2
        out = json.loads(capsys.readouterr().out)
        assert why in out["error"]["message"]
    assert built == []
    good = tmp_path / "ramp.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).save(good)
    with pytest.raises(_NotConstructed):  # a readable image goes on to load the pipeline
        cli.main(["generate", str(good), "--model", "m", "--index", "i"])
    assert len(built) == 1


def test_train_help_names_itself_and_shows_cpu_defaults(capsys, monkeypatch):
    from rag_report import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rag-report train") and "eclip_core.train" not in out.split("\n")[0]
    import torch

    if not torch.cuda.is_available():
        assert "text tower locked" in out and "--no-model-lock-text" in out


@pytest.mark.parametrize("cpu", [True, False])
def test_train_help_states_the_value_each_flag_takes_when_not_given(cpu):
    """Every `rag-report train` flag's "(default: X)" is what the run gets without it (its own defaults, not
    python -m eclip_core.train's), on a CPU and on CUDA."""
    import re

    from eclip_core.cli_config import show_default
    from eclip_core.config import TrainConfig
    from eclip_core.train import config_from_args
    from rag_report.cli_train import settle_tower_defaults, train_defaults, train_parser

    parser, argv = train_parser(cpu), ["--manifest", "m.csv"]
    cfg = settle_tower_defaults(config_from_args(argv, parser=parser, defaults=train_defaults(argv, cpu)), argv, cpu)
    actions = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    checked = 0
    for path, names in parser.flags_of(TrainConfig).items():
        if path in ("manifest", "output_dir"):
            continue
        value = cfg
        for part in path.split("."):
            value = getattr(value, part)
        stated = re.search(r"\(default: (.*)\)", actions[names[0]].help.replace("%%", "%")).group(1)
        assert stated == show_default(value), (names[0], stated, value)
        checked += 1
    assert checked > 60 and (cfg.model.lock_image, cfg.model.image_size, cfg.lr) == (True, 224, 1e-3 if cpu else 1e-4)


def test_train_cpu_defaults_lock_the_text_tower(tmp_path, monkeypatch):
    from eclip_core.train import config_from_args
    from rag_report.cli_train import cpu_train_defaults, train_parser

    defaults = cpu_train_defaults()
    cfg = config_from_args(["--manifest", "m.csv"], parser=train_parser(True), defaults=defaults)
    assert cfg.model.lock_text is True and cfg.lr == 3e-4 and cfg.num_workers == 1
    cfg = config_from_args(
        ["--manifest", "m.csv", "--no-model-lock-text", "--lr", "1e-4"], parser=train_parser(True), defaults=defaults
    )
    assert cfg.model.lock_text is False and cfg.lr == 1e-4  # flags win
    (tmp_path / "t.yaml").write_text("model:\n  lock_text: false\n")
    cfg = config_from_args(["--config", str(tmp_path / "t.yaml")], parser=train_parser(True), defaults=defaults)
    assert cfg.model.lock_text is False  # so does a config file
    # python -m eclip_core.train itself is unchanged.
    assert config_from_args(["--manifest", "m.csv"]).model.lock_text is False


def test_train_defaults_score_val_and_keep_the_best_step():
    from eclip_core.train import config_from_args
    from rag_report.cli_train import train_defaults, train_parser

    def parsed(*flags):
        argv = ["--manifest", "m.csv", *flags]
        return config_from_args(argv, parser=train_parser(True), defaults=train_defaults(argv, cpu=True))

    c = parsed()
    assert (c.val_every, c.keep_best, c.val_metric, c.val_patience) == (50, True, "recall", 4)
    assert parsed("--val-metric", "loss", "--val-patience", "0").val_metric == "loss"
    assert parsed("--val-every", "0").val_every == 0  # accepted: the last step is kept (eclip_core.train)
    assert parsed("--no-keep-best").keep_best is False
    assert config_from_args(["--manifest", "m.csv"]).val_every == 0  # python -m eclip_core.train: unchanged


def test_rag_report_train_runs_quietly_with_a_json_summary(tmp_path, capfd, library_switches_restored):
    from eclip_core.training.synthetic import make_blob_dataset
    from rag_report import cli

    manifest = make_blob_dataset(tmp_path / "blobs", n=12, size=64, expert_fraction=0.3, seed=0)
    rc = cli.main(
        [
            "--quiet",
            "train",
            "--manifest",
            str(manifest),
            "--output-dir",
            str(tmp_path / "run"),
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--model",
            "eclip-tiny",
            "--cpu",
            "--num-workers",
            "0",
        ]
    )
    out, err = capfd.readouterr()
    assert rc == 0
    summary = json.loads(out)
    cfg = json.loads((Path(summary["model_dir"]) / "train_config.json").read_text())
    assert cfg["model"]["lock_text"] is True and cfg["progress"] is False
    for noise in CHATTER:
        assert noise not in err


def test_generate_text_shows_predicted_observations_and_label_agreement(world, capsys, library_switches_restored):
    from eclip_core.labels import CHEXPERT_OBSERVATIONS
    from rag_report import cli

    argv = [
        "generate",
        str(world["image"]),
        *map(str, world["flags"]),
        "--mode",
        "consensus",
        "--label-boost",
        "filter",
        "--label-weight",
        "2",
    ]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert cli.main([*argv, "--json"]) == 0
    draft = json.loads(capsys.readouterr().out)  # --json carries the same, in full
    assert draft["models"]["label_boost"] == "filter"
    assert set(draft["predicted_labels"]) == set(CHEXPERT_OBSERVATIONS)
    assert all(0.0 <= p <= 1.0 for p in draft["predicted_labels"].values())
    head, evidence = text.split("\nEVIDENCE\n")
    assert draft["text"] in head  # the draft, then what the image predicts
    predicted = head.split(draft["text"], 1)[1]
    assert "PREDICTED FROM THE IMAGE (label classifiers; label boost filter): " in predicted
    for name in draft["predicted_positive"]:
        assert f"{name} {draft['predicted_labels'][name]:.2f}" in predicted
    for ev in draft["evidence"]:
        assert ev["label_agreement"] is not None
        assert (
            f"#{ev['rank']} {ev['study_id']}  similarity {ev['similarity']:.3f}  label agreement "
            f"{ev['label_agreement']:.2f}  sentences used: {len(ev['sentences_used'])}"
        ) in evidence
    assert cli.main([*argv[:-4], "--label-boost", "off", "--json"]) == 0
    off = json.loads(capsys.readouterr().out)
    assert off["models"]["label_boost"] == "off" and all(e["label_agreement"] is None for e in off["evidence"])
    assert off["predicted_labels"] == draft["predicted_labels"]


def test_draft_text_without_label_classifiers():
    from rag_report.cli import draft_as_text
    from rag_report.report import DraftReport, Evidence

    draft = DraftReport(
        "Lungs clear.",
        "",
        [Evidence("s1", 1, 0.5, "Lungs clear.", "", sentences_used=["Lungs clear."])],
        [],
        {"No Finding": 1.0},
        {"total": 3.0},
        {"label_boost": "off"},
        "top1",
    )
    text = draft_as_text(draft)
    assert "PREDICTED FROM THE IMAGE: n/a (the index has no label classifiers)" in text
    assert "#1 s1  similarity 0.500  sentences used: 1" in text and "label agreement" not in text
    assert "OBSERVATIONS IN THE DRAFT: No Finding" in text


def test_a_leading_quiet_or_verbose_reaches_the_command():
    from rag_report.cli import build_parser

    index = ["index", "--manifest", "m.csv", "--model", "m", "--out", "o"]
    for argv, quiet, verbose in (
        (["--quiet", *index], True, False),
        ([*index, "--quiet"], True, False),
        (index, False, False),
        (["-v", "generate", "x.png"], False, True),
    ):
        args = build_parser().parse_args(argv)
        assert (args.quiet, args.verbose) == (quiet, verbose), argv
