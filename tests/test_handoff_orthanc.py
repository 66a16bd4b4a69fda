"""Integration: a real PACS (Orthanc + DICOMweb on loopback) -> `rag-report batch URL --send` -> SRs in the PACS.

Generated multi-series studies (phantom pixels as CR/DX, synthetic patients and UIDs) with a lateral-only
study, a CT-only study, a study whose only image has cut pixel data and a file Orthanc refuses, are uploaded
through Orthanc's REST API. The batch drafts the PACS's studies with the tiny pipeline and stores an SR in
each; then Orthanc's own API must hold exactly one SR per drafted study (none elsewhere) whose text is the
draft's and whose reference is the study's frontal instance. dciodvfy finds no error in the SRs, highdicom
reads them back, fhir.resources validates every FHIR Bundle. Skipped only where Orthanc is not installed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from io import BytesIO

import pydicom
import pytest

from eval.bench.serving.orthanc import OrthancServer, orthanc_binary
from rag_report.formats.sr import read_sr_content
from rag_report.handoff.sources import DicomWebFilters, dicomweb_studies
from rag_report.handoff.studies import study_key
from rag_report.handoff.summary import read_summary
from rag_report.handoff.synthetic import synthetic_uid, write_study, write_truncated, write_undecodable

pytestmark = pytest.mark.skipif(orthanc_binary() is None, reason="Orthanc with its DICOMweb plugin is not installed")

# Study number -> (views, CT series, drafted view or None).
STUDIES = {
    21: (("PA", "LL"), False, "PA"),
    22: (("LL", "AP"), True, "AP"),
    23: (("PA", "AP", "LL"), False, "PA"),
    24: (("LL",), False, None),
    25: ((), True, None),
}
CUT = 26  # one AP whose pixel data cannot be decoded


@pytest.fixture
def pacs(tmp_path):
    with OrthancServer(tmp_path / "orthanc") as server:
        yield server


def _upload_studies(pacs, folder) -> None:
    for n, (views, ct, _) in STUDIES.items():
        for f in write_study(folder, n, views=views, ct_series=ct, size=64):
            assert pacs.upload(f).ok
    (whole,) = write_study(folder / "cut", CUT, views=("AP",), size=64)
    assert pacs.upload(write_undecodable(folder / "garbled.dcm", whole)).ok  # a whole header: the PACS keeps it
    assert not pacs.upload(write_truncated(folder / "cut.dcm", whole)).ok  # a PACS refuses a cut file


def _dciodvfy_errors(path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        return []  # CI installs dicom3tools (.ci/run); the test_handoff_sr tests say so where it is missing
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.timeout(600)
def test_pacs_to_drafts_to_srs_stored_back(pacs, tmp_path, tiny_pipeline_config):
    import highdicom as hd
    from fhir.resources.R4B.bundle import Bundle

    from rag_report.cli import main

    _upload_studies(pacs, tmp_path / "src")
    config = tmp_path / "pipeline.json"
    config.write_text(json.dumps({k: v for k, v in vars(tiny_pipeline_config).items() if v is not None}))
    out = tmp_path / "out"
    argv = ["batch", "--quiet", pacs.dicomweb_url, "--send", "--out", str(out), "--config", str(config)]
    assert main(argv) == 0

    rows = {r["study"]: r for r in read_summary(out / "summary.csv")}
    key = {n: study_key(synthetic_uid("study", n)) for n in [*STUDIES, CUT]}
    assert set(rows) == set(key.values())
    assert rows[key[24]]["reason"].startswith("only lateral views")
    assert rows[key[25]]["reason"].startswith("no CR/DX radiograph")
    assert rows[key[CUT]]["reason"].startswith("no readable image")

    in_pacs = pacs.study_ids()
    for n, (_, _, view) in [*STUDIES.items(), (CUT, ((), False, None))]:
        row, study_uid = rows[key[n]], synthetic_uid("study", n)
        srs = pacs.instances_of(in_pacs[study_uid], "SR")
        if view is None:
            assert row["status"] == "skipped" and srs == [] and not (out / key[n]).exists()
            continue
        assert (row["status"], row["view"], row["send"]) == ("drafted", view, "stored")
        assert len(srs) == 1, f"study {n}: {len(srs)} SRs in the PACS"
        stored = pydicom.dcmread(BytesIO(pacs.file(srs[0])))
        draft = json.loads((out / key[n] / "draft.json").read_text())
        content = read_sr_content(stored)
        assert (content.findings, content.impression) == (draft["findings"], draft["impression"])
        views = STUDIES[n][0]
        frontal_sop = synthetic_uid("sop", n, views.index(view) + 1)
        assert [uid for _, uid in content.references] == [frontal_sop]
        assert stored.StudyInstanceUID == study_uid and stored.PatientID == f"SYN{n:06d}"
        assert _dciodvfy_errors(out / key[n] / "sr.dcm") == []
        assert hd.sr.srread(out / key[n] / "sr.dcm").SOPInstanceUID == stored.SOPInstanceUID
        bundle = Bundle.model_validate_json((out / key[n] / "fhir.json").read_text())
        assert bundle.entry[0].resource.conclusion == (draft["impression"] or None)

    # QIDO-RS filters: by modality in the study, by study date.
    ct = dicomweb_studies(pacs.dicomweb_url, DicomWebFilters(modality="CT"))
    assert {s.key for s in ct} == {key[22], key[25]}
    assert dicomweb_studies(pacs.dicomweb_url, DicomWebFilters(study_date="20230101-20231231")) == []
    assert len(dicomweb_studies(pacs.dicomweb_url, DicomWebFilters(study_date="20240115"))) == len(key)

    # Resume: nothing drafted again, every send already done, still one SR per study.
    assert main([*argv, "--resume"]) == 0
    again = {r["study"]: r for r in read_summary(out / "summary.csv")}
    assert {r["status"] for r in again.values()} == {"resumed", "skipped"}
    assert all(len(pacs.instances_of(in_pacs[synthetic_uid("study", n)], "SR")) == 1 for n in (21, 22, 23))


@pytest.mark.timeout(300)
def test_c_store_to_a_dimse_pacs(pacs, tmp_path, tiny_pipeline_config):
    from rag_report.cli import main

    src = tmp_path / "src"
    write_study(src, 31, views=("PA", "LL"), size=64)
    config = tmp_path / "pipeline.json"
    config.write_text(json.dumps({k: v for k, v in vars(tiny_pipeline_config).items() if v is not None}))
    dimse = f"127.0.0.1:{pacs.dicom_port}:ORTHANC"
    argv = ["batch", "--quiet", str(src), "--send", "--send-dimse", dimse, "--out", str(tmp_path / "out")]
    assert main([*argv, "--config", str(config)]) == 0
    study = pacs.study_ids()[synthetic_uid("study", 31)]  # the SR alone filed the study into the PACS
    (sr,) = pacs.instances_of(study, "SR")
    assert read_sr_content(pydicom.dcmread(BytesIO(pacs.file(sr)))).references[0][1] == synthetic_uid("sop", 31, 1)
    # A PACS that is down: a clear error before anything is drafted, and a non-zero exit.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"127.0.0.1:{s.getsockname()[1]}:NOBODY"  # closed again: nothing listens there
    out2 = tmp_path / "out2"
    argv2 = ["batch", "--quiet", str(src), "--send", "--send-dimse", down, "--out", str(out2), "--config", str(config)]
    assert main(argv2) == 2 and not out2.exists()
