"""The tiny eCLIP run whose numbers are pinned in paper_run.json (see tests/test_golden.py).

The JSON was written by the code before the label-aware terms existed, so the test shows that the paper's
objective (those terms off) still trains to the same losses and weights. Regenerate only on purpose:

    python -m tests.golden.paper_run tests/golden/paper_run.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def run() -> dict:
    import torch

    from eclip_core.config import EClipConfig, TrainConfig
    from eclip_core.model import EClip
    from eclip_core.train import train
    from eclip_core.training.synthetic import make_blob_dataset

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_blob_dataset(Path(tmp) / "blobs", n=40, size=64, expert_fraction=0.5, seed=0)
        cfg = TrainConfig(
            manifest=str(manifest),
            output_dir=str(Path(tmp) / "run"),
            steps=8,
            batch_size=4,
            lr=1e-3,
            method="eclip",
            p_start=1.0,
            p_peak=1.0,
            p_floor=1.0,
            cold_frac=0.25,
            model=EClipConfig(name="eclip-tiny"),
            progress=False,
            validate_images=False,
            log_every=1,
            seed=0,
        )
        result = train(cfg)
        model = EClip.from_pretrained(result.model_dir).eval()
        rng = np.random.default_rng(0)
        images = [rng.random((64, 64)).astype("float32") for _ in range(3)]
        texts = ["Small bright blob in the left lung.", "Large blob in the right upper zone.", "Normal chest."]
        return {
            "losses": [float(x) for x in result.losses],
            "image_embeddings": model.embed_images(images, progress=False).round(6).tolist(),
            "text_embeddings": model.embed_texts(texts, progress=False).round(6).tolist(),
        }


if __name__ == "__main__":
    out = run()
    Path(sys.argv[1]).write_text(json.dumps(out, indent=1) + "\n")
