"""Open-I report parsing and loading (schema-true fixtures + the corpus inside torchxrayvision)."""

from __future__ import annotations

import importlib.util
import tarfile

import pytest

from eclip_core.data.openi import OpenIError, OpenIReport, load_openi_reports, parse_openi_xml

XML = b"""<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <uId id="CXR77"/>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <Abstract>
            <AbstractText Label="COMPARISON">XXXX, XXXX</AbstractText>
            <AbstractText Label="INDICATION">Chest pain</AbstractText>
            <AbstractText Label="FINDINGS">Small left  pleural effusion. The XXXX XXXX are intact</AbstractText>
            <AbstractText Label="IMPRESSION">Left effusion.</AbstractText>
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH>
      <major>Pleural Effusion/left/small</major>
      <minor>Lung/hypoinflation</minor>
   </MeSH>
   <parentImage id="CXR77_IM-0001-1001"><figureId>F1</figureId></parentImage>
   <parentImage id="CXR77_IM-0001-2001"><figureId>F2</figureId></parentImage>
</eCitation>
"""


def test_parse_sections_mesh_images_and_views():
    r = parse_openi_xml(XML, {"CXR77_IM-0001-1001": "PA", "CXR77_IM-0001-2001": "LATERAL"})
    assert r.uid == "CXR77"
    assert r.findings == "Small left pleural effusion. The XXXX are intact."  # one XXXX policy
    assert r.impression == "Left effusion."
    assert r.comparison == "XXXX." and r.indication == "Chest pain."
    assert r.mesh_major == ["Pleural Effusion/left/small"] and r.mesh_minor == ["Lung/hypoinflation"]
    assert r.image_ids == ["CXR77_IM-0001-1001", "CXR77_IM-0001-2001"]
    assert r.frontal_image_ids == ["CXR77_IM-0001-1001"]
    assert r.report_text == "Small left pleural effusion. The XXXX are intact. Left effusion."


@pytest.mark.parametrize("blob", [b"<eCitation><uId", b"<eCitation><MeSH/></eCitation>"])
def test_bad_xml_raises_named_error(blob):
    with pytest.raises(OpenIError):
        parse_openi_xml(blob)


def test_load_from_folder_and_tgz(tmp_path):
    folder = tmp_path / "ecgen-radiology"
    folder.mkdir()
    (folder / "77.xml").write_bytes(XML)
    (folder / "5.xml").write_bytes(XML.replace(b"CXR77", b"CXR5"))
    (folder / "bad.xml").write_bytes(b"<broken")
    reports = load_openi_reports(folder)
    assert [r.uid for r in reports] == ["CXR5", "CXR77"]  # sorted by number, bad one skipped
    tgz = tmp_path / "r.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f"ecgen-radiology/{f.name}")
    assert [r.uid for r in load_openi_reports(tgz)] == ["CXR5", "CXR77"]
    with pytest.raises(OpenIError):
        load_openi_reports(tmp_path / "nope")


@pytest.mark.skipif(importlib.util.find_spec("torchxrayvision") is None, reason="torchxrayvision not installed")
def test_real_corpus_from_installed_package():
    reports = load_openi_reports()
    assert len(reports) == 3955
    assert len({r.uid for r in reports}) == 3955
    with_text = [r for r in reports if r.has_text]
    assert len(with_text) == 3927
    assert sum(bool(r.findings and r.impression) for r in reports) == 3419  # data-sources.md
    assert all("xxxx" not in r.report_text.replace("XXXX", "").lower() for r in with_text[:500])
    by_uid = {r.uid: r for r in reports}
    assert by_uid["CXR1"].mesh_major == ["normal"]
    assert sum(bool(r.frontal_image_ids) for r in reports) > 2000  # view positions attached
    assert isinstance(reports[0], OpenIReport)
