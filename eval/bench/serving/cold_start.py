"""Benchmark: the README's first command from an empty cache, stage by stage (CPU and wall seconds).

    python -m eval.bench.serving.cold_start --home runs/cold-home --out docs/perf/cold_start.md

Runs ``rag-report generate --example --quiet`` in a child process with ``RAG_REPORT_HOME`` set to ``--home``
(which must be empty or absent: the point is a cold start), so the default bundle is built from nothing:
phantom data set, eCLIP training, report index, similarity floor, checker thresholds, then
the draft. The stages come from the bundle's ``bundle.json`` (``stages``, written by
:func:`rag_report.bundle.build_default_bundle`); the total CPU seconds are the child's and its children's
(``os.wait4``), so "everything else" (interpreter start, imports, loading the pipeline, drafting) is the
total less the stages. CPU seconds are what the run costs; on a shared machine they matter more than the
wall clock, which the page also gives, with the load average before and after. ``--baseline`` adds the
columns of an earlier run's ``--json`` file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from eclip_core.runtime import setup_offline  # noqa: E402

setup_offline()

from eval.bench.drafting.llm_paired import _cpu_model  # noqa: E402


def command() -> list[str]:
    exe = shutil.which("rag-report")
    base = [exe] if exe else [sys.executable, "-m", "rag_report.cli"]
    return [*base, "generate", "--example", "--quiet"]


def run_cold(home: Path) -> dict:
    """Run the command with an empty ``home``; returns wall and CPU seconds, the stages and the load."""
    if home.exists() and any(home.iterdir()):
        raise SystemExit(f"{home} is not empty: a cold start needs an empty RAG_REPORT_HOME (give a new folder)")
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RAG_REPORT_HOME": str(home.resolve())}
    load_before = os.getloadavg()
    wall = time.perf_counter()
    child = subprocess.Popen(command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = child.communicate()  # communicate waits; wait4 below reads the usage of the reaped child
    wall_s = time.perf_counter() - wall
    if child.returncode != 0:
        raise SystemExit(f"the cold start failed (exit {child.returncode}):\n{err[-3000:]}")
    stages = []
    for marker in sorted(home.glob("bundle/*/bundle.json")):
        stages = json.loads(marker.read_text()).get("stages", [])
    return {
        "command": " ".join(["rag-report", *command()[-3:]]),
        "wall_s": wall_s,
        "cpu_s": _children_cpu_s(),
        "stages": stages,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "nice": os.nice(0),
        "draft_chars": len(out),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: Cores a stage keeps busy on an idle 2-core machine: the phantom build renders in two processes; training
#: steps and the embedding passes run torch's two intra-op threads (training's loader worker fills the gaps).
#: The parts named in SERIAL run on one core (the classifiers' fit).
PARALLEL = {
    "phantom data set": 2.0,
    "train eCLIP": 2.0,
    "index build": 2.0,
    "similarity floor": 2.0,
    "checker thresholds": 2.0,
}
SERIAL = {"index build": ("index: fit classifiers",)}


def projected_wall_s(run: dict) -> float:
    """Wall seconds on 2 idle cores from the CPU seconds: each stage's CPU over the cores it keeps busy
    (:data:`PARALLEL`, less its serial parts), everything else on one core."""
    cpu = {s["name"]: s["cpu_s"] or 0.0 for s in run["stages"]}
    total = 0.0
    for name, stage_cpu in cpu.items():
        if ":" in name:
            continue
        serial = sum(cpu.get(part, 0.0) for part in SERIAL.get(name, ()))
        total += (stage_cpu - serial) / PARALLEL.get(name, 1.0) + serial
    rest = run["cpu_s"] - sum(v for k, v in cpu.items() if ":" not in k)
    return total + rest


def _rows(run: dict) -> dict[str, tuple[float | None, float]]:
    """Stage name -> (CPU-s, wall-s), with "everything else" the total less the top-level stages."""
    rows = {s["name"]: (s["cpu_s"], s["wall_s"]) for s in run["stages"]}
    top = [s for s in run["stages"] if ":" not in s["name"]]
    rows["everything else (start, imports, pipeline load, draft)"] = (
        run["cpu_s"] - sum(s["cpu_s"] for s in top),
        run["wall_s"] - sum(s["wall_s"] for s in top),
    )
    rows["**total**"] = (run["cpu_s"], run["wall_s"])
    return rows


def _parents_first(names: list[str]) -> list[str]:
    """Each stage followed by its parts ("train: ..." after "train eCLIP"), which the clock records first."""
    out: list[str] = []
    waiting: list[str] = []
    for name in names:
        if ":" in name:
            waiting.append(name)
            continue
        out.append(name)
        mine = [part for part in waiting if part.split(":")[0] == name.split()[0]]
        out += mine
        waiting = [part for part in waiting if part not in mine]
    return out + waiting


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(run: dict, baseline: dict | None = None) -> list[str]:
    rows, before = _rows(run), _rows(baseline) if baseline else {}
    head = "| stage | CPU-s | wall-s | share of CPU |"
    rule = "|---|---:|---:|---:|"
    if baseline:
        head, rule = (
            "| stage | CPU-s before | wall-s before | CPU-s | wall-s | share of CPU |",
            "|---|---:|---:|---:|---:|---:|",
        )
    lines = [
        "# Cold start: the first command from an empty cache",
        "",
        "Built from nothing: phantom data set, eCLIP training, report index, similarity floor, checker thresholds,",
        "then one draft (the default draft needs no LLM: it is converted on its first use, or ahead by",
        "`rag-report build-default`). CPU seconds count the process and its children (data-loader and render",
        "workers); indented rows are parts of the stage above them (not added to the total).",
        "",
        head,
        rule,
    ]
    for name in _parents_first(list(dict.fromkeys([*before, *rows]))):
        cpu, wall = rows.get(name, (None, None))
        share = "" if cpu is None or ":" in name else f"{100 * cpu / run['cpu_s']:.0f} %"
        label = f"&nbsp;&nbsp;{name}" if ":" in name else name
        cells = [_cell(cpu), _cell(wall), share]
        if baseline:
            bcpu, bwall = before.get(name, (None, None))
            cells = [_cell(bcpu), _cell(bwall), *cells]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    total_cpu, total_wall = run["cpu_s"], run["wall_s"]
    projected = projected_wall_s(run)
    lines += [
        "",
        f"**{total_cpu / 60:.1f} CPU-min; {int(total_wall // 60)} min {int(total_wall % 60)} s wall on this machine** "
        f"(parallelism {total_cpu / total_wall:.2f}).",
        "",
        f"Projected wall on 2 idle cores: **{int(projected // 60)} min {int(projected % 60)} s** "
        "(a projection, not a measurement: each stage's CPU seconds over the cores it keeps busy, two for "
        "the phantom renderers, training (its text passes too) and the embedding passes, one for the "
        "classifiers' fit and everything else).",
    ]
    if baseline:
        before = projected_wall_s(baseline)
        lines.append(
            f"Before (the --baseline run): {baseline['cpu_s'] / 60:.1f} CPU-min, {baseline['wall_s'] / 60:.1f} min wall on its machine, projected "
            f"{int(before // 60)} min {int(before % 60)} s by the same method."
        )
    lines += [
        "",
        "Command: `python -m eval.bench.serving.cold_start --home runs/cold-home --out docs/perf/cold_start.md` "
        f"(the folder must be empty or absent; it runs `{run['command']}` with `RAG_REPORT_HOME` set to it).",
        "",
        f"Measured on: {run['cpu']}, {run['cores']} cores shared with other jobs, run at nice {run['nice']}, load "
        f"average {run['load_before'][0]:.2f} before and {run['load_after'][0]:.2f} after; {run.get('date', '')}.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", required=True, help="an empty or absent folder to build into (RAG_REPORT_HOME)")
    p.add_argument("--out", default="docs/perf/cold_start.md")
    p.add_argument("--json", default=None, help="also write the raw numbers here (for a later --baseline)")
    p.add_argument("--baseline", default=None, help="an earlier run's --json file: adds its columns")
    p.add_argument("--from-json", default=None, help="render this --json file instead of running")
    args = p.parse_args(argv)

    from eval.bench.page import write_page

    run = json.loads(Path(args.from_json).read_text()) if args.from_json else run_cold(Path(args.home))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(run, indent=1))
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    write_page(args.out, render(run, baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
