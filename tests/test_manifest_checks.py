"""Manifest problems users hit give a ManifestError naming the row and what to do: another text encoding,
an empty study id, a labels column of the wrong type; rows without report text are counted when training
and an index of zero reports is refused."""

from __future__ import annotations

import csv
import json
import logging

import pytest

from eclip_core.config import EClipConfig, TrainConfig
from eclip_core.data.manifest import Study, read_manifest, write_manifest
from eclip_core.errors import ManifestError

HEADER = "study_id,image_path,split,findings\n"


# ------------------------------------------------------------------------------------------ encodings
@pytest.mark.parametrize(
    "codec, named, iconv",
    [
        ("cp1252", "cp1252", "CP1252"),  # Excel's "CSV" on Windows; é is 0xe9, ’ is 0x92
        ("latin-1", "Latin-1", "LATIN1"),  # 0x81 is undefined in cp1252
        ("utf-16", "UTF-16", "UTF-16"),  # Excel's "Unicode text"
    ],
)
def test_a_manifest_in_another_encoding_is_named(tmp_path, codec, named, iconv):
    word = "\u00e9panchement\u0081" if codec == "latin-1" else "\u00e9panchement pleural\u2019"
    text = HEADER + "A,a.png,train,Normal.\nB,b.png,train,Petit " + word + ".\n"
    if codec == "cp1252":
        text = text.replace("\u2019", "'") + "C,c.png,train,Patient\u2019s heart.\n"
    path = tmp_path / "m.csv"
    path.write_bytes(text.encode(codec))
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    message = str(err.value)
    assert str(path) in message and "not UTF-8" in message and named in message
    assert f"iconv -f {iconv} -t UTF-8" in message
    if codec != "utf-16":
        assert "line 3, column 21" in message and "0xe9" in message  # where the first bad byte is


def test_a_jsonl_manifest_in_cp1252_is_named(tmp_path):
    path = tmp_path / "m.jsonl"
    row = {"study_id": "A", "image_path": "a.png", "split": "train", "findings": "Cœur normal."}
    path.write_bytes((json.dumps(row, ensure_ascii=False) + "\n").encode("cp1252"))
    with pytest.raises(ManifestError, match="not UTF-8.*line 1.*cp1252"):
        read_manifest(path)


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes((HEADER + "A,a.png,train,Épanchement.\n").encode("utf-8-sig"))
    studies = read_manifest(path)
    assert [(s.study_id, s.findings) for s in studies] == [("A", "Épanchement.")]


# ------------------------------------------------------------------------------------------ study ids
@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_study_id_names_the_row(tmp_path, empty):
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "A,a.png,train,x\nB,b.png,train,y\n" + empty + ",c.png,train,z\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m\.csv:4 \(row 3\): study_id is empty"):
        read_manifest(path)


def test_a_null_study_id_in_jsonl_names_the_row(tmp_path):
    path = tmp_path / "m.jsonl"
    rows = [
        {"study_id": "A", "image_path": "a.png", "split": "train"},
        {"study_id": None, "image_path": "b.png", "split": "train"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m\.jsonl:2 \(row 2\): study_id is empty"):
        read_manifest(path)


# ------------------------------------------------------------------------------------------ labels
def _forty(labels_of_row_23) -> list[dict]:
    rows = []
    for i in range(40):
        labels = {"Cardiomegaly": [1, 0, -1, None][i % 4], "Edema": 1.0}
        rows.append(
            {
                "study_id": f"P{i:03d}",
                "image_path": f"p{i}.png",
                "split": "train",
                "findings": f"Report {i}.",
                "labels": labels_of_row_23 if i == 22 else labels,
            }
        )
    return rows


def _write_csv(path, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "labels": r["labels"] if isinstance(r["labels"], str) else json.dumps(r["labels"])})


def test_forty_valid_rows_parse_to_floats_and_nulls(tmp_path):
    _write_csv(tmp_path / "m.csv", _forty({"Cardiomegaly": 1}))
    studies = read_manifest(tmp_path / "m.csv")
    assert len(studies) == 40
    assert [s.labels["Cardiomegaly"] for s in studies[:4]] == [1.0, 0.0, -1.0, None]
    assert studies[22].labels == {"Cardiomegaly": 1.0}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize(
    "bad, says",
    [
        (3, "must be a JSON object, got a JSON int"),
        (["Cardiomegaly", "Edema"], "must be a JSON object, got a JSON list"),
        ({"Cardiomegaly": 2}, "'Cardiomegaly' the value 2"),
        ({"Edema": "yes"}, "'Edema' the value 'yes'"),
        ({"Edema": True}, "'Edema' the value True"),
    ],
    ids=["number", "list", "two", "string", "bool"],
)
def test_a_labels_column_of_the_wrong_type_names_row_study_and_column(tmp_path, fmt, bad, says):
    rows = _forty(bad)
    path = tmp_path / f"m.{fmt}"
    if fmt == "csv":
        _write_csv(path, rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    message = str(err.value)
    line = 24 if fmt == "csv" else 23  # CSV has a header line
    assert f"m.{fmt}:{line} (row 23, study 'P022')" in message and "column 'labels'" in message
    assert says in message


# ------------------------------------------------------------------------------------------ report text
@pytest.fixture
def blobs(tmp_path):
    from eclip_core.training.synthetic import make_blob_dataset

    return make_blob_dataset(tmp_path / "blobs", n=12, size=32, expert_fraction=0.0, seed=0)


def _blank_reports(manifest, keep: int) -> None:
    studies = read_manifest(manifest)
    for s in studies[keep:]:
        s.findings, s.impression = "", ""
    write_manifest(studies, manifest)


def test_training_counts_rows_without_report_text(blobs, caplog):
    from eclip_core.train import _prepare_rows

    _blank_reports(blobs, keep=9)
    cfg = TrainConfig(manifest=str(blobs), model=EClipConfig(name="eclip-tiny"), progress=False, validate_images=False)
    with caplog.at_level(logging.WARNING, logger="eclip_core.train"):
        good, _, _ = _prepare_rows(cfg)
    assert len(good) == 12 and "3 of 12 train rows have no report text" in caplog.text
    _blank_reports(blobs, keep=0)
    with pytest.raises(ManifestError, match="none of the 12 train rows has report text"):
        _prepare_rows(cfg)


def test_rag_report_index_refuses_a_corpus_without_reports(tmp_path, capsys):
    from eclip_core.model import EClip
    from rag_report.cli import main

    EClip.from_config("eclip-tiny").save_pretrained(tmp_path / "eclip")
    write_manifest(
        [Study(f"S{i}", [f"x{i}.png"], "train") for i in range(4)]
        + [Study("T1", ["t.png"], "test", findings="Lungs clear.")],
        tmp_path / "m.csv",
    )
    code = main(
        [
            "--quiet",
            "index",
            "--manifest",
            str(tmp_path / "m.csv"),
            "--model",
            str(tmp_path / "eclip"),
            "--out",
            str(tmp_path / "idx"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "none of its 4 rows with split 'train' has report text" in err and "--split" in err
    assert not (tmp_path / "idx").exists()
