"""Benchmark: warm request latency through the Gradio app over HTTP vs the library call.

    python -m eval.bench.serving.app_latency [--tiny] [--modes consensus,grounded] [--repeats 15]
        [pipeline flags as for the app: --model --index --llm --k ...] [--out docs/perf/app.md]

The app runs as its own program (``python -m apps.gradio_app``, as users start it)
on a free local port with the same pipeline flags; this process holds the same pipeline and calls
``ReportPipeline.generate`` directly. After warm-up rounds it draws reports three ways: the library call
and gradio's REST API over raw HTTP (upload, call,
event stream: what curl or a browser does) in turn, so both see the same machine load; then gradio_client
``predict`` (which adds its own 50 ms polling).

``--tiny`` builds a throw-away eclip-tiny model and an 8-report index first (no default bundle needed);
its drafts take milliseconds, so the fixed HTTP cost dominates the ratio there: read the overhead in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.bench.page import write_page

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_IMAGE = ROOT / "apps" / "examples" / "00000001_000.png"
TINY_REPORTS = [
    ("The heart is normal in size. The lungs are clear. No pleural effusion or pneumothorax.", "No acute disease."),
    ("The heart is enlarged. Small bilateral pleural effusions.", "Cardiomegaly with small effusions."),
    ("Right lower lobe consolidation. No pneumothorax.", "Right lower lobe pneumonia."),
    ("The lungs are clear. Heart size normal. No pleural effusion.", "No acute cardiopulmonary abnormality."),
    ("Left basilar atelectasis. The heart is normal in size.", "Mild left basilar atelectasis."),
    ("Large right pneumothorax. No pleural effusion.", "Right pneumothorax."),
    ("Mild pulmonary edema. The heart is enlarged.", "Cardiomegaly and mild edema."),
    ("Healed left rib fracture. The lungs are clear.", "No acute disease."),
]


def build_tiny(root: Path) -> list[str]:
    """An untrained eclip-tiny checkpoint and an 8-report index; returns their app flags."""
    from PIL import Image

    from eclip_core.data.manifest import Study
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex

    model = EClip.from_config("eclip-tiny").eval()
    model.save_pretrained(root / "eclip")
    rng = np.random.default_rng(0)
    studies = []
    for i, (findings, impression) in enumerate(TINY_REPORTS):
        img = root / f"s{i}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(img)
        studies.append(Study(f"S{i}", [str(img)], "train", findings=findings, impression=impression))
    ReportIndex.build(model, studies, root / "index", progress=False)
    return ["--model", str(root / "eclip"), "--index", str(root / "index"), "--k", "3", "--candidates", "8"]


def _tiny_in_child(root: Path) -> list[str]:
    # Built in another process: building in this one slows the library calls measured here afterwards,
    # which would flatter the HTTP ratio.
    out = subprocess.run(
        [sys.executable, "-m", "eval.bench.serving.app_latency", "--build-tiny-into", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1].split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_app(flags: list[str], port: int, timeout_s: float = 900.0) -> subprocess.Popen:
    import httpx

    from eclip_core.runtime import offline_env

    env = offline_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "apps.gradio_app", *flags, "--port", str(port), "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited ({proc.returncode}): {proc.stderr.read()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/config", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the app did not come up within {timeout_s:.0f} s")


def rest_generate(http, url: str, image: Path, mode: str, k: int, max_new: int, label_boost: str = "rerank") -> list:
    """One draft through gradio's documented REST API, as curl or a browser would do it: upload the file,
    POST /gradio_api/call/generate, read the server-sent events until ``complete``."""
    up = http.post(url + "gradio_api/upload", files=[("files", (image.name, image.read_bytes()))])
    up.raise_for_status()
    file_data = {"path": up.json()[0], "orig_name": image.name, "meta": {"_type": "gradio.FileData"}}
    call = http.post(url + "gradio_api/call/generate", json={"data": [file_data, mode, k, None, max_new, label_boost]})
    call.raise_for_status()
    event = None
    with http.stream("GET", url + f"gradio_api/call/generate/{call.json()['event_id']}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(f"the app answered an error: {line[5:].strip()[:300]}")
                return json.loads(line[5:])
    raise RuntimeError("the event stream ended without a result")


def measure(
    pipe, client_factory, http, url: str, image: Path, mode: str, k: int, max_new: int, warmup: int, repeats: int
) -> dict:
    from gradio_client import handle_file

    # Phase 1: library and REST in turn. No gradio_client exists yet: its background polling threads would
    # otherwise share this process's GIL with the library call and bias the comparison.
    lib, rest = [], []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        pipe.generate(str(image), mode=mode, k=k, max_new_tokens=max_new)
        t_lib = time.perf_counter() - t
        t = time.perf_counter()
        result = rest_generate(http, url, image, mode, k, max_new, pipe.config.label_boost)
        t_rest = time.perf_counter() - t
        if not result[0]:
            raise RuntimeError(f"empty draft over REST in mode {mode}")
        if i >= warmup:
            lib.append(t_lib * 1000.0)
            rest.append(t_rest * 1000.0)
    # Phase 2: gradio_client predict, and its floor: /export does almost nothing (writes two small files).
    client = client_factory()
    via_client, floor = [], []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        out = client.predict(handle_file(str(image)), mode, k, None, max_new, api_name="/generate")
        t_client = time.perf_counter() - t
        t = time.perf_counter()
        client.predict(out[0], out[5], api_name="/export")
        t_floor = time.perf_counter() - t
        if i >= warmup:
            via_client.append(t_client * 1000.0)
            floor.append(t_floor * 1000.0)
    client.close()
    med_lib, med_rest, med_client = statistics.median(lib), statistics.median(rest), statistics.median(via_client)
    return {
        "mode": mode,
        "lib_ms": med_lib,
        "rest_ms": med_rest,
        "http_ms": med_client,
        "lib_p90": float(np.percentile(lib, 90)),
        "rest_p90": float(np.percentile(rest, 90)),
        "ratio_rest": med_rest / med_lib,
        "ratio_client": med_client / med_lib,
        "floor_ms": statistics.median(floor),
        "n": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="build a throw-away tiny model and index first")
    p.add_argument("--modes", default="consensus,grounded")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--image", default=str(DEFAULT_IMAGE))
    p.add_argument("--out", default=str(ROOT / "docs" / "perf" / "app.md"))
    p.add_argument("--build-tiny-into", help=argparse.SUPPRESS)
    own, app_flags = p.parse_known_args(argv)
    if own.build_tiny_into:
        print(" ".join(build_tiny(Path(own.build_tiny_into))))
        return 0
    import httpx
    from gradio_client import Client

    from rag_report.pipeline import ReportPipeline

    with tempfile.TemporaryDirectory(prefix="bench_app_") as tmp:
        flags = (_tiny_in_child(Path(tmp)) if own.tiny else []) + app_flags
        config = _config_from_flags(flags)
        port = free_port()
        proc = start_app(flags, port)
        try:
            pipe = ReportPipeline(config, progress=False)
            url = f"http://127.0.0.1:{port}/"
            # Like a browser, fetch the .txt/.json downloads only when asked (not on every draft).
            client_factory = lambda: Client(url, verbose=False, download_files=False)  # noqa: E731
            http = httpx.Client(timeout=600)
            rows = []
            for m in own.modes.split(","):
                try:
                    rows.append(
                        measure(
                            pipe,
                            client_factory,
                            http,
                            url,
                            Path(own.image),
                            m,
                            config.k,
                            config.max_new_tokens,
                            own.warmup,
                            own.repeats,
                        )
                    )
                except Exception as exc:  # noqa: BLE001 - one broken mode must not lose the others' numbers
                    rows.append({"mode": m, "error": f"{type(exc).__name__}: {exc}"[:300]})
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    command = "python -m eval.bench.serving.app_latency " + " ".join(argv if argv is not None else sys.argv[1:])
    write_page(Path(own.out), page_lines(rows, command.strip(), own, simulated=pipe.simulated_data))
    return 0


def _config_from_flags(flags: list[str]):
    # The app's own parser (this benchmark is the app's; library code never imports apps), so both
    # sides get exactly the same PipelineConfig.
    from apps.gradio_app import parse_args

    return parse_args(flags)[1]


def page_lines(rows: list[dict], command: str, own, simulated: bool) -> list[str]:
    """The lines of the app-latency page for the measured ``rows``."""
    cpu = os.cpu_count()
    lines = [
        "# App latency: HTTP vs library call",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {cpu} CPU cores, Python {platform.python_version()}; image "
        f"`{Path(own.image).name}`; {own.warmup} warm-up rounds, then {own.repeats} rounds of library and "
        f"REST calls in turn, then as many gradio_client calls; {'tiny untrained model + 8-report index' if own.tiny else 'default bundle' if simulated else 'given model/index'}.",
        "",
        "Three ways, same image and config: the **library** call `ReportPipeline.generate` in this "
        "process; **REST**: gradio's documented HTTP API as curl or a browser uses it (upload the file, POST "
        "`/gradio_api/call/generate`, read the event stream until `complete`) against `python -m apps.gradio_app` "
        "on the loopback interface, which runs the whole handler (draft, HTML views, .txt/.json downloads written); and "
        "**gradio_client** `predict` of the same endpoint (what the tests use; that client polls its message "
        "queue every 50 ms, so it adds client-side waiting the server does not cause). Target: HTTP <= 1.3x library.",
        "",
        "| mode | library median (ms) | REST median (ms) | **REST / library** | library p90 | REST p90 "
        "| gradio_client median (ms) | gradio_client / library | no-op request (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['mode']} | failed: {r['error'].replace('|', '/')} | | | | | | | |")
            continue
        lines.append(
            f"| {r['mode']} | {r['lib_ms']:.1f} | {r['rest_ms']:.1f} | **{r['ratio_rest']:.2f}x** | "
            f"{r['lib_p90']:.1f} | {r['rest_p90']:.1f} | {r['http_ms']:.1f} | {r['ratio_client']:.2f}x | "
            f"{r['floor_ms']:.1f} |"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += [
        "",
        "The no-op request is a gradio_client round trip of `/export` (writes two small files): that "
        "client's own floor per request. The library call runs in the measuring process and the server in "
        "its own; both share the machine's cores, so on a busy machine a REST draft can even finish sooner "
        "than the in-process call (REST / library < 1). The server adds a roughly fixed cost per request (upload, "
        "queue, HTML views, two small files), so drafts that take seconds (grounded or free mode with the LLM) "
        "see a ratio close to 1.",
        f"Load average (1 min) when written: {load:.1f} on {cpu} cores (a shared machine: medians, not means).",
        "",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
