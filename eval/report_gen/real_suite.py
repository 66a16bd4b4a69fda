"""``python -m eval.report_gen --suite real --manifest M``: image towers on real X-rays.

For a manifest of real frontal X-rays whose studies carry ``meta.finding`` and ``meta.patient_id`` (the
COVID-19 image data collection's builder writes such a manifest: ``python -m eclip_core.data.builders
covid``), every tower is scored by:

- a linear probe (standardised logistic regression) of COVID-19 vs other findings, and of viral or bacterial
  pneumonia vs No Finding where each class has ``min_class`` X-rays of ``min_class // 2`` patients:
  patient-grouped 5-fold cross-validation on the rows no tower was trained on (val and test splits), and,
  for the towers not trained on the manifest, on every row; AUROC with a patient-bootstrap 95 % interval;
- a probe fitted on the train split's embeddings, scored on the held-out rows (the "a user's archive"
  check: which tower gives the better classifier of new patients);
- image->note R@1/5/10 on the held-out rows against its exact chance (a hit: one of the top k notes is the
  query's own text), for towers with a text side trained on the manifest;
- the typicality warning rate of the held-out X-rays against an index of the train split (the product's
  check that an image is unlike the corpus).

Towers: scratch ViT and scratch ResNet (the model configs' own towers, trained with `rag-report train`'s
CPU settings and ``--image-weights none``), the packaged ImageNet EfficientNet-Lite0 frozen (its pooled
features, no training), fine-tuned whole at 128 px, and with its trunk locked at 224 px while the
projections train (`rag-report train`'s defaults, ``lock_image``, at its lr 1e-3), and the default
bundle's phantom tower when the bundle is built. The collection has no gaze data, so the eCLIP objective trains as CLIP's.

>>> RealSuiteConfig(manifest="m.csv", towers=["lite0_frozen"]).validate().towers
['lite0_frozen']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eclip_core.errors import ConfigError
from eval.bench.page import write_page
from eval.report_gen import real_metrics as rm
from eval.report_gen.real_towers import TOWER_LR, TOWERS
from rag_report.cli_train import VALIDATION_DEFAULTS

log = logging.getLogger(__name__)

PNEUMONIA = ("viral", "bacterial")


@dataclass
class RealSuiteConfig:
    """Inputs and budget of the real-image suite."""

    #: Study manifest of real X-rays with meta.finding and meta.patient_id (required).
    manifest: str | None = None
    #: Towers to score.
    towers: list[str] = field(default_factory=lambda: list(TOWERS), metadata={"choices": tuple(TOWERS)})
    #: Training steps of each trained tower.
    steps: int = 150
    #: Training batch size.
    batch_size: int = 16
    #: Learning rate (`rag-report train`'s CPU default).
    lr: float = 3e-4
    #: One training run per seed and trained tower.
    seeds: list[int] = field(default_factory=lambda: [0])
    #: Folds of the patient-grouped cross-validated probe.
    folds: int = 5
    #: Bootstrap resamples of the intervals.
    n_boot: int = 1000
    #: The X-rays are decoded once and stored at this shorter side (pixels) for training and scoring (the
    #: towers read at most 224 px; full-size decoding per step would dominate a CPU run); 0 keeps them.
    image_cache_px: int = 256
    #: The splits scored as held-out. Without val among them, every trained tower keeps its best val step
    #: and stops early as `rag-report train` does by default; with it, towers train every step and keep the last.
    heldout_splits: list[str] = field(default_factory=lambda: ["val", "test"], metadata={"choices": ("val", "test")})
    #: A probe task runs when each class has this many X-rays (and half as many patients).
    min_class: int = 10
    num_workers: int = 1
    out_dir: str = "runs/real"
    name: str = "real"
    progress: bool = True
    #: The command line that produced the run (filled in by the CLI).
    command: str = field(default="", metadata={"hidden": True})

    def validate(self) -> RealSuiteConfig:
        if not self.manifest:
            raise ConfigError("the real suite needs --manifest (e.g. from python -m eclip_core.data.builders covid)")
        unknown = [t for t in self.towers if t not in TOWERS]
        if unknown:
            raise ConfigError(f"unknown tower(s) {unknown}; choose from {list(TOWERS)}")
        self.towers = [t for t in TOWERS if t in self.towers]
        if not self.seeds or self.steps < 1 or self.folds < 2:
            raise ConfigError("give at least one seed, steps >= 1 and folds >= 2")
        return self

    @property
    def selects_on_val(self) -> bool:
        """Trained towers keep their best val step (`rag-report train`'s default) when val is not scored."""
        return "val" not in self.heldout_splits

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------- data
def manifest_digest(path: Path) -> str:
    """sha256 of the manifest's bytes: a manifest rebuilt unchanged keeps its cached towers and scores."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def downsized_manifest(manifest: str, px: int, progress: bool) -> str:
    """A copy of ``manifest`` whose X-rays are stored once as 8-bit grey PNGs with shorter side ``px``
    (aspect kept; never enlarged), under $RAG_REPORT_HOME/eval/real/images-<key>/; its path."""
    from PIL import Image
    from tqdm.auto import tqdm

    from eclip_core.data.image_io import load_image
    from eclip_core.data.manifest import read_manifest, write_manifest
    from rag_report.paths import rag_report_home

    source = Path(manifest).resolve()
    key = hashlib.sha256(f"{source}:{manifest_digest(source)}:{px}".encode()).hexdigest()[:10]
    folder = rag_report_home() / "eval" / "real" / f"images-{key}"
    out = folder / "manifest.csv"
    if out.is_file():
        return str(out)
    studies = read_manifest(str(source))
    folder.mkdir(parents=True, exist_ok=True)
    for s in tqdm(studies, desc="downsize X-rays", disable=not progress):
        small = []
        for i, path in enumerate(s.image_paths):
            img = Image.fromarray(np.rint(load_image(path) * 255).astype(np.uint8))
            scale = px / min(img.size)
            if scale < 1:
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
            target = folder / f"{s.study_id}-{i}.png"
            img.save(target)
            small.append(str(target))
        s.image_paths = small
    write_manifest(studies, out)
    return str(out)


def clone_commit(manifest: str) -> str | None:
    """The git commit of the clone holding the manifest's first image (None: not in a git clone)."""
    import subprocess

    from eclip_core.data.manifest import read_manifest

    studies = [s for s in read_manifest(manifest) if s.image_paths]
    if not studies:
        return None
    folder = Path(studies[0].image_paths[0]).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    # A manifest inside some other repository's work tree is not a clone of the collection's images.
    return out[1] if len(out) == 2 and folder.is_relative_to(out[0]) and "images" in folder.parts else None


# ---------------------------------------------------------------------------------------------- towers
def training_key(cfg: RealSuiteConfig, tower: str) -> dict[str, Any]:
    """What a tower's model depends on besides its manifest and seed (only its fields for an untrained
    tower): part of the cache keys of its model and of its scores."""
    from eclip_core.training.validation import SELECTION_RULES

    if not TOWERS[tower][2]:
        return {"f": TOWERS[tower][1], "train": None}
    validation = VALIDATION_DEFAULTS if cfg.selects_on_val else {}
    rule = SELECTION_RULES.get(validation.get("val_metric", "loss")) if validation else None
    return {"f": TOWERS[tower][1] or {}, "s": cfg.steps, "b": cfg.batch_size, "lr": TOWER_LR.get(tower, cfg.lr),
            "v": validation, "rule": rule}  # fmt: skip


def train_tower(cfg: RealSuiteConfig, tower: str, seed: int) -> tuple[Path, dict]:
    """Train (or reuse) one tower on the manifest's train split; (model dir, {train_seconds, final_loss,
    best_step, steps_trained})."""
    from eclip_core.config import EClipConfig, TrainConfig
    from eclip_core.train import train
    from rag_report.paths import rag_report_home

    fields = TOWERS[tower][1] or {}
    lr = TOWER_LR.get(tower, cfg.lr)
    validation = VALIDATION_DEFAULTS if cfg.selects_on_val else {}
    key = json.dumps({"m": str(Path(str(cfg.manifest)).resolve()), **training_key(cfg, tower)}, sort_keys=True)
    out = rag_report_home() / "eval" / "real" / f"{tower}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    info = out / "suite_run.json"
    if (out / "model" / "config.json").is_file() and info.is_file():
        return out / "model", json.loads(info.read_text())
    t0 = time.perf_counter()
    result = train(
        TrainConfig(
            manifest=str(cfg.manifest),
            output_dir=str(out),
            method="eclip",
            model=EClipConfig(lock_text=True, **fields),
            steps=cfg.steps,
            batch_size=cfg.batch_size,
            lr=lr,
            seed=seed,
            num_workers=cfg.num_workers,
            progress=cfg.progress,
            validate_images=False,
            **validation,
        )
    )
    done = {"train_seconds": time.perf_counter() - t0, "final_loss": result.final_loss, "best_step": result.best_step,
            "steps_trained": result.steps}  # fmt: skip
    info.write_text(json.dumps(done))
    return Path(result.model_dir), done


def frozen_features(model, paths: list[str], progress: bool) -> np.ndarray:
    """Pooled trunk features of a timm tower (no projection): what a frozen pretrained backbone gives."""
    import torch

    from eclip_core.data.image_io import load_image

    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), 32):
            x = torch.stack([model.preprocess(load_image(p)) for p in paths[start : start + 32]])
            out.append(model.clip.visual.trunk(x).float().numpy())
    return np.concatenate(out)


def train_index(model, model_dir: Path, train, progress: bool):
    """An index of the train split's notes (no label classifiers), kept beside the model."""
    from rag_report.index import ReportIndex, is_current_index

    index_dir = Path(model_dir).parent / "real-index"
    if not is_current_index(index_dir):
        ReportIndex.build(model, train, index_dir, progress=progress, label_classifiers=False, corpus_name="train")
    return ReportIndex.load(index_dir)


def typicality_rate(index, vecs: np.ndarray) -> float | None:
    """Share of X-ray embeddings under the index's typicality floor (None: the index has no image sample)."""
    floor = (index.manifest.get("typicality") or {}).get("floor")
    scores = index.typicality(vecs)
    return None if scores is None or floor is None else float((scores < floor).mean())


# ---------------------------------------------------------------------------------------------- scoring
def _tasks(studies, cfg: RealSuiteConfig) -> dict[str, np.ndarray]:
    """Probe tasks -> label per study (NaN: not in the task), kept where the counts allow."""
    group = np.array([s.meta.get("finding_group", "") for s in studies])
    covid = np.array([str(s.meta.get("finding", "")).lower().startswith("covid-19") for s in studies], float)
    out = {"COVID-19 vs other": covid}
    for kind in PNEUMONIA:
        y = np.where(group == kind, 1.0, np.where(group == "no finding", 0.0, np.nan))
        out[f"{kind} pneumonia vs No Finding"] = y
    return out


def _countable(y: np.ndarray, patients: np.ndarray, cfg: RealSuiteConfig) -> bool:
    keep = ~np.isnan(y)
    for c in (0.0, 1.0):
        rows = keep & (y == c)
        if rows.sum() < cfg.min_class or len(np.unique(patients[rows])) < cfg.min_class // 2:
            return False
    return True


def score_tower(vecs: np.ndarray, studies, cfg: RealSuiteConfig, seed: int, trained: bool) -> dict[str, Any]:
    """Probe scores of one tower's embeddings [n, D] of ``studies`` (see the module docstring)."""
    patients = np.array([str(s.meta.get("patient_id", s.study_id)) for s in studies])
    held = np.array([s.split in cfg.heldout_splits for s in studies])
    out: dict[str, Any] = {"probe_cv_heldout": {}, "probe_cv_all": {}, "probe_train_to_heldout": {}, "skipped": []}
    for task, y in _tasks(studies, cfg).items():
        for name, rows in (("probe_cv_heldout", held), ("probe_cv_all", None if trained else np.ones_like(held))):
            if rows is None:
                continue
            r = rows & ~np.isnan(y)
            if not _countable(y[r], patients[r], cfg):
                out["skipped"].append(f"{task} ({name}): too few X-rays or patients per class")
                continue
            p = rm.grouped_cv_probe(vecs[r], y[r], patients[r], cfg.folds, seed)
            out[name][task] = rm.auroc_with_ci(y[r], p, patients[r], seed, cfg.n_boot)
        fit, test = ~held & ~np.isnan(y), held & ~np.isnan(y)
        if _countable(y[fit], patients[fit], cfg) and len(np.unique(y[test])) == 2:
            p = rm.split_probe(vecs[fit], y[fit], vecs[test])
            out["probe_train_to_heldout"][task] = rm.auroc_with_ci(y[test], p, patients[test], seed, cfg.n_boot)
    return out


def score_retrieval(image_vecs: np.ndarray, note_vecs: np.ndarray, studies, cfg: RealSuiteConfig, seed: int) -> dict:
    patients = np.array([str(s.meta.get("patient_id", s.study_id)) for s in studies])
    r = rm.recall_at_k(image_vecs, note_vecs, [s.report_text for s in studies])
    out = {"n": len(studies)}
    for k in (1, 5, 10):
        out[f"R@{k}"] = rm.mean_with_ci(r[f"hits@{k}"], patients, seed, cfg.n_boot)
        out[f"chance@{k}"] = float(r[f"chance@{k}"].mean())
    return out


def evaluate(cfg: RealSuiteConfig, tower: str, seed: int, studies) -> dict[str, Any]:
    """Train (if the tower is trained) and score one tower."""
    from eclip_core.config import EClipConfig
    from eclip_core.model import EClip
    from rag_report.bundle import default_bundle
    from rag_report.errors import RagReportError
    from rag_report.index import ReportIndex

    description, fields, trained = TOWERS[tower]
    held_rows = np.array([s.split in cfg.heldout_splits for s in studies])
    held = [s for s in studies if s.split in cfg.heldout_splits]
    train = [s for s in studies if s.split == "train"]
    paths = [s.image_paths[0] for s in studies]
    run: dict[str, Any] = {"tower": tower, "seed": seed, "description": description}
    model_dir: Path | None = None
    if tower == "bundle":
        try:
            bundle = default_bundle(build=False)
        except RagReportError as exc:
            run["not_run"] = f"the default bundle is not built ({exc})"
            return run
        model_dir = bundle.model_dir("eclip")
        model = EClip.from_pretrained(model_dir)
    elif trained:
        model_dir, done = train_tower(cfg, tower, seed)
        run.update(
            train_seconds=done["train_seconds"],
            best_step=done.get("best_step"),
            steps_trained=done.get("steps_trained"),
        )
        model = EClip.from_pretrained(model_dir)
    else:
        model = EClip(EClipConfig(**(fields or {})))
    if tower == "lite0_frozen":
        vecs = frozen_features(model, paths, cfg.progress)
    else:
        vecs = model.embed_images(paths, progress=cfg.progress)
    run.update(score_tower(vecs, studies, cfg, seed, trained))
    if model_dir is not None:  # a text side that saw notes (the bundle's: phantom reports)
        notes = model.embed_texts([s.report_text for s in held], progress=cfg.progress)
        run["retrieval_heldout"] = score_retrieval(vecs[held_rows], notes, held, cfg, seed)
        index = (
            ReportIndex.load(bundle.index_dir)
            if tower == "bundle"
            else train_index(model, model_dir, train, cfg.progress)
        )
        run["typicality_warning_rate"] = typicality_rate(index, vecs[held_rows])
    return run


def score_path(cfg: RealSuiteConfig, tower: str, seed: int) -> Path:
    """Where :func:`scored` keeps one tower's scores: a hash of the manifest (path and content), the tower's
    fields and training (:func:`training_key`, validation included) and the scoring settings."""
    from rag_report.paths import rag_report_home

    source = Path(str(cfg.manifest)).resolve()
    key = json.dumps(
        {
            "m": str(source),
            "content": manifest_digest(source),
            "tower": training_key(cfg, tower),
            "held": cfg.heldout_splits,
            "score": [cfg.folds, cfg.n_boot, cfg.min_class],
            "bundle": _bundle_key() if tower == "bundle" else None,
        },
        sort_keys=True,
    )
    name = f"{tower}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
    return rag_report_home() / "eval" / "real" / "scores" / name


def scored(cfg: RealSuiteConfig, tower: str, seed: int, studies) -> dict[str, Any]:
    """:func:`evaluate`, its result kept under $RAG_REPORT_HOME/eval/real/scores/ per manifest, tower, training
    and scoring settings and seed: a later run adding rows (or run per tower in parallel) rescores nothing."""
    path = score_path(cfg, tower, seed)
    if path.is_file():
        return {**json.loads(path.read_text()), "description": TOWERS[tower][0]}
    run = evaluate(cfg, tower, seed, studies)
    if "not_run" not in run:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))
    return run


def _bundle_key() -> str | None:
    from rag_report.bundle import default_bundle
    from rag_report.errors import RagReportError

    try:
        return str(default_bundle(build=False).model_dir("eclip"))
    except RagReportError:
        return None


def run_real_suite(cfg: RealSuiteConfig) -> dict[str, Any]:
    """Score every tower (and seed, for trained ones); write ``<out_dir>/<name>.json`` and ``.md``."""
    import datetime as _dt

    from eclip_core.atomic import atomic_path
    from eclip_core.data.manifest import read_manifest
    from eval.report_gen.real_table import render_markdown

    cfg.validate()
    given = cfg.to_dict()
    if cfg.image_cache_px:
        cfg = dataclasses.replace(cfg, manifest=downsized_manifest(str(cfg.manifest), cfg.image_cache_px, cfg.progress))
    studies = [s for s in read_manifest(str(cfg.manifest)) if s.report_text and s.image_paths]
    runs = []
    for tower in cfg.towers:
        for seed in cfg.seeds if TOWERS[tower][2] else cfg.seeds[:1]:
            run = scored(cfg, tower, seed, studies)
            log.info("%s seed %d: %s", tower, seed, {k: v for k, v in run.items() if k.startswith("probe")})
            runs.append(run)
    licences: dict[str, int] = {}
    for s in studies:
        key = s.meta.get("license") or "(none named)"
        licences[key] = licences.get(key, 0) + 1
    splits = {sp: sum(s.split == sp for s in studies) for sp in ("train", "val", "test")}
    result = {
        "command": cfg.command,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": f"a {os.cpu_count()}-core {platform.machine()} CPU",
        "config": given,
        # What chose each trained tower's kept step (rag-report train's defaults; none when val is scored).
        "validation": VALIDATION_DEFAULTS if cfg.selects_on_val else {},
        "data": {
            "n": len(studies),
            "patients": len({s.meta.get("patient_id") for s in studies}),
            "heldout_patients": len({s.meta.get("patient_id") for s in studies if s.split in cfg.heldout_splits}),
            "splits": splits,
            "licences": licences,
            "clone_commit": clone_commit(str(given["manifest"])),
        },
        "runs": runs,
    }
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(cfg.out_dir) / f"{cfg.name}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    write_page(Path(cfg.out_dir) / f"{cfg.name}.md", render_markdown(result), echo=False)
    result["outputs"] = {"json": f"{cfg.out_dir}/{cfg.name}.json", "markdown": f"{cfg.out_dir}/{cfg.name}.md"}
    return result
