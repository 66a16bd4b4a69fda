"""ReportIndex: build -> persist -> reload gives the same top-k; what is embedded is what is stored;
a different checkpoint, an incomplete folder and an empty corpus are refused with clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from llama_index.core.schema import MetadataMode

from eclip_core.data.manifest import Study
from eclip_core.model import EClip
from rag_report.errors import EmptyCorpusError, IndexMismatchError, IndexNotFoundError, RagReportError
from rag_report.index import REQUIRED_FILES, ReportIndex
from rag_report.retrieval.embedding import NoModelError

FINDINGS = [
    "The heart is normal in size.",
    "Mild cardiomegaly.",
    "Small left pleural effusion.",
    "No pneumothorax.",
    "Right lower lobe opacity.",
    "Lungs are clear.",
]
IMPRESSIONS = ["No acute disease.", "Possible pneumonia.", "Stable chest.", "Heart failure."]


def make_corpus(n: int = 48) -> list[Study]:
    studies = []
    for i in range(n):
        f = f"{FINDINGS[i % 6]} {FINDINGS[(i // 6) % 6]} Case {i}."
        studies.append(
            Study(
                f"S{i:03d}",
                [f"img{i}.png"],
                "train",
                findings=f,
                impression=IMPRESSIONS[i % 4],
                view="PA",
                labels={"Cardiomegaly": float(i % 2)},
                meta={"simulated": True},
            )
        )
    return studies


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def flat(tiny_model, corpus, tmp_path_factory):
    return ReportIndex.build(
        tiny_model, corpus, tmp_path_factory.mktemp("idx") / "flat", progress=False, corpus_name="unit"
    )


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivfpq"])
def test_persist_reload_same_topk(tiny_model, corpus, tmp_path, index_type):
    built = ReportIndex.build(
        tiny_model, corpus, tmp_path / index_type, index_type=index_type, batch_size=16, progress=False
    )
    queries = tiny_model.embed_texts([s.report_text for s in corpus[:10]], progress=False)
    s1, ids1 = built.search(queries, 5)
    reloaded = ReportIndex.load(tmp_path / index_type, model=tiny_model)
    s2, ids2 = reloaded.search(queries, 5)
    assert ids1 == ids2
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    # each report is its own nearest neighbour, with cosine 1 (every index type re-scores exactly)
    assert [row[0] for row in ids2] == [s.study_id for s in corpus[:10]]
    np.testing.assert_allclose(s2[:, 0], 1.0, atol=1e-4)
    assert reloaded.manifest["index_type"] == index_type and len(reloaded) == len(corpus)


def test_embeds_exactly_the_stored_text(flat, tiny_model, corpus):
    s = corpus[7]
    node = flat.node(s.study_id)
    assert node.get_content(metadata_mode=MetadataMode.EMBED) == s.report_text == node.text
    assert node.get_content(metadata_mode=MetadataMode.LLM) == s.report_text
    assert node.metadata["labels"] == {"Cardiomegaly": 1.0} and node.metadata["simulated"] is True
    expected = tiny_model.embed_texts([s.report_text], progress=False)[0]
    np.testing.assert_allclose(flat.vectors([s.study_id])[0], expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(flat.vectors([c.study_id for c in corpus]), axis=1), 1.0, atol=1e-5)


def test_manifest_records_model_and_corpus(flat, tiny_model, corpus):
    m = json.loads((flat.directory / "manifest.json").read_text())
    assert m["eclip_checkpoint_hash"] == tiny_model.checkpoint_hash
    assert m["embed_dim"] == tiny_model.embed_dim == flat.dim
    assert m["count"] == len(corpus) and m["corpus_name"] == "unit" and m["normalization"] == "l2"
    assert m["index_type"] == "flat" and m["build_time_utc"] and "faiss-cpu" in m["versions"]
    assert len(m["index_id"]) == 16
    for name in REQUIRED_FILES:
        assert (flat.directory / name).is_file()


def test_mismatched_checkpoint_is_refused_with_the_needed_hash(flat, tiny_model):
    other = EClip.from_config("eclip-tiny")
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    assert other.checkpoint_hash != tiny_model.checkpoint_hash
    with pytest.raises(IndexMismatchError) as err:
        ReportIndex.load(flat.directory, model=other)
    assert tiny_model.checkpoint_hash in str(err.value) and other.checkpoint_hash in str(err.value)


def test_missing_and_incomplete_folders(flat, tmp_path):
    with pytest.raises(IndexNotFoundError, match="does not exist"):
        ReportIndex.load(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")
    with pytest.raises(IndexNotFoundError, match="docstore.json"):
        ReportIndex.load(broken)


def test_empty_corpus_and_duplicate_ids(tiny_model, corpus, tmp_path):
    with pytest.raises(EmptyCorpusError, match="no studies with report text"):
        ReportIndex.build(tiny_model, [], tmp_path / "e", progress=False)
    blank = [Study("B1", ["x.png"], "train")]
    with pytest.raises(EmptyCorpusError):
        ReportIndex.build(tiny_model, blank, tmp_path / "e", progress=False)
    assert not (tmp_path / "e").exists()
    with pytest.raises(RagReportError, match="duplicate study_id"):
        ReportIndex.build(tiny_model, corpus[:3] + corpus[:1], tmp_path / "d", progress=False)
    with pytest.raises(RagReportError, match="unknown index_type"):
        ReportIndex.build(tiny_model, corpus, tmp_path / "u", index_type="lsh", progress=False)


def test_load_without_model_searches_vectors_only(flat, tiny_model, corpus):
    idx = ReportIndex.load(flat.directory)
    q = tiny_model.embed_texts([corpus[3].report_text], progress=False)
    assert idx.search(q, 1)[1] == [[corpus[3].study_id]]
    with pytest.raises(NoModelError, match="without an eCLIP model"):
        idx.embed_model.embed_texts(["x"])


def test_rebuild_replaces_folder_atomically(tiny_model, corpus, tmp_path):
    ReportIndex.build(tiny_model, corpus, tmp_path / "i", progress=False)
    again = ReportIndex.build(tiny_model, corpus[:5], tmp_path / "i", progress=False)
    assert len(again) == 5 and len(ReportIndex.load(tmp_path / "i", model=tiny_model)) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["i"]  # no temp folders left behind
