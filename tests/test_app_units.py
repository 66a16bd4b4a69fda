"""The app's pure parts: HTML views, preview imaging, CLI flags, error messages (no server)."""

from __future__ import annotations

import dataclasses
import json as _json
import math

import numpy as np
import pytest

pytest.importorskip("gradio")

from apps import imaging, render  # noqa: E402
from apps.gradio_app import FLAG_NAMES, build_parser, parse_args  # noqa: E402
from apps.handlers import DEFAULT_LLM_LABEL, friendly_message, llm_choices  # noqa: E402
from apps.screenshot import outside_urls  # noqa: E402
from eclip_core.data.dicom import write_test_dicom  # noqa: E402
from eclip_core.labels import CHEXPERT_OBSERVATIONS  # noqa: E402
from rag_report.report import SIMULATED_NOTICE, DraftReport, Evidence  # noqa: E402


def _draft(**kw) -> DraftReport:
    base = dict(
        findings="Heart is enlarged.",
        impression="Cardiomegaly.",
        evidence=[],
        provenance=[],
        labels={"Cardiomegaly": 1.0, "Pleural Effusion": 0.0, "Edema": -1.0, "Fracture": float("nan")},
        timings_ms={"embed": 12.4, "total": 30.0},
        models={"eclip_checkpoint": "abc|def", "llm_id": ""},
        mode="consensus",
    )
    base.update(kw)
    return DraftReport(**base)


def test_evidence_html_ranks_marks_used_sentences_and_escapes():
    evs = [
        Evidence("B<2>", 2, 0.5, "Lungs clear. <script>x</script> here.", "", sentences_used=[]),
        Evidence(
            "A1",
            1,
            0.8,
            "The heart is enlarged. No effusion.",
            "Cardiomegaly.",
            sentences_used=["the heart is enlarged", "Cardiomegaly."],
        ),
    ]
    html = render.evidence_html(evs)
    assert html.index("A1") < html.index("B&lt;2&gt;")  # rank order, ids escaped
    assert "<mark>The heart is enlarged.</mark>" in html and "<mark>Cardiomegaly.</mark>" in html
    assert "<mark>No effusion.</mark>" not in html and "No effusion." in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "2 sentence(s) used" in html and "0 sentence(s) used" in html
    assert "width:80%" in html and "similarity 0.800" in html
    assert "No evidence yet" in render.evidence_html([])


def test_labels_html_covers_the_14_observations_in_order():
    html = render.labels_html({"Cardiomegaly": 1.0, "Pleural Effusion": 0.0, "Edema": -1.0})
    positions = [html.index(f">{name}<") for name in CHEXPERT_OBSERVATIONS]
    assert positions == sorted(positions) and len(positions) == 14
    assert "obs-pos' title='positive'>Cardiomegaly" in html
    assert "obs-neg' title='negative'>Pleural Effusion" in html
    assert "obs-unc' title='uncertain'>Edema" in html
    assert html.count("not mentioned</small>") == 11
    assert render.label_state(math.nan) == "not mentioned"


def test_labels_html_shows_the_image_predictions_beside_the_draft_labels():
    predicted = {name: 0.1 for name in CHEXPERT_OBSERVATIONS}
    predicted.update({"Cardiomegaly": 0.82, "Edema": 0.61})
    html = render.labels_html({"Cardiomegaly": 1.0}, predicted, ["Cardiomegaly", "Edema"])
    assert html.count("class='pred ") + html.count("class='pred'") == 14
    cardio = html.split(">Cardiomegaly<", 1)[1].split("</div>", 1)[0]
    assert "pred pred-on" in cardio and "<b>0.82</b><i>●</i>" in cardio and "width:82%" in cardio
    edema = html.split(">Edema<", 1)[1].split("</div>", 1)[0]
    assert "<b>0.61</b><i>●</i>" in edema and "predicted present" in edema
    fracture = html.split(">Fracture<", 1)[1].split("</div>", 1)[0]
    assert "<b>0.10</b>" in fracture and "●" not in fracture and "predicted absent" in fracture
    assert html.count("●") == 2 + 1  # the two present, and the legend's
    assert "no label classifiers" not in html
    without = render.labels_html({"Cardiomegaly": 1.0}, {}, [])
    assert "no label classifiers" in without and "<b>" not in without
    assert "no label classifiers" not in render.labels_html({})  # nothing drafted yet


def test_evidence_html_shows_label_agreement_when_boosted():
    evs = [
        Evidence("A1", 1, 0.8, "Heart enlarged.", "", label_agreement=0.5),
        Evidence("B2", 2, 0.7, "Lungs clear.", "", label_agreement=None),
    ]
    html = render.evidence_html(evs)
    a, b = html.split("B2", 1)
    assert "similarity 0.800" in a and "label agreement 0.50" in a
    assert "label agreement" not in b  # retrieved without label boost


def test_generate_passes_the_label_boost_choice_and_refuses_others(tmp_path):
    import gradio as gr

    from apps.handlers import AppHandlers

    pipe = _FakePipeline()
    h = AppHandlers(pipe, out_dir=tmp_path)
    out = h.generate(str(tmp_path / "x.png"), "consensus", 3, None, 64, "filter")
    assert pipe.calls[-1][1]["label_boost"] == "filter" and out[0].startswith("FINDINGS:")
    h.generate(str(tmp_path / "x.png"), "consensus", 3, None, 64)
    assert pipe.calls[-1][1]["label_boost"] is None  # the pipeline's own
    with pytest.raises(gr.Error, match="label boost must be one of off, filter, rerank"):
        h.generate(str(tmp_path / "x.png"), "consensus", 3, None, 64, "always")
    assert len(pipe.calls) == 2


def test_details_status_and_banner():
    md = render.details_markdown(_draft(), handler_ms=41.0)
    assert "abc\\|def" in md and "embed 12" in md and "in the app 41" in md and "(none)" in md
    assert "typicality" not in md  # an index without an image sample
    md = render.details_markdown(_draft(typicality=0.98765, typicality_floor=0.99))
    assert "**Image typicality:** 0.9877 (below the corpus's usual range, floor 0.9900)" in md
    assert "(within the corpus's usual range" in render.details_markdown(
        _draft(typicality=0.995, typicality_floor=0.99)
    )
    assert render.status_markdown(_draft(warnings=["low <b>similarity</b>"])) == "- ⚠️ low &lt;b&gt;similarity&lt;/b&gt;"
    assert render.status_markdown(_draft()) == ""
    assert render.banner_html(False) == ""
    assert "SIMULATED" in render.banner_html(True) and SIMULATED_NOTICE.split(":")[0] in render.banner_html(True)


def test_to_display_downscales_by_block_mean():
    grey = np.zeros((2050, 1000), np.float32)
    grey[:, 500:] = 1.0
    out = imaging.to_display(grey, max_side=1024)  # factor 3
    assert out.dtype == np.uint8 and out.shape == (683, 333)
    assert out[0, 0] == 0 and out[0, -1] == 255 and out[0, 166] == 85  # columns 498-500: one of three white


def test_dicom_preview_and_rewindow(tmp_path):
    values = np.tile(np.linspace(0, 4000, 64), (64, 1)).astype(np.uint16)
    path = tmp_path / "x.dcm"
    write_test_dicom(path, values, bits_stored=12, window=(2000.0, 4000.0), patient_name="Secret^Name")
    prev = imaging.read_preview(path)
    assert prev.is_dicom and prev.window[:2] == (2000.0, 4000.0) and prev.shape == (64, 64)
    assert prev.window[2] == 0.0 and prev.window[3] == 4000.0
    narrow = imaging.read_preview(path, 1000.0, 200.0).grey
    assert narrow[0, 0] == 0.0 and narrow[0, -1] == 1.0
    assert (narrow == 1.0).mean() > 0.7 > (prev.grey == 1.0).mean()
    plain = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray((values // 16).astype(np.uint8)).save(plain)
    assert not imaging.read_preview(plain).is_dicom and imaging.read_preview(plain).window is None


def test_overlay_colours_only_where_heat_is():
    grey = np.full((10, 10), 0.5, np.float32)
    heat = np.zeros((10, 10), np.float32)
    heat[2, 3] = 4.0  # not max-1 scaled: overlay rescales
    out = imaging.overlay(grey, heat)
    assert out.shape == (10, 10, 3) and (out[7, 7] == 128).all()
    assert out[2, 3, 2] != out[2, 3, 0]  # coloured
    with pytest.raises(Exception, match="does not match"):
        imaging.overlay(grey, heat[:5])


def test_egd_gaze_file_for_many_images_needs_the_image_name(tmp_path):
    pytest.importorskip("eclip_core.heatmap.gaze")
    from eclip_core.errors import FixationsError

    csv = tmp_path / "fixations.csv"
    csv.write_text("DICOM_ID,FPOGX,FPOGY,FPOGD,X_ORIGINAL,Y_ORIGINAL\nimgA,0,0,0.2,10,10\nimgB,0,0,0.2,500,300\n")
    with pytest.raises(FixationsError, match="2 images"):
        imaging.read_gaze_heatmap(csv, (1000, 1000))
    heat, fmt = imaging.read_gaze_heatmap(csv, (1000, 1000), (500, 500), image_name="imgB")
    assert fmt == "EGD-CXR" and heat.shape == (500, 500)
    row, col = np.unravel_index(heat.argmax(), heat.shape)
    assert abs(row - 150) <= 8 and abs(col - 250) <= 8  # (x 500, y 300) on a half-size grid (sigma 75 px there)


def test_every_pipeline_field_is_a_flag_and_defaults_are_safe():
    from rag_report.pipeline import PipelineConfig

    flags = build_parser().flags_of(PipelineConfig)  # field -> its flags (eclip_core.cli_config)
    assert {f.name for f in dataclasses.fields(PipelineConfig)} <= set(flags)
    serve, pipe = parse_args([])
    assert pipe == PipelineConfig()
    assert serve.host == "127.0.0.1" and serve.concurrency == 2 and serve.max_file_mb == 50.0
    serve, pipe = parse_args(
        [
            "--model",
            "m",
            "--index",
            "i",
            "--llm",
            "l.gguf",
            "--k",
            "7",
            "--diversify",
            "none",
            "--quantization",
            "none",
            "--similarity-floor",
            "0.2",
            "--extra-llm",
            "x",
            "--extra-llm",
            "y",
        ]
    )
    assert (pipe.model_dir, pipe.index_dir, pipe.llm_path, pipe.k) == ("m", "i", "l.gguf", 7)
    assert pipe.diversify is None and pipe.quantization == "none" and pipe.similarity_floor == 0.2
    assert serve.extra_llms == ["x", "y"]
    assert FLAG_NAMES["model_dir"] == "--model"
    with pytest.raises(SystemExit):
        parse_args(["--mode", "poetry"])
    with pytest.raises(SystemExit):
        parse_args(["--concurrency", "0"])


def test_app_config_file_holds_pipeline_and_server_fields(tmp_path, capsys):
    conf = tmp_path / "app.yaml"
    conf.write_text("k: 4\nlabel_boost: off\nport: 9001\nextra_llms: [/m/a]\n")
    serve, pipe = parse_args(["--config", str(conf), "--k", "6"])
    assert (pipe.k, pipe.label_boost, serve.port, serve.extra_llms) == (6, "off", 9001, ["/m/a"])
    conf.write_text("prot: 9001\n")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(conf)])
    err = capsys.readouterr().err
    assert "unknown field(s) 'prot'" in err and "PipelineConfig / ServeConfig" in err


def test_friendly_messages_and_llm_choices():
    msg = friendly_message(ValueError("/tmp/gradio/9f/Smith_J.dcm: truncated"), "/tmp/gradio/9f/Smith_J.dcm")
    assert msg == "Smith_J.dcm: truncated"
    choices = llm_choices(None, ["/m/a", "/m/a", "/m/b.gguf"])
    assert [c.path for c in choices] == [None, "/m/a", "/m/b.gguf"] and choices[0].label == DEFAULT_LLM_LABEL
    assert llm_choices("/m/a")[0].label == "a (/m/a)"


def test_outside_urls():
    urls = [
        "http://127.0.0.1:7860/",
        "http://localhost:1/x",
        "data:,",
        "blob:http://127.0.0.1/x",
        "https://cdn.jsdelivr.net/x.js",
        "wss://example.org/q",
    ]
    assert outside_urls(urls) == ["https://cdn.jsdelivr.net/x.js", "wss://example.org/q"]


def test_main_reports_a_missing_model_without_a_traceback(tmp_path, capsys, library_switches_restored):
    from apps.gradio_app import main

    code = main(["--model", str(tmp_path / "no-model"), "--index", str(tmp_path / "no-index"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-model" in err and "Traceback" not in err


@pytest.mark.parametrize("raw, n, expected", [(None, 3, None), ("", 3, None), ("0", 3, 0), ("2", 3, 2), (" 1 ", 3, 1)])
def test_example_parameter_accepts_example_numbers(raw, n, expected):
    from apps.handlers import parse_example

    assert parse_example(raw, n) == expected


@pytest.mark.parametrize(
    "raw, n, message",
    [
        ("²", 3, "'²' is not an example number: use 0, 1 or 2"),  # isdigit() but not int()-able
        ("3", 3, "'3' is not an example number: use 0, 1 or 2"),  # out of range
        ("-1", 3, "use 0, 1 or 2"),
        ("abc", 3, "'abc'"),
        ("1e3", 8, "use 0 to 7"),
        ("0", 0, "there are no examples"),
        ("٣", 5, "use 0 to 4"),  # Arabic-Indic three: int() would take it, but it is not what the page offers
        ("9" * 5000, 5, "'9999"),  # longer than int() converts by default: still a message
    ],
)
def test_example_parameter_refuses_everything_else(raw, n, message):
    from apps.handlers import parse_example

    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_example(raw, n)


class _FakePipeline:
    def __init__(self):
        from rag_report.pipeline import PipelineConfig

        self.config = PipelineConfig(mode="consensus")
        self.calls = []

    def generate(self, path, **kw):
        self.calls.append((path, kw))
        return _draft()


def test_page_load_with_a_bad_example_shows_a_message_not_an_exception(tmp_path):
    import gradio as gr

    from apps.handlers import AppHandlers

    pipe = _FakePipeline()
    h = AppHandlers(pipe, out_dir=tmp_path, examples=[("a.png", "A"), ("b.png", "B")])
    for raw in ("²", "9", "x"):
        out = h.load_example(raw, 8)
        assert len(out) == 9 and "is not an example number: use 0 or 1" in out[2]
        assert all(isinstance(o, type(gr.skip())) for i, o in enumerate(out) if i != 2)
    assert pipe.calls == []
    assert all(isinstance(o, type(gr.skip())) for o in h.load_example(None, 8))
    out = h.load_example("1", 8)
    assert out[0] == "b.png" and out[1].startswith("FINDINGS:") and pipe.calls[0][0] == "b.png"


@pytest.mark.parametrize("report", [[1, 2], "not json", 42, {"text": 7}, '["a"]'])
def test_export_refuses_what_is_not_a_draft_report(report, tmp_path):
    import gradio as gr

    from apps.handlers import AppHandlers

    h = AppHandlers(_FakePipeline(), out_dir=tmp_path)
    with pytest.raises(gr.Error, match="export needs the DraftReport object"):
        h.export("edited", report)


def test_export_accepts_a_report_or_its_json_and_refuses_non_text(tmp_path):
    import json as _json

    import gradio as gr

    from apps.handlers import AppHandlers

    h = AppHandlers(_FakePipeline(), out_dir=tmp_path)
    assert h.export("x", None) == (None, None) and h.export("x", {}) == (None, None)
    txt, js = h.export("edited", _json.dumps({"text": "orig"}))
    assert open(txt).read() == "edited\n" and _json.loads(open(js).read())["edited_text"] == "edited"
    with pytest.raises(gr.Error, match="edited draft as text"):
        h.export(["x"], {"text": "orig"})


@pytest.mark.parametrize(
    "k, tokens, message",
    [
        ("abc", 64, "k \\(retrieved reports\\)"),
        (0, 64, "from 1 to 100"),
        (3, "lots", "max new tokens"),
        (2.5, 64, "whole number"),
    ],
)
def test_generate_refuses_bad_numbers(k, tokens, message, tmp_path):
    import gradio as gr

    from apps.handlers import AppHandlers

    pipe = _FakePipeline()
    h = AppHandlers(pipe, out_dir=tmp_path)
    with pytest.raises(gr.Error, match=message):
        h.generate(str(tmp_path / "x.png"), "consensus", k, None, tokens)
    assert pipe.calls == []


def test_page_shows_the_resolved_precision():
    from rag_report.llm.precision import choose_quantization

    line = render.precision_markdown("auto", "cpu")
    assert line == f"**LLM precision:** {choose_quantization('auto', 'cpu').describe()}"
    assert "auto:" in line
    assert render.precision_markdown("nf4", "cpu") == "**LLM precision:** nf4 (as configured)"


def test_handoff_files_sr_for_a_dicom_fhir_for_any_upload(tmp_path):
    import highdicom as hd
    import pydicom

    from apps.handoff import write_handoff_files
    from rag_report.formats.sr import read_sr_content

    draft = _draft(predicted_labels={"Cardiomegaly": 0.9, "Edema": 0.2}, predicted_positive=["Cardiomegaly"])
    dcm = tmp_path / "in.dcm"
    write_test_dicom(dcm, (np.arange(64 * 64).reshape(64, 64) % 4000).astype(np.uint16), bits_stored=12)
    out = tmp_path / "out"
    out.mkdir()
    sr, fhir = write_handoff_files(str(dcm), draft, out)
    source = pydicom.dcmread(dcm)
    back = hd.sr.srread(sr)
    assert back.StudyInstanceUID == source.StudyInstanceUID
    content = read_sr_content(back)
    assert content.findings == draft.findings and [c[0] for c in content.coded_findings] == ["8186001"]
    bundle = _json.loads(open(fhir).read())
    assert len([e for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]) == 2
    # A PNG (or a file that is not there any more, or a broken DICOM) gets the FHIR bundle only.
    png = tmp_path / "in.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    for path in (png, tmp_path / "gone.png"):
        sr, fhir = write_handoff_files(str(path), draft, out)
        assert sr is None and "urn:oid" not in open(fhir).read()
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(dcm.read_bytes()[:200])
    sr, fhir = write_handoff_files(str(broken), draft, out)
    assert sr is None and fhir is not None


def test_generate_returns_the_handoff_downloads(tmp_path):
    from apps.handlers import AppHandlers

    h = AppHandlers(_FakePipeline(), out_dir=tmp_path)
    out = h.generate(str(tmp_path / "x.png"), "consensus", 3, None, 64)
    assert len(out) == 10 and out[8] is None
    assert _json.loads(open(out[9]).read())["entry"][0]["resource"]["conclusion"] == "Cardiomegaly."


def test_the_sr_download_is_shown_for_a_dicom_upload_only(tmp_path):
    import highdicom as hd
    import pydicom
    from PIL import Image

    from apps.handlers import AppHandlers, sr_button
    from rag_report.formats.sr import read_sr_content

    dcm, jpeg = tmp_path / "in.dcm", tmp_path / "in.jpg"
    write_test_dicom(dcm, (np.arange(32 * 32).reshape(32, 32) % 4000).astype(np.uint16), bits_stored=12)
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(jpeg)
    h = AppHandlers(_FakePipeline(), out_dir=tmp_path / "out")
    sr_path = h.generate(str(dcm), "consensus", 3, None, 64)[8]
    sr, source = hd.sr.srread(sr_path), pydicom.dcmread(dcm)
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert read_sr_content(sr).references == [(source.SOPClassUID, source.SOPInstanceUID)]
    assert h.generate(str(jpeg), "consensus", 3, None, 64)[8] is None  # no stand-in study made up for a JPEG
    # The page: the button starts hidden; after each draft it is shown or hidden by what the draft returned.
    assert sr_button(sr_path)["visible"] is True and sr_button(None)["visible"] is False
