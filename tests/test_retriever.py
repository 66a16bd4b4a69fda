"""EClipRetriever: text and image queries, own-study exclusion, k > corpus, dedupe, diversification,
and the standard LlamaIndex retrieve(QueryBundle) protocol."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from llama_index.core.schema import QueryBundle
from PIL import Image

from eclip_core.data.manifest import Study
from eclip_core.model import EClip
from rag_report.errors import EmptyCorpusError, IndexMismatchError, RagReportError
from rag_report.index import ReportIndex
from rag_report.retrieval.retriever import EClipRetriever, RetrievalWarning

SENTENCES = [
    "The heart is normal in size.",
    "Mild cardiomegaly.",
    "Small left pleural effusion.",
    "No pneumothorax.",
    "Right lower lobe opacity.",
    "Lungs are clear.",
    "Degenerative spine.",
]


def make_corpus() -> list[Study]:
    studies = [
        Study(
            f"S{i:03d}",
            [f"img{i}.png"],
            "train",
            findings=f"{SENTENCES[i % 7]} {SENTENCES[(i * 3) % 7]} Case {i}.",
            impression="No acute disease." if i % 2 else "Cardiomegaly.",
            labels={"Cardiomegaly": float(i % 2 == 0)},
        )
        for i in range(40)
    ]
    # two reports whose text differs only in case / spacing / punctuation from S000
    base = studies[0]
    studies.append(Study("DUP1", ["d1.png"], "train", findings=base.findings.upper(), impression=base.impression))
    studies.append(
        Study(
            "DUP2",
            ["d2.png"],
            "train",
            findings=base.findings.replace(" ", "  ").rstrip("."),
            impression=base.impression,
        )
    )
    return studies


@pytest.fixture(scope="module")
def tiny_model_seed() -> int:
    """This module's tiny_model (tests/conftest.py) is drawn under seed 1."""
    return 1


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def retriever(tiny_model, corpus, tmp_path_factory):
    index = ReportIndex.build(tiny_model, corpus, tmp_path_factory.mktemp("r") / "idx", progress=False)
    return EClipRetriever(index, tiny_model)


def test_text_query_retrieves_identical_report_first(retriever, corpus):
    for s in corpus[5:12]:
        got = retriever.retrieve_text(s.report_text, k=3)
        assert got[0].study_id == s.study_id and got[0].rank == 1
        assert got[0].similarity == pytest.approx(1.0, abs=1e-4)
        assert got[0].text == s.report_text and got[0].findings == s.findings
        sims = [r.similarity for r in got]
        assert sims == sorted(sims, reverse=True) and [r.rank for r in got] == [1, 2, 3]


def test_llamaindex_protocol_matches_retrieve_text(retriever, corpus):
    q = corpus[9].report_text
    via_str = retriever.retrieve(q)
    via_bundle = retriever.retrieve(
        QueryBundle(query_str="", embedding=retriever.index.embed_model.get_query_embedding(q))
    )
    ours = retriever.retrieve_text(q, k=retriever.k)
    assert [n.node.node_id for n in via_str] == [n.node.node_id for n in via_bundle] == [r.study_id for r in ours]
    assert via_str[0].score == pytest.approx(ours[0].similarity)


def test_exclude_own_study(retriever, corpus):
    s = corpus[6]
    got = retriever.retrieve_text(s.report_text, k=5, exclude_study_ids=[s.study_id])
    assert len(got) == 5 and s.study_id not in [r.study_id for r in got]


def test_k_larger_than_corpus_warns_and_returns_all(retriever, corpus):
    with pytest.warns(RetrievalWarning, match="k=100"):
        got = retriever.retrieve_text("Mild cardiomegaly.", k=100, dedupe=False)
    assert sorted(r.study_id for r in got) == sorted(s.study_id for s in corpus)
    with pytest.warns(RetrievalWarning):
        excl = retriever.retrieve_text("x", k=100, dedupe=False, exclude_study_ids=["S001", "S002"])
    assert len(excl) == len(corpus) - 2
    with pytest.raises(EmptyCorpusError):
        retriever.retrieve_text("x", k=1, exclude_study_ids=[s.study_id for s in corpus])
    with pytest.raises(RagReportError, match="k must be"):
        retriever.retrieve_text("x", k=0)


def test_dedupe_removes_identical_normalised_text(retriever, corpus):
    q = corpus[0].report_text
    raw = retriever.retrieve_text(q, k=3, dedupe=False)
    assert {r.study_id for r in raw} == {"S000", "DUP1", "DUP2"}  # the copies are the nearest neighbours
    deduped = retriever.retrieve_text(q, k=3)
    ids = [r.study_id for r in deduped]
    assert ids[0] in {"S000", "DUP1", "DUP2"} and len(set(ids) & {"S000", "DUP1", "DUP2"}) == 1 and len(ids) == 3
    # dedupe + exclusion widen the search window until k distinct reports are found
    assert len(retriever.retrieve_text(q, k=38, exclude_study_ids=["S003"])) == 38


@pytest.mark.parametrize("method", ["kmeans", "mmr"])
def test_diversified_retrieval(retriever, corpus, method):
    q = corpus[4].report_text
    got = retriever.retrieve_text(q, k=5, candidates=30, diversify=method)
    assert len({r.study_id for r in got}) == 5
    sims = [r.similarity for r in got]
    assert sims == sorted(sims, reverse=True)
    pool = {r.study_id for r in retriever.retrieve_text(q, k=30)}
    assert {r.study_id for r in got} <= pool  # chosen from the top-`candidates` pool
    again = retriever.retrieve_text(q, k=5, candidates=30, diversify=method)
    assert [r.study_id for r in again] == [r.study_id for r in got]  # seeded / deterministic


def test_image_sources_numpy_png_dicom(retriever, tiny_model, tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    yy, xx = np.mgrid[0:96, 0:80]
    img16 = ((np.sin(xx / 7.0) + np.cos(yy / 11.0) + 2) / 4 * 4000).astype(np.uint16)
    png = tmp_path / "x.png"
    Image.fromarray((img16 / 4000 * 255).astype(np.uint8)).save(png)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "CR"
    ds.set_pixel_data(img16, photometric_interpretation="MONOCHROME2", bits_stored=12)
    dcm = tmp_path / "x.dcm"
    ds.save_as(dcm, enforce_file_format=True)
    for source in (img16.astype(np.float32) / 4000, str(png), dcm):
        expected = retriever.retrieve_vector(tiny_model.embed_images([source], progress=False)[0], k=4)
        got = retriever.retrieve_image(source, k=4)
        assert [r.study_id for r in got] == [r.study_id for r in expected]
        assert all(-1.0001 <= r.similarity <= 1.0001 for r in got)


def test_retriever_refuses_other_checkpoint(retriever):
    other = EClip.from_config("eclip-tiny")
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    with pytest.raises(IndexMismatchError, match=retriever.index.manifest["eclip_checkpoint_hash"]):
        EClipRetriever(retriever.index, other)


def test_bad_queries(retriever):
    with pytest.raises(RagReportError, match="dim"):
        retriever.retrieve_vector(np.ones(3, dtype=np.float32))
    with pytest.raises(RagReportError, match="zero"):
        retriever.retrieve_vector(np.zeros(retriever.index.dim, dtype=np.float32))
    with pytest.raises(RagReportError, match="unknown diversify"):
        retriever.retrieve_text("x", diversify="random")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an ordinary query warns about nothing
        assert len(retriever.retrieve_text("Lungs are clear.", k=5)) == 5
