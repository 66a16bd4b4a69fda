"""No identifying trace of an upload outlives the app: a DICOM named after its patient, uploaded, previewed,
drafted and exported over real HTTP, leaves nothing in the captured logs, and nothing on disk (gradio's
upload and cache folders, the app's download folder) once the app is stopped."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from eclip_core.data.dicom import write_test_dicom  # noqa: E402

FILE_NAME = "DOE_JOHN_1960.dcm"
SECRETS = ("DOE_JOHN", "Doe^John", "Doe", "MRN-24680", "19700101")


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.slow
def test_patient_named_dicom_leaves_no_trace(tiny_pipeline_config, tmp_path, monkeypatch, caplog):
    from apps.gradio_app import ServeConfig, close_app, launch_app
    from apps.screenshot import free_port
    from apps.ui import build_app
    from rag_report.pipeline import ReportPipeline

    gradio_dir = tmp_path / "gradio"  # gradio's upload + cache folder for this app only
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio_dir))
    caplog.set_level(logging.DEBUG)
    rng = np.random.default_rng(0)
    frames = (rng.random((2, 96, 96)) * 4000).astype(np.uint16)  # multi-frame: the reader warns about it
    dicom = tmp_path / "export" / FILE_NAME
    dicom.parent.mkdir()
    write_test_dicom(dicom, frames, bits_stored=12, patient_name="Doe^John", patient_id="MRN-24680")

    pipe = ReportPipeline(replace(tiny_pipeline_config, mode="consensus"), progress=False)
    app = build_app(pipe, examples=[])
    out_dir = app.rag_handlers.out_dir
    url = launch_app(app, ServeConfig(port=free_port(), quiet=True), block=False)
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "client"))
        _image, _c, _w, info = client.predict(handle_file(str(dicom)), None, api_name="/preview")
        assert "DICOM 96 x 96" in info
        result = client.predict(handle_file(str(dicom)), "consensus", 3, None, 64, api_name="/generate")
        client.predict(result[0] + " Edited.", result[5], api_name="/export")
        # While the app runs, the upload is where this test looks for it, and the downloads exist.
        assert any(p.name == FILE_NAME for p in _files(gradio_dir))
        assert _files(out_dir)
    finally:
        close_app(app)

    assert any("multi-frame" in r.getMessage() and "file#" in r.getMessage() for r in caplog.records)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        assert secret not in logged, secret
    # Nothing with content is left: no upload, preview or cached download. (gradio's multipart parser can
    # leave an empty temp file per upload in its folder; empty and randomly named, it holds nothing.)
    left = [(p, p.stat().st_size) for p in _files(gradio_dir)]
    assert all(size == 0 and p.parent == gradio_dir for p, size in left), left
    assert not any("DOE_JOHN" in str(p) for p in gradio_dir.rglob("*"))
    assert not out_dir.exists()
    assert dicom.is_file()  # the user's own file is untouched


def test_close_keeps_files_outside_the_upload_folders(tmp_path):
    from apps.handlers import AppHandlers

    example = tmp_path / "examples" / "a.png"
    upload = tmp_path / "uploads" / "3f2a" / "SMITH_ANN.png"
    for p in (example, upload):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
    h = AppHandlers(pipeline=None, llms=[object()])
    h._path(str(example))
    h._path(str(upload))
    out_dir = h.out_dir
    h._write_downloads("FINDINGS: x", {"text": "FINDINGS: x"})
    h.close(upload_dirs=[tmp_path / "uploads"])
    assert example.is_file() and not upload.exists() and not upload.parent.exists()
    assert (tmp_path / "uploads").is_dir() and not out_dir.exists()


def test_a_requests_downloads_go_soon_after_it(tmp_path, monkeypatch):
    import time

    from apps import handlers as handlers_mod

    monkeypatch.setattr(handlers_mod, "DOWNLOAD_KEEP_S", 0.2)
    h = handlers_mod.AppHandlers(pipeline=None, llms=[object()], out_dir=tmp_path / "dl")
    txt, js = h._write_downloads("FINDINGS: x", {"text": "FINDINGS: x"})
    assert Path(txt).is_file() and Path(js).is_file()
    deadline = time.time() + 10
    while Path(txt).parent.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not Path(txt).parent.exists()  # with no further request to prune it
