"""The app's callbacks, separate from the layout so they are tested as plain functions.

Errors on bad input (an unreadable image, a malformed gaze file, a bad parameter or payload) become
``gr.Error`` toasts with a message that names the file by its base name only: the server keeps serving.
Nothing from a DICOM header is shown, and logs carry neither file names nor report text (an upload's name
can itself be identifying).

Nothing outlives its use on disk: each request's download files are removed ``DOWNLOAD_KEEP_S`` after the
request (gradio has copied them into its cache by then; that copy is what the browser downloads, deleted
by gradio's ``delete_cache`` schedule or when the app stops), and :meth:`AppHandlers.close` (called when
the app stops, :func:`apps.gradio_app.close_app`) removes the rest and every upload seen.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from apps import imaging, render
from apps.handoff import write_handoff_files
from eclip_core.errors import EClipError
from rag_report.report import DraftReport
from rag_report.retrieval.label_boost import LABEL_BOOST_MODES

log = logging.getLogger(__name__)

DEFAULT_LLM_LABEL = "default (SmolLM2-135M-Instruct)"
#: Seconds a request's download folder is kept: gradio copies returned files into its cache as the request
#: ends (milliseconds), so this only has to outlast concurrent requests still being answered.
DOWNLOAD_KEEP_S = 30.0
#: Longest query-parameter text echoed back in a message.
_ECHO_MAX = 24


def sr_button(sr_path: str | None):
    """The SR download button after a draft: shown with the SR for a DICOM upload, hidden for a PNG/JPEG (whose
    draft has no study to file an SR into). The /generate API keeps returning the path (or None) itself."""
    return gr.update(visible=bool(sr_path))


def friendly_message(exc: BaseException, *paths: Any) -> str:
    """The exception's message with full upload paths shortened to their base names.

    >>> friendly_message(ValueError("/tmp/gradio/ab12/x.png: not a recognised image"), "/tmp/gradio/ab12/x.png")
    'x.png: not a recognised image'
    """
    msg = str(exc) or type(exc).__name__
    for p in paths:
        if p:
            msg = msg.replace(str(p), Path(str(p)).name)
    return msg


def _path_of(file: Any) -> str | None:
    # gr.File(type="filepath") gives a str; some gradio paths give an object with .name / .path.
    if file is None:
        return None
    if isinstance(file, (str, Path)):
        return str(file)
    for attr in ("path", "name"):
        if isinstance(getattr(file, attr, None), str):
            return getattr(file, attr)
    if isinstance(file, dict) and "path" in file:
        return str(file["path"])
    raise gr.Error(f"unexpected upload of type {type(file).__name__}")


def parse_example(raw: str | None, n_examples: int) -> int | None:
    """The example number of a ``/?example=N`` page: None when absent, else 0 <= N < n_examples.

    Raises ValueError with a message for the page when the value is not such a number.

    >>> parse_example("1", 3), parse_example(None, 3), parse_example("", 3)
    (1, None, None)
    >>> parse_example("²", 3)
    Traceback (most recent call last):
    ...
    ValueError: ?example='²' is not an example number: use 0, 1 or 2
    """
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    # isdigit() alone accepts "²" and other digits int() refuses; the length cap keeps int() cheap.
    if text.isascii() and text.isdigit() and len(text) <= 6 and int(text) < n_examples:
        return int(text)
    shown = text if len(text) <= _ECHO_MAX else text[:_ECHO_MAX] + "..."
    raise ValueError(f"?example={shown!r} is not an example number: {_example_choices(n_examples)}")


def _example_choices(n: int) -> str:
    if n == 0:
        return "there are no examples"
    if n == 1:
        return "use 0"
    if n <= 4:
        return f"use {', '.join(map(str, range(n - 1)))} or {n - 1}"
    return f"use 0 to {n - 1}"


def _whole_number(value: Any, name: str, lo: int, hi: int) -> int | None:
    """A slider value from the page or the API as an int in [lo, hi]; None for empty (use the default)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (lo <= number <= hi) or number != int(number):
        raise gr.Error(
            f"{name} must be a whole number from {lo} to {hi}, got {str(value)[:_ECHO_MAX]!r}",
            title="Bad parameter",
            print_exception=False,
        )
    return int(number)


@dataclass
class LLMChoice:
    """One LLM the page offers: its label and local path (None = the pipeline's configured default)."""

    label: str
    path: str | None


def llm_choices(configured: str | None, extra: Sequence[str] = ()) -> list[LLMChoice]:
    """The configured LLM first, then each extra local path once.

    >>> [c.label for c in llm_choices(None, ["/m/qwen"])]
    ['default (SmolLM2-135M-Instruct)', 'qwen (/m/qwen)']
    """
    out = [LLMChoice(DEFAULT_LLM_LABEL if configured is None else _llm_label(configured), configured)]
    for p in extra:
        if p and p not in [c.path for c in out]:
            out.append(LLMChoice(_llm_label(p), p))
    return out


def _llm_label(path: str) -> str:
    return f"{Path(path).name} ({path})"


@dataclass
class AppHandlers:
    """Callbacks bound to one pipeline (anything with ReportPipeline's ``generate``)."""

    pipeline: Any
    llms: list[LLMChoice] = field(default_factory=list)
    out_dir: Path | None = None
    #: (path, label) of the example images a ``/?example=N`` page drafts.
    examples: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.llms:
            self.llms = llm_choices(getattr(getattr(self.pipeline, "config", None), "llm_path", None))
        # A folder made here (or for this app) is removed whole by close(); a caller's existing one is emptied.
        self._own_out_dir = self.out_dir is None or not Path(self.out_dir).exists()
        if self.out_dir is None:
            self.out_dir = Path(tempfile.mkdtemp(prefix="rag_report_app_"))
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._seen: set[str] = set()  # every file path handed to a callback (uploads, examples)
        self._seen_lock = threading.Lock()

    def _path(self, file: Any) -> str | None:
        path = _path_of(file)
        if path is not None:
            with self._seen_lock:
                self._seen.add(path)
        return path

    # -- the image and its overlays ---------------------------------------------------------------
    def show_upload(self, file: Any, gaze_file: Any = None):
        """Upload -> (preview image, window-center slider, window-width slider, info line)."""
        path = self._path(file)
        if path is None:
            return None, gr.update(visible=False), gr.update(visible=False), ""
        try:
            prev = imaging.read_preview(path)
        except EClipError as exc:
            log.info("preview rejected an upload (%s)", type(exc).__name__)
            raise gr.Error(
                friendly_message(exc, path), title="Could not read this image", print_exception=False
            ) from None
        image = self._compose(prev, gaze_file, path)
        h, w = prev.shape
        if prev.window is None:
            info = f"Image {w} x {h} px, read as grey."
            return image, gr.update(visible=False), gr.update(visible=False), info
        c, width, lo, hi = prev.window
        span = max(hi - lo, 1.0)
        info = (
            f"DICOM {w} x {h} px, file window C {c:g} / W {width:g}. Window/level changes the display only; "
            "the draft reads the file's own window."
        )
        return (
            image,
            gr.update(visible=True, minimum=lo - span / 2, maximum=hi + span / 2, value=c),
            gr.update(visible=True, minimum=1, maximum=2 * span, value=min(width, 2 * span)),
            info,
        )

    def rewindow(self, file: Any, center: float, width: float, gaze_file: Any = None):
        """Re-render a DICOM preview at the given window (plain images are shown unchanged)."""
        path = self._path(file)
        if path is None:
            return None
        try:
            prev = (
                imaging.read_preview(path, center, width) if imaging.is_dicom_file(path) else imaging.read_preview(path)
            )
        except EClipError as exc:
            raise gr.Error(
                friendly_message(exc, path), title="Could not read this image", print_exception=False
            ) from None
        return self._compose(prev, gaze_file, path)

    def _compose(self, prev: imaging.Preview, gaze_file: Any, image_path: str | None = None):
        gaze_path = self._path(gaze_file)
        if gaze_path is None:
            return imaging.to_display(prev.grey)
        small = imaging.downscale(prev.grey)
        stem = Path(image_path).stem if image_path else None
        try:
            heat, fmt = imaging.read_gaze_heatmap(gaze_path, prev.shape, small.shape, image_name=stem)
        except EClipError as exc:
            log.info("gaze overlay rejected a file (%s)", type(exc).__name__)
            gr.Warning(f"Gaze file not shown: {friendly_message(exc, gaze_path)}")
            return imaging.to_display(prev.grey)
        log.info("gaze overlay (%s) drawn", fmt)
        return imaging.overlay(small, heat)

    # -- drafting ---------------------------------------------------------------------------------
    def llm_path(self, label: str | None) -> str | None:
        for c in self.llms:
            if label in (c.label, c.path):
                return c.path
        if label:
            raise gr.Error(f"LLM {label!r} is not among those configured: {[c.label for c in self.llms]}")
        return self.llms[0].path

    def generate(
        self, file: Any, mode: str, k: float, llm: str | None, max_new_tokens: float, label_boost: str | None = None
    ):
        """Draft a report: (draft text, warnings, evidence HTML, labels HTML, details, DraftReport dict,
        .txt path, .json path, DICOM SR .dcm path (None unless the upload was a DICOM), FHIR .json path).
        ``label_boost`` (off / filter / rerank; None: the pipeline's) is for this draft only."""
        path = self._path(file)
        if path is None:
            raise gr.Error("Upload a chest X-ray (PNG, JPEG or DICOM) first.", title="No image")
        k_value = _whole_number(k, "k (retrieved reports)", 1, 100)
        tokens = _whole_number(max_new_tokens, "max new tokens", 1, 4096)
        boost = label_boost or None
        if boost is not None and boost not in LABEL_BOOST_MODES:
            raise gr.Error(
                f"label boost must be one of {', '.join(LABEL_BOOST_MODES)}, got {str(boost)[:_ECHO_MAX]!r}",
                title="Bad parameter",
                print_exception=False,
            )
        t0 = time.perf_counter()
        try:
            draft: DraftReport = self.pipeline.generate(
                path,
                mode=mode or None,
                k=k_value or None,
                max_new_tokens=tokens or None,
                llm_path=self.llm_path(llm),
                label_boost=boost,
            )
        except EClipError as exc:
            log.info("generation rejected an input (%s)", type(exc).__name__)
            raise gr.Error(
                friendly_message(exc, path), title="Could not draft a report", print_exception=False
            ) from None
        handler_ms = (time.perf_counter() - t0) * 1000.0
        report = draft.to_dict()
        txt, js = self._write_downloads(draft.text, report)
        sr, fhir = write_handoff_files(path, draft, Path(txt).parent)
        log.info("drafted a report in %.0f ms (mode %s, %d evidence)", handler_ms, draft.mode, len(draft.evidence))
        return (
            draft.text,
            render.status_markdown(draft),
            render.evidence_html(draft.evidence) + render.checks_html(draft.checks),
            render.labels_html(draft.labels, draft.predicted_labels, draft.predicted_positive),
            render.details_markdown(draft, handler_ms),
            report,
            txt,
            js,
            sr,
            fhir,
        )

    def export(self, text: str, report: dict | None):
        """Rewrite the downloads after the draft was edited (the JSON keeps the original and the edit).

        ``report`` is the DraftReport dict /generate returned (or its JSON text); anything else is refused
        with a message, as is a non-text ``text``.
        """
        if report is None or report == "" or report == {}:
            return None, None
        if isinstance(report, str):
            try:
                report = json.loads(report)
            except json.JSONDecodeError:
                report = None
        if not isinstance(report, dict) or not isinstance(report.get("text", ""), str):
            raise gr.Error(
                "export needs the DraftReport object that /generate returned (a JSON object with "
                f'its "text"), got {type(report).__name__}',
                title="Bad export",
                print_exception=False,
            )
        if text is None:
            text = report.get("text", "")
        if not isinstance(text, str):
            raise gr.Error(
                f"export needs the edited draft as text, got {type(text).__name__}",
                title="Bad export",
                print_exception=False,
            )
        report = dict(report)
        if text != report.get("text"):
            report["edited_text"] = text
        return self._write_downloads(text, report)

    # -- the page opened as /?example=N -----------------------------------------------------------
    def load_example(self, raw: str | None, n_outputs: int) -> list:
        """Updates for [upload, *generate's outputs]: a draft of example N, nothing for no parameter, or
        a message in the warnings area (outputs[1]) for a bad one."""
        try:
            index = parse_example(raw, len(self.examples))
        except ValueError as exc:
            log.info("page opened with an unusable ?example= parameter")
            return [gr.skip(), gr.skip(), render.status_markdown(warnings=[str(exc)])] + [gr.skip()] * (n_outputs - 2)
        if index is None:
            return [gr.skip()] * (n_outputs + 1)
        cfg = self.pipeline.config
        path = self.examples[index][0]
        return [
            path,
            *self.generate(
                path, cfg.mode, cfg.k, self.llms[0].label, cfg.max_new_tokens, getattr(cfg, "label_boost", None)
            ),
        ]

    def _write_downloads(self, text: str, report: dict) -> tuple[str, str]:
        self._prune()
        folder = self.out_dir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        txt, js = folder / "draft-report.txt", folder / "draft-report.json"
        txt.write_text(text + "\n", encoding="utf-8")
        js.write_text(json.dumps(report, indent=2), encoding="utf-8")
        # gradio copies returned files into its cache as the request ends: ours go soon after, even if
        # no other request comes to prune them.
        timer = threading.Timer(DOWNLOAD_KEEP_S, shutil.rmtree, (folder,), {"ignore_errors": True})
        timer.daemon = True
        timer.start()
        return str(txt), str(js)

    def _prune(self, max_age_s: float = DOWNLOAD_KEEP_S) -> None:
        # gradio copies returned files into its own cache as a request ends, so our copies only need to
        # outlive the requests still being answered.
        now = time.time()
        for folder in self.out_dir.iterdir():
            try:
                if now - folder.stat().st_mtime > max_age_s:
                    shutil.rmtree(folder)
            except OSError:
                pass

    def close(self, upload_dirs: Sequence[str | Path] = ()) -> None:
        """Delete what the app wrote and was given: the download folders, and every file handed to a
        callback that lies under one of ``upload_dirs`` (gradio's upload and cache folders; examples and
        other files elsewhere are left alone), with the per-upload folders they leave empty."""
        if self._own_out_dir:
            shutil.rmtree(self.out_dir, ignore_errors=True)
        elif self.out_dir.is_dir():
            self._prune(max_age_s=-1.0)
        roots = [Path(d).resolve() for d in upload_dirs if d]
        with self._seen_lock:
            seen, self._seen = self._seen, set()
        for p in seen:
            path = Path(p).resolve()
            if not any(path.is_relative_to(r) and path != r for r in roots):
                continue
            path.unlink(missing_ok=True)
            parent = path.parent
            if parent not in roots:
                try:
                    parent.rmdir()  # gradio's per-upload hash folder, when now empty
                except OSError:
                    pass
