"""Build the embedded default data set: real Open-I reports + phantom radiographs + simulated gaze.

Output folder (default ``$RAG_REPORT_HOME/phantom/<config-hash>/``)::

    manifest.csv            one row per study (eclip_core.data.manifest format)
    images/CXR123.png       one frontal phantom per study (8- or 16-bit grey)
    fixations/CXR123.csv    EGD-CXR fixations for the gaze subset of the train split
    COMPLETE.json           written last: config, counts, what was dropped

The build is cached (a folder with a matching ``COMPLETE.json`` is reused), atomic (built in a
temporary sibling, then renamed) and deterministic (same config -> byte-identical files).
Studies whose report has neither FINDINGS nor IMPRESSION text are dropped (28 of 3,955).

From a shell: ``python -m eclip_core.data.phantom --size 256``; from Python:

>>> manifest = build_phantom_dataset(size=256)     # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing as mp
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from eclip_core.atomic import atomic_dir, atomic_path
from eclip_core.data.manifest import Study, write_manifest
from eclip_core.data.openi import OpenIReport, load_openi_reports
from eclip_core.data.phantom.findings import labeler_available, study_findings
from eclip_core.data.phantom.gaze_sim import FILM_PX, simulate_fixations, write_fixations
from eclip_core.data.phantom.render import SIZES, render_study
from eclip_core.data.phantom.split import assign_split
from eclip_core.errors import ConfigError
from eclip_core.safe_dir import recover_dir
from eclip_core.text import join_report

log = logging.getLogger(__name__)

#: Bump when the renderer, findings mapping or gaze simulator change what they produce. The cache
#: key also hashes the package's source files, so an edited renderer never reuses a stale build.
PHANTOM_VERSION = "1"
MARKER = "COMPLETE.json"
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class PhantomConfig:
    size: int = 256
    seed: int = 0
    gaze_fraction: float = 0.15
    bits: int = 8
    limit: int | None = None  # first N studies only (tests, quick looks)

    def validate(self) -> None:
        if not isinstance(self.size, int) or not SIZES[0] <= self.size <= SIZES[1]:
            raise ConfigError(f"phantom size must be an int in [{SIZES[0]}, {SIZES[1]}], got {self.size!r}")
        if self.bits not in (8, 16):
            raise ConfigError(f"phantom bits must be 8 or 16, got {self.bits!r}")
        if not 0.0 <= self.gaze_fraction <= 1.0:
            raise ConfigError(f"gaze_fraction must be in [0, 1], got {self.gaze_fraction!r}")

    def key(self, source: str) -> dict[str, Any]:
        return {
            "version": PHANTOM_VERSION,
            "code": _code_hash(),
            "size": self.size,
            "seed": self.seed,
            "gaze_fraction": self.gaze_fraction,
            "bits": self.bits,
            "limit": self.limit,
            "labeler": labeler_available(),
            "source": source,
        }

    def hash(self, source: str) -> str:
        blob = json.dumps(self.key(source), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    labeler = here.parents[1] / "labeler"  # labels and text findings depend on it too
    files = (
        sorted(here.glob("*.py"))
        + [here / "r2gen_split.csv"]
        + sorted(labeler.rglob("*.py"))
        + sorted(labeler.rglob("*.txt"))
        + [here.parent / "openi.py"]
    )
    for f in files:
        if f.is_file() and f.name not in ("__main__.py", "contact_sheet.py"):
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


def has_gaze(uid: str, split: str, seed: int, fraction: float) -> bool:
    """Whether a study gets simulated gaze: a seeded ``fraction`` of the train split, by uid hash."""
    return split == "train" and zlib.crc32(f"gaze:{seed}:{uid}".encode()) / 2**32 < fraction


def _labels(text: str) -> dict[str, float | None]:
    try:
        from eclip_core.labeler import label_report  # noqa: PLC0415
    except ImportError:
        return {}
    return {k: v for k, v in label_report(text).items() if v is not None}


def _build_one(args: tuple[OpenIReport, str, PhantomConfig]) -> dict[str, Any]:
    rep, out, cfg = args
    text = join_report(rep.findings, rep.impression)
    findings = study_findings(rep.mesh, text)
    split = assign_split(rep.uid, cfg.seed)
    result = render_study(rep.uid, findings, size=cfg.size, seed=cfg.seed)
    img_rel = f"images/{rep.uid}.png"
    arr = result.to_array(cfg.bits)
    with atomic_path(Path(out) / img_rel) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG", compress_level=1)
    fix_rel = []
    if has_gaze(rep.uid, split, cfg.seed, cfg.gaze_fraction):
        dicom_id = (
            rep.frontal_image_ids[0] if rep.frontal_image_ids else (rep.image_ids[0] if rep.image_ids else rep.uid)
        )
        df = simulate_fixations(result, rep.uid, cfg.seed, dicom_id=dicom_id, original_size=(FILM_PX, FILM_PX))
        write_fixations(df, Path(out) / f"fixations/{rep.uid}.csv")
        fix_rel = [f"fixations/{rep.uid}.csv"]
    frontal = rep.frontal_image_ids
    meta = {
        "simulated": True,
        "source": "open-i reports (torchxrayvision) + phantom radiograph",
        "mesh": rep.mesh,
        "findings": [f.to_dict() for f in result.findings],
        "finding_kinds": sorted({f.kind for f in result.findings}),
        "indication": rep.indication,
        "comparison": rep.comparison,
        "openi_image_ids": rep.image_ids,
        "openi_frontal_view": rep.views.get(frontal[0], "") if frontal else "",
        # the grid of the fixations' X/Y_ORIGINAL: a nominal film, the phantom scaled up (gaze_sim)
        "original_size": [FILM_PX, FILM_PX],
        "phantom_version": PHANTOM_VERSION,
    }
    if fix_rel:
        meta["dicom_id"] = dicom_id
    return {
        "study_id": rep.uid,
        "image_paths": [img_rel],
        "split": split,
        "findings": rep.findings,
        "impression": rep.impression,
        "view": "PA",
        "labels": _labels(text),
        "fixations_paths": fix_rel,
        "gaze_format": "egd" if fix_rel else "",
        "meta": meta,
    }


def default_out_dir(cfg: PhantomConfig, cache_dir: str | os.PathLike, source: str = "torchxrayvision") -> Path:
    """``cache_dir/phantom/<key>``: where a build of ``cfg`` lives in an application's cache folder."""
    return Path(cache_dir) / "phantom" / cfg.hash(source)


def _is_complete(out: Path, key: dict[str, Any]) -> bool:
    marker = out / MARKER
    if not marker.is_file() or not (out / MANIFEST).is_file():
        return False
    try:
        return json.loads(marker.read_text())["config"] == key
    except (ValueError, KeyError):
        return False


def build_phantom_dataset(
    out_dir: str | os.PathLike | None = None,
    size: int = 256,
    seed: int = 0,
    gaze_fraction: float = 0.15,
    progress: bool = True,
    *,
    bits: int = 8,
    limit: int | None = None,
    workers: int = 2,
    reports: Sequence[OpenIReport] | None = None,
    force: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Build (or reuse) the phantom data set; return the manifest path.

    ``reports`` overrides the Open-I corpus (e.g. a user's NLMCXR folder via ``load_openi_reports``);
    ``limit`` keeps the first N studies; ``workers`` processes render in parallel (1 = in-process). Without
    ``out_dir`` the build lives in ``cache_dir/phantom/<key>`` (rag_report passes $RAG_REPORT_HOME).

    >>> m = build_phantom_dataset(size=64, limit=4, workers=1, progress=False)   # doctest: +SKIP
    >>> m.name                                                                   # doctest: +SKIP
    'manifest.csv'
    """
    cfg = PhantomConfig(size=size, seed=seed, gaze_fraction=gaze_fraction, bits=bits, limit=limit)
    cfg.validate()
    source = (
        "torchxrayvision"
        if reports is None
        else "custom:"
        + hashlib.sha256(
            "|".join(r.uid + r.findings + r.impression + "/".join(r.mesh) for r in reports).encode()
        ).hexdigest()[:12]
    )
    if out_dir is None and cache_dir is None:
        raise ConfigError("build_phantom_dataset needs out_dir (the data set's folder) or cache_dir (a cache root)")
    out = Path(out_dir) if out_dir is not None else default_out_dir(cfg, cache_dir, source)
    key = cfg.key(source)
    recover_dir(out, lambda folder: (folder / MARKER).is_file())  # a build killed while moving its folder in
    if not force and _is_complete(out, key):
        log.info("phantom data set already built at %s", out)
        return out / MANIFEST
    if not labeler_available():
        log.warning("eclip_core.labeler is not importable: findings come from MeSH codes only, labels are empty")
    all_reports = list(load_openi_reports() if reports is None else reports)
    kept = [r for r in all_reports if r.has_text]
    dropped = [r.uid for r in all_reports if not r.has_text]
    if limit is not None:
        kept = kept[:limit]
    log.info(
        "building %d phantom studies at %d px into %s (%d dropped: no findings/impression text)",
        len(kept),
        size,
        out,
        len(dropped),
    )
    # Not flushed file by file (thousands of images): a power cut costs a rebuild, not a wrong data set.
    with atomic_dir(out, durable=False) as tmp:
        (tmp / "images").mkdir()
        (tmp / "fixations").mkdir()
        jobs = [(r, str(tmp), cfg) for r in kept]
        rows = _run(jobs, workers, progress)
        # absolute paths inside the temporary folder: the manifest stores them relative to it
        for row in rows:
            row["image_paths"] = [str(tmp / p) for p in row["image_paths"]]
            row["fixations_paths"] = [str(tmp / p) for p in row["fixations_paths"]]
        studies = [Study(**row) for row in rows]
        write_manifest(studies, tmp / MANIFEST)
        counts = {s: sum(st.split == s for st in studies) for s in ("train", "val", "test")}
        marker = {
            "config": key,
            "studies": len(studies),
            "splits": counts,
            "gaze_studies": sum(bool(st.fixations_paths) for st in studies),
            "dropped_no_text": len(dropped),
            "dropped_uids": dropped,
            "note": "report text, MeSH codes and split are real (Open-I); images and gaze are simulated",
        }
        with atomic_path(tmp / MARKER) as mtmp:
            mtmp.write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    return out / MANIFEST


def _run(jobs, workers: int, progress: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="phantom", unit="study", disable=not progress)
    rows = []
    if workers <= 1 or len(jobs) < 8:
        for j in jobs:
            rows.append(_build_one(j))
            bar.update()
    else:
        # fork where available: no re-import of the caller's __main__ (spawn needs a main guard)
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers) as pool:
            for row in pool.imap(_build_one, jobs, chunksize=16):
                rows.append(row)
                bar.update()
    bar.close()
    return rows


__all__ = ["build_phantom_dataset", "PhantomConfig", "default_out_dir", "has_gaze", "PHANTOM_VERSION"]
