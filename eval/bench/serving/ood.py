"""Study: does the pipeline warn on images unlike the corpus X-rays? (default bundle)

    python -m eval.bench.serving.ood --out docs/results/ood.md

Two warnings exist (rag_report.pipeline): k-NN *typicality* of the query's eCLIP image embedding among the
index's sampled corpus X-rays below the index's floor (1st percentile of the corpus's own leave-one-out
typicality), and the best report *similarity* below the bundle's floor (1st percentile over val images).
This script counts how often each fires on held-out X-rays (val and test: false alarms) and on images that
are not chest X-rays (noise, patterns, a gradient photo, text-like speckle; made here with a fixed seed),
plus the two real NIH chest X-rays shipped in apps/examples (which should pass).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

from eclip_core.runtime import setup_offline  # noqa: E402

setup_offline()  # before any Hugging Face library is imported

#: Two real NIH ChestX-ray14 radiographs shipped with the app (see apps/examples/NOTICE).
SAMPLE_CXR = Path(__file__).resolve().parents[3] / "apps" / "examples"


def synthetic_non_cxr(seed: int = 0) -> dict[str, object]:
    """Images that are not chest X-rays, deterministic for a seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:512, 0:512]
    return {
        "uniform noise, colour": (rng.random((512, 512, 3)) * 255).astype(np.uint8),
        "uniform noise, grey": (rng.random((512, 512)) * 255).astype(np.uint8),
        "low-contrast Gaussian noise": (128 + rng.standard_normal((512, 512)) * 5).clip(0, 255).astype(np.uint8),
        "checkerboard": (((yy // 64 + xx // 64) % 2) * 255).astype(np.uint8),
        "stripes": ((np.sin(xx / 6.0) > 0) * 255).astype(np.uint8),
        "colour gradient (sky-like photo)": np.stack([xx / 2, yy / 2, np.full_like(xx, 200)], -1).astype(np.uint8),
        "sparse speckle (text-like)": ((rng.random((512, 512)) > 0.97) * 255).astype(np.uint8),
        "radial disc": ((np.hypot(xx - 256, yy - 256) < 150) * 200 + 30).astype(np.uint8),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/results/ood.md")
    args = p.parse_args(argv)

    import numpy as np

    from eclip_core.data.manifest import read_manifest
    from eval.bench.page import write_page
    from rag_report.bundle import default_bundle
    from rag_report.pipeline import PipelineConfig, ReportPipeline

    bundle = default_bundle(build=True, progress=False)
    pipe = ReportPipeline(PipelineConfig(), progress=False)
    studies = read_manifest(bundle.manifest_path)

    def flags(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        typ = pipe.index.typicality(vectors)
        best, _ = pipe.index.search(vectors, 1)
        return typ, typ < pipe.typicality_floor, best[:, 0] < pipe.similarity_floor

    rows = []
    for split in ("val", "test"):
        paths = [s.image_paths[0] for s in studies if s.split == split]
        typ, t_flag, s_flag = flags(pipe.model.embed_images(paths, progress=False))
        rows.append(
            (
                f"held-out phantom X-rays ({split}, n={len(paths)})",
                f"{np.median(typ):.4f} (median)",
                f"{t_flag.mean():.1%}",
                f"{s_flag.mean():.1%}",
            )
        )
    others = synthetic_non_cxr()
    real = {f"real NIH chest X-ray {Path(f).name}": f for f in sorted(glob.glob(str(SAMPLE_CXR / "*.png")))}
    for name, img in {**others, **real}.items():
        typ, t_flag, s_flag = flags(pipe.model.embed_images([img], progress=False))
        rows.append((name, f"{typ[0]:.4f}", "warns" if t_flag[0] else "passes", "warns" if s_flag[0] else "passes"))

    info = pipe.index.manifest["typicality"]
    lines = [
        "# Study: warnings on images unlike the corpus (default bundle)",
        "",
        "> Default bundle: phantom (simulated) radiographs; the eCLIP image tower has never seen a real X-ray.",
        "",
        f"Command: `python -m eval.bench.serving.ood --out {args.out}`",
        "",
        f"Typicality: the {info['k']}-th largest cosine between the query's eCLIP image embedding and "
        f"{info['sample']} sampled corpus X-rays; floor {pipe.typicality_floor:.4f} (1st percentile of the corpus's "
        f"leave-one-out typicality, median {info['median']:.4f}). Similarity floor {pipe.similarity_floor:.4f} "
        "(1st percentile of the best centred image->report cosine over val images). For held-out rows the columns "
        "give the share of images that would get each warning (false alarms).",
        "",
        "| image | typicality | typicality warning | similarity warning |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    write_page(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
