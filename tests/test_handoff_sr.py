"""The DICOM SR writer: a draft of a synthetic CR study becomes a Comprehensive SR that dciodvfy accepts,
highdicom reads back, and that states the draft's text, its predicted-present findings with SNOMED CT codes
and probabilities, the source image references and the patient / study of the source."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

hd = pytest.importorskip("highdicom")

from rag_report.errors import HandoffError  # noqa: E402
from rag_report.handoff.sr import (  # noqa: E402
    SECONDARY_CAPTURE,
    draft_to_sr,
    read_sr_content,
    source_dataset_for_image,
)
from rag_report.report import SIMULATED_NOTICE  # noqa: E402
from tests.handoff_data import (  # noqa: E402
    CR_IMAGE_STORAGE,
    FINDINGS,
    IMPRESSION,
    PATIENT_ID,
    PATIENT_NAME,
    POSITIVE,
    POSITIVE_SNOMED,
    PREDICTED,
    sample_draft,
    synthetic_cr,
)


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for a file (the test is skipped where dicom3tools is not installed)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def _text_values(items) -> list[str]:
    """Every TextValue in a content tree, walked with plain pydicom (independent of read_sr_content)."""
    out = []
    for item in items:
        if "TextValue" in item:
            out.append(str(item.TextValue))
        out += _text_values(item.get("ContentSequence", []))
    return out


@pytest.fixture()
def source(tmp_path) -> tuple[Path, pydicom.Dataset]:
    path = tmp_path / "cr.dcm"
    synthetic_cr(path)
    return path, pydicom.dcmread(path)


def test_sr_of_a_cr_study_validates_and_reads_back(source, tmp_path):
    src_path, src = source
    sr = draft_to_sr(sample_draft(), [src])
    out = tmp_path / "sr.dcm"
    sr.save_as(out)

    assert dciodvfy_errors(out) == []
    back = hd.sr.srread(out)
    assert isinstance(back, hd.sr.ComprehensiveSR)
    assert (back.CompletionFlag, back.VerificationFlag, back.PreliminaryFlag) == (
        "PARTIAL",
        "UNVERIFIED",
        "PRELIMINARY",
    )
    # Filed into the source's study, with its patient.
    assert back.StudyInstanceUID == src.StudyInstanceUID and back.SeriesInstanceUID != src.SeriesInstanceUID
    assert (str(back.PatientName), back.PatientID, back.AccessionNumber) == (PATIENT_NAME, PATIENT_ID, "ACC-SYN-1")
    assert back.Modality == "SR" and back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"
    title = back.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator) == ("18748-4", "LN")

    content = read_sr_content(back)
    assert content.findings == FINDINGS and content.impression == IMPRESSION
    assert {FINDINGS, IMPRESSION} <= set(_text_values(back.ContentSequence))
    assert [(c[0], c[1], c[3]) for c in content.coded_findings] == [
        (POSITIVE_SNOMED[n], "SCT", pytest.approx(PREDICTED[n], abs=1e-4)) for n in POSITIVE
    ]
    assert content.references == [(CR_IMAGE_STORAGE, src.SOPInstanceUID)]
    # The evidence list names the source too (what a viewer follows to the image).
    evidence = back.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert content.comments == []  # not simulated, no warnings


def test_sr_states_the_algorithm_and_checkpoint(source):
    sr = draft_to_sr(sample_draft(), [source[1]], manufacturer="Example Hospital AI")
    texts = _text_values(sr.ContentSequence)
    assert "eclip_checkpoint=0123456789abcdef" in texts and "index_id=idx-synthetic" in texts
    names = {str(i.ConceptNameCodeSequence[0].CodeMeaning): i for i in sr.ContentSequence}
    assert "Algorithm Name" in names and "Algorithm Version" in names
    assert str(names["Device Observer Manufacturer"].TextValue) == "Example Hospital AI"
    assert sr.Manufacturer == "Example Hospital AI" and sr.SoftwareVersions


def test_simulated_draft_and_warnings_are_stated(source):
    sr = draft_to_sr(sample_draft(simulated=True, warnings=["the image may not be frontal"]), [source[1]])
    comments = read_sr_content(sr).comments
    assert comments == [SIMULATED_NOTICE, "Warning: the image may not be frontal"]


def test_every_source_of_the_study_is_referenced(tmp_path):
    pa = synthetic_cr(tmp_path / "pa.dcm")
    lateral = synthetic_cr(tmp_path / "ll.dcm", study_uid=pa.StudyInstanceUID, view="LL", seed=1)
    sr = draft_to_sr(sample_draft(), [pa, lateral])
    refs = read_sr_content(sr).references
    assert refs == [(CR_IMAGE_STORAGE, pa.SOPInstanceUID), (CR_IMAGE_STORAGE, lateral.SOPInstanceUID)]
    out = tmp_path / "sr.dcm"
    sr.save_as(out)
    assert dciodvfy_errors(out) == []


def test_uids_are_stable_for_the_same_draft_and_differ_for_another(source):
    a, b = draft_to_sr(sample_draft(), [source[1]]), draft_to_sr(sample_draft(), [source[1]])
    assert a.SOPInstanceUID == b.SOPInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    other = sample_draft()
    other.impression = "No acute cardiopulmonary process."
    c = draft_to_sr(other, [source[1]])
    assert c.SOPInstanceUID != a.SOPInstanceUID and c.SeriesInstanceUID == a.SeriesInstanceUID


def test_source_missing_attributes_is_filled_in_the_sr_not_in_the_source(tmp_path):
    bare = synthetic_cr()
    for keyword in ("StudyDate", "StudyTime", "AccessionNumber", "PatientSex"):
        delattr(bare, keyword)
    sr = draft_to_sr(sample_draft(), [bare])
    assert sr.StudyDate == "" and sr.AccessionNumber == ""
    assert "StudyDate" not in bare and "PixelData" in bare  # the caller's dataset is untouched
    out = tmp_path / "sr.dcm"
    sr.save_as(out)
    assert dciodvfy_errors(out) == []


def test_unusable_sources_give_clear_errors():
    no_study = synthetic_cr()
    del no_study.StudyInstanceUID
    with pytest.raises(HandoffError, match="source 0 lacks StudyInstanceUID"):
        draft_to_sr(sample_draft(), [no_study])
    with pytest.raises(HandoffError, match="at least one source"):
        draft_to_sr(sample_draft(), [])
    with pytest.raises(HandoffError, match="not a pydicom Dataset"):
        draft_to_sr(sample_draft(), ["chest.dcm"])  # type: ignore[list-item]
    draft = sample_draft()
    draft.predicted_positive = ["Hernia"]  # not a CheXpert observation: no code for it
    with pytest.raises(HandoffError, match="'Hernia' is not a CheXpert observation"):
        draft_to_sr(draft, [synthetic_cr()])


def test_png_input_gets_an_anonymous_secondary_capture_source(tmp_path):
    pixels = np.random.default_rng(3).random((48, 40))
    sc = source_dataset_for_image(pixels)
    assert sc.SOPClassUID == SECONDARY_CAPTURE and str(sc.PatientName) == "" and sc.PatientID == ""
    assert (sc.Rows, sc.Columns) == (48, 40)
    assert source_dataset_for_image(pixels).StudyInstanceUID == sc.StudyInstanceUID  # same image, same study
    sc.save_as(tmp_path / "sc.dcm", enforce_file_format=True)
    assert dciodvfy_errors(tmp_path / "sc.dcm") == []
    sr = draft_to_sr(sample_draft(), [sc])
    sr.save_as(tmp_path / "sr.dcm")
    assert dciodvfy_errors(tmp_path / "sr.dcm") == []
    assert sr.StudyInstanceUID == sc.StudyInstanceUID and sr.PatientID == ""
    assert read_sr_content(sr).references == [(SECONDARY_CAPTURE, sc.SOPInstanceUID)]
    header_only = source_dataset_for_image(study_instance_uid="1.2.826.0.1.3680043.8.498.1")
    assert header_only.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.1" and "PixelData" not in header_only
    with pytest.raises(HandoffError, match="one 2-D grey image"):
        source_dataset_for_image(np.zeros((4, 4, 3), np.uint8))


def test_draft_report_wrapper_and_no_identity_in_logs(source, caplog):
    caplog.set_level(logging.DEBUG)
    sr = sample_draft().to_dicom_sr([source[1]])
    assert read_sr_content(sr).findings == FINDINGS
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("Synthetic", PATIENT_ID, "19600229", "ACC-SYN-1", source[1].StudyInstanceUID):
        assert secret not in logged
