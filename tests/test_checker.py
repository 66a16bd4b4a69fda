"""The draft checker on real Open-I sentences (the package's reports, read at test time): each rule on the
defects quoted in issue 26, and every draft of the test split through the checker with 0 defects left."""

from __future__ import annotations

import json
from types import SimpleNamespace as R

import numpy as np
import pytest

from eclip_core.labeler import sentence_observations
from eclip_core.text import split_sentences
from eval.report_gen.draft_audit import KINDS, audit_draft, sentence_defects
from rag_report.drafting.checker import CheckerConfig, CheckThresholds, check_draft, choose_thresholds
from rag_report.drafting.consensus import SourcedSentence
from rag_report.drafting.drafters import DraftSettings, draft_reports
from rag_report.drafting.hygiene import clean_sentence


@pytest.fixture(scope="module")
def reports():
    from eclip_core.data.openi import load_openi_reports

    return {r.uid: r for r in load_openi_reports()}


def corpus_sentence(reports, uid: str, section: str, text: str) -> str:
    """``text`` as split_sentences gives it from report ``uid`` (so the test reads the real corpus)."""
    found = split_sentences(getattr(reports[uid], section))
    assert text in found, (uid, found)
    return text


def evidence(report, similarity: float = 0.9):
    """An Open-I report as a retrieved report."""
    return R(study_id=report.uid, similarity=similarity, findings=report.findings, impression=report.impression)


def S(text: str, section: str = "findings", source: str = "A") -> SourcedSentence:
    return SourcedSentence(text, section, [source])


def check(sentences, evidence=(), **kw):
    return check_draft(sentences, list(evidence), observations=sentence_observations, **kw)


# ------------------------------------------------------------------ hygiene gains
def test_comparison_words_are_rewritten_or_dropped(reports):
    again = corpus_sentence(reports, "CXR101", "findings", "The heart is again mildly enlarged.")
    elevation = corpus_sentence(
        reports, "CXR2957", "findings", "There is again mild elevation of the right hemidiaphragm."
    )
    assert clean_sentence(again) == "The heart is mildly enlarged."
    assert clean_sentence(elevation) == "There is mild elevation of the right hemidiaphragm."
    for uid, text in (
        ("CXR978", "Left subclavian ICD is unchanged in position."),
        ("CXR101", "Mediastinal contours are stable."),
    ):
        assert clean_sentence(corpus_sentence(reports, uid, "findings", text)) is None
    kept, checks = check([S(again), S(elevation)])
    assert [s.text for s in kept] == [
        "The heart is mildly enlarged.",
        "There is mild elevation of the right hemidiaphragm.",
    ]
    assert [c.action for c in checks] == ["rewritten", "rewritten"]


def test_no_sentence_of_the_corpus_keeps_a_defect(reports):
    """Every sentence hygiene lets into a draft, over the whole corpus, passes the audit's own detectors."""
    from rag_report.drafting.candidates import normalize_sentence as normalise

    kept = 0
    for report in reports.values():
        for section in ("findings", "impression"):
            for raw in split_sentences(getattr(report, section)):
                clean = clean_sentence(normalise(raw))
                if clean is not None:
                    kept += 1
                    assert sentence_defects(clean) == [], (report.uid, raw, clean)
    assert kept > 10_000


def test_list_numbering_goes(reports):
    numbered = split_sentences(reports["CXR2532"].impression)
    assert numbered[:2] == ["1.", "Cardiomegaly, question small bilateral pleural effusions 2."]
    assert clean_sentence(numbered[0]) is None
    assert clean_sentence(numbered[1]) == "Cardiomegaly, question small bilateral pleural effusions."
    assert clean_sentence("1.There is a left basilar airspace opacity.") == "There is a left basilar airspace opacity."
    assert clean_sentence("Compression deformity of T 12.") == "Compression deformity of T 12."  # anatomy stays


def test_cut_sentences_go(reports):
    cut = corpus_sentence(reports, "CXR650", "findings", "No cavitary lesion to suggest. active tuberculosis.")
    assert clean_sentence(cut) is None
    _, checks = check([S(cut), S("There is no focal air space opacity to suggest.")])
    assert [(c.action, c.reason) for c in checks] == [("dropped", "cut sentence")] * 2
    assert clean_sentence("There is no focal air space opacity to suggest a pneumonia.") is not None


def test_views_not_given_and_other_regions_go(reports):
    lateral = corpus_sentence(
        reports,
        "CXR2532",
        "findings",
        "Stable enlargement of the cardiac silhouette, lateral view interlobar fissural thickening.",
    )
    stent = corpus_sentence(reports, "CXR650", "findings", "Limited evaluation of the aorto iliac stent.")
    _, checks = check([S(lateral), S(stent)])
    assert [(c.action, c.reason) for c in checks] == [
        ("dropped", "a view not given"),
        ("dropped", "another body region"),
    ]
    assert clean_sentence("Density in the lateral aspect of the right lung base.") is not None  # anatomy, not a view


# ------------------------------------------------------------------ the image
THRESHOLDS = CheckThresholds({"Cardiomegaly": 0.05}, {"Pleural Effusion": 0.9}, "test")


def test_a_sentence_the_image_contradicts_is_replaced_from_the_evidence(reports):
    a, b = evidence(reports["CXR3690"]), evidence(reports["CXR1"], 0.8)  # "The heart is again enlarged." / normal
    draft = draft_reports("top1", [a, b], DraftSettings(normal_statements=0, finding_statements=0, check=False))
    assert "The heart is enlarged." in [s.text for s in draft.sentences]
    probs = {"Cardiomegaly": 0.01, "Pleural Effusion": 0.2}
    kept, checks = check(draft.sentences, [a, b], probabilities=probs, config=CheckerConfig(THRESHOLDS))
    done = next(c for c in checks if c.sentence == "The heart is enlarged.")
    assert done.action == "replaced" and done.source_ids == ["CXR1"] and "Cardiomegaly" in done.reason
    assert done.result == "The cardiac silhouette and mediastinum size are within normal limits."
    assert sentence_observations(done.result)["Cardiomegaly"] == 0.0
    # a denial the image contradicts: no evidence sentence states an effusion -> dropped
    kept, checks = check(
        draft.sentences, [a, b], probabilities={"Pleural Effusion": 0.97}, config=CheckerConfig(THRESHOLDS)
    )
    gone = next(c for c in checks if c.sentence == "No pleural effusion or pneumothorax is seen.")
    assert gone.action == "dropped" and gone.reason.startswith("denies Pleural Effusion")
    # the same probabilities inside the thresholds keep everything
    _, checks = check(
        draft.sentences,
        [a, b],
        probabilities={"Cardiomegaly": 0.5, "Pleural Effusion": 0.5},
        config=CheckerConfig(THRESHOLDS),
    )
    assert all(c.action == "kept" for c in checks)


def test_choose_thresholds_bounds_the_true_statements_removed_on_validation():
    rng = np.random.default_rng(0)
    y = (rng.random((2000, 14)) < 0.2).astype(float)
    p = np.clip(0.3 * y + rng.random((2000, 14)) * 0.7, 0, 1)
    t = choose_thresholds(p, y, miss=0.02)
    for j, name in enumerate(("No Finding", "Cardiomegaly")):
        pos, neg = p[y[:, j] == 1, j], p[y[:, j] == 0, j]
        assert (pos < t.assert_floor[name]).mean() <= 0.02 and (neg > t.deny_ceiling[name]).mean() <= 0.02
        assert (pos < t.assert_floor[name] + 0.05).mean() > 0.0  # not trivially low
    few = choose_thresholds(p[:20], y[:20], min_count=10)
    assert all(name not in few.assert_floor for name in ("Pneumothorax",)) or (y[:20, 9] == 1).sum() >= 10


# ------------------------------------------------------------------ impression and consistency
def test_impression_states_only_what_findings_state_or_the_image_predicts(reports):
    findings = corpus_sentence(
        reports, "CXR2532", "findings", "Interstitial opacities greatest in the central lungs and bases."
    )
    impression = clean_sentence(split_sentences(reports["CXR2532"].impression)[1])
    draft = [S(findings), S(impression, "impression")]
    kept, checks = check(draft, predicted={"Cardiomegaly": True, "Pleural Effusion": False})
    assert [s.text for s in kept] == [findings]
    assert checks[1].action == "dropped" and "Pleural Effusion" in checks[1].reason
    kept, _ = check(draft, predicted={"Cardiomegaly": True, "Pleural Effusion": True})
    assert len(kept) == 2
    # the findings stating it is enough (a related observation too: opacity for pneumonia)
    kept, _ = check([S("Cardiomegaly. Small bilateral pleural effusions."), S(impression, "impression")], predicted={})
    assert len(kept) == 2
    pneumonia = [S("Right lower lobe airspace opacity."), S("Right lower lobe pneumonia.", "impression")]
    assert len(check(pneumonia, predicted={})[0]) == 2
    assert len(check(pneumonia[1:], predicted={})[0]) == 0  # neither stated nor predicted
    # without label classifiers there is nothing to check against: the impression stays, and a findings
    # sentence that denies it goes (the draft agrees with itself)
    assert len(check(pneumonia[1:])[0]) == 1
    kept, checks = check([S("No pleural effusion."), S(impression, "impression")])
    assert [s.text for s in kept] == [impression] and "Pleural Effusion" in checks[0].reason


def test_a_normal_statement_may_not_deny_what_the_draft_states(reports):
    """The issue's example: the next report's normal statement beside findings of congestion and an
    enlarged silhouette."""
    congested = evidence(
        next(r for r in reports.values() if "Pulmonary vascular congestion again noted." in r.findings)
    )
    normal = next(
        r
        for r in reports.values()
        if "The heart size and pulmonary vascularity appear within normal limits." in r.findings
    )
    normal = evidence(normal, 0.8)
    draft = draft_reports("top1", [congested, normal], DraftSettings(check=False, finding_statements=0))
    texts = [s.text for s in draft.sentences]
    assert "Enlarged cardiomediastinal silhouette." in texts
    assert "The heart size and pulmonary vascularity appear within normal limits." in texts  # the defect
    kept, checks = check(draft.sentences, [congested, normal])
    assert "The heart size and pulmonary vascularity appear within normal limits." not in [s.text for s in kept]
    why = next(c for c in checks if c.sentence.startswith("The heart size and pulmonary"))
    assert why.action == "dropped" and "Heart Size" in why.reason
    assert "Enlarged cardiomediastinal silhouette." in [s.text for s in kept]


def test_a_normal_study_statement_goes_beside_a_finding(reports):
    normal = next(r for r in reports.values() if "Normal chest." in split_sentences(r.impression))
    draft = [S("Mild cardiomegaly."), S("Normal chest.", "impression", normal.uid)]
    kept, checks = check(draft, predicted={"Cardiomegaly": True})
    assert [s.text for s in kept] == ["Mild cardiomegaly."] and "Abnormality" in checks[1].reason
    # "no acute disease" may stand beside a chronic finding; a support device is no abnormality
    assert len(check([S("Mild cardiomegaly."), S("No acute disease.", "impression")], predicted={})[0]) == 2
    assert len(check([S("Right IJ catheter tip in the SVC."), S("Normal chest.", "impression")], predicted={})[0]) == 2


def test_checks_travel_in_the_draft_report_json():
    from rag_report.report import DraftReport, SentenceCheck

    draft = DraftReport(
        "Cardiomegaly.",
        "",
        [],
        [],
        {},
        {},
        {},
        "top1",
        checks=[SentenceCheck("Stable cardiomegaly.", "findings", "rewritten", "hygiene", "Cardiomegaly.", ["A"])],
    )
    back = json.loads(draft.to_json())
    assert back["checks"] == [
        {
            "sentence": "Stable cardiomegaly.",
            "section": "findings",
            "action": "rewritten",
            "reason": "hygiene",
            "result": "Cardiomegaly.",
            "source_ids": ["A"],
        }
    ]


def test_every_mode_goes_through_the_checker():
    a = R(
        study_id="A",
        similarity=0.9,
        findings="The heart is again enlarged. Limited evaluation of the aorto iliac stent.",
        impression="1. Cardiomegaly and small bilateral pleural effusions 2.",
    )
    for mode in ("top1", "consensus"):
        out = draft_reports(mode, [a], DraftSettings(predicted={"Pleural Effusion": False, "Cardiomegaly": True}))
        assert [s.text for s in out.sentences] == ["The heart is enlarged."], mode
        assert {c.action for c in out.checks} <= {"kept", "rewritten", "dropped"} and out.checks


# ------------------------------------------------------------------ the whole test split
def test_every_draft_of_the_test_split_passes_the_audit(reports):
    """Every test-split study of the default corpus, drafted top-1 (with its completions) and by consensus
    from the 5 train reports whose labels best match its own (a perfect image model: the study's labels are
    its predicted probabilities), has 0 defects of each kind after the checker."""
    from eclip_core.data.phantom import assign_split
    from eclip_core.labeler import label_report
    from eclip_core.labels import CHEXPERT_OBSERVATIONS
    from eclip_core.text import join_report

    with_text = [r for r in reports.values() if r.has_text]
    split = {r.uid: assign_split(r.uid, 0) for r in with_text}
    rows = {r.uid: label_report(join_report(r.findings, r.impression)) for r in with_text}
    train = [r for r in with_text if split[r.uid] == "train"]
    test = [r for r in with_text if split[r.uid] == "test"]
    assert len(test) > 300
    y_train = np.array([[rows[r.uid][o] == 1.0 for o in CHEXPERT_OBSERVATIONS] for r in train], dtype=float)
    totals = dict.fromkeys(KINDS, 0)
    for study in test:
        y = np.array([rows[study.uid][o] == 1.0 for o in CHEXPERT_OBSERVATIONS], dtype=float)
        nearest = np.argsort(-(y_train @ y - 0.5 * np.abs(y_train - y).sum(1)), kind="stable")[:5]
        evidence = [
            R(
                study_id=train[i].uid,
                similarity=1.0 - 0.1 * n,
                findings=train[i].findings,
                impression=train[i].impression,
            )
            for n, i in enumerate(nearest)
        ]
        predicted = {o: bool(v) for o, v in zip(CHEXPERT_OBSERVATIONS, y)}
        probabilities = {o: 0.99 if v else 0.01 for o, v in zip(CHEXPERT_OBSERVATIONS, y)}
        settings = DraftSettings(
            predicted=predicted,
            probabilities=probabilities,
            checker=CheckerConfig(CheckThresholds({o: 0.02 for o in predicted}, {o: 0.98 for o in predicted})),
        )
        for mode in ("top1", "consensus"):
            out = draft_reports(mode, evidence, settings)
            for kind, n in audit_draft(out.findings, out.impression, predicted).items():
                totals[kind] += n > 0
                if n:
                    print(mode, study.uid, kind, out.findings, "|", out.impression)
    assert totals == dict.fromkeys(KINDS, 0)


def test_thresholds_belong_to_the_index(tmp_path):
    from rag_report.drafting.checker import (
        DEFAULT_THRESHOLDS,
        THRESHOLDS_FILE,
        index_thresholds,
        load_thresholds,
        save_thresholds,
    )
    from rag_report.errors import RagReportError

    assert index_thresholds(tmp_path, default_bundle=True) == DEFAULT_THRESHOLDS
    assert index_thresholds(tmp_path, default_bundle=False).assert_floor == {}
    save_thresholds(THRESHOLDS, tmp_path / THRESHOLDS_FILE)
    assert load_thresholds(tmp_path / THRESHOLDS_FILE) == THRESHOLDS
    assert index_thresholds(tmp_path, default_bundle=True) == THRESHOLDS  # the index's own win
    (tmp_path / THRESHOLDS_FILE).write_text("{not json")
    with pytest.raises(RagReportError, match="checker_thresholds.json"):
        index_thresholds(tmp_path, default_bundle=False)


def test_llm_drafts_pass_the_checker(tmp_path, reports):
    """Grounded and free drafts (a tiny random local LLM: its free text is noise) come out of the checker
    with every sentence clean and no defect the audit finds."""
    from test_llm_support import make_tiny_llama

    from rag_report.llm import LLMSpec, load_llm

    llm = load_llm(LLMSpec(path=str(make_tiny_llama(tmp_path / "llm", seed=3)), quantization="none", device="cpu"))
    evidence_reports = [evidence(reports[uid], 0.9 - 0.1 * i) for i, uid in enumerate(("CXR2532", "CXR650", "CXR101"))]
    predicted = {"Cardiomegaly": True, "Pleural Effusion": False}
    for mode in ("grounded", "free"):
        out = draft_reports(mode, evidence_reports, DraftSettings(llm=llm, predicted=predicted, max_new_tokens=40))
        assert out.checks or not out.sentences
        for s in out.sentences:
            assert clean_sentence(s.text) == s.text and sentence_defects(s.text) == [], (mode, s.text)
        assert audit_draft(out.findings, out.impression, predicted) == dict.fromkeys(KINDS, 0), mode
        if mode == "grounded":  # every sentence still cites its report
            assert out.sentences and all(s.source_ids for s in out.sentences)


def test_the_bundle_chooses_its_thresholds_on_val_as_the_pipeline_reads_images(tiny_world, tmp_path):
    """The thresholds a bundle writes equal choose_thresholds of the pipeline's own predictions, and the
    pipeline loads them from the index folder."""
    import shutil

    from eclip_core.data.study_labels import study_label_rows
    from rag_report.bundle import write_checker_thresholds
    from rag_report.drafting.checker import choose_thresholds, load_thresholds
    from rag_report.pipeline import PipelineConfig, ReportPipeline

    index_dir = tmp_path / "index"
    shutil.copytree(tiny_world["index_dir"], index_dir)
    pipe = ReportPipeline(
        PipelineConfig(model_dir=str(tiny_world["model_dir"]), index_dir=str(index_dir)), progress=False
    )
    val = [s for s in tiny_world["studies"] if s.split != "train" and s.report_text][:12]
    path = write_checker_thresholds(pipe.model, pipe.index, val, batch_size=5)
    assert path is not None and path.parent == index_dir
    probs = np.stack([pipe.predict_labels(pipe.embed(s.image_paths[0]), s.image_paths[0]) for s in val])
    want = choose_thresholds(probs, study_label_rows(val))
    got = load_thresholds(path)
    assert got.how == want.how and want.deny_ceiling  # 12 studies: every observation has 10 negatives
    for mine, theirs in ((got.assert_floor, want.assert_floor), (got.deny_ceiling, want.deny_ceiling)):
        assert set(mine) == set(theirs)
        assert all(abs(mine[name] - value) <= 2e-4 for name, value in theirs.items())
    again = ReportPipeline(
        PipelineConfig(model_dir=str(tiny_world["model_dir"]), index_dir=str(index_dir)), progress=False
    )
    assert again.checker.thresholds == got


def test_a_bundle_built_before_gets_its_thresholds_once(tiny_world, tmp_path):
    import shutil

    from rag_report.bundle import Bundle, _ensure_checker_thresholds
    from rag_report.drafting.checker import THRESHOLDS_FILE

    shutil.copytree(tiny_world["model_dir"], tmp_path / "eclip")
    shutil.copytree(tiny_world["index_dir"], tmp_path / "index")
    bundle = Bundle(tmp_path, tiny_world["manifest"])
    _ensure_checker_thresholds(bundle)
    path = tmp_path / "index" / THRESHOLDS_FILE
    assert "deny_ceiling" in path.read_text()
    written = path.stat().st_mtime_ns
    _ensure_checker_thresholds(bundle)  # kept, not chosen again
    assert path.stat().st_mtime_ns == written
