"""eclip-tiny's embeddings of fixed inputs, pinned in eclip_tiny_embeddings.json (see
tests/test_golden_embeddings.py).

An untrained ``eclip-tiny`` drawn under ``torch.manual_seed(SEED)`` embeds four fixed synthetic grey images
(numpy ``RandomState(SEED)``: a gradient plus noise, four sizes and dtypes) and four fixed report texts. The
JSON keeps every vector in full (64 dims) with its norm, so a change in weight initialisation, image
loading, preprocessing, tokenisation or either tower shows up as a changed number. Regenerate only on
purpose (a deliberate change to one of those), and say so in the commit:

    python -m tests.golden.eclip_tiny_embeddings            # writes tests/golden/eclip_tiny_embeddings.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SEED = 0
MODEL = "eclip-tiny"
GOLDEN = Path(__file__).with_suffix(".json")
TEXTS = [
    "The heart is normal in size. The lungs are clear.",
    "Small left pleural effusion. No pneumothorax.",
    "Mild cardiomegaly with pulmonary vascular congestion.",
    "Right lower lobe opacity, possibly pneumonia.",
]
#: (rows, cols, dtype) of each synthetic image
IMAGE_SHAPES = [(64, 64, "float32"), (80, 70, "float32"), (50, 90, "uint8"), (128, 96, "uint16")]


def images() -> list[np.ndarray]:
    """The fixed input images: a diagonal gradient plus uniform noise, scaled to each dtype's range."""
    rng = np.random.RandomState(SEED)
    out = []
    for rows, cols, dtype in IMAGE_SHAPES:
        ramp = np.add.outer(np.linspace(0.0, 0.5, rows), np.linspace(0.0, 0.3, cols))
        unit = np.clip(ramp + 0.2 * rng.rand(rows, cols), 0.0, 1.0)
        if dtype == "float32":
            out.append(unit.astype(np.float32))
        else:
            out.append(np.rint(unit * np.iinfo(dtype).max).astype(dtype))
    return out


def run() -> dict:
    """The embeddings (full vectors, 7 decimals) and their norms, with what produced them."""
    import torch

    from eclip_core.model import EClip

    torch.manual_seed(SEED)
    model = EClip.from_config(MODEL).eval()
    image_vectors = model.embed_images(images(), progress=False)
    text_vectors = model.embed_texts(TEXTS, progress=False)
    return {
        "model": MODEL,
        "seed": SEED,
        "texts": TEXTS,
        "image_shapes": [list(s) for s in IMAGE_SHAPES],
        "image_embeddings": _rounded(image_vectors),
        "text_embeddings": _rounded(text_vectors),
        "image_norms": _rounded(np.linalg.norm(image_vectors.astype(np.float64), axis=1)),
        "text_norms": _rounded(np.linalg.norm(text_vectors.astype(np.float64), axis=1)),
    }


def _rounded(values: np.ndarray) -> list:
    return np.asarray(values, dtype=np.float64).round(7).tolist()


def to_json(result: dict) -> str:
    """One key per line, each vector on one line (a diff shows which vector moved)."""
    lines = []
    for key, value in result.items():
        if key.endswith("_embeddings"):
            rows = ",\n".join(f"  {json.dumps(row)}" for row in value)
            lines.append(f" {json.dumps(key)}: [\n{rows}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)  # as in the test session (tests/conftest.py)
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else GOLDEN
    target.write_text(to_json(run()))
    print(f"wrote {target}")
