"""Batch discovery: DICOM headers -> studies -> the frontal image each drafts from, or the reason it cannot.

Generated multi-series studies with known views (rag_report.handoff.synthetic), junk and truncated files.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom import Dataset

from eclip_core.data.dicom import write_test_dicom
from eclip_core.data.dicom_views import assess_dataset, header_warnings
from rag_report.handoff.sources import SourceError, folder_studies, manifest_studies, open_source, shard
from rag_report.handoff.studies import Instance, group_instances, rank_frontal, study_key
from rag_report.handoff.synthetic import synthetic_uid, write_study, write_truncated


def _header(**values) -> Dataset:
    ds = Dataset()
    for k, v in values.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize(
    "values, view, usable",
    [
        ({"Modality": "DX", "ViewPosition": "PA"}, "PA", True),
        ({"Modality": "CR", "ViewPosition": "AP"}, "AP", True),
        ({"Modality": "DX", "ViewPosition": "LL"}, "LATERAL", False),
        ({"Modality": "DX", "ViewPosition": "RL"}, "LATERAL", False),
        ({"Modality": "DX", "PatientOrientation": ["P", "F"]}, "LATERAL", False),
        ({"Modality": "DX", "PatientOrientation": ["L", "F"]}, "FRONTAL", True),
        ({"Modality": "DX", "PatientOrientation": ["L", "F"], "SeriesDescription": "Chest PA"}, "PA", True),
        ({"Modality": "CR", "SeriesDescription": "THORAX LAT"}, "LATERAL", False),
        ({"Modality": "CR", "SeriesDescription": "CHEST AP PORTABLE"}, "AP", True),
        ({"Modality": "DX"}, "UNKNOWN", True),
        ({"Modality": "DX", "ImageLaterality": "L"}, "UNKNOWN", False),
        ({"Modality": "CT", "ViewPosition": "PA"}, "PA", False),
        ({"ViewPosition": "PA"}, "PA", False),
    ],
)
def test_view_from_the_header(values, view, usable):
    a = assess_dataset(_header(**values))
    assert (a.view, a.usable) == (view, usable)
    assert bool(a.reasons) is (not usable)


def test_header_warnings_for_a_lateral_and_a_ct_file_but_not_a_pa(tmp_path):
    files = write_study(tmp_path, 3, views=("PA", "LL"), ct_series=True, size=64)
    pa, lat, ct = files[0], files[1], files[2]
    assert header_warnings(pa) == []
    assert header_warnings(str(pa)) == []
    (lat_warning,) = header_warnings(lat)
    assert "lateral" in lat_warning
    (ct_warning,) = header_warnings(ct.read_bytes())
    assert "modality CT" in ct_warning
    assert header_warnings(np.zeros((4, 4))) == []


def _instances(folder) -> list[Instance]:
    return [Instance(pydicom.dcmread(p, stop_before_pixels=True), path=p) for p in sorted(folder.glob("*.dcm"))]


def test_pa_beats_ap_beats_unknown_and_laterals_never_chosen(tmp_path):
    write_study(tmp_path, 1, views=("LL", "AP", "PA"), size=64)
    (study,) = group_instances(_instances(tmp_path))
    ranked, reason = rank_frontal(study.instances)
    assert reason == ""
    assert [i.get("ViewPosition") for i in ranked] == ["PA", "AP"]
    assert study.key == study_key(synthetic_uid("study", 1))


@pytest.mark.parametrize(
    "views, ct, chosen, reason",
    [
        (("PA", "LL"), False, "PA", ""),
        (("AP",), False, "AP", ""),
        (("LL",), False, None, "only lateral views (1 CR/DX images)"),
        (("RL", "LL"), False, None, "only lateral views (2 CR/DX images)"),
        ((), True, None, "no CR/DX radiograph in the study (found CT (2 images))"),
        (("PA",), True, "PA", ""),
    ],
)
def test_selection_per_study_kind(tmp_path, views, ct, chosen, reason):
    write_study(tmp_path, 7, views=views, ct_series=ct, size=64)
    (study,) = group_instances(_instances(tmp_path))
    ranked, why = rank_frontal(study.instances)
    assert (ranked[0].get("ViewPosition") if ranked else None) == chosen
    assert why.startswith(reason)


def test_folder_groups_by_study_and_lists_junk_truncated_and_orphans(tmp_path):
    src = tmp_path / "export"
    write_study(src / "a", 1, views=("PA", "LL"), size=64)
    write_study(src / "b", 2, views=("LL",), size=64)
    write_study(src / "b", 3, views=(), ct_series=True, size=64)
    (trunc_src,) = write_study(tmp_path / "t", 4, views=("AP",), size=64)
    write_truncated(src / "cut.dcm", trunc_src)
    (src / "junk.bin").write_bytes(b"\x00garbage" * 10)
    (src / "header-cut.dcm").write_bytes(trunc_src.read_bytes()[:200])
    orphan = tmp_path / "orphan.dcm"
    write_test_dicom(orphan, np.arange(16, dtype=np.uint16).reshape(4, 4))
    ds = pydicom.dcmread(orphan)
    del ds.StudyInstanceUID
    ds.save_as(src / "no-study.dcm")
    (src / "pics").mkdir()
    for name in ("x.png", "y.jpg"):
        (src / "pics" / name).write_bytes(b"")  # grouped by name only; their pixels are read when drafted

    studies = {s.key: s for s in folder_studies(src)}
    key = {n: study_key(synthetic_uid("study", n)) for n in (1, 2, 3, 4)}
    assert [i.get("ViewPosition") for i in studies[key[1]].instances] == ["PA", "LL"]
    assert studies[key[1]].n_images == 2
    assert rank_frontal(studies[key[2]].instances)[1].startswith("only lateral")
    assert "CT (2 images)" in rank_frontal(studies[key[3]].instances)[1]
    # The cut file's header is whole: it is listed, and fails when its pixels are read.
    assert studies[key[4]].instances[0].path == src / "cut.dcm"
    problems = sorted(s.problem.split(" ")[0] for s in studies.values() if s.problem)
    assert problems == ["no", "not", "not"]  # no StudyInstanceUID; junk.bin and header-cut.dcm unreadable
    assert sum(1 for s in studies.values() if s.images) == 2
    # Keys name no patient and no file.
    for k in studies:
        assert "SYNTHETIC" not in k and "junk" not in k and "pics" not in k
    by_folder = folder_studies(src, images_per_folder=True)
    assert sum(1 for s in by_folder if s.images) == 1


def test_manifest_source_and_errors(tmp_path):
    from eclip_core.data.manifest import Study, write_manifest

    files = write_study(tmp_path / "m", 5, views=("LL", "PA"), size=64)
    manifest = tmp_path / "m.csv"
    write_manifest(
        [Study("S5", [str(f) for f in files], "test"), Study("S6", [str(tmp_path / "missing.png")], "test")], manifest
    )
    studies = {s.key: s for s in manifest_studies(manifest)}
    assert rank_frontal(studies[study_key("S5")].instances)[0][0].get("ViewPosition") == "PA"
    assert "missing" in studies[study_key("S6")].problem
    assert len(open_source(str(manifest))) == 2
    with pytest.raises(SourceError, match="no such folder"):
        open_source(str(tmp_path / "nowhere"))


def test_shards_cover_every_study_once():
    from rag_report.handoff.studies import StudyInput

    studies = [StudyInput(f"k{i}") for i in range(7)]
    parts = [shard(studies, r, 3) for r in range(3)]
    assert sorted(s.key for p in parts for s in p) == sorted(s.key for s in studies)
    with pytest.raises(SourceError):
        shard(studies, 3, 3)
