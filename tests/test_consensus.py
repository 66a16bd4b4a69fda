"""Extractive drafting: top-1 and similarity-weighted consensus."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

from rag_report.drafting.consensus import (
    add_predicted_findings,
    add_unstated_normals,
    consensus_draft,
    sentence_key,
    top1_draft,
)
from rag_report.report import DraftReport, Evidence, SentenceProvenance


def _r(sid, sim, findings, impression=""):
    return SimpleNamespace(study_id=sid, similarity=sim, findings=findings, impression=impression)


def test_top1_copies_the_best_report_with_sources():
    out = top1_draft([_r("A", 0.9, "Heart normal. Lungs clear.", "No acute disease."), _r("B", 0.8, "Effusion.")])
    assert [(s.text, s.section, s.source_ids) for s in out] == [
        ("Heart normal.", "findings", ["A"]),
        ("Lungs clear.", "findings", ["A"]),
        ("No acute disease.", "impression", ["A"]),
    ]
    assert top1_draft([]) == []


def test_consensus_is_similarity_weighted_and_ordered():
    reports = [
        _r("A", 0.9, "Large left effusion. Heart normal."),
        _r("B", 0.2, "Heart normal. Lungs clear."),
        _r("C", 0.2, "Lungs clear. Heart normal."),
        _r("D", 0.2, "Lungs clear."),
    ]
    # weights: A .9, B/C/D .2 each, total 1.5: "Heart normal" 1.3 (kept), "Lungs clear" .6 (< .75, dropped),
    # "Large left effusion" .9 (kept)
    out = consensus_draft(reports)
    assert [s.text for s in out] == ["Large left effusion.", "Heart normal."]
    assert out[1].source_ids == ["A", "B", "C"]
    assert math.isclose(out[1].support, 1.3 / 1.5, rel_tol=1e-4)


def test_consensus_drops_redundant_observations_and_falls_back_to_top1():
    obs = {"no pneumothorax.": {"Pneumothorax": 0.0}, "no pneumothorax is seen.": {"Pneumothorax": 0.0}}
    reports = [
        _r("A", 1.0, "No pneumothorax. No pneumothorax is seen.", "No acute disease."),
        _r("B", 1.0, "No pneumothorax is seen. No pneumothorax.", "Negative chest."),
    ]
    out = consensus_draft(reports, observations=lambda s: obs.get(s.lower(), {}))
    findings = [s.text for s in out if s.section == "findings"]
    assert len(findings) == 1 and findings[0] in ("No pneumothorax.", "No pneumothorax is seen.")
    # impressions disagree: nothing reaches half the weight -> the top-1 report's impression
    assert [s.text for s in out if s.section == "impression"] == ["No acute disease."]


def test_extractive_drafts_only_use_clean_sentences():
    """Draft hygiene in both extractive modes: de-id tokens, dates/ages and comparisons never pass, a
    comparison with a safe rewrite passes rewritten, and top-1 moves on when a report has nothing usable."""
    unusable = _r("A", 0.9, "No XXXX consolidation. Unchanged from prior.", "Similar to prior exam.")
    usable = _r("B", 0.5, "Stable cardiomegaly. On 12 March 2020 a 78-year-old woman.", "No pneumothorax.")
    assert [s.text for s in top1_draft([unusable, usable])] == ["Cardiomegaly.", "No pneumothorax."]
    assert top1_draft([unusable])[:1] == []
    texts = [s.text for s in consensus_draft([unusable, usable, usable])]
    assert "Cardiomegaly." in texts and not any("XXXX" in t or "2020" in t or "prior" in t.lower() for t in texts)


def test_sentence_key_ignores_case_and_punctuation():
    assert sentence_key("Heart size is NORMAL.") == sentence_key("heart size is normal")
    assert sentence_key("No effusion") != sentence_key("Effusion")


def test_draft_report_to_dict_is_json_safe():
    d = DraftReport(
        findings="Heart normal.",
        impression="No acute disease.",
        evidence=[
            Evidence("A", 1, 0.5, "Heart normal.", "No acute disease.", {"Edema": float("nan")}, ["Heart normal."])
        ],
        provenance=[SentenceProvenance("Heart normal.", "findings", ["A"])],
        labels={"No Finding": 1.0, "Edema": None},
        timings_ms={"embed": 1.0},
        models={"llm_id": "x"},
        mode="top1",
        simulated_data=True,
    )
    back = json.loads(json.dumps(d.to_dict()))
    assert back["text"] == "FINDINGS: Heart normal.\n\nIMPRESSION: No acute disease."
    assert back["evidence"][0]["labels"]["Edema"] is None
    assert back["evidence"][0]["text"] == "Heart normal. No acute disease."
    assert "SIMULATED" in back["notice"]


def _labelled(sentence: str) -> dict[str, float]:
    from eclip_core.labeler import sentence_observations

    return sentence_observations(sentence)


def test_normal_statements_complete_top1_without_new_findings():
    R = SimpleNamespace
    first = R(study_id="A", similarity=0.9, findings="Mild cardiomegaly. No pneumothorax.", impression="Cardiomegaly.")
    second = R(
        study_id="B",
        similarity=0.8,
        findings="Heart size is normal. Small left pleural effusion. No focal consolidation. Possible atelectasis.",
        impression="No acute disease.",
    )
    third = R(study_id="C", similarity=0.7, findings="No pleural effusion. No pneumothorax.", impression="")
    draft = top1_draft([first, second, third], observations=_labelled)
    done = add_unstated_normals(draft, [first, second, third], _labelled, max_added=3)
    # B's normal heart: the draft already speaks of the heart (cardiomegaly), skipped; B's effusion (positive)
    # and atelectasis (uncertain) are never added; consolidation and C's effusion are new negatives; C's
    # pneumothorax is already said.
    assert [(s.text, s.section, s.source_ids) for s in done] == [
        ("Mild cardiomegaly.", "findings", ["A"]),
        ("No pneumothorax.", "findings", ["A"]),
        ("No focal consolidation.", "findings", ["B"]),
        ("No pleural effusion.", "findings", ["C"]),
        ("Cardiomegaly.", "impression", ["A"]),
    ]
    # the labels of the draft keep every positive of the first report and gain none
    from eclip_core.labeler import label_report

    before = label_report(" ".join(s.text for s in draft))
    after = label_report(" ".join(s.text for s in done))
    assert {k for k, v in after.items() if v == 1.0} == {k for k, v in before.items() if v == 1.0}
    # a negative the image's classifiers contradict is not added; the cap holds
    predicted = {"Pleural Effusion": True}
    capped = add_unstated_normals(draft, [first, second, third], _labelled, predicted, max_added=1)
    assert [s.text for s in capped if s.source_ids != ["A"]] == ["No focal consolidation."]
    assert "No pleural effusion." not in [
        s.text for s in add_unstated_normals(draft, [first, third], _labelled, predicted)
    ]


def test_predicted_findings_complete_top1_with_the_evidence_wording():
    from eclip_core.labeler import label_report

    R = SimpleNamespace
    first = R(study_id="A", similarity=0.9, findings="Heart size is normal. No pneumothorax.", impression="")
    second = R(
        study_id="B",
        similarity=0.8,
        findings="Small left pleural effusion and mild cardiomegaly. Small right pleural effusion. Lungs are clear.",
        impression="",
    )
    third = R(study_id="C", similarity=0.7, findings="Moderate pulmonary edema. Left rib fracture.", impression="")
    reports = [first, second, third]
    draft = top1_draft(reports, observations=_labelled)
    predicted = {"Pleural Effusion": True, "Edema": True, "Fracture": True, "Cardiomegaly": True}
    done = add_predicted_findings(draft, reports, _labelled, predicted, max_added=2)
    # B's first sentence also states cardiomegaly, which the draft contradicts (normal heart): skipped; the
    # effusion comes from B's second sentence, edema from C; the cap (2) leaves the fracture out.
    assert [(s.text, s.source_ids) for s in done] == [
        ("Heart size is normal.", ["A"]),
        ("No pneumothorax.", ["A"]),
        ("Small right pleural effusion.", ["B"]),
        ("Moderate pulmonary edema.", ["C"]),
    ]
    positives = {k for k, v in label_report(" ".join(s.text for s in done)).items() if v == 1.0}
    assert positives == {"Pleural Effusion", "Edema"}
    # a sentence with a positive finding the classifiers do not predict is never added
    edema_only = add_predicted_findings(draft, [first, third], _labelled, {"Edema": True}, max_added=3)
    assert [s.text for s in edema_only][-1] == "Moderate pulmonary edema."
    assert add_predicted_findings(draft, [first, third], _labelled, {"Fracture": False}) == draft
    # nothing is added without predictions, with a zero cap, or to a draft that states "No Finding" when the
    # classifiers predict "No Finding" too
    assert add_predicted_findings(draft, reports, _labelled, None) == draft
    assert add_predicted_findings(draft, reports, _labelled, predicted, max_added=0) == draft
    normal = top1_draft(
        [R(study_id="N", similarity=0.9, findings="", impression="No acute cardiopulmonary abnormality.")]
    )
    assert add_predicted_findings(normal, reports, _labelled, {**predicted, "No Finding": True}) == normal


def test_a_no_finding_sentence_the_image_contradicts_does_not_block_the_predicted_findings():
    from eclip_core.labeler import label_report, sentence_observations

    R = SimpleNamespace
    # "No acute bone abnormality." reads as "No Finding" to the labeler; the classifiers predict consolidation
    # and atelectasis, not "No Finding", so the checker will drop that sentence: the findings must come in.
    first = R(study_id="A", similarity=0.9, findings="No pneumothorax. No acute bone abnormality.", impression="")
    other = R(
        study_id="B", similarity=0.8, findings="Consolidation and atelectasis in the left lower lobe.", impression=""
    )
    assert sentence_observations("No acute bone abnormality.") == {"No Finding": 1.0}
    draft = top1_draft([first, other], observations=sentence_observations)
    predicted = {"Consolidation": True, "Atelectasis": True, "No Finding": False}
    done = add_predicted_findings(draft, [first, other], sentence_observations, predicted)
    assert [(s.text, s.source_ids) for s in done][-1] == (
        "Consolidation and atelectasis in the left lower lobe.",
        ["B"],
    )
    assert {k for k, v in label_report(done[-1].text).items() if v == 1.0} == {"Consolidation", "Atelectasis"}
