"""COVID-19 image data collection builder on a fixture clone written here (metadata.csv columns as in the
June-2020 files, a few PNGs)."""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from eclip_core.data.builders import build_covid_manifest
from eclip_core.data.builders.__main__ import main
from eclip_core.data.manifest import read_manifest
from eclip_core.errors import ManifestError

COLUMNS = (
    "patientid,offset,sex,age,finding,survival,view,modality,date,location,folder,filename,doi,url,license,"
    "clinical_notes,other_notes"
)
FINDINGS = ("COVID-19", "Streptococcus", "No Finding", "COVID-19, ARDS", "SARS")


def _clone(root, n_patients: int = 40):
    """Two frontal X-rays per patient, plus a lateral, a CT, a row without notes and one missing image."""
    (root / "images").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)

    def image(name: str) -> None:
        Image.fromarray(rng.integers(0, 255, (24, 20), dtype=np.uint8)).save(root / "images" / name)

    for p in range(1, n_patients + 1):
        finding = FINDINGS[p % len(FINDINGS)]
        for k, view in enumerate(("PA", "AP Supine" if p % 2 else "AP")):
            name = f"p{p}-{k}.png"
            image(name)
            notes = f'"Patient {p} day {k}: {finding} opacities, ""bilateral"" \u201cquoted\u201d."'
            rows.append(
                f'{p},{k},{"MF"[p % 2]},{30 + p},"{finding}",Y,{view},X-ray,2020,Here,images,{name},10.1/x{p},'
                f"https://example.org/{p},CC BY 4.0,{notes},"
            )
    image("lat.png")
    rows.append("1,5,M,31,COVID-19,Y,L,X-ray,2020,Here,images,lat.png,,,,lateral view,")
    rows.append("2,6,F,32,COVID-19,Y,Axial,CT,2020,Here,volumes,ct.nii.gz,,,,a CT,")
    image("nonotes.png")
    rows.append("3,7,M,33,COVID-19,Y,PA,X-ray,2020,Here,images,nonotes.png,,,,,")
    rows.append("4,8,F,34,COVID-19,Y,PA,X-ray,2020,Here,images,absent.png,,,,notes of a missing image,")
    # cp1252 curly quotes, as in some rows of the real file (not valid UTF-8)
    (root / "metadata.csv").write_bytes(("\n".join([COLUMNS, *rows]) + "\n").encode("cp1252"))
    return root


def test_frontal_xrays_with_notes_and_their_metadata(tmp_path, caplog):
    root = _clone(tmp_path / "clone")
    with caplog.at_level(logging.WARNING):
        studies = read_manifest(build_covid_manifest(root, tmp_path / "covid.csv"))
    assert len(studies) == 80  # 40 patients x 2 frontal views; lateral, CT, no-notes and missing dropped
    assert {s.view for s in studies} == {"PA", "AP", "AP Supine"}
    log = caplog.text
    assert "1 image file missing from the clone" in log and "absent.png" in log
    assert "2 not a frontal X-ray" in log and "1 no clinical notes" in log
    s = next(s for s in studies if s.study_id == "covid-p9-p9-1")
    assert s.findings == 'Patient 9 day 1: SARS opacities, "bilateral" \u201cquoted\u201d.'
    assert (
        s.meta["finding"] == "SARS"
        and s.meta["finding_group"] == "viral"
        and s.meta["sex"] == "F"
        and s.view == "AP Supine"
    )
    assert s.meta["license"] == "CC BY 4.0" and s.meta["doi"] == "10.1/x9" and s.meta["url"].endswith("/9")
    assert s.meta["patient_id"] == "9" and s.image_paths[0].endswith("images/p9-1.png")
    groups = {x.meta["finding"]: x.meta["finding_group"] for x in studies}
    assert groups == {
        "COVID-19": "covid-19",
        "COVID-19, ARDS": "covid-19",
        "Streptococcus": "bacterial",
        "No Finding": "no finding",
        "SARS": "viral",
    }
    kept = read_manifest(build_covid_manifest(root, tmp_path / "all.csv", keep_without_notes=True))
    assert len(kept) == 81 and any(x.findings == "" for x in kept)


def test_splits_are_patient_disjoint_and_seeded(tmp_path):
    root = _clone(tmp_path / "clone")

    def splits(seed: int) -> dict[str, set[str]]:
        by_patient = defaultdict(set)
        for s in read_manifest(build_covid_manifest(root, tmp_path / f"s{seed}.csv", seed=seed)):
            by_patient[s.meta["patient_id"]].add(s.split)
        return by_patient

    first, again, other = splits(0), splits(0), splits(1)
    assert all(len(v) == 1 for v in first.values())  # every patient's X-rays in one split
    assert {next(iter(v)) for v in first.values()} == {"train", "val", "test"}
    assert first == again and first != other  # the same seed gives the same split, another seed another


def test_patient_list_keeps_only_those_patients(tmp_path, capsys):
    root = _clone(tmp_path / "clone")
    listed = tmp_path / "dev.txt"
    listed.write_text("# dev patients\n3\n12\n\n40\n999\n")
    out = tmp_path / "dev.csv"
    assert main(["covid", "--root", str(root), "--patients", str(listed), "--out", str(out)]) == 0
    studies = read_manifest(out)
    assert sorted({s.meta["patient_id"] for s in studies}) == ["12", "3", "40"] and len(studies) == 6
    (tmp_path / "none.txt").write_text("999\n")
    with pytest.raises(ManifestError, match="no frontal X-ray"):
        build_covid_manifest(root, tmp_path / "x.csv", patients=tmp_path / "none.txt")
    assert main(["covid", "--root", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "metadata.csv" in capsys.readouterr().err
