"""Foundation modules: text normalisation, manifest round trips and errors, atomic writes."""

from __future__ import annotations

import json

import pytest

from eclip_core.atomic import atomic_dir, atomic_path
from eclip_core.data.manifest import Study, find_missing_files, read_manifest, write_manifest
from eclip_core.errors import EClipError, ManifestError
from eclip_core.text import join_report, normalize_report_text, split_sentences, tokenize_for_metrics


def test_deid_runs_collapse_to_one_token():
    assert normalize_report_text("XXXX XXXX, XXXX are normal") == "XXXX are normal."
    assert normalize_report_text("seen on ___ prior") == "seen on XXXX prior."
    # A word merely containing x is untouched.
    assert normalize_report_text("Xray exam") == "Xray exam."


def test_sentences_and_metric_tokens():
    assert split_sentences("No effusion. Heart 1.5 cm. Lungs clear") == [
        "No effusion.",
        "Heart 1.5 cm.",
        "Lungs clear.",
    ]
    assert split_sentences("") == []
    assert tokenize_for_metrics("No effusion, XXXX.") == "no effusion , xxxx ."
    assert join_report("", "Normal chest") == "Normal chest."


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_manifest_round_trip(tmp_path, suffix):
    (tmp_path / "img").mkdir()
    studies = [
        Study(
            "CXR1",
            [str(tmp_path / "img" / "a.png"), str(tmp_path / "img" / "b.png")],
            "train",
            findings='Heart normal, with "quotes" | pipes? no.',
            impression="Normal.",
            labels={"No Finding": 1.0, "Edema": None},
            fixations_paths=[str(tmp_path / "f.csv")],
            gaze_format="egd",
            meta={"simulated": True},
        ),
        Study("CXR2", [str(tmp_path / "img" / "c.png")], "test"),
    ]
    path = tmp_path / f"m{suffix}"
    write_manifest(studies, path)
    back = read_manifest(path)
    assert [s.to_dict() for s in back] == [s.to_dict() for s in studies]
    assert [s.study_id for s in read_manifest(path, split="test")] == ["CXR2"]
    assert back[0].has_expert and not back[1].has_expert


def test_manifest_errors_name_file_and_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("study_id,image_path\nA,a.png\n")
    with pytest.raises(ManifestError, match=r"lacks required column\(s\) \['split'\]"):
        read_manifest(bad)
    dup = tmp_path / "dup.jsonl"
    dup.write_text("\n".join(json.dumps({"study_id": "A", "image_path": "a.png", "split": "train"}) for _ in range(2)))
    with pytest.raises(ManifestError, match="duplicate study_id 'A'"):
        read_manifest(dup)
    split = tmp_path / "split.csv"
    split.write_text("study_id,image_path,split\nA,a.png,training\n")
    with pytest.raises(ManifestError, match="split.csv:2: split must be one of"):
        read_manifest(split)
    with pytest.raises(EClipError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")


def test_missing_files_are_reported(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    studies = [Study("A", [str(tmp_path / "a.png")], "train"), Study("B", [str(tmp_path / "b.png")], "train")]
    bad = find_missing_files(studies)
    assert [s.study_id for s, _ in bad] == ["B"] and "b.png" in bad[0][1]


def test_atomic_writes_leave_old_content_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    folder = tmp_path / "d"
    with atomic_dir(folder) as tmp:
        (tmp / "x").write_text("1")
    with atomic_dir(folder) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in folder.iterdir()) == ["y"]
