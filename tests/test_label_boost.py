"""Label classifiers and label boost: planted labels change the ranking exactly as specified, the filter
never empties the evidence, classifiers persist with the index and are refused for another checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eclip_core.labels import CHEXPERT_OBSERVATIONS
from rag_report.errors import IndexMismatchError, RagReportError
from rag_report.retrieval.label_boost import LabelBoost, agreement, boost_order, positive_set, predicted_set
from rag_report.retrieval.label_classifiers import LabelClassifiers, best_f1_threshold

CARDIO = CHEXPERT_OBSERVATIONS.index("Cardiomegaly")


def test_boost_order_by_hand():
    sims = [0.9, 0.8, 0.7, 0.6, 0.5]
    sets = [
        frozenset({"No Finding"}),
        frozenset({"Edema"}),
        frozenset({"Edema", "Cardiomegaly"}),
        frozenset({"Cardiomegaly"}),
        frozenset({"Cardiomegaly"}),
    ]
    pred = frozenset({"Cardiomegaly"})
    # agreements (Jaccard): 0, 0, 0.5, 1, 1
    assert [agreement(s, pred) for s in sets] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert boost_order(sims, sets, pred, "off") == [0, 1, 2, 3, 4]
    # rerank, weight 0.25: scores 0.9, 0.8, 0.825, 0.85, 0.75
    assert boost_order(sims, sets, pred, "rerank", 0.25) == [0, 3, 2, 1, 4]
    # rerank, weight 1: 0.9, 0.8, 1.2, 1.6, 1.5
    assert boost_order(sims, sets, pred, "rerank", 1.0) == [3, 4, 2, 0, 1]
    # filter: the best agreement (1.0) first in similarity order, then the rest in similarity order
    assert boost_order(sims, sets, pred, "filter") == [3, 4, 0, 1, 2]
    # nothing agrees at all: the filter falls back to similarity order
    assert boost_order(sims, sets, frozenset({"Fracture"}), "filter") == [0, 1, 2, 3, 4]
    with pytest.raises(RagReportError):
        LabelBoost(mode="sometimes")


def test_positive_and_predicted_sets():
    assert positive_set({"Edema": 1.0, "Fracture": 0.0, "Atelectasis": -1.0, "Cardiomegaly": None}) == {"Edema"}
    row = np.zeros(14, bool)
    row[[CARDIO, 0]] = True
    assert predicted_set(row) == {"Cardiomegaly", "No Finding"}


def test_classifiers_learn_planted_signal_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    rows = np.full((400, 14), np.nan)
    rows[:, CARDIO] = (x[:, 3] + 0.3 * rng.normal(size=400) > 0.8).astype(float)
    rows[:5, 9] = 1.0  # Pneumothorax: 5 positives, no signal
    vx = rng.normal(size=(200, 16)).astype(np.float32)
    vrows = np.full((200, 14), np.nan)
    vrows[:, CARDIO] = (vx[:, 3] > 0.8).astype(float)
    clf = LabelClassifiers.fit(x, rows, checkpoint_hash="ckpt-a", val_embeddings=vx, val_label_rows=vrows)
    assert clf.fitted[CARDIO] and not clf.fitted[CHEXPERT_OBSERVATIONS.index("Edema")]
    assert clf.validation["Cardiomegaly"]["auroc"] > 0.95
    assert clf.threshold_source == "cross-validation+val"  # Pneumothorax has no val positive
    truth = vrows[:, CARDIO] == 1.0
    pred = clf.predict(vx)[:, CARDIO]
    f1 = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert abs(f1 - clf.validation["Cardiomegaly"]["f1"]) < 1e-9  # the threshold is the val-optimal one
    assert not clf.predict(vx)[:, CHEXPERT_OBSERVATIONS.index("Edema")].any()  # unfitted: never predicted

    path = tmp_path / "label_classifiers.json"
    path.write_text(clf.to_json())
    back = LabelClassifiers.load(path, "ckpt-a")
    np.testing.assert_allclose(back.predict_proba(vx), clf.predict_proba(vx))
    assert (back.predict(vx) == clf.predict(vx)).all()
    with pytest.raises(IndexMismatchError):
        LabelClassifiers.load(path, "ckpt-b")
    path.write_text("{not json")
    with pytest.raises(RagReportError, match="rebuild the index"):
        LabelClassifiers.load(path)


def test_a_threshold_without_skill_is_refused_and_views_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    rows = np.full((300, 14), np.nan)
    other = CHEXPERT_OBSERVATIONS.index("Pleural Other")
    rows[:, CARDIO] = (x[:, 0] > 0.5).astype(float)
    rows[:, other] = (x[:, 1] > 1.0).astype(float)
    vx = rng.normal(size=(100, 8)).astype(np.float32)
    vrows = np.full((100, 14), np.nan)
    vrows[:, CARDIO] = (vx[:, 0] > 0.5).astype(float)
    # On val, Pleural Other's positives are the images its classifier scores lowest: the best F1 is that of
    # calling it on every image, 2p / (1 + p), which a threshold near 0 would do.
    vrows[:, other] = (vx[:, 1] < np.sort(vx[:, 1])[4]).astype(float)
    # No Finding, on most images, gets the same treatment: refused, it falls back to its prior (every image).
    rows[:, 0] = (x[:, 2] > -0.5).astype(float)
    vrows[:, 0] = (vx[:, 2] < np.sort(vx[:, 2])[70]).astype(float)  # on val: the 70 it scores lowest
    clf = LabelClassifiers.fit(
        x, rows, checkpoint_hash="c", val_embeddings=vx, val_label_rows=vrows, views="image+tiles"
    )
    assert clf.validation["No Finding"]["refused"] and clf.thresholds[0] == 0.0
    assert clf.predict(vx)[:, 0].all() and clf.predict(x)[:, 0].all()
    prevalence = 4 / 100
    assert clf.validation["Pleural Other"]["f1"] == pytest.approx(2 * prevalence / (1 + prevalence))
    assert clf.validation["Pleural Other"]["refused"] and clf.thresholds[other] == np.inf
    assert not clf.predict(vx)[:, other].any() and not clf.predict(x)[:, other].any()
    assert not clf.validation["Cardiomegaly"]["refused"] and np.isfinite(clf.thresholds[CARDIO])
    assert clf.predict(vx)[:, CARDIO].any()

    path = tmp_path / "label_classifiers.json"
    path.write_text(clf.to_json())
    back = LabelClassifiers.load(path, "c")
    assert back.views == "image+tiles" and back.thresholds[other] == np.inf
    data = json.loads(path.read_text())
    del data["views"]  # written before tile views existed: the image embedding alone
    path.write_text(json.dumps(data))
    assert LabelClassifiers.load(path, "c").views == "image"


def test_best_f1_threshold_by_hand():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.2])
    truth = np.array([True, False, True, True, False])
    # thresholds: 0.9 -> P1 R1/3 F1 .5; 0.8 -> tp2 of 3 pred, F1 4/6; 0.3 -> tp3 of 4, F1 6/7; 0.2 -> 6/8
    t, f1 = best_f1_threshold(scores, truth)
    assert t == 0.3 and abs(f1 - 6 / 7) < 1e-12
    assert best_f1_threshold(scores, np.zeros(5, bool)) == (float("inf"), 0.0)


def test_index_stores_classifiers_and_retrieval_follows_planted_labels(tiny_world):
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex
    from rag_report.retrieval.retriever import EClipRetriever

    model = EClip.from_pretrained(tiny_world["model_dir"]).eval()
    index = ReportIndex.load(tiny_world["index_dir"], model=model)
    assert index.label_classifiers is not None
    assert index.manifest["label_classifiers"]["file"] == "label_classifiers.json"
    assert index.label_classifiers.checkpoint_hash == model.checkpoint_hash
    retriever = EClipRetriever(index, model)
    query = model.embed_images([tiny_world["studies"][0].image_paths[0]], progress=False)[0]

    plain = retriever.retrieve_vector(query, k=5, candidates=40)
    assert all(r.label_agreement is None for r in plain)
    # Plant a label set held by some corpus reports but not by the nearest one.
    pool = retriever.retrieve_vector(query, k=40, candidates=40)
    target = next(positive_set(r.labels) for r in pool[1:] if positive_set(r.labels) != positive_set(pool[0].labels))
    boosted = retriever.retrieve_vector(
        query, k=5, candidates=40, label_boost=LabelBoost("rerank", 100.0), predicted_labels=target
    )
    expect = sorted(pool, key=lambda r: -(r.similarity + 100.0 * agreement(positive_set(r.labels), target)))[:5]
    assert [r.study_id for r in boosted] == [r.study_id for r in expect]
    assert boosted[0].label_agreement == 1.0 and positive_set(boosted[0].labels) == target
    # Filter: exact matches first; a label set nobody has leaves similarity order, never empty evidence.
    filt = retriever.retrieve_vector(
        query, k=5, candidates=40, label_boost=LabelBoost("filter"), predicted_labels=target
    )
    n_match = sum(positive_set(r.labels) == target for r in pool)
    assert all(positive_set(r.labels) == target for r in filt[: min(5, n_match)])
    nobody = frozenset({"Pneumothorax", "Fracture", "Edema", "Lung Lesion"})
    assert not any(positive_set(r.labels) == nobody for r in pool)
    fallback = retriever.retrieve_vector(
        query, k=5, candidates=40, label_boost=LabelBoost("filter"), predicted_labels=nobody
    )
    assert len(fallback) == 5
    best = max(agreement(positive_set(r.labels), nobody) for r in pool)
    assert fallback[0].label_agreement == best


def test_index_refuses_classifiers_of_another_checkpoint(tiny_world, tmp_path):
    import shutil

    from eclip_core.model import EClip
    from rag_report.errors import IndexNotFoundError
    from rag_report.index import ReportIndex

    copy = tmp_path / "index"
    shutil.copytree(tiny_world["index_dir"], copy)
    path = copy / "label_classifiers.json"
    data = json.loads(path.read_text())
    data["checkpoint_hash"] = "0" * 16
    path.write_text(json.dumps(data))
    model = EClip.from_pretrained(tiny_world["model_dir"]).eval()
    with pytest.raises(IndexNotFoundError):  # the recorded checksum no longer matches: refused as corrupt
        ReportIndex.load(copy, model=model)
    with pytest.raises(IndexMismatchError):  # and the classifiers themselves name the other checkpoint
        LabelClassifiers.load(path, model.checkpoint_hash)


@pytest.mark.slow
def test_whole_path_on_a_user_manifest_without_labels(tiny_world, tmp_path):
    """No `labels` column: training's label terms, the classifiers and the boost read the labeler's labels of
    each report's text, and generate_report drafts with predicted labels and label agreement."""
    import json

    import pandas as pd

    from eclip_core.config import EClipConfig, TrainConfig
    from eclip_core.data.manifest import read_manifest, write_manifest
    from eclip_core.labeler import label_report
    from eclip_core.model import EClip
    from eclip_core.train import train
    from rag_report.index import ReportIndex
    from rag_report.pipeline import PipelineConfig, ReportPipeline

    write_manifest(read_manifest(tiny_world["manifest"]), tmp_path / "all.csv")
    manifest = tmp_path / "no_labels.csv"
    pd.read_csv(tmp_path / "all.csv", dtype=str, keep_default_na=False).drop(columns=["labels"]).to_csv(
        manifest, index=False
    )
    assert "labels" not in manifest.read_text(encoding="utf-8").splitlines()[0].split(",")
    result = train(
        TrainConfig(
            manifest=str(manifest),
            output_dir=str(tmp_path / "run"),
            steps=3,
            batch_size=8,
            model=EClipConfig(name="eclip-tiny", clahe_p=0.0, crop_scale_min=0.9),
            progress=False,
            log_every=1,
            label_loss_weight=1.0,
            soft_target_weight=0.5,
        )
    )
    records = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["label_loss"]) for r in records)
    model = EClip.from_pretrained(result.model_dir).eval()
    studies = read_manifest(manifest)
    train_split = [s for s in studies if s.split == "train" and s.report_text]
    ReportIndex.build(
        model,
        train_split,
        tmp_path / "index",
        progress=False,
        val_studies=[s for s in studies if s.split == "val"],
    )
    pipe = ReportPipeline(
        PipelineConfig(model_dir=str(result.model_dir), index_dir=str(tmp_path / "index")), progress=False
    )
    assert pipe.index.label_classifiers is not None
    study = next(s for s in studies if s.split == "test")
    draft = pipe.generate(study.image_paths[0])
    assert draft.mode == "top1" and draft.predicted_labels and len(draft.predicted_labels) == 14
    assert all(ev.label_agreement is not None for ev in draft.evidence)
    # the evidence's labels are the labeler's reading of its text (there is no other source)
    first = draft.evidence[0]
    want = label_report(" ".join([first.findings, first.impression]))
    assert positive_set(first.labels) == positive_set(want)
