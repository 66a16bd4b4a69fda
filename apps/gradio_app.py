"""`python -m apps.gradio_app`: serve the upload-and-generate page (also `rag-report serve`).

Defaults: the embedded default bundle, bound to 127.0.0.1, no sharing, no analytics, system fonts only,
a request queue (2 drafts at a time) and a 50 MB upload limit. Every PipelineConfig and ServeConfig field
is a flag (``--model``, ``--index``, ``--llm`` for the paths; ``--mode``, ``--k``, ``--label-boost``, ... for
the rest; eclip_core.cli_config), and ``--config FILE`` reads them from JSON or YAML first.

    python -m apps.gradio_app --port 7860
    python -m apps.gradio_app --model runs/eclip --index my-index --llm /models/qwen --extra-llm /models/llama

>>> serve, pipe = parse_args(["--k", "3", "--mode", "consensus", "--port", "7999"])
>>> (pipe.k, pipe.mode, serve.port, serve.host)
(3, 'consensus', 7999, '127.0.0.1')
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import apps  # noqa: F401  (sets the offline environment before gradio is imported)
from eclip_core.cli_config import ConfigParser, cli
from eclip_core.errors import ConfigError
from rag_report.pipeline import PipelineConfig

log = logging.getLogger(__name__)

#: PipelineConfig fields whose flag is not simply --field-name (declared on the config itself).
FLAG_NAMES = {f.name: f.metadata["flags"][0] for f in dataclasses.fields(PipelineConfig) if "flags" in f.metadata}


@dataclass
class ServeConfig:
    """How the page is served (every field is a flag)."""

    #: Interface to bind (127.0.0.1: this machine only).
    host: str = "127.0.0.1"
    port: int = 7860
    #: Drafts computed at the same time.
    concurrency: int = 2
    #: Requests waiting at most.
    queue_size: int = 64
    #: Upload size limit in MB.
    max_file_mb: float = 50.0
    #: Another local LLM (HF folder or .gguf) offered in the page; repeatable.
    extra_llms: list[str] = field(default_factory=list, metadata=cli(flags="--extra-llm", append=True, metavar="PATH"))
    #: No progress bars while loading.
    quiet: bool = False

    def validate(self) -> ServeConfig:
        if self.concurrency < 1 or self.queue_size < 1 or self.max_file_mb <= 0:
            raise ConfigError(
                "--concurrency and --queue-size must be >= 1 and --max-file-mb > 0, got "
                f"{self.concurrency}, {self.queue_size}, {self.max_file_mb}"
            )
        return self


def build_parser() -> ConfigParser:
    """The app's flags: one per PipelineConfig field, then the ServeConfig ones, and ``--config``."""
    p = ConfigParser(prog="python -m apps.gradio_app", description=__doc__.split("\n\n")[0])
    p.add_dataclass(PipelineConfig, title="pipeline (PipelineConfig)")
    p.add_dataclass(ServeConfig, title="server (ServeConfig)")
    p.add_config_option(help="JSON or YAML file of PipelineConfig and ServeConfig fields; flags given override it")
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[ServeConfig, PipelineConfig]:
    """(ServeConfig, PipelineConfig) from the command line; a bad value exits with a usage message."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        pipe = parser.config(args, PipelineConfig, file_shared_with=(ServeConfig,))
        serve = parser.config(args, ServeConfig, file_shared_with=(PipelineConfig,))
    except ConfigError as exc:
        parser.error(str(exc))
    return serve, pipe


def launch_app(app: Any, serve: ServeConfig | None = None, *, block: bool = True) -> str:
    """Queue and launch ``app`` offline; returns the local URL (``block=False`` returns at once)."""
    from apps.theme import CSS, offline_theme
    from rag_report.paths import rag_report_home

    serve = serve or ServeConfig()
    app.queue(default_concurrency_limit=serve.concurrency, max_size=serve.queue_size)
    _, url, _ = app.launch(
        server_name=serve.host,
        server_port=serve.port,
        share=False,
        prevent_thread_lock=not block,
        max_file_size=int(serve.max_file_mb * 1024 * 1024),
        theme=offline_theme(),
        css=CSS,
        quiet=serve.quiet,
        footer_links=["api", "settings"],
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
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
        handlers.close(
            upload_dirs=[
                getattr(app, "GRADIO_CACHE", None),
                get_upload_folder(),
                getattr(server, "uploaded_file_dir", None),
            ]
        )
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
    from apps.ui import build_app
    from eclip_core.cpu_memory import keep_freed_memory
    from eclip_core.errors import EClipError
    from rag_report.pipeline import ReportPipeline

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
