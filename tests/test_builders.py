"""Manifest builders on schema-true fixtures made here (column names as in data-sources.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_gaze import egd_frame, reflacx_frame  # schema-true fixation tables

from eclip_core.data.builders import (
    build_egd_manifest,
    build_mimic_manifest,
    build_openi_kaggle_manifest,
    build_openi_manifest,
    build_reflacx_manifest,
    section_report,
)
from eclip_core.data.builders.common import hash_split, mimic_relative_path
from eclip_core.data.expert_heatmap import load_expert_heatmap
from eclip_core.data.manifest import read_manifest
from eclip_core.errors import FixationsError, ManifestError
from eclip_core.heatmap.gaze import EGD_COLUMNS

REPORT_A = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough  // eval for pneumonia

 COMPARISON:  None.

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  The
 cardiomediastinal silhouette is normal.

 IMPRESSION:

 No acute cardiopulmonary process.
"""
REPORT_NO_SECTIONS = """                                 FINAL REPORT
 HISTORY: shortness of breath

 PA and lateral views of the chest.  Heart size is normal.

 Small left pleural effusion.
"""


def _jpg(path: Path, size=(40, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, 100, np.uint8)).save(path)


# ------------------------------------------------------------------------------- sectioning
@pytest.mark.parametrize(
    "text,findings,impression,fallback",
    [
        (
            REPORT_A,
            "There is no focal consolidation, pleural effusion or pneumothorax. The cardiomediastinal "
            "silhouette is normal.",
            "No acute cardiopulmonary process.",
            False,
        ),
        (REPORT_NO_SECTIONS, "", "Small left pleural effusion.", True),
        ("Findings: Lungs clear.\nConclusion: Normal chest.", "Lungs clear.", "Normal chest.", False),
        ("FINDINGS AND IMPRESSION: Heart normal. No effusion.", "Heart normal. No effusion.", "", False),
        (
            "IMPRESSION: 1. No pneumonia.\n2. Stable cardiomegaly.\nRECOMMENDATION(S): follow up in 3:00 weeks.",
            "",
            "1. No pneumonia. 2. Stable cardiomegaly.",
            False,
        ),
        ("FINDINGS\nLungs are clear.\nIMPRESSION\nNormal.", "Lungs are clear.", "Normal.", False),
        ("", "", "", True),
        (
            "FINDINGS:\nCHEST: Lungs clear.\nLEFT KNEE: No fracture.\nIMPRESSION: Normal.",  # sub-headings stay in text
            "CHEST: Lungs clear. LEFT KNEE: No fracture.",
            "Normal.",
            False,
        ),
    ],
)
def test_sectioning(text, findings, impression, fallback):
    s = section_report(text)
    assert (s.findings, s.impression, s.fallback) == (findings, impression, fallback)


def test_helpers():
    assert (
        mimic_relative_path("physionet.org/files/mimic-cxr/2.0.0/files/p10/p10001/s5001/ab.dcm")
        == "files/p10/p10001/s5001/ab.dcm"
    )
    counts = pd.Series([hash_split(f"p{i}") for i in range(2000)]).value_counts(normalize=True)
    assert abs(counts["train"] - 0.7) < 0.04 and abs(counts["test"] - 0.2) < 0.04


# ------------------------------------------------------------------------------------ MIMIC
def _mimic_tree(root: Path) -> None:
    rows = [  # dicom_id, subject, study, view
        ("d1", 10000032, 50000001, "PA"),
        ("d2", 10000032, 50000001, "LATERAL"),
        ("d3", 10000032, 50000001, "AP"),
        ("d4", 10000032, 50000002, "LATERAL"),  # no frontal view: skipped
        ("d5", 11000011, 50000003, "AP"),  # report without sections
        ("d6", 11000011, 50000004, "PA"),  # no report file: skipped
    ]
    meta = pd.DataFrame(
        [
            {
                "dicom_id": d,
                "subject_id": s,
                "study_id": st,
                "PerformedProcedureStepDescription": "CHEST",
                "ViewPosition": v,
                "Rows": 32,
                "Columns": 40,
                "StudyDate": 21800101,
                "StudyTime": 1.0,
                "ProcedureCodeSequence_CodeMeaning": "",
                "ViewCodeSequence_CodeMeaning": "",
                "PatientOrientationCodeSequence_CodeMeaning": "",
            }
            for d, s, st, v in rows
        ]
    )
    meta.to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    split = pd.DataFrame(
        [
            {"dicom_id": d, "study_id": st, "subject_id": s, "split": "validate" if st == 50000003 else "train"}
            for d, s, st, _ in rows
        ]
    )
    split.to_csv(root / "mimic-cxr-2.0.0-split.csv.gz", index=False)
    chex = pd.DataFrame([{"subject_id": 10000032, "study_id": 50000001, "No Finding": 1.0, "Pneumonia": -1.0}])
    for obs in (
        "Atelectasis",
        "Cardiomegaly",
        "Consolidation",
        "Edema",
        "Enlarged Cardiomediastinum",
        "Fracture",
        "Lung Lesion",
        "Lung Opacity",
        "Pleural Effusion",
        "Pleural Other",
        "Pneumothorax",
        "Support Devices",
    ):
        chex[obs] = np.nan
    chex.to_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)
    for d, s, st, _ in rows:
        _jpg(root / f"files/p{str(s)[:2]}/p{s}/s{st}/{d}.jpg")
    (root / "files/p10/p10000032/s50000001.txt").write_text(REPORT_A)
    (root / "files/p10/p10000032/s50000002.txt").write_text(REPORT_A)
    (root / "files/p11/p11000011/s50000003.txt").write_text(REPORT_NO_SECTIONS)


def test_mimic_builder(tmp_path, caplog):
    root = tmp_path / "mimic-cxr-jpg"
    root.mkdir()
    _mimic_tree(root)
    caplog.set_level(logging.WARNING)
    out = build_mimic_manifest(root, tmp_path / "m.jsonl", progress=False)
    studies = {s.study_id: s for s in read_manifest(out)}
    assert sorted(studies) == ["s50000001", "s50000003"]
    a = studies["s50000001"]
    assert [Path(p).name for p in a.image_paths] == ["d1.jpg", "d3.jpg"]  # PA first, AP next, no lateral
    assert a.view == "PA" and a.split == "train" and a.impression == "No acute cardiopulmonary process."
    assert a.findings.startswith("There is no focal consolidation")
    assert a.labels["No Finding"] == 1.0 and a.labels["Pneumonia"] == -1.0 and a.labels["Edema"] is None
    assert a.meta["original_size"] == [32, 40] and a.meta["subject_id"] == "10000032"
    b = studies["s50000003"]
    assert b.split == "val" and b.impression == "Small left pleural effusion." and b.meta["sectioning_fallback"]
    assert "skipped 2 row(s)" in caplog.text
    all_views = build_mimic_manifest(root, tmp_path / "all.csv", views=None, progress=False)
    assert len(read_manifest(all_views, split="train")[0].image_paths) == 3
    with pytest.raises(ManifestError, match="does not exist"):
        build_mimic_manifest(tmp_path / "nope", tmp_path / "x.csv")


# ------------------------------------------------------------------------------------ EGD-CXR
def _egd_tree(tmp_path: Path) -> tuple[Path, Path]:
    egd, images = tmp_path / "egd-cxr", tmp_path / "mimic-cxr-jpg"
    egd.mkdir()
    master = pd.DataFrame(
        [
            {
                "dicom_id": "dA",
                "path": "files/p15/p15000001/s51000001/dA.dcm",
                "study_id": 51000001,
                "patient_id": 15000001,
                "stay_id": 1,
                "gender": "F",
                "anchor_age": 50,
                "image_top_pad": 0,
                "image_bottom_pad": 0,
                "image_left_pad": 0,
                "image_right_pad": 0,
                "Normal": 0,
                "CHF": 1,
                "pneumonia": 0,
                "cardiomegaly_chexpert": 1.0,
                "edema_chexpert": np.nan,
                "no_finding_chexpert": np.nan,
            },
            {
                "dicom_id": "dB",
                "path": "files/p16/p16000002/s52000002/dB.dcm",
                "study_id": 52000002,
                "patient_id": 16000002,
                "stay_id": 2,
                "gender": "M",
                "anchor_age": 60,
                "image_top_pad": 0,
                "image_bottom_pad": 0,
                "image_left_pad": 0,
                "image_right_pad": 0,
                "Normal": 1,
                "CHF": 0,
                "pneumonia": 0,
                "cardiomegaly_chexpert": np.nan,
                "edema_chexpert": np.nan,
                "no_finding_chexpert": 1.0,
            },
            {
                "dicom_id": "dC",
                "path": "files/p17/p17000003/s53000003/dC.dcm",
                "study_id": 53000003,
                "patient_id": 17000003,
                "stay_id": 3,
                "gender": "M",
                "anchor_age": 70,
                "image_top_pad": 0,
                "image_bottom_pad": 0,
                "image_left_pad": 0,
                "image_right_pad": 0,
                "Normal": 1,
                "CHF": 0,
                "pneumonia": 0,
                "cardiomegaly_chexpert": np.nan,
                "edema_chexpert": np.nan,
                "no_finding_chexpert": 1.0,
            },
        ]
    )
    master.to_csv(egd / "master_sheet.csv", index=False)
    fix = pd.concat([egd_frame([(500.0, 400.0), (505.0, 402.0)], "dA"), egd_frame([(30.0, 20.0)], "dB")])
    fix.to_csv(egd / "fixations.csv", index=False)  # dC has no fixations: skipped
    for d, p in (
        ("dA", "p15/p15000001/s51000001"),
        ("dB", "p16/p16000002/s52000002"),
        ("dC", "p17/p17000003/s53000003"),
    ):
        _jpg(images / f"files/{p}/{d}.jpg", size=(800, 1000) if d == "dA" else (40, 32))
    t = egd / "audio_segmentation_transcripts" / "dB"
    t.mkdir(parents=True)
    (t / "transcript.json").write_text(
        json.dumps(
            {
                "full_text": "Normal chest radiograph.",
                "time_stamped_text": [{"phrase": "normal", "begin_time": 0.1, "end_time": 0.5}],
            }
        )
    )
    reports = tmp_path / "reports"
    (reports / "files/p15/p15000001").mkdir(parents=True)
    (reports / "files/p15/p15000001/s51000001.txt").write_text(REPORT_A)
    return egd, images


def test_egd_builder(tmp_path):
    egd, images = _egd_tree(tmp_path)
    out = build_egd_manifest(
        egd, images, tmp_path / "out" / "egd.csv", reports_root=tmp_path / "reports", progress=False
    )
    studies = {s.study_id: s for s in read_manifest(out)}
    assert sorted(studies) == ["s51000001", "s52000002"]
    a, b = studies["s51000001"], studies["s52000002"]
    assert a.gaze_format == "egd" and a.meta["dicom_id"] == "dA" and a.has_expert
    assert a.impression == "No acute cardiopulmonary process." and a.meta["report_source"] == "mimic-report"
    assert b.findings == "Normal chest radiograph." and b.meta["report_source"] == "transcript"
    assert a.labels["Cardiomegaly"] == 1.0 and a.labels["Edema"] is None and b.labels["No Finding"] == 1.0
    assert "gender" not in a.meta and "anchor_age" not in a.meta
    per_image = pd.read_csv(a.fixations_paths[0])
    assert list(per_image.columns) == list(EGD_COLUMNS) and set(per_image["DICOM_ID"]) == {"dA"}
    hm = load_expert_heatmap(a, (32, 40))
    assert hm.shape == (32, 40) and hm.max() == pytest.approx(1.0)
    assert np.unravel_index(hm.argmax(), hm.shape) == (16, 20)  # (402, 503) on the 800x1000 original


def test_egd_builder_rejects_wrong_fixation_columns(tmp_path):
    egd, images = _egd_tree(tmp_path)
    pd.read_csv(egd / "fixations.csv").drop(columns=["Y_ORIGINAL"]).to_csv(egd / "fixations.csv", index=False)
    with pytest.raises(FixationsError, match="Y_ORIGINAL"):
        build_egd_manifest(egd, images, tmp_path / "egd.csv", progress=False)


# ------------------------------------------------------------------------------------ REFLACX
def test_reflacx_builder_keeps_every_usable_reading(tmp_path):
    root, images = tmp_path / "reflacx", tmp_path / "mimic-cxr-jpg"
    main = root / "main_data"
    main.mkdir(parents=True)
    img_path = "physionet.org/files/mimic-cxr/2.0.0/files/p18/p18000001/s54000001/dX.dcm"
    base = {"image": img_path, "dicom_id": "dX", "subject_id": 18000001, "image_size_x": 40, "image_size_y": 32}
    p1 = pd.DataFrame(
        [
            {
                "id": "P102R1",
                "split": "train",
                "eye_tracking_data_discarded": False,
                **base,
                "Atelectasis": 3,
                "Consolidation": 0,
            },
            {
                "id": "P102R2",
                "split": "train",
                "eye_tracking_data_discarded": False,
                **base,
                "Atelectasis": 5,
                "Consolidation": 1,
            },
            {
                "id": "P102R3",
                "split": "train",
                "eye_tracking_data_discarded": True,
                **base,
                "Atelectasis": 0,
                "Consolidation": 0,
            },
        ]
    )
    p1.to_csv(main / "metadata_phase_1.csv", index=False)
    p3 = pd.DataFrame(
        [
            {
                "id": "P300R1",
                "split": "validation",
                "eye_tracking_data_discarded": False,
                "image": "files/p19/p19000002/s55000002/dY.dcm",
                "dicom_id": "dY",
                "subject_id": 19000002,
                "image_size_x": 40,
                "image_size_y": 32,
                "Atelectasis": 0,
                "Consolidation": 0,
            }
        ]
    )
    p3.to_csv(main / "metadata_phase_3.csv", index=False)
    for rid, (x, y) in {
        "P102R1": (10.0, 10.0),
        "P102R2": (30.0, 22.0),
        "P102R3": (5.0, 5.0),
        "P300R1": (20.0, 16.0),
    }.items():
        (main / rid).mkdir()
        reflacx_frame([(x, y, 0.4, 4.0)]).to_csv(main / rid / "fixations.csv", index=False)
    (main / "P102R1" / "transcription.txt").write_text("Left basilar atelectasis.")
    _jpg(images / "files/p18/p18000001/s54000001/dX.jpg")
    _jpg(images / "files/p19/p19000002/s55000002/dY.jpg")
    out = build_reflacx_manifest(root, images, tmp_path / "reflacx.jsonl", progress=False)
    studies = {s.study_id: s for s in read_manifest(out)}
    x, y = studies["s54000001"], studies["s55000002"]
    assert [Path(p).parent.name for p in x.fixations_paths] == ["P102R1", "P102R2"]  # discarded one left out
    assert x.gaze_format == "reflacx" and x.findings == "Left basilar atelectasis." and x.split == "train"
    assert x.meta["original_size"] == [32, 40] and x.meta["reflacx_labels"]["Atelectasis"] == 5.0
    assert y.split == "val" and y.meta["report_source"] == "none"
    hm = load_expert_heatmap(x, (32, 40))
    assert hm[10, 10] == pytest.approx(hm[22, 30], rel=0.02) and hm.max() == pytest.approx(1.0)


# ------------------------------------------------------------------------------------- Open-I
def test_openi_kaggle_builder(tmp_path):
    root = tmp_path / "kaggle"
    img = root / "images" / "images_normalized"
    reports = pd.DataFrame(
        [
            {
                "uid": 1,
                "MeSH": "normal",
                "Problems": "normal",
                "image": "Xray Chest PA and Lateral",
                "indication": "Positive TB test",
                "comparison": "None.",
                "findings": "The cardiac silhouette is normal.",
                "impression": "Normal chest x-XXXX.",
            },
            {
                "uid": 2,
                "MeSH": "Cardiomegaly/borderline;Pulmonary Artery/enlarged",
                "Problems": "Cardiomegaly",
                "image": "Chest, 2 views",
                "indication": "",
                "comparison": "",
                "findings": np.nan,
                "impression": "Borderline cardiomegaly.",
            },
            {
                "uid": 3,
                "MeSH": "normal",
                "Problems": "normal",
                "image": "",
                "indication": "",
                "comparison": "",
                "findings": np.nan,
                "impression": np.nan,
            },  # no text: skipped
            {
                "uid": 4,
                "MeSH": "normal",
                "Problems": "normal",
                "image": "",
                "indication": "",
                "comparison": "",
                "findings": "Clear.",
                "impression": "Normal.",
            },  # no image file: skipped
        ]
    )
    reports.to_csv(root.mkdir(parents=True) or root / "indiana_reports.csv", index=False)
    proj = pd.DataFrame(
        [
            {"uid": 1, "filename": "1_IM-0001-3001.dcm.png", "projection": "Lateral"},
            {"uid": 1, "filename": "1_IM-0001-4001.dcm.png", "projection": "Frontal"},
            {"uid": 2, "filename": "2_IM-0652-1001.dcm.png", "projection": "Frontal"},
            {"uid": 3, "filename": "3_IM-1384-1001.dcm.png", "projection": "Frontal"},
            {"uid": 4, "filename": "4_IM-2050-1001.dcm.png", "projection": "Frontal"},
        ]
    )
    proj.to_csv(root / "indiana_projections.csv", index=False)
    for f in proj["filename"][:4]:
        _jpg(img / f)
    split_csv = tmp_path / "split.csv"
    pd.DataFrame({"uid": ["CXR1", "CXR2"], "r2gen_id": ["a", "b"], "split": ["train", "test"]}).to_csv(
        split_csv, index=False
    )
    out = build_openi_kaggle_manifest(root, tmp_path / "openi.csv", split_csv=split_csv, progress=False)
    studies = {s.study_id: s for s in read_manifest(out)}
    assert sorted(studies) == ["CXR1", "CXR2"]
    one = studies["CXR1"]
    assert Path(one.image_paths[0]).name == "1_IM-0001-4001.dcm.png" and one.view == "FRONTAL"
    assert one.split == "train" and one.impression == "Normal chest x-XXXX." and one.meta["mesh"] == ["normal"]
    assert studies["CXR2"].split == "test" and studies["CXR2"].findings == ""
    with pytest.raises(ManifestError, match="indiana_projections.csv"):
        build_openi_kaggle_manifest(root, tmp_path / "x.csv", projections_csv=tmp_path / "nope.csv")
    labelled = build_openi_kaggle_manifest(
        root, tmp_path / "l.csv", split_csv=split_csv, label_reports=True, progress=False
    )
    assert {s.study_id: s for s in read_manifest(labelled)}["CXR2"].labels["Cardiomegaly"] in (1.0, -1.0)


OPENI_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <meta type="rr" />
  <uId id="CXR{n}" />
  <MedlineCitation Owner="Indiana University" Status="supplied">
    <Article PubModel="Electronic">
      <Abstract>
        <AbstractText Label="COMPARISON">None.</AbstractText>
        <AbstractText Label="INDICATION">Cough.</AbstractText>
        <AbstractText Label="FINDINGS">{findings}</AbstractText>
        <AbstractText Label="IMPRESSION">{impression}</AbstractText>
      </Abstract>
    </Article>
  </MedlineCitation>
  <MeSH><major>{mesh}</major></MeSH>
  <parentImage id="CXR{n}_1_IM-000{n}-1001"><figureId>F1</figureId></parentImage>
  <parentImage id="CXR{n}_1_IM-000{n}-2001"><figureId>F2</figureId></parentImage>
</eCitation>
"""


def test_openi_folder_builder(tmp_path):
    xml_dir, png_dir = tmp_path / "ecgen-radiology", tmp_path / "NLMCXR_png"
    xml_dir.mkdir()
    texts = {
        1: ("Heart size normal.", "No acute disease.", "normal"),
        2: ("Mild cardiomegaly.", "Cardiomegaly.", "Cardiomegaly/mild"),
        3: ("", "", "normal"),
    }
    for n, (f, i, m) in texts.items():
        (xml_dir / f"{n}.xml").write_text(OPENI_XML.format(n=n, findings=f, impression=i, mesh=m))
        _jpg(png_dir / f"CXR{n}_1_IM-000{n}-1001.png")
    _jpg(png_dir / "CXR1_1_IM-0001-2001.png")
    out = build_openi_manifest(png_dir, tmp_path / "openi.jsonl", reports=xml_dir, progress=False)
    studies = {s.study_id: s for s in read_manifest(out)}
    assert sorted(studies) == ["CXR1", "CXR2"]  # CXR3 has no text
    assert len(studies["CXR1"].image_paths) == 2 and len(studies["CXR2"].image_paths) == 1
    assert studies["CXR2"].meta["mesh_major"] == ["Cardiomegaly/mild"]
    assert studies["CXR1"].split == hash_split("CXR1")


def test_builders_command_line(tmp_path, capsys):
    from eclip_core.data.builders.__main__ import main

    root = tmp_path / "mimic-cxr-jpg"
    root.mkdir()
    _mimic_tree(root)
    assert (
        main(["mimic", "--root", str(root), "--out", str(tmp_path / "m.csv"), "--views", "all", "--no-progress"]) == 0
    )
    assert len(read_manifest(tmp_path / "m.csv")) == 3  # the lateral-only study counts with all views
    assert (
        main(
            [
                "reflacx",
                "--reflacx-root",
                str(tmp_path / "none"),
                "--image-root",
                str(root),
                "--out",
                str(tmp_path / "r.csv"),
            ]
        )
        == 2
    )
    assert "metadata_phase" in capsys.readouterr().err
