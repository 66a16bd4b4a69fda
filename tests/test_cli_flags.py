"""Every front end's flags, as users see them in ``--help``, against the list kept in
tests/fixtures/cli_flags.json: each flag with its other names, its choices, its stated default and its help.

A changed flag fails here; when the change is meant, rewrite the list and review its diff:
``python tests/test_cli_flags.py`` (``rag-report serve --help`` is the app's help, checked by test_cli_config).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "cli_flags.json"
_DEFAULT = re.compile(r"\(default: ([^()]*)\)")


def _front_ends():
    from apps.gradio_app import main as app_main
    from eclip_core.train import main as train_main
    from eval.report_gen.cli import main as bench_main
    from rag_report.cli import main as cli_main

    return {
        "rag-report": (cli_main, ["--help"]),
        "rag-report build-default": (cli_main, ["build-default", "--help"]),
        "rag-report generate": (cli_main, ["generate", "--help"]),
        "rag-report index": (cli_main, ["index", "--help"]),
        "rag-report batch": (cli_main, ["batch", "--help"]),
        "rag-report train": (cli_main, ["train", "--cpu", "--help"]),  # its help states the CPU defaults
        "python -m eclip_core.train": (train_main, ["--help"]),
        "python -m eval.report_gen": (bench_main, ["--help"]),
        "python -m apps.gradio_app": (app_main, ["--help"]),
    }


def parse_help(text: str) -> dict[str, dict]:
    """argparse help text -> {first name: {names, metavar, choices, default, help}} of every argument
    listed (positionals by their name). The lines must not wrap (a wide COLUMNS)."""
    entries: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if re.match(r"^  \S", line):  # an argument's own line: its names, maybe its help
            invocation, _, help_text = line[2:].partition("  ")
            entries.append((invocation, [help_text.strip()]))
        elif re.match(r"^\s{3,}\S", line) and entries:  # its help on the next line(s)
            entries[-1][1].append(line.strip())
        elif line and not line.startswith(" "):  # a group's title ends the argument before it
            entries.append(("", []))
    out: dict[str, dict] = {}
    for invocation, help_lines in entries:
        if not invocation:
            continue
        parts = invocation.split(", ")
        names = [p.split(" ", 1)[0] for p in parts]
        metavar = parts[0].split(" ", 1)[1] if " " in parts[0] else ""
        help_text = " ".join(h for h in help_lines if h)
        defaults = _DEFAULT.findall(help_text)
        choices = metavar[1:].split("}")[0].split(",") if metavar.startswith("{") else None
        out[names[0]] = {
            "names": names,
            "metavar": metavar,
            "choices": choices,
            "default": defaults[-1] if defaults else None,
            "help": help_text,
        }
    return out


def collect() -> dict[str, dict]:
    """{command: its parsed --help} for every front end."""
    import contextlib
    import io

    result = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", "1000")  # one line per argument: the parse does not depend on wrapping
        mp.setattr("eclip_core.cpu_memory.keep_freed_memory", lambda *a, **k: False)  # a help run changes nothing
        for command, (main, argv) in _front_ends().items():
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
                main(list(argv))
            result[command] = parse_help(out.getvalue())
    return result


@pytest.fixture(scope="module")
def collected() -> dict[str, dict]:
    return collect()


def test_parse_help_reads_names_choices_defaults_and_help():
    text = (
        "usage: x\n\noptions:\n  -h, --help  show this help\n"
        "  --mode {a,b,none}     how (default: a)\n"
        "  --fast, --no-fast\n                        go fast (default: off)\n"
        "\ngroup:\n  --k INT  count\n"
    )
    parsed = parse_help(text)
    assert parsed["--mode"] == {
        "names": ["--mode"],
        "metavar": "{a,b,none}",
        "choices": ["a", "b", "none"],
        "default": "a",
        "help": "how (default: a)",
    }
    assert parsed["--fast"]["names"] == ["--fast", "--no-fast"] and parsed["--fast"]["default"] == "off"
    assert parsed["-h"]["names"] == ["-h", "--help"] and parsed["--k"]["default"] is None


@pytest.mark.parametrize("command", list(json.loads(FIXTURE.read_text())) if FIXTURE.exists() else [])
def test_flags_are_the_listed_ones(command, collected):
    expected, got = json.loads(FIXTURE.read_text())[command], collected[command]
    assert sorted(got) == sorted(expected), "flags added or removed"
    for flag, spec in expected.items():
        assert got[flag] == spec, flag


def test_every_front_end_is_listed(collected):
    assert sorted(json.loads(FIXTURE.read_text())) == sorted(collected)


if __name__ == "__main__":  # rewrite the list from the code as it is now
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(collect(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}", file=sys.stderr)
