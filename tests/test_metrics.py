"""NLG metrics equal pycocoevalcap's own scorers; evaluate modules load offline; clinical F1 by hand."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest

from eclip_core.text import tokenize_for_metrics
from eval.metrics import clinical, module_path, nlg

# Already in the normalised form, so pycocoevalcap sees exactly these strings on both paths.
TOY_REFS = [
    ["the heart is normal in size . the lungs are clear ."],
    ["no pleural effusion or pneumothorax .", "no effusion or pneumothorax ."],
    ["mild cardiomegaly . small left pleural effusion ."],
    ["no acute cardiopulmonary abnormality ."],
    ["there is a right lower lobe consolidation concerning for pneumonia ."],
]
TOY_HYPS = [
    "the heart is normal . lungs are clear .",
    "no pneumothorax or pleural effusion .",
    "cardiomegaly with a small pleural effusion .",
    "no acute disease .",
    "right lower lobe pneumonia .",
]


def _coco(scorer, gts, res):
    with contextlib.redirect_stdout(io.StringIO()):
        return scorer.compute_score(gts, res)


def _coco_inputs():
    gts = {i: list(r) for i, r in enumerate(TOY_REFS)}
    res = {i: [h] for i, h in enumerate(TOY_HYPS)}
    return gts, res


def test_toy_set_is_already_normalised():
    for text in [*TOY_HYPS, *(r for refs in TOY_REFS for r in refs)]:
        assert tokenize_for_metrics(text) == text


def test_bleu_rouge_cider_equal_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts, res = _coco_inputs()
    ours = nlg.compute_nlg(TOY_HYPS, TOY_REFS, meteor=False)
    bleu, _ = _coco(Bleu(4), gts, res)
    for k, v in zip(nlg.BLEU_KEYS, bleu):
        assert ours[k] == pytest.approx(v, abs=1e-6)
    assert ours["ROUGE-L"] == pytest.approx(_coco(Rouge(), gts, res)[0], abs=1e-6)
    assert ours["CIDEr"] == pytest.approx(_coco(Cider(), gts, res)[0], abs=1e-6)
    assert ours["METEOR"] is None and ours["notes"]


def test_known_values_by_hand():
    # hyp 5 tokens, all in the 6-token ref: BLEU-1 = brevity penalty exp(1 - 6/5);
    # ROUGE-L: LCS 5, P = 1, R = 5/6, beta 1.2 -> (1 + b^2) P R / (R + b^2 P).
    out = nlg.compute_nlg(["The heart is normal."], ["The heart size is normal."], meteor=False)
    assert out["BLEU-1"] == pytest.approx(math.exp(1 - 6 / 5), abs=1e-6)
    b2, p, r = 1.2**2, 1.0, 5 / 6
    assert out["ROUGE-L"] == pytest.approx((1 + b2) * p * r / (r + b2 * p), abs=1e-6)
    same = nlg.compute_nlg(TOY_HYPS, TOY_HYPS, meteor=False)
    assert [same[k] for k in nlg.BLEU_KEYS] == pytest.approx([1.0] * 4, abs=1e-6)
    assert same["ROUGE-L"] == pytest.approx(1.0)


def test_normalisation_is_identical_for_both_sides():
    a = nlg.compute_nlg(["NO Pleural  effusion"], ["no pleural effusion."], meteor=False)
    assert a["BLEU-1"] == pytest.approx(1.0, abs=1e-6)
    assert nlg.prepare(["XX XXXX left."], ["___ left"]) == ({0: ["xxxx left ."]}, {0: ["xxxx left ."]})


def test_empty_hypothesis_and_bad_inputs():
    out = nlg.compute_nlg(["", "no effusion ."], ["lungs clear .", "no effusion ."], meteor=False)
    assert 0.0 <= out["ROUGE-L"] <= 1.0
    assert nlg.rouge_l_per_sample([""], ["lungs clear ."]) == [0.0]
    with pytest.raises(ValueError, match="pair up"):
        nlg.compute_nlg(["a"], ["a", "b"], meteor=False)
    with pytest.raises(ValueError, match="reference 0 is empty"):
        nlg.compute_nlg(["a"], [""], meteor=False)


def test_per_sample_rouge_and_sacrebleu():
    from rouge_score import rouge_scorer

    per = nlg.rouge_l_per_sample(TOY_HYPS, TOY_REFS)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    expected = [max(scorer.score(r, h)["rougeL"].fmeasure for r in refs) for h, refs in zip(TOY_HYPS, TOY_REFS)]
    assert per == pytest.approx(expected)
    assert nlg.sacrebleu_score(["No pleural effusion."], ["no pleural effusion."]) == pytest.approx(100.0)
    assert 0.0 < nlg.sacrebleu_score(TOY_HYPS, [r[0] for r in TOY_REFS]) < 100.0


@pytest.mark.slow
def test_meteor_equals_pycocoevalcap_when_java_is_there():
    if not nlg.java_available():
        pytest.skip("no java: METEOR is skipped with a note (tested in test_bleu_rouge_cider_equal_pycocoevalcap)")
    gts, res = _coco_inputs()
    ours = nlg.compute_nlg(TOY_HYPS, TOY_REFS)
    scorer = nlg.meteor_scorer()
    assert scorer is nlg.meteor_scorer()  # one JVM per process
    assert ours["METEOR"] == pytest.approx(scorer.compute_score(gts, res)[0], abs=1e-6)
    assert 0.0 < ours["METEOR"] < 1.0 and not ours["notes"]


def test_evaluate_modules_load_offline(monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = evaluate.load(module_path("cxr_nlg"))
    out = m.compute(predictions=TOY_HYPS, references=TOY_REFS, meteor=False)
    direct = nlg.compute_nlg(TOY_HYPS, TOY_REFS, meteor=False)
    for k in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert out[k] == pytest.approx(direct[k], abs=1e-9)
    assert len(out["rougeL_per_sample"]) == len(TOY_HYPS)
    assert out["sacreBLEU"] is None and any("sacreBLEU" in n for n in out["notes"])  # 1 vs 2 references
    single = m.compute(predictions=TOY_HYPS, references=[r[0] for r in TOY_REFS], meteor=False)
    assert single["sacreBLEU"] == pytest.approx(nlg.sacrebleu_score(TOY_HYPS, [r[0] for r in TOY_REFS]))
    c = evaluate.load(module_path("clinical_f1"))
    got = c.compute(
        predictions=["Cardiomegaly.", "No pneumothorax."], references=["The heart is enlarged.", "Small pneumothorax."]
    )
    assert got["policies"] == ["uncertain_as_negative", "uncertain_as_positive"]
    # tp 1 (Cardiomegaly), fn 1 (Pneumothorax), fp 1 (No Finding of the 2nd draft): 2 / (2 + 1 + 1)
    assert got["uncertain_as_negative/micro_f1_14"] == pytest.approx(0.5)


# ---- clinical F1 on a hand-built label matrix ----------------------------------------------------------
N = np.nan
#        NF  EC Card LO  LL  Ed  Co  Pn  At  Ptx PE  PO  Fx  SD
REF = np.array(
    [
        [N, N, 1, N, N, N, N, N, N, N, 1, N, N, N],
        [1, N, N, N, N, N, N, N, N, N, N, N, N, N],
        [N, N, N, N, N, -1, N, N, 0, N, 1, N, N, N],
        [N, N, 1, N, N, N, N, N, 1, N, N, N, N, N],
    ]
)
PRED = np.array(
    [
        [N, N, 1, N, N, N, N, N, N, N, 0, N, N, N],
        [1, N, N, N, N, N, N, N, N, N, N, N, N, 1],
        [N, N, N, N, N, 1, N, N, N, N, -1, N, N, N],
        [N, N, N, N, 1, N, N, N, 1, N, N, N, N, N],
    ]
)


def test_clinical_f1_matches_hand_computation():
    got = clinical.clinical_f1(PRED, REF)
    neg, pos = got["uncertain_as_negative"], got["uncertain_as_positive"]
    # uncertain -> negative: tp 3 (NF, Card s0, Atel s3), fp 3 (Edema, SD, Lesion), fn 3 (Card s3, PE x2)
    assert neg["micro_f1_14"] == pytest.approx(0.5)
    assert neg["macro_f1_14"] == pytest.approx((1 + 2 / 3 + 1) / 14)
    assert neg["micro_f1_5"] == pytest.approx(4 / (4 + 1 + 3))
    assert neg["macro_f1_5"] == pytest.approx((1 + 2 / 3) / 5)
    # uncertain -> positive: tp 5, fp 2 (SD, Lesion), fn 2 (Card s3, PE s0)
    assert pos["micro_f1_14"] == pytest.approx(10 / 14)
    assert pos["macro_f1_14"] == pytest.approx((1 + 2 / 3 + 2 / 3 + 1 + 1) / 14)
    assert pos["micro_f1_5"] == pytest.approx(0.8)
    assert pos["macro_f1_5"] == pytest.approx((1 + 2 / 3 + 1 + 2 / 3) / 5)
    assert neg["policy"] == "uncertain_as_negative" and pos["policy"] == "uncertain_as_positive"
    assert neg["per_observation"]["Cardiomegaly"] == pytest.approx(2 / 3)


def test_clinical_f1_invariants_and_errors():
    perfect = clinical.clinical_f1(REF, REF)
    for scores in perfect.values():
        assert scores["micro_f1_14"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\[n, 14\]"):
        clinical.clinical_f1(PRED[:, :5], REF[:, :5])
    with pytest.raises(ValueError, match="policy"):
        clinical.f1_scores(PRED, REF, policy="uncertain_as_maybe")
    texts = clinical.clinical_f1_from_texts(["No pneumothorax."], ["No pneumothorax."])
    assert texts["uncertain_as_negative"]["micro_f1_14"] == pytest.approx(1.0)  # No Finding agrees
