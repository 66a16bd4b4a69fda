"""Modality centering: stored reports and queries centred by their modality's mean (the modality gap)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eclip_core.data.manifest import Study
from rag_report.errors import RagReportError
from rag_report.index import ReportIndex, is_current_index


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _gap_world(n=60, dim=32, seed=0):
    """Paired image/report vectors sharing content u_i, each modality pushed into its own cone (offsets a, b)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, dim))
    a, b = np.zeros(dim), np.zeros(dim)
    a[0], b[1] = 20.0, 20.0  # each modality's offset dwarfs the content; the image offset b meets the
    # reports' content along axis 1, so raw cosine favours reports with large u[1] (hubs), as in CLIP
    texts = _unit(a + u)
    images = _unit(b + u + 0.3 * rng.standard_normal((n, dim)))
    studies = [Study(f"R{i:03d}", ["-"], "train", findings=f"Report {i}.") for i in range(n)]
    return texts.astype(np.float32), images.astype(np.float32), studies


def _r_at_1(index, images, studies):
    _, ids = index.search(images, 1)
    return np.mean([row[0] == s.study_id for row, s in zip(ids, studies)]), len({row[0] for row in ids})


def test_centering_undoes_a_modality_gap(tmp_path):
    texts, images, studies = _gap_world()
    raw = ReportIndex.build_from_vectors(texts, studies, tmp_path / "raw", checkpoint_hash="gap")
    centred = ReportIndex.build_from_vectors(
        texts, studies, tmp_path / "c", checkpoint_hash="gap", image_mean=images.mean(axis=0)
    )
    assert not raw.centered and centred.centered
    r_raw, distinct_raw = _r_at_1(raw, images, studies)
    r_c, distinct_c = _r_at_1(centred, images, studies)
    assert r_c >= 0.8 and r_c > r_raw + 0.3, (r_raw, r_c)
    assert distinct_c > distinct_raw

    # Reload keeps the means; a stored report queried as text finds itself with cosine 1.
    again = ReportIndex.load(tmp_path / "c")
    np.testing.assert_allclose(again.manifest["centering"]["text_mean"], texts.mean(axis=0), atol=1e-6)
    scores, ids = again.search(texts[:5], 1, modality="text")
    assert [r[0] for r in ids] == [s.study_id for s in studies[:5]]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    with pytest.raises(RagReportError, match="modality"):
        again.to_index_space(texts[:1], "audio")


def test_build_calibrates_the_image_mean_on_the_corpus_xrays(tiny_world):
    from eclip_core.model import EClip

    model = EClip.from_pretrained(tiny_world["model_dir"]).eval()
    index = ReportIndex.load(tiny_world["index_dir"], model=model)
    train = [s for s in tiny_world["studies"] if s.split == "train" and s.report_text]
    assert index.centered and is_current_index(tiny_world["index_dir"])
    expected = model.embed_images([s.image_paths[0] for s in train], progress=False).mean(axis=0)
    np.testing.assert_allclose(index.manifest["centering"]["image_mean"], expected, atol=1e-5)
    # Stored vectors are the centred, re-normalised report embeddings.
    t = model.embed_texts([s.report_text for s in train], progress=False)
    centred = _unit(t - t.mean(axis=0))
    np.testing.assert_allclose(index.vectors([train[3].study_id])[0], centred[3], atol=1e-5)


def test_corpus_without_readable_xrays_stays_uncentred(tmp_path, caplog):
    from eclip_core.model import EClip

    model = EClip.from_config("eclip-tiny").eval()
    studies = [Study(f"S{i}", [str(tmp_path / f"missing{i}.png")], "train", findings=f"Finding {i}.") for i in range(6)]
    index = ReportIndex.build(model, studies, tmp_path / "idx", progress=False)
    assert not index.centered and index.manifest["centering"] is None
    assert is_current_index(tmp_path / "idx")  # uncentred by necessity, recorded as such
    assert "uncentred" in caplog.text


def test_an_index_from_before_centering_is_flagged_and_still_searches(tmp_path):
    texts, images, studies = _gap_world(n=10)
    ReportIndex.build_from_vectors(texts, studies, tmp_path / "old", checkpoint_hash="gap")
    manifest = tmp_path / "old" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["centering"]
    manifest.write_text(json.dumps(data))
    assert not is_current_index(tmp_path / "old")
    old = ReportIndex.load(tmp_path / "old")
    _, ids = old.search(texts[:3], 1, modality="text")
    assert [r[0] for r in ids] == [s.study_id for s in studies[:3]]


def test_llamaindex_own_text_query_lands_in_the_centred_space(tiny_world):
    """A query through LlamaIndex's own retriever ranks like ReportIndex.search(..., modality="text")."""
    from llama_index.core.schema import QueryBundle

    from eclip_core.model import EClip

    model = EClip.from_pretrained(tiny_world["model_dir"]).eval()
    index = ReportIndex.load(tiny_world["index_dir"], model=model)
    query = "Moderate right pleural effusion. Heart size is enlarged."
    scores, ids = index.search(model.embed_texts([query], progress=False), 5, modality="text")
    hits = index.vector_index.as_retriever(similarity_top_k=5).retrieve(QueryBundle(query))
    assert [h.node.node_id for h in hits] == ids[0]
    np.testing.assert_allclose([h.score for h in hits], scores[0], atol=1e-5)
    # The raw (uncentred) query would rank differently from the centred one on this index.
    raw = _unit(model.embed_texts([query], progress=False))
    assert not np.allclose(index.to_index_space(raw, "text"), raw, atol=1e-3)


def test_typicality_flags_an_image_unlike_the_corpus_xrays(tmp_path):
    """Corpus X-rays cluster; the floor is the 1st percentile of their leave-one-out k-NN typicality."""
    from rag_report.index import TYPICALITY_K, typicality_scores

    texts, images, studies = _gap_world(n=60)
    index = ReportIndex.build_from_vectors(texts, studies, tmp_path / "t", checkpoint_hash="gap", image_sample=images)
    info = index.manifest["typicality"]
    assert info["k"] == TYPICALITY_K and info["sample"] == len(images)
    # The floor is what a hand computation of leave-one-out k-th nearest cosines gives.
    sims = _unit(images) @ _unit(images).T
    np.fill_diagonal(sims, -np.inf)
    kth = np.sort(sims, axis=1)[:, -TYPICALITY_K]
    assert info["floor"] == pytest.approx(float(np.percentile(kth, 1.0)), abs=1e-6)
    np.testing.assert_allclose(
        typicality_scores(_unit(images), _unit(images), TYPICALITY_K, leave_one_out=True), kth, atol=1e-6
    )
    # New images drawn like the corpus's are typical; ones pointing elsewhere are not.
    _, same, _ = _gap_world(n=60, seed=1)
    other = _unit(np.random.default_rng(5).standard_normal((5, images.shape[1])))
    same = _unit(same)
    reloaded = ReportIndex.load(tmp_path / "t")
    assert np.mean(reloaded.typicality(same) >= info["floor"]) >= 0.9  # the floor is a 1st percentile
    assert (reloaded.typicality(other) < info["floor"]).all()
    # The sample also gives the image mean used for centering.
    np.testing.assert_allclose(reloaded.manifest["centering"]["image_mean"], _unit(images).mean(axis=0), atol=1e-6)
    # An index without a sample has no typicality.
    plain = ReportIndex.build_from_vectors(texts, studies, tmp_path / "p", checkpoint_hash="gap")
    assert plain.typicality(images[:1]) is None and plain.manifest["typicality"] is None


def test_pipeline_warns_on_an_atypical_image(tiny_pipeline_config, tiny_world):
    from dataclasses import replace

    from rag_report.pipeline import ReportPipeline

    pipe = ReportPipeline(tiny_pipeline_config, progress=False)
    assert pipe.typicality_floor == pipe.index.manifest["typicality"]["floor"]
    train = [s for s in tiny_world["studies"] if s.split == "train"]
    typical = pipe.generate(train[0].image_paths[0], mode="top1")
    assert not any("unlike the corpus X-rays" in w for w in typical.warnings)
    expected = float(pipe.index.typicality(pipe.model.embed_images([train[0].image_paths[0]], progress=False))[0])
    assert typical.typicality == pytest.approx(expected) and typical.typicality >= typical.typicality_floor
    assert typical.to_dict()["typicality_floor"] == pipe.typicality_floor
    # Images that are not X-rays fall under the index's own floor (no threshold forced here).
    yy, xx = np.mgrid[0:256, 0:256]
    for picture in (
        (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8),
        (((yy // 32 + xx // 32) % 2) * 255).astype(np.uint8),
    ):
        draft = pipe.generate(picture, mode="top1")
        assert any("unlike the corpus X-rays" in w for w in draft.warnings), draft.warnings
        assert draft.typicality < draft.typicality_floor
    # A caller's floor overrides the index's.
    strict = ReportPipeline(replace(tiny_pipeline_config, typicality_floor=1.01), progress=False)
    flagged = strict.generate(train[0].image_paths[0], mode="top1")
    assert any("unlike the corpus X-rays" in w for w in flagged.warnings)
