"""python -m eclip_core.embed writes embeddings + ids that match the model's own embedding."""

import numpy as np

from eclip_core.data.manifest import read_manifest
from eclip_core.embed import embed_manifest, main
from eclip_core.model import EClip
from eclip_core.training.synthetic import make_blob_dataset


def test_embed_manifest_images_and_reports(tmp_path):
    manifest = make_blob_dataset(tmp_path / "d", n=12, size=64, seed=1)
    model = EClip.from_config("eclip-tiny")
    model.save_pretrained(tmp_path / "m")
    studies = read_manifest(manifest)
    npy, ids = embed_manifest(
        tmp_path / "m", manifest, "images", tmp_path / "out" / "img", batch_size=5, progress=False
    )
    assert ids.read_text().split() == [s.study_id for s in studies]
    np.testing.assert_allclose(
        np.load(npy), model.embed_images([s.image_paths[0] for s in studies], progress=False), atol=1e-6
    )
    assert (
        main(
            [
                "--model",
                str(tmp_path / "m"),
                "--manifest",
                str(manifest),
                "--what",
                "reports",
                "--out",
                str(tmp_path / "out" / "rep"),
                "--no-progress",
            ]
        )
        == 0
    )
    rep = np.load(tmp_path / "out" / "rep.npy")
    np.testing.assert_allclose(rep, model.embed_texts([s.report_text for s in studies], progress=False), atol=1e-6)
