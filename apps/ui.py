"""The page layout: `build_app(pipeline) -> gr.Blocks`.

API endpoints (for gradio_client): ``/generate`` (file, mode, k, llm, max_new_tokens, label_boost) -> (draft
text, warnings, evidence HTML, labels HTML, timings/models Markdown, DraftReport dict, .txt, .json, DICOM SR
.dcm (None unless the upload was a DICOM), FHIR R4 Bundle .json);
gradio_client fills a parameter left out with the page's setting, a plain HTTP call gives all six;
``/preview`` (file, gaze file) -> (image, window center, window width, info); ``/overlay``;
``/export`` (edited text, DraftReport dict) -> (.txt, .json).

A page opened as ``/?example=N`` drafts the N-th example on load (used by apps.screenshot).

>>> from apps.ui import build_app                     # doctest: +SKIP
>>> app = build_app(ReportPipeline(cfg))             # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from apps import render
from apps.handlers import AppHandlers, llm_choices, sr_button
from rag_report.pipeline import MODES
from rag_report.retrieval.label_boost import LABEL_BOOST_MODES

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
TITLE = "rag-report: chest X-ray report drafting"


def default_examples(with_bundle: bool = True) -> list[tuple[str, str]]:
    """(path, label) of the example images: the default bundle's phantom test images when the bundle is
    built (never built from here), then the real NIH radiographs shipped in apps/examples."""
    out: list[tuple[str, str]] = []
    if with_bundle:
        try:
            from rag_report.bundle import default_bundle

            out += [
                (p, f"phantom test study {i + 1} (simulated)")
                for i, p in enumerate(default_bundle(build=False, progress=False).examples)
                if Path(p).is_file()
            ]
        except Exception as exc:  # noqa: BLE001 - examples are optional; the page works without them
            log.info("no default-bundle examples (%s)", type(exc).__name__)
    out += [(str(p), f"NIH ChestX-ray14 {p.stem} (real)") for p in sorted(EXAMPLES_DIR.glob("*.png"))]
    return out


def _boost_info(pipeline: Any) -> str:
    """The label boost setting's explanation; says so when the index has no label classifiers."""
    index = getattr(pipeline, "index", None)
    if index is not None and getattr(index, "label_classifiers", None) is None:
        return "this index has no label classifiers, so retrieval is by similarity only"
    return (
        "retrieved reports re-ranked (rerank) or filtered (filter) by how well their labels agree with those "
        "predicted from the image; off: by similarity only"
    )


def build_app(
    pipeline: Any,
    *,
    extra_llms: Sequence[str] = (),
    examples: Sequence[tuple[str, str]] | None = None,
    concurrency: int = 2,
) -> gr.Blocks:
    """The upload-and-generate page around ``pipeline`` (a ReportPipeline or anything with its
    ``generate``/``config``/``simulated_data``). Launch it with :func:`apps.gradio_app.launch_app`."""
    cfg = pipeline.config
    examples = list(default_examples() if examples is None else examples)
    handlers = AppHandlers(pipeline, llm_choices(cfg.llm_path, extra_llms), examples=examples)
    simulated = bool(getattr(pipeline, "simulated_data", False))

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 7200)) as app:
        if simulated:
            gr.HTML(render.banner_html(True), elem_id="sim-banner")
        gr.Markdown(
            f"## {TITLE}\nA draft for a radiologist to review, drawn from the most similar prior reports "
            "(eCLIP image-to-report retrieval). Not a diagnosis."
        )
        with gr.Row():
            with gr.Column(scale=5):
                upload = gr.File(
                    label="Chest X-ray: PNG, JPEG or DICOM (drop a file here)",
                    type="filepath",
                    elem_id="upload",
                    height=110,
                )
                preview = gr.Image(
                    label="Image as read",
                    type="numpy",
                    image_mode=None,
                    format="png",
                    interactive=False,
                    height=420,
                    elem_id="preview",
                )
                info = gr.Markdown()
                with gr.Row():
                    center = gr.Slider(label="Window center (display)", visible=False)
                    width = gr.Slider(label="Window width (display)", visible=False)
                gaze = gr.File(
                    label="Optional gaze fixations (EGD-CXR or REFLACX CSV): heatmap overlay", type="filepath"
                )
                with gr.Accordion("Generation settings", open=True):
                    with gr.Row():
                        mode = gr.Dropdown(
                            list(MODES),
                            value=cfg.mode,
                            label="Generation mode",
                            info=(
                                "auto: top1 (no LLM runs) with the default LLM choice; with another LLM chosen, "
                                "grounded (< 1 B parameters) or free"
                            ),
                        )
                        llm = gr.Dropdown([c.label for c in handlers.llms], value=handlers.llms[0].label, label="LLM")
                    with gr.Row():
                        k = gr.Slider(1, 20, value=cfg.k, step=1, label="Retrieved reports (k)")
                        max_new = gr.Slider(16, 1024, value=cfg.max_new_tokens, step=8, label="Max new tokens")
                    boost = gr.Radio(
                        list(LABEL_BOOST_MODES),
                        value=getattr(cfg, "label_boost", "rerank"),
                        label="Label boost",
                        info=_boost_info(pipeline),
                        elem_id="label-boost",
                    )
                    gr.Markdown(
                        render.precision_markdown(cfg.quantization, getattr(cfg, "device", "auto")), elem_id="precision"
                    )
                go = gr.Button("Generate draft", variant="primary", elem_id="generate")
                if examples:
                    gr.Examples(
                        [[p] for p, _ in examples],
                        inputs=[upload],
                        label="Examples",
                        example_labels=[lbl for _, lbl in examples],
                        cache_examples=False,
                    )
            with gr.Column(scale=7):
                draft = gr.Textbox(
                    label="Draft report (editable: FINDINGS / IMPRESSION)",
                    lines=9,
                    max_lines=30,
                    interactive=True,
                    elem_id="draft",
                )
                status = gr.Markdown(elem_id="status")
                with gr.Row():
                    dl_txt = gr.DownloadButton("Download .txt", size="sm")
                    dl_json = gr.DownloadButton("Download .json (DraftReport)", size="sm")
                with gr.Row():
                    # As drafted (an edit is the radiologist's own report). The SR files into the uploaded
                    # DICOM's study: shown only after a DICOM upload was drafted (see AppHandlers.generate).
                    dl_sr = gr.DownloadButton("DICOM SR (.dcm, as drafted)", size="sm", elem_id="dl-sr", visible=False)
                    dl_fhir = gr.DownloadButton("FHIR R4 Bundle (.json, as drafted)", size="sm", elem_id="dl-fhir")
                gr.Markdown("**Observations**: in the draft, and predicted from the image")
                labels = gr.HTML(render.labels_html({}), elem_id="labels")
                gr.Markdown(
                    "**Evidence**: retrieved reports in rank order (similarity, and label agreement when "
                    "label boosted); highlighted sentences were used"
                )
                evidence = gr.HTML(render.evidence_html([]), elem_id="evidence")
                with gr.Accordion("Timings and models", open=True):
                    details = gr.Markdown(elem_id="details")
                with gr.Accordion("DraftReport (JSON)", open=False):
                    report_json = gr.JSON()

        outputs = [draft, status, evidence, labels, details, report_json, dl_txt, dl_json, dl_sr, dl_fhir]
        upload.change(
            handlers.show_upload,
            [upload, gaze],
            [preview, center, width, info],
            api_name="preview",
            concurrency_id="view",
            concurrency_limit=4,
        )
        gaze.change(
            handlers.rewindow, [upload, center, width, gaze], preview, api_name="overlay", concurrency_id="view"
        )
        for slider in (center, width):
            slider.release(
                handlers.rewindow, [upload, center, width, gaze], preview, api_name=False, concurrency_id="view"
            )
        go.click(
            handlers.generate,
            [upload, mode, k, llm, max_new, boost],
            outputs,
            api_name="generate",
            concurrency_id="generate",
            concurrency_limit=concurrency,
        ).then(sr_button, dl_sr, dl_sr, api_name=False)
        draft.blur(handlers.export, [draft, report_json], [dl_txt, dl_json], api_name="export")

        def on_load(request: gr.Request):
            # /?example=N drafts an example on load: a page that already shows a result, for screenshots.
            raw = request.query_params.get("example") if request is not None else None
            return handlers.load_example(raw, len(outputs))

        app.load(on_load, None, [upload, *outputs], api_name=False, concurrency_id="generate").then(
            sr_button, dl_sr, dl_sr, api_name=False
        )
    app.rag_handlers = handlers  # for tests and benchmarks
    return app
