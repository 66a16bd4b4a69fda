"""The CheXpert-style rule labeler on hand-written sentences, and the optional CheXbert loader."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eclip_core.errors import CheckpointError, EClipError
from eclip_core.labeler import chexbert_labeler, label_report, label_reports, sentence_observations
from eclip_core.labels import CHEXPERT_OBSERVATIONS


@pytest.mark.parametrize(
    "sentence, expected",
    [
        # negation
        ("No evidence of pneumothorax.", {"Pneumothorax": 0.0}),
        ("There is no pleural effusion or pneumothorax.", {"Pleural Effusion": 0.0, "Pneumothorax": 0.0}),
        (
            "No focal consolidation, pneumothorax, or large pleural effusion.",
            {"Consolidation": 0.0, "Pneumothorax": 0.0, "Pleural Effusion": 0.0},
        ),
        ("Lungs are clear without focal airspace disease.", {"Lung Opacity": 0.0}),
        ("Negative for pneumonia.", {"Pneumonia": 0.0}),
        ("The lungs are free of consolidation.", {"Consolidation": 0.0}),
        ("The previously seen left effusion has resolved.", {"Pleural Effusion": 0.0}),
        ("There are no XXXX of a pleural effusion.", {"Pleural Effusion": 0.0}),
        # uncertainty
        ("Findings may represent atelectasis.", {"Atelectasis": -1.0}),
        ("Possible right lower lobe pneumonia.", {"Pneumonia": -1.0}),
        ("Pneumonia cannot be excluded.", {"Pneumonia": -1.0}),
        ("Cannot exclude a small pneumothorax.", {"Pneumothorax": -1.0}),
        ("Left basilar atelectasis versus consolidation.", {"Atelectasis": -1.0, "Consolidation": -1.0}),
        # positive, and scope ends at "but" / after the cue's clause
        ("Small left pleural effusion without pneumothorax.", {"Pleural Effusion": 1.0, "Pneumothorax": 0.0}),
        ("No pneumothorax, but there is a small effusion.", {"Pneumothorax": 0.0, "Pleural Effusion": 1.0}),
        ("Mild cardiomegaly with no pulmonary edema.", {"Cardiomegaly": 1.0, "Edema": 0.0}),
        ("No change in the small left effusion.", {"Pleural Effusion": 1.0}),  # pseudo-negation
        # anatomical mentions need a size descriptor
        ("The heart is enlarged.", {"Cardiomegaly": 1.0}),
        ("The heart is not enlarged.", {"Cardiomegaly": 0.0}),
        ("Heart size is within normal limits.", {"Cardiomegaly": 0.0}),
        ("Pacemaker leads overlie the heart.", {"Support Devices": 1.0}),
        ("The cardiomediastinal silhouette is within normal limits.", {"Enlarged Cardiomediastinum": 0.0}),
        ("The heart is enlarged and pulmonary vessels are normal.", {"Cardiomegaly": 1.0}),
        ("Stable heart size, moderately enlarged and tortuous calcified aorta.", {}),
        ("Borderline cardiomegaly.", {"Cardiomegaly": 1.0}),  # a grade of size, as IU codes it
        ("Pleural thickening at the right apex.", {"Pleural Other": 1.0}),  # longest phrase wins
        # Open-I decisions
        ("Stable calcified granuloma in the right upper lobe.", {}),
        ("Hyperinflated lungs with degenerative changes of the spine.", {}),
        ("Sequelae of prior granulomatous infection.", {}),
        ("Endotracheal tube terminates 4 cm above the carina.", {"Support Devices": 1.0}),
        ("Healed right rib fractures.", {"Fracture": 1.0}),
    ],
)
def test_sentence_observations(sentence, expected):
    assert sentence_observations(sentence) == expected


@pytest.mark.parametrize("side", ["left", "right", "bilateral", "left-sided", "right basilar"])
def test_laterality_does_not_matter(side):
    assert sentence_observations(f"Small {side} pleural effusion.") == {"Pleural Effusion": 1.0}
    assert label_report(f"No {side} pneumothorax.")["Pneumothorax"] == 0.0


def test_no_finding_rule():
    normal = label_report("The heart is normal in size. The lungs are clear. No pleural effusion or pneumothorax.")
    assert normal["No Finding"] == 1.0 and normal["Pleural Effusion"] == 0.0
    # A support device alone does not block No Finding ...
    assert label_report("Right PICC line in place. Lungs are clear.")["No Finding"] == 1.0
    # ... a positive or an uncertain observation does.
    assert label_report("Mild cardiomegaly. Lungs are clear.")["No Finding"] is None
    assert label_report("Possible small left effusion.")["No Finding"] is None
    # The sentence-level "normal" statement never overrides the rule at report level.
    assert label_report("No acute cardiopulmonary disease. Small right pleural effusion.")["No Finding"] is None
    assert sentence_observations("No acute cardiopulmonary abnormality.") == {"No Finding": 1.0}
    assert all(v is None for v in label_report("").values())


def test_report_aggregation_positive_beats_uncertain_beats_negative():
    labels = label_report("No pleural effusion. Small left pleural effusion. Possible atelectasis. No atelectasis.")
    assert labels["Pleural Effusion"] == 1.0
    assert labels["Atelectasis"] == -1.0
    assert set(labels) == set(CHEXPERT_OBSERVATIONS)


def test_label_reports_array_matches_label_report():
    texts = ["No pneumothorax.", "Cardiomegaly. Possible edema.", "", None]
    arr = label_reports(texts)
    assert arr.shape == (4, 14) and arr.dtype == np.float64
    for row, text in zip(arr, texts):
        for value, name in zip(row, CHEXPERT_OBSERVATIONS):
            expected = label_report(text)[name]
            assert (math.isnan(value) and expected is None) or value == expected
    assert arr[1, CHEXPERT_OBSERVATIONS.index("Edema")] == -1.0


# ---- optional CheXbert: error paths and head wiring with a random tiny BERT --------------------------


def test_chexbert_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        chexbert_labeler(tmp_path / "chexbert.pth")
    with pytest.raises(CheckpointError, match=r"\*\.pth"):
        chexbert_labeler(tmp_path)
    assert issubclass(CheckpointError, EClipError)


def _tiny_chexbert(tmp_path, classes, n_heads=14, write_vocab=True):
    torch = pytest.importorskip("torch")
    from transformers import BertConfig

    from eclip_core.labeler.chexbert import _build_module

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "pleural", "effusion", "heart", "normal", "."]
    if write_vocab:
        (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    config.save_pretrained(tmp_path)
    torch.manual_seed(0)
    model = _build_module(config, n_heads=n_heads)
    with torch.no_grad():
        for head, cls in zip(model.linear_heads, classes):
            head.weight.zero_()
            head.bias.zero_()
            head.bias[cls] = 5.0  # this head always predicts class `cls`
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # DataParallel layout, like chexbert.pth
    torch.save({"epoch": 3, "model_state_dict": state}, tmp_path / "chexbert.pth")
    return tmp_path / "chexbert.pth"


def test_chexbert_head_wiring(tmp_path):
    from eclip_core.labeler.chexbert import CHEXBERT_ORDER, CLASS_VALUES

    classes = [i % 4 for i in range(13)] + [1]  # blank, pos, neg, unc, ... ; No Finding positive
    ckpt = _tiny_chexbert(tmp_path, classes)
    labeler = chexbert_labeler(ckpt)
    got = labeler.label_report("No pleural effusion.")
    for name in CHEXPERT_OBSERVATIONS:
        value = CLASS_VALUES[classes[CHEXBERT_ORDER.index(name)]]
        assert (got[name] is None) if np.isnan(value) else got[name] == value, name
    arr = labeler.label_reports(["heart normal .", "no effusion ."] * 3)
    assert arr.shape == (6, 14)
    np.testing.assert_array_equal(np.isnan(arr[0]), [got[n] is None for n in CHEXPERT_OBSERVATIONS])
    # a folder holding the checkpoint works too
    assert chexbert_labeler(tmp_path).label_report("no effusion")["No Finding"] == 1.0


def test_chexbert_bad_layouts_are_clear_errors(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    ckpt = _tiny_chexbert(a, [1] * 13, n_heads=13)
    with pytest.raises(CheckpointError, match="14 linear heads"):
        chexbert_labeler(ckpt)
    b = tmp_path / "b"
    b.mkdir()
    ckpt = _tiny_chexbert(b, [1] * 14, write_vocab=False)
    with pytest.raises(CheckpointError, match="vocab.txt"):
        chexbert_labeler(ckpt)


def test_non_text_input_is_a_clear_error():
    with pytest.raises(TypeError, match="report text"):
        label_report(float("nan"))
    with pytest.raises(TypeError, match="report text"):
        label_reports(["ok", 3])
