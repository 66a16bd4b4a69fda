"""The app's callbacks, separate from the layout so they are tested as plain functions.

Errors on bad input (an unreadable image, a malformed gaze file) become ``gr.Error`` toasts with a
message that names the file by its base name only: the server keeps serving. Nothing from a DICOM
header is shown, and logs carry neither file names nor report text (an upload's name can itself be
identifying).
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import gradio as gr

from apps import imaging, render
from eclip_core.errors import EClipError
from rag_report.report import DraftReport

log = logging.getLogger(__name__)

DEFAULT_LLM_LABEL = "default (SmolLM2-135M-Instruct)"


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

    def __post_init__(self) -> None:
        if not self.llms:
            self.llms = llm_choices(getattr(getattr(self.pipeline, "config", None), "llm_path", None))
        if self.out_dir is None:
            self.out_dir = Path(tempfile.mkdtemp(prefix="rag_report_app_"))

    # -- the image and its overlays ---------------------------------------------------------------
    def show_upload(self, file: Any, gaze_file: Any = None):
        """Upload -> (preview image, window-center slider, window-width slider, info line)."""
        path = _path_of(file)
        if path is None:
            return None, gr.update(visible=False), gr.update(visible=False), ""
        try:
            prev = imaging.read_preview(path)
        except EClipError as exc:
            log.info("preview rejected an upload (%s)", type(exc).__name__)
            raise gr.Error(friendly_message(exc, path), title="Could not read this image", print_exception=False)
        image = self._compose(prev, gaze_file, path)
        h, w = prev.shape
        if prev.window is None:
            info = f"Image {w} x {h} px, read as grey."
            return image, gr.update(visible=False), gr.update(visible=False), info
        c, width, lo, hi = prev.window
        span = max(hi - lo, 1.0)
        info = (f"DICOM {w} x {h} px, file window C {c:g} / W {width:g}. Window/level changes the display only; "
                "the draft reads the file's own window.")
        return (
            image,
            gr.update(visible=True, minimum=lo - span / 2, maximum=hi + span / 2, value=c),
            gr.update(visible=True, minimum=1, maximum=2 * span, value=min(width, 2 * span)),
            info,
        )

    def rewindow(self, file: Any, center: float, width: float, gaze_file: Any = None):
        """Re-render a DICOM preview at the given window (plain images are shown unchanged)."""
        path = _path_of(file)
        if path is None:
            return None
        try:
            prev = imaging.read_preview(path, center, width) if imaging.is_dicom_file(path) else imaging.read_preview(path)
        except EClipError as exc:
            raise gr.Error(friendly_message(exc, path), title="Could not read this image", print_exception=False)
        return self._compose(prev, gaze_file, path)

    def _compose(self, prev: imaging.Preview, gaze_file: Any, image_path: str | None = None):
        gaze_path = _path_of(gaze_file)
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

    def generate(self, file: Any, mode: str, k: float, llm: str | None, max_new_tokens: float):
        """Draft a report: (draft text, warnings, evidence HTML, labels HTML, details, DraftReport dict,
        .txt path, .json path)."""
        path = _path_of(file)
        if path is None:
            raise gr.Error("Upload a chest X-ray (PNG, JPEG or DICOM) first.", title="No image")
        t0 = time.perf_counter()
        try:
            draft: DraftReport = self.pipeline.generate(
                path, mode=mode or None, k=int(k) if k else None,
                max_new_tokens=int(max_new_tokens) if max_new_tokens else None, llm_path=self.llm_path(llm),
            )
        except EClipError as exc:
            log.info("generation rejected an input (%s)", type(exc).__name__)
            raise gr.Error(friendly_message(exc, path), title="Could not draft a report", print_exception=False)
        handler_ms = (time.perf_counter() - t0) * 1000.0
        report = draft.to_dict()
        txt, js = self._write_downloads(draft.text, report)
        log.info("drafted a report in %.0f ms (mode %s, %d evidence)", handler_ms, draft.mode, len(draft.evidence))
        return (
            draft.text,
            render.status_markdown(draft),
            render.evidence_html(draft.evidence),
            render.labels_html(draft.labels),
            render.details_markdown(draft, handler_ms),
            report,
            txt,
            js,
        )

    def export(self, text: str, report: dict | None):
        """Rewrite the downloads after the draft was edited (the JSON keeps the original and the edit)."""
        if not report:
            return None, None
        report = dict(report)
        if text != report.get("text"):
            report["edited_text"] = text
        return self._write_downloads(text, report)

    def _write_downloads(self, text: str, report: dict) -> tuple[str, str]:
        self._prune()
        folder = self.out_dir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        txt, js = folder / "draft-report.txt", folder / "draft-report.json"
        txt.write_text(text + "\n", encoding="utf-8")
        js.write_text(json.dumps(report, indent=2), encoding="utf-8")
        return str(txt), str(js)

    def _prune(self, max_age_s: float = 3600.0) -> None:
        # gradio copies returned files into its own cache, so our copies only need to outlive one request.
        now = time.time()
        for folder in self.out_dir.iterdir():
            try:
                if now - folder.stat().st_mtime > max_age_s:
                    for f in folder.iterdir():
                        f.unlink()
                    folder.rmdir()
            except OSError:
                pass
