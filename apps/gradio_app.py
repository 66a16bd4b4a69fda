"""`python -m apps.gradio_app`: serve the upload-and-generate page (also `rag-report serve`).

Defaults: the embedded default bundle, bound to 127.0.0.1, no sharing, no analytics, system fonts only,
a request queue (2 drafts at a time) and a 50 MB upload limit. Every PipelineConfig field is a flag
(``--model``, ``--index``, ``--llm`` for the paths; ``--mode``, ``--k``, ... for the rest).

    python -m apps.gradio_app --port 7860
    python -m apps.gradio_app --model runs/eclip --index my-index --llm /models/qwen --extra-llm /models/llama

>>> serve, pipe = parse_args(["--k", "3", "--mode", "consensus", "--port", "7999"])
>>> (pipe.k, pipe.mode, serve.port, serve.host)
(3, 'consensus', 7999, '127.0.0.1')
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import apps  # noqa: F401  (sets the offline environment before gradio is imported)
from rag_report.pipeline import MODES, PipelineConfig
from rag_report.precision import QUANTIZATIONS

log = logging.getLogger(__name__)

#: PipelineConfig fields whose flag is not simply --field-name.
FLAG_NAMES = {"model_dir": "--model", "index_dir": "--index", "llm_path": "--llm"}
CHOICES = {"mode": MODES, "quantization": QUANTIZATIONS, "diversify": ("kmeans", "mmr", "none")}
HELP = {
    "model_dir": "eCLIP checkpoint folder (default: the embedded bundle's)",
    "index_dir": "report index folder built with that checkpoint (default: the bundle's)",
    "llm_path": "local HF model folder or .gguf file (default: SmolLM2-135M-Instruct)",
    "mode": "generation mode (auto: grounded for LLMs under 1B parameters, else free)",
    "k": "retrieved reports shown and drafted from",
    "quantization": "LLM precision (auto: nf4 on CUDA and on CPUs with AVX512-BF16/AMX, else none = fp32)",
    "similarity_floor": "warn below this best similarity (default: the bundle's measured floor)",
    "typicality_floor": "warn when the image is less typical of the corpus X-rays than this (default: the index's floor)",
}
#: Fields where the word "none" means None (switched off) rather than a value.
NONE_MEANS_OFF = {"diversify"}


@dataclass
class ServeConfig:
    """How the page is served (every field is a flag)."""

    host: str = "127.0.0.1"
    port: int = 7860
    concurrency: int = 2
    queue_size: int = 64
    max_file_mb: float = 50.0
    extra_llms: list[str] = field(default_factory=list)
    quiet: bool = False


def _flag(name: str) -> str:
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _field_parser(f: dataclasses.Field) -> Any:
    kind = str(f.type)
    optional = "None" in kind
    base = int if kind.startswith("int") else float if kind.startswith("float") else str

    def parse(text: str) -> Any:
        if text.lower() == "none" and (f.name in NONE_MEANS_OFF or (optional and f.name not in CHOICES)):
            return None
        return base(text)

    parse.__name__ = base.__name__  # argparse names the type in its error messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The app's flags: one per PipelineConfig field, then the ServeConfig ones."""
    p = argparse.ArgumentParser(prog="python -m apps.gradio_app", description=__doc__.split("\n\n")[0])
    g = p.add_argument_group("pipeline (PipelineConfig)")
    for f in dataclasses.fields(PipelineConfig):
        kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "type": _field_parser(f)}
        if f.name in CHOICES:
            kwargs["choices"] = [None if (c == "none" and f.name in NONE_MEANS_OFF) else c for c in CHOICES[f.name]]
            kwargs["metavar"] = "{" + ",".join(CHOICES[f.name]) + "}"
        text = HELP.get(f.name) or f"PipelineConfig.{f.name} (default: {f.default})"
        g.add_argument(_flag(f.name), help=text, **kwargs)
    s = ServeConfig()
    g = p.add_argument_group("server")
    g.add_argument("--host", default=s.host, help="interface to bind (default 127.0.0.1: this machine only)")
    g.add_argument("--port", type=int, default=s.port)
    g.add_argument("--concurrency", type=int, default=s.concurrency, help="drafts computed at the same time")
    g.add_argument("--queue-size", type=int, default=s.queue_size, help="requests waiting at most")
    g.add_argument("--max-file-mb", type=float, default=s.max_file_mb, help="upload size limit in MB")
    g.add_argument("--extra-llm", dest="extra_llms", action="append", default=[],
                   help="another local LLM (HF folder or .gguf) offered in the page; repeatable")
    g.add_argument("--quiet", action="store_true", help="no progress bars while loading")
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[ServeConfig, PipelineConfig]:
    args = vars(build_parser().parse_args(argv))
    names = {f.name for f in dataclasses.fields(PipelineConfig)}
    pipe = PipelineConfig(**{k: v for k, v in args.items() if k in names})
    serve = ServeConfig(**{k: v for k, v in args.items() if k not in names})
    if serve.concurrency < 1 or serve.queue_size < 1 or serve.max_file_mb <= 0:
        build_parser().error("--concurrency and --queue-size must be >= 1 and --max-file-mb > 0")
    return serve, pipe


def launch_app(app: Any, serve: ServeConfig | None = None, *, block: bool = True) -> str:
    """Queue and launch ``app`` offline; returns the local URL (``block=False`` returns at once)."""
    from eclip_core.paths import rag_report_home

    from apps.theme import CSS, offline_theme

    serve = serve or ServeConfig()
    app.queue(default_concurrency_limit=serve.concurrency, max_size=serve.queue_size)
    _, url, _ = app.launch(
        server_name=serve.host, server_port=serve.port, share=False, prevent_thread_lock=not block,
        max_file_size=int(serve.max_file_mb * 1024 * 1024), theme=offline_theme(), css=CSS, quiet=serve.quiet,
        footer_links=["api", "settings"], show_error=False, ssr_mode=False, mcp_server=False, pwa=False,
        enable_monitoring=False,
        # The default bundle's example images live under $RAG_REPORT_HOME/phantom (simulated, no PHI).
        allowed_paths=[str(rag_report_home() / "phantom")],
    )
    return url


def close_app(app: Any) -> None:
    """Stop the server and delete what it kept on disk: uploads (DICOM headers included), gradio's cached
    copies of inputs and outputs, and the app's download folders."""
    from gradio.route_utils import delete_files_created_by_app
    from gradio.utils import get_upload_folder

    app.close(verbose=False)
    delete_files_created_by_app(app, age=None)  # what gradio tracked (uploads, previews, downloads)
    handlers = getattr(app, "rag_handlers", None)
    if handlers is not None:
        server = getattr(app, "server_app", None) or getattr(app, "app", None)
        handlers.close(upload_dirs=[getattr(app, "GRADIO_CACHE", None), get_upload_folder(),
                                    getattr(server, "uploaded_file_dir", None)])
    log.info("app stopped; uploads and downloads deleted")


def _stop_on_sigterm() -> None:
    # A service manager stops the app with SIGTERM: make it unwind like Ctrl-C, so the cleanup runs.
    import signal

    def handler(signum, frame):  # noqa: ANN001 - signal's signature
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve, config = parse_args(argv)
    from eclip_core.chatter import install_log_filters, quiet_libraries

    if serve.quiet:
        quiet_libraries()
    install_log_filters()
    from eclip_core.cpu_memory import keep_freed_memory
    from eclip_core.errors import EClipError
    from rag_report.pipeline import ReportPipeline

    from apps.ui import build_app

    keep_freed_memory()  # a server process: requests reuse freed tensor memory instead of faulting it in
    try:
        pipeline = ReportPipeline(config, progress=not serve.quiet)
    except EClipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if serve.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this machine can use the page", serve.host)
    app = build_app(pipeline, extra_llms=serve.extra_llms, concurrency=serve.concurrency)
    _stop_on_sigterm()
    try:
        launch_app(app, serve, block=True)
    except KeyboardInterrupt:
        pass
    finally:
        close_app(app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
