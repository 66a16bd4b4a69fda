"""The Gradio app driven over real HTTP with gradio_client, on the tiny real pipeline of conftest
(untrained eclip-tiny + an index of phantom train reports; extractive modes, so no LLM is loaded)."""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from eclip_core.data.dicom import write_test_dicom  # noqa: E402
from eclip_core.labels import CHEXPERT_OBSERVATIONS  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "apps" / "examples"
NIH_PNG = EXAMPLES / "00000001_000.png"
PATIENT_NAME, PATIENT_ID = "Doe^Jane", "MRN-98765"

#: Every test here drives a live server (module fixture) over the tiny world: the slow tier.
pytestmark = pytest.mark.slow

# /generate returns: draft, warnings, evidence HTML, labels HTML, details, DraftReport dict, .txt, .json,
# DICOM SR .dcm (None for a PNG/JPEG upload), FHIR Bundle .json
N_OUTPUTS = 10


@pytest.fixture(scope="module")
def pipeline(tiny_pipeline_config):
    from rag_report.pipeline import ReportPipeline

    return ReportPipeline(replace(tiny_pipeline_config, mode="consensus"), progress=False)


@pytest.fixture(scope="module")
def server(pipeline):
    from apps.gradio_app import ServeConfig, launch_app
    from apps.screenshot import free_port
    from apps.ui import build_app

    app = build_app(pipeline, examples=[(str(NIH_PNG), "NIH")], concurrency=2)
    url = launch_app(app, ServeConfig(port=free_port(), quiet=True, max_file_mb=1.0), block=False)
    yield url, app
    app.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


@pytest.fixture(scope="module")
def dicom_path(tmp_path_factory) -> Path:
    grey = np.asarray(Image.open(NIH_PNG).convert("L"), dtype=np.float64)
    pixels = np.rint(grey / 255.0 * 4000.0).astype(np.uint16)  # 12-bit values
    path = tmp_path_factory.mktemp("dicom") / "study.dcm"
    write_test_dicom(
        path, pixels, bits_stored=12, window=(2000.0, 4000.0), patient_name=PATIENT_NAME, patient_id=PATIENT_ID
    )
    return path


def _generate(client, path, mode="consensus", k=3):
    return client.predict(handle_file(str(path)), mode, k, None, 64, api_name="/generate")


def _in_rank_order(report) -> bool:
    """Evidence ranked as retrieval ranks it: by similarity, or as label boost orders the candidates (rerank:
    similarity + label_weight * agreement; filter: the best-agreeing first)."""
    from rag_report.pipeline import PipelineConfig

    evidence, boost = report["evidence"], report["models"].get("label_boost", "off")
    if boost == "filter":
        return evidence[0]["label_agreement"] == max(e["label_agreement"] for e in evidence)
    weight = PipelineConfig().label_weight if boost == "rerank" else 0.0
    keys = [e["similarity"] + weight * (e["label_agreement"] or 0.0) for e in evidence]
    return all(a >= b - 1e-9 for a, b in zip(keys, keys[1:]))


def _check_result(result, k=3):
    assert len(result) == N_OUTPUTS
    text, _warnings, evidence, labels, details, report, txt, js, _sr, fhir = result
    assert text.startswith(("FINDINGS:", "IMPRESSION:")) and len(text) > 20
    assert report["text"] == text and report["mode"] == "consensus"
    assert 1 <= len(report["evidence"]) <= k
    assert _in_rank_order(report)
    assert set(report["labels"]) == set(CHEXPERT_OBSERVATIONS)
    for e in report["evidence"]:  # each retrieved report is on the page, in rank order
        assert e["study_id"] in evidence
    assert evidence.index(report["evidence"][0]["study_id"]) < evidence.index(report["evidence"][-1]["study_id"])
    assert "<mark>" in evidence  # the consensus draft's sentences are highlighted in their sources
    assert all(name in labels for name in CHEXPERT_OBSERVATIONS)
    assert report["models"]["eclip_checkpoint"] in details
    assert Path(txt).read_text().strip() == text.strip()
    assert json.loads(Path(js).read_text())["text"] == text
    bundle = json.loads(Path(fhir).read_text())
    (dr,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    assert dr["status"] == "preliminary" and dr.get("conclusion", "") == report["impression"]
    return report


def test_png_upload_returns_report_evidence_and_labels(client):
    result = _generate(client, NIH_PNG)
    _check_result(result)
    assert result[8] is None  # no DICOM SR without a DICOM upload


def test_dicom_upload_drafts_and_never_shows_identity(client, dicom_path, caplog):
    caplog.set_level(logging.DEBUG)
    image, center, width, info = client.predict(handle_file(str(dicom_path)), None, api_name="/preview")
    assert Path(image).is_file() and "DICOM 512 x 512" in info
    assert center["visible"] and width["visible"] and center["value"] == 2000.0
    result = _generate(client, dicom_path)
    report = _check_result(result)
    assert report["evidence"]
    shown = json.dumps([list(result[:6]), info]) + "".join(
        Path(p).read_text() for p in (result[6], result[7], result[9])
    )
    # The SR files into the uploaded study (so it carries that patient: a PACS needs it) and states the draft.
    import highdicom as hd
    import pydicom

    from rag_report.formats.sr import read_sr_content

    source, sr = pydicom.dcmread(dicom_path), hd.sr.srread(result[8])
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.PatientID == PATIENT_ID
    assert read_sr_content(sr).references == [(source.SOPClassUID, source.SOPInstanceUID)]
    assert (read_sr_content(sr).findings, read_sr_content(sr).impression) == (report["findings"], report["impression"])
    assert f"urn:oid:{source.StudyInstanceUID}" in Path(result[9]).read_text()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("Doe", "Jane", PATIENT_ID, "19700101"):
        assert secret not in shown and secret not in logged


def test_window_level_changes_the_display_only(client, dicom_path):
    default, *_ = client.predict(handle_file(str(dicom_path)), None, api_name="/preview")
    narrow = client.predict(handle_file(str(dicom_path)), 1000.0, 200.0, None, api_name="/overlay")
    a, b = np.asarray(Image.open(default)), np.asarray(Image.open(narrow))
    assert a.shape[:2] == b.shape[:2] == (512, 512)
    assert (b == 255).mean() > (a == 255).mean() + 0.2  # a window centred low saturates most of the lung field


def test_corrupt_file_gives_a_message_and_the_server_keeps_serving(client, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(NIH_PNG.read_bytes()[:300])  # a truncated PNG
    with pytest.raises(AppError, match=r"broken\.png: .*(truncated|corrupt)"):
        _generate(client, bad)
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"this is not an image at all" * 20)
    with pytest.raises(AppError, match="notes.png: not a recognised image"):
        _generate(client, junk)
    with pytest.raises(AppError, match="blank"):
        blank = tmp_path / "blank.png"
        Image.fromarray(np.full((64, 64), 7, np.uint8)).save(blank)
        _generate(client, blank)
    _check_result(_generate(client, NIH_PNG))


def test_oversized_upload_is_refused_and_the_server_keeps_serving(server, client, tmp_path):
    import httpx

    big = tmp_path / "big.png"
    big.write_bytes(np.random.default_rng(0).integers(0, 255, 1_500_000, dtype=np.uint8).tobytes())
    with pytest.raises(Exception, match="(?i)exceeds the maximum file size"):  # the client checks first
        _generate(client, big)
    # The server enforces it too, for browsers and other clients.
    reply = httpx.post(server[0] + "gradio_api/upload", files={"files": ("big.png", big.read_bytes())}, timeout=60)
    assert reply.status_code == 413
    _check_result(_generate(client, NIH_PNG))


def test_eight_concurrent_requests_all_succeed(server, dicom_path):
    url, _ = server

    def one(i: int):
        c = Client(url, verbose=False)  # separate sessions, like eight browser tabs
        return _check_result(_generate(c, dicom_path if i % 2 else NIH_PNG))

    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(one, range(8)))
    assert len(reports) == 8
    for parity in (0, 1):  # the same file gives the same answer under load
        assert len({r["text"] for r in reports[parity::2]}) == 1


def test_rest_api_as_curl_uses_it(server):
    import httpx

    url = server[0]
    with httpx.Client(timeout=120) as http:
        up = http.post(url + "gradio_api/upload", files=[("files", (NIH_PNG.name, NIH_PNG.read_bytes()))]).json()
        file_data = {"path": up[0], "orig_name": NIH_PNG.name, "meta": {"_type": "gradio.FileData"}}
        event = http.post(
            url + "gradio_api/call/generate", json={"data": [file_data, "top1", 3, None, 64, "rerank"]}
        ).json()
        body = http.get(url + f"gradio_api/call/generate/{event['event_id']}").text
    assert "event: complete" in body
    data = json.loads(body.split("event: complete", 1)[1].split("data:", 1)[1].strip().splitlines()[0])
    assert data[0].startswith(("FINDINGS:", "IMPRESSION:")) and data[5]["mode"] == "top1"


def test_label_boost_setting_predictions_and_agreement(server, client, pipeline):
    assert pipeline.index.label_classifiers is not None  # the tiny world's index is fitted with them
    page = json.dumps(server[1].get_config_file())
    assert "Label boost" in page and all(f'"{m}"' in page for m in ("off", "filter", "rerank"))
    result = client.predict(handle_file(str(NIH_PNG)), "consensus", 3, None, 64, "filter", api_name="/generate")
    report = _check_result(result)
    evidence, labels = result[2], result[3]
    assert report["models"]["label_boost"] == "filter"
    for e in report["evidence"]:  # each report's label agreement beside its similarity
        assert e["label_agreement"] is not None
        assert (
            f"similarity {e['similarity']:.3f}" in evidence
            and f"label agreement {e['label_agreement']:.2f}" in evidence
        )
    assert set(report["predicted_labels"]) == set(CHEXPERT_OBSERVATIONS)
    for name, p in report["predicted_labels"].items():  # each observation's probability beside the draft's label
        row = labels.split(f">{name}<", 1)[1].split("</div>", 1)[0]
        assert f"<b>{p:.2f}</b>" in row and (("<i>●</i>" in row) == (name in report["predicted_positive"]))
    off = client.predict(handle_file(str(NIH_PNG)), "consensus", 3, None, 64, "off", api_name="/generate")
    assert off[5]["models"]["label_boost"] == "off" and "label agreement" not in off[2]
    assert all(e["label_agreement"] is None for e in off[5]["evidence"]) and _in_rank_order(off[5])
    assert off[5]["predicted_labels"] == report["predicted_labels"]  # predicted either way, shown either way
    assert "<b>" in off[3]


def test_edited_draft_downloads(client):
    result = _generate(client, NIH_PNG)
    edited = result[0] + " Addendum by the reader."
    txt, js = client.predict(edited, result[5], api_name="/export")
    assert Path(txt).read_text().strip() == edited
    saved = json.loads(Path(js).read_text())
    assert saved["edited_text"] == edited and saved["text"] == result[0]


def test_gaze_overlay(client, tmp_path):
    csv = tmp_path / "00000001_000_gaze.csv"
    rows = ["DICOM_ID,FPOGX,FPOGY,FPOGD,X_ORIGINAL,Y_ORIGINAL"] + [
        f"img1,0.5,0.5,0.3,{x},{y}" for x, y in [(128, 128), (130, 126), (126, 131)]
    ]
    csv.write_text("\n".join(rows) + "\n")
    plain, *_ = client.predict(handle_file(str(NIH_PNG)), None, api_name="/preview")
    with_gaze = client.predict(handle_file(str(NIH_PNG)), 0, 1, handle_file(str(csv)), api_name="/overlay")
    a = np.asarray(Image.open(plain).convert("RGB")).astype(int)
    b = np.asarray(Image.open(with_gaze).convert("RGB")).astype(int)
    changed = np.abs(a - b).sum(axis=2)
    assert changed[128, 128] > 60  # coloured where the reader looked
    assert changed[480, 480] <= 3  # untouched far from it
    assert b[128, 128, 0] != b[128, 128, 2]  # colour, not grey


def test_bad_gaze_file_warns_and_shows_the_plain_image(client, tmp_path):
    csv = tmp_path / "gaze.csv"
    csv.write_text("a,b\n1,2\n")
    out = client.predict(handle_file(str(NIH_PNG)), 0, 1, handle_file(str(csv)), api_name="/overlay")
    assert np.asarray(Image.open(out)).shape[:2] == (512, 512)


def test_page_is_local_and_offline(server):
    import httpx

    url, app = server
    assert url.startswith("http://127.0.0.1:")
    assert app.analytics_enabled is False and not app.share
    page = httpx.get(url, timeout=30).text
    config = httpx.get(url + "config", timeout=30).text
    css = httpx.get(url + "theme.css", timeout=30).text
    for text in (page, config, css):
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text
    assert "ui-sans-serif" in css  # the system font stack, not a downloaded font
    assert "SIMULATED" not in config or app.rag_handlers.pipeline.simulated_data


def test_banner_only_for_the_simulated_bundle(pipeline):
    import types

    from apps.ui import build_app

    simulated = types.SimpleNamespace(config=pipeline.config, simulated_data=True, generate=pipeline.generate)
    assert "SIMULATED DATA" in json.dumps(build_app(simulated, examples=[]).get_config_file())
    assert "SIMULATED DATA" not in json.dumps(build_app(pipeline, examples=[]).get_config_file())


def test_screenshot_of_a_drafted_page_reaches_nothing_outside(server, tmp_path):
    import shutil

    from apps.screenshot import BROWSERS, capture

    if not any(shutil.which(b) for b in BROWSERS):
        message = "no Chromium installed (apt-get install -y chromium)"
        if os.environ.get("CI"):  # CI installs it (.ci/run): there the page must be rendered, not skipped
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "app.png"
    outside = capture(server[0] + "?example=0", out, width=1200, timeout_s=120)
    assert outside == []  # no fonts, CDNs or analytics requested by the page
    with Image.open(out) as im:
        assert im.width == 1200 and im.height > 900


def test_export_with_a_bad_payload_gives_a_message_and_the_server_keeps_serving(client):
    for payload in ([1, 2], 42):
        with pytest.raises(AppError, match="export needs the DraftReport object"):
            client.predict("edited text", payload, api_name="/export")
    _check_result(_generate(client, NIH_PNG))


def test_sr_download_starts_hidden_and_follows_each_draft(server):
    config = server[1].get_config_file()
    (button,) = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "dl-sr"]
    assert button["props"]["visible"] is False
    # Shown or hidden after /generate and after an example drafted on load, by the SR path the draft returned.
    followers = [d for d in config["dependencies"] if d["inputs"] == [button["id"]] == d["outputs"]]
    assert len(followers) == 2 and all(d.get("trigger_after") is not None for d in followers)
