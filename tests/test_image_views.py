"""Tile views of the label classifiers: tile geometry, features, and the whole path through an index."""

from __future__ import annotations

import numpy as np
import pytest

from rag_report.errors import RagReportError
from rag_report.retrieval.image_views import classifier_features, image_tiles


class MeanAndMax:
    """A stand-in embedding model: (mean pixel, max pixel) of each image."""

    def embed_images(self, images, batch_size=32, progress=False):
        return np.array([[np.mean(x), np.max(x)] for x in images], np.float32)


def test_tiles_are_the_quadrants_and_the_centre():
    img = np.zeros((8, 6), np.float32)
    img[:4, :3], img[:4, 3:], img[4:, :3], img[4:, 3:] = 0.1, 0.2, 0.3, 0.4
    tiles = image_tiles(img)
    assert [t.shape for t in tiles] == [(4, 3)] * 5
    assert [float(t.mean()) for t in tiles[:4]] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    # the centre tile: rows 2-5, columns 1-3, a corner of each quadrant
    np.testing.assert_array_equal(tiles[4], img[2:6, 1:4])
    odd = image_tiles(np.arange(35, dtype=np.float32).reshape(5, 7))
    assert [t.shape for t in odd] == [(2, 3)] * 5
    assert odd[3][-1, -1] == 34.0  # the last quadrant reaches the bottom-right pixel
    with pytest.raises(RagReportError, match="grey image"):
        image_tiles(np.zeros((1, 5), np.float32))


def test_tile_features_append_the_mean_over_tiles():
    model = MeanAndMax()
    a = np.zeros((8, 8), np.float32)
    a[0, 7] = 1.0  # a one-pixel finding in the top-right quadrant
    b = np.full((8, 8), 0.5, np.float32)
    vectors = model.embed_images([a, b])
    feats = classifier_features(model, [a, b], vectors, "image+tiles")
    assert feats.shape == (2, 4)
    np.testing.assert_array_equal(feats[:, :2], vectors)  # the image's own embedding first
    # a: only the top-right tile (16 pixels) holds the pixel: tile means 1/16, 0, 0, 0, 0 and maxima 1, 0, ...
    assert feats[0].tolist() == pytest.approx([1 / 64, 1.0, 1 / 80, 1 / 5])
    assert feats[1].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(classifier_features(model, [], vectors, "image"), vectors)
    with pytest.raises(RagReportError, match="choose one of"):
        classifier_features(model, [a], vectors[:1], "tiles")
    with pytest.raises(RagReportError, match="2 images but 1 embeddings"):
        classifier_features(model, [a, b], vectors[:1], "image+tiles")


def test_index_with_tile_classifiers_drives_generate(tiny_world, tmp_path):
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex
    from rag_report.pipeline import PipelineConfig, ReportPipeline, read_image

    studies = tiny_world["studies"]
    train = [s for s in studies if s.split == "train" and s.report_text]
    val = [s for s in studies if s.split == "val" and s.report_text]
    model = EClip.from_pretrained(tiny_world["model_dir"]).eval()
    index = ReportIndex.build(
        model, train, tmp_path / "index", progress=False, val_studies=val, classifier_views="image+tiles"
    )
    clf = index.label_classifiers
    assert clf is not None and clf.views == "image+tiles" and clf.mean.shape == (2 * model.embed_dim,)
    with pytest.raises(RagReportError, match="classifier_views"):
        ReportIndex.build(model, train, tmp_path / "other", progress=False, classifier_views="crops")

    pipe = ReportPipeline(
        PipelineConfig(model_dir=str(tiny_world["model_dir"]), index_dir=str(tmp_path / "index"), mode="top1"),
        progress=False,
    )
    path = studies[-1].image_paths[0]
    pixels = read_image(path)
    vector = pipe.embed(pixels)
    expected = clf.predict_proba(classifier_features(model, [pixels], vector[None], "image+tiles"))[0]
    np.testing.assert_allclose(pipe.predict_labels(vector, path), expected, rtol=1e-6)
    with pytest.raises(RagReportError, match="pass the image"):
        pipe.predict_labels(vector)
    draft = pipe.generate(path)
    got = np.array([draft.predicted_labels[name] for name in clf.observations])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
