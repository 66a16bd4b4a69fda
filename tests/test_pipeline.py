"""generate_report / ReportPipeline end to end on the tiny world (real modules, tiny untrained eCLIP)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from eclip_core.data.image_io import load_image
from eclip_core.errors import ImageLoadError
from eclip_core.text import split_sentences
from rag_report.pipeline import PipelineConfig, ReportPipeline, generate_report


@pytest.fixture(scope="module")
def pipe(tiny_pipeline_config):
    return ReportPipeline(tiny_pipeline_config, progress=False)


def _test_study(tiny_world):
    return next(s for s in tiny_world["studies"] if s.split == "test")


def _evidence_sentences(draft):
    """Each evidence report's sentences as a draft may state them (after draft hygiene)."""
    from rag_report.drafting.hygiene import clean_sentence

    out = {}
    for ev in draft.evidence:
        raw = split_sentences(ev.findings) + split_sentences(ev.impression)
        out[ev.study_id] = {c for c in map(clean_sentence, raw) if c is not None}
    return out


@pytest.mark.parametrize("mode", ["top1", "consensus"])
def test_extractive_modes_cite_their_evidence(pipe, tiny_world, mode):
    draft = pipe.generate(_test_study(tiny_world).image_paths[0], mode=mode, k=3)
    assert draft.mode == mode and len(draft.evidence) == 3
    sims = [ev.similarity for ev in draft.evidence]
    assert sims == sorted(sims, reverse=True) or pipe.config.diversify  # diversified lists keep rank order
    by_id = _evidence_sentences(draft)
    assert draft.provenance, "a non-empty draft"
    for p in draft.provenance:
        assert p.source_ids and all(p.sentence in by_id[sid] for sid in p.source_ids)
    assert set(draft.timings_ms) >= {"load", "embed", "retrieve", "generate", "total"}
    assert draft.models["eclip_checkpoint"] == pipe.model.checkpoint_hash
    back = json.loads(json.dumps(draft.to_dict()))
    assert back["text"].startswith("FINDINGS:") or back["text"].startswith("IMPRESSION:")


def test_own_study_excluded_when_asked(pipe, tiny_world):
    study = next(s for s in tiny_world["studies"] if s.split == "train" and s.report_text)
    plain = pipe.generate(
        study.image_paths[0],
        mode="top1",
        k=8,
    )
    excluded = pipe.generate(study.image_paths[0], mode="top1", k=8, exclude_study_ids=[study.study_id])
    assert study.study_id not in [ev.study_id for ev in excluded.evidence]
    assert len(excluded.evidence) == len(plain.evidence)


@pytest.mark.slow
def test_grounded_mode_with_the_default_quantized_llm(pipe, tiny_world):
    draft = pipe.generate(_test_study(tiny_world).image_paths[0], mode="grounded", k=3)
    assert draft.mode == "grounded" and draft.models["llm_id"]
    assert draft.findings or draft.impression
    by_id = _evidence_sentences(draft)
    for p in draft.provenance:
        assert any(p.sentence.rstrip(".").lower() in " ".join(by_id[sid]).lower() for sid in p.source_ids), p


def test_dicom_and_array_inputs(pipe, tiny_world, tmp_path):
    from eclip_core.data.dicom import write_test_dicom

    png = _test_study(tiny_world).image_paths[0]
    pixels = load_image(png)
    dcm = tmp_path / "x.dcm"
    write_test_dicom(dcm, np.round(pixels * 4095).astype(np.uint16), bits_stored=12, window=(2047.5, 4095.0))
    assert np.abs(load_image(str(dcm)) - pixels).max() < 2e-3  # the window maps the stored range back
    a = pipe.generate(str(dcm), mode="top1")
    b = pipe.generate(pixels, mode="top1")
    # The same retrieval up to the 12-bit quantisation: equal similarities, and any change of order or of
    # the last place only between reports whose similarities are that close (near ties).
    sim_a, sim_b = ({e.study_id: e.similarity for e in d.evidence} for d in (a, b))
    assert len(sim_a) == len(sim_b) >= 2 and len(sim_a.keys() & sim_b.keys()) >= len(sim_a) - 1
    assert all(abs(sim_a[s] - sim_b[s]) < 2e-3 for s in sim_a.keys() & sim_b.keys())
    for i, (x, y) in enumerate(zip(a.evidence, b.evidence)):
        if x.study_id != y.study_id:  # swapped places: they were tied within the quantisation
            assert abs(x.similarity - y.similarity) < 4e-3, (i, x.study_id, y.study_id)
    assert (
        a.evidence[0].study_id == b.evidence[0].study_id
        or abs(b.evidence[0].similarity - b.evidence[1].similarity) < 4e-3
    )


def test_bad_images_get_clear_errors_or_warnings(pipe, tiny_world, tmp_path):
    with pytest.raises(ImageLoadError, match="blank"):
        pipe.generate(np.zeros((64, 64), np.float32))
    with pytest.raises(ImageLoadError, match="blank"):
        pipe.generate(np.ones((64, 64), np.float32))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageLoadError, match="bad.png"):
        pipe.generate(str(bad))
    many = pipe.generate(_test_study(tiny_world).image_paths[0], mode="top1", k=10_000)
    assert any("k=10000" in w for w in many.warnings)


def test_out_of_distribution_warning(tiny_pipeline_config, tiny_world):
    strict = ReportPipeline(replace(tiny_pipeline_config, similarity_floor=0.999), progress=False)
    noise = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    draft = strict.generate(noise, mode="top1")
    assert any("below the corpus's usual range" in w for w in draft.warnings)


def test_generate_report_caches_the_pipeline(tiny_pipeline_config, tiny_world):
    path = _test_study(tiny_world).image_paths[0]
    a = generate_report(path, config=tiny_pipeline_config)
    b = generate_report(path, config=tiny_pipeline_config)
    assert a.findings == b.findings and a.timings_ms["load"] >= 0
    with pytest.raises(Exception, match="unknown mode"):
        ReportPipeline(PipelineConfig(model_dir="x", index_dir="y", mode="poetry"))


def test_auto_mode_is_top1_without_loading_an_llm(tiny_pipeline_config, tiny_world):
    pipe = ReportPipeline(replace(tiny_pipeline_config, mode="auto"), progress=False)
    draft = pipe.generate(_test_study(tiny_world).image_paths[0])
    assert draft.mode == "top1" and pipe.resolve_mode("auto") == "top1"
    assert not pipe._llms, "auto without a named LLM drafts without loading one"
    assert "llm_id" not in draft.models or not draft.models["llm_id"]


def test_auto_mode_with_a_named_small_llm_is_grounded(tiny_pipeline_config, tmp_path):
    from test_llm_support import make_tiny_llama

    llm_dir = str(make_tiny_llama(tmp_path / "tiny", seed=3))
    pipe = ReportPipeline(replace(tiny_pipeline_config, mode="auto"), progress=False)
    assert pipe.resolve_mode("auto", llm_dir) == "grounded"  # a few thousand parameters: under 1 B
    assert pipe.resolve_mode("consensus", llm_dir) == "consensus"
