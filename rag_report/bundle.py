"""The embedded default bundle: phantom data -> eCLIP (and plain CLIP) -> report index -> LLM.

Built once under ``$RAG_REPORT_HOME/bundle/<key>`` where ``key`` hashes every input that changes the
result; rebuilt only when one changes. Every step writes atomically and the bundle is complete only
when ``bundle.json`` exists, so an interrupted build resumes where it stopped.

>>> b = default_bundle()            # doctest: +SKIP
>>> b.eclip_dir, b.index_dir        # doctest: +SKIP
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from eclip_core.atomic import atomic_path
from eclip_core.config import EClipConfig, TrainConfig
from eclip_core.stage_clock import StageClock, children_cpu_seconds
from rag_report.errors import BundleError
from rag_report.paths import rag_report_home, text_feature_dir

log = logging.getLogger(__name__)

BUNDLE_VERSION = 3


def default_training() -> TrainConfig:
    """How the default eCLIP trains: a TrainConfig whose other fields keep TrainConfig's defaults.

    >>> t = default_training()
    >>> t.model.image_weights, t.model.image_size, t.model.lock_image, t.steps
    ('efficientnet-lite0', 128, False, 300)
    """
    return TrainConfig(
        # The packaged ImageNet EfficientNet-Lite0 at 128 px, fine-tuned: in the same compute it learns the
        # findings better than the small ResNet from scratch on every seed (docs/results/tower.md, val split).
        # The text tower (eclip-resnet16's) stays locked except its projection.
        model=EClipConfig(name="eclip-resnet16", image_weights="efficientnet-lite0", image_size=128, lock_text=True),
        # A Lite0 step costs ~3x the ResNet's: 300 steps keep the first run inside 7 minutes on 2 cores.
        steps=300,
        batch_size=32,
        lr=3e-4,
        seed=42,
        # Label-aware terms; the paper-objective model of the benchmark's eCLIP rows trains with both at 0.
        label_loss_weight=1.0,
        soft_target_weight=0.5,
        soft_target_temperature=0.1,
        # One data-loader process prepares the next batch while this one trains (faster on 2 cores; batches
        # are the same either way: every step's draws are seeded by the step).
        num_workers=1,
    )


#: The bundle key's names of the training fields it has always hashed (the key of the same settings stays
#: the same, so a built bundle is reused); any other training field set away from default_training()'s
#: value joins the key under its dotted name.
_KEYED_TRAINING = {
    "model": "model.name",
    "image_size": "model.image_size",
    "lock_text": "model.lock_text",
    "image_weights": "model.image_weights",
    **{n: n for n in ("steps", "batch_size", "lr", "seed", "num_workers")},
    **{n: n for n in ("label_loss_weight", "soft_target_weight", "soft_target_temperature")},
}
#: Fields the bundle sets for each of its runs (where and how it trains, not what).
_RUN_FIELDS = ("manifest", "output_dir", "method", "checkpoint_every", "resume", "progress", "text_feature_cache_dir")


@dataclass
class DefaultBundleConfig:
    """Inputs of the default bundle (changing any rebuilds it)."""

    phantom_size: int = 256
    phantom_seed: int = 0
    gaze_fraction: float = 0.15
    #: How the default eCLIP trains (the baseline and paper-objective models: the same, their terms changed).
    train: TrainConfig = field(default_factory=default_training)
    index_type: str = "flat"
    #: What the label classifiers read (rag_report.retrieval.image_views). "image+tiles" raised the ResNet's test
    #: classifier AUROC 0.836 -> 0.855, but five more Lite0 passes per indexed X-ray would cost the first run
    #: ~3.4 CPU-minutes (docs/perf/tower_cost.md); the Lite0 embedding alone scores 0.888 (docs/results/report_gen.md).
    classifier_views: str = "image"
    n_examples: int = 4

    def key(self) -> str:
        """Hash of every input that changes the result."""
        return hashlib.sha256(json.dumps(self.key_fields(), sort_keys=True).encode()).hexdigest()[:12]

    def key_fields(self) -> dict:
        own = {k: v for k, v in asdict(self).items() if k != "train"}
        trained, default = _flat(asdict(self.train)), _flat(asdict(default_training()))
        keyed = {name: trained[path] for name, path in _KEYED_TRAINING.items()}
        extra = {
            p: v for p, v in trained.items() if v != default[p] and p not in (*_KEYED_TRAINING.values(), *_RUN_FIELDS)
        }
        return {**own, **keyed, **extra, "version": BUNDLE_VERSION}


def _flat(data: dict, prefix: str = "") -> dict:
    """{"model": {"name": x}} -> {"model.name": x}."""
    out: dict = {}
    for k, v in data.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@dataclass
class Bundle:
    """Paths and facts of a built default bundle."""

    root: Path
    manifest_path: Path
    similarity_floor: float | None = None
    examples: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    config: DefaultBundleConfig = field(default_factory=DefaultBundleConfig)

    @property
    def eclip_dir(self) -> Path:
        return self.root / "eclip"

    def model_dir(self, method: str) -> Path:
        """Checkpoint folder of the default eCLIP (``eclip``), the paper-objective eCLIP (``eclip-paper``) or
        the baseline (``clip``) model."""
        return model_folder(self.root, self.config, method)

    @property
    def index_dir(self) -> Path:
        return self.root / "index"


def bundle_root(config: DefaultBundleConfig | None = None) -> Path:
    config = config or DefaultBundleConfig()
    return rag_report_home() / "bundle" / config.key()


def default_bundle(config: DefaultBundleConfig | None = None, *, build: bool = True, progress: bool = True) -> Bundle:
    """Return the default bundle, building what is missing when ``build`` (else raise BundleError)."""
    config = config or DefaultBundleConfig()
    root = bundle_root(config)
    from rag_report.index import is_current_index

    marker = root / "bundle.json"
    if marker.is_file() and is_current_index(root / "index"):
        info = json.loads(marker.read_text())
        bundle = Bundle(
            root, Path(info["manifest"]), info.get("similarity_floor"), info.get("examples", []), info, config
        )
        if build:
            _ensure_checker_thresholds(bundle)
        return bundle
    if not build:
        raise BundleError(f"the default bundle is not built at {root}; run `rag-report build-default`")
    return build_default_bundle(config, progress=progress)


BUNDLE_METHODS = ("eclip", "eclip-paper", "clip")


def _has_label_terms(config: DefaultBundleConfig) -> bool:
    return config.train.uses_labels


def model_folder(root: Path, config: DefaultBundleConfig, method: str) -> Path:
    """Where the bundle keeps ``method``'s checkpoint; without label terms the default model IS the
    paper-objective one (one folder, trained once)."""
    if method not in BUNDLE_METHODS:
        raise BundleError(f"unknown bundle model {method!r}; choose one of {BUNDLE_METHODS}")
    if method == "eclip-paper" and not _has_label_terms(config):
        method = "eclip"
    return root / method


def train_bundle_model(
    config: DefaultBundleConfig,
    manifest: Path,
    method: str,
    *,
    progress: bool = True,
    clock: StageClock | None = None,
) -> Path:
    """Train (or reuse) the bundle's ``method`` model on the phantom train split: "eclip" (the default, with
    the config's label terms), "eclip-paper" (the paper's objective, same budget) or "clip" (the baseline).
    ``clock`` gets the run's parts (setup, steps, text features, data loading, checkpoints) as stages."""
    from eclip_core.model import EClip
    from eclip_core.train import train

    out = model_folder(bundle_root(config), config, method)
    if (out / "config.json").is_file():
        return out
    labels = out.name == "eclip"
    cfg = replace(
        copy.deepcopy(config.train),
        manifest=str(manifest),
        output_dir=str(bundle_root(config) / f"{out.name}-run"),
        method="clip" if method == "clip" else "eclip",
        checkpoint_every=max(config.train.steps // 5, 1),
        resume=True,
        progress=progress,
        label_loss_weight=config.train.label_loss_weight if labels else 0.0,
        soft_target_weight=config.train.soft_target_weight if labels else 0.0,
        text_feature_cache_dir=str(text_feature_dir()),
    )
    children = children_cpu_seconds()
    result = train(cfg)
    if clock is not None:
        _record_training(clock, result.timings, children_cpu_seconds() - children)
    EClip.from_pretrained(result.model_dir).save_pretrained(out)
    return out


def _record_training(clock: StageClock, timings: dict[str, float], worker_cpu_s: float) -> None:
    """The parts of a training run as sub-stages (wall seconds of the main process; CPU seconds where known)."""
    text = timings.get("text_features_s", 0.0)  # the reports' text features, encoded before the first step
    clock.add("train: setup", max(0.0, timings.get("setup_s", 0.0) - text), None)
    clock.add("train: text features", text, timings.get("text_features_cpu_s"))
    clock.add("train: steps", timings.get("steps_s", 0.0), timings.get("steps_cpu_s"))
    clock.add("train: waiting for batches (loader worker CPU)", timings.get("data_wait_s", 0.0), worker_cpu_s)
    clock.add("train: checkpoints", timings.get("checkpoint_s", 0.0), None)
    clock.add("train: final save", timings.get("save_s", 0.0), None)


def prepare_default_llm() -> Path:
    """Convert the default LLM into the cache once (the grounded and free drafts load it from there);
    returns the converted folder. A first LLM draft does this by itself; `rag-report build-default` does it
    ahead, for a server that should draft without a pause."""
    from rag_report.llm.loading import convert_gguf, default_gguf_path

    return convert_gguf(default_gguf_path())


def build_default_bundle(
    config: DefaultBundleConfig | None = None, *, progress: bool = True, clock: StageClock | None = None
) -> Bundle:
    """Build every missing piece of the default bundle (phantom data, eCLIP, index, examples; the default
    draft needs no LLM: :func:`prepare_default_llm` converts it ahead).

    Each stage's wall and CPU seconds are logged at INFO, kept in ``clock`` when given and stored in
    ``bundle.json`` (``stages``)."""
    from eclip_core.data.manifest import read_manifest
    from eclip_core.data.phantom import build_phantom_dataset
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex, is_current_index
    from rag_report.index.embedding_memo import EmbeddingMemo

    config = config or DefaultBundleConfig()
    clock = clock if clock is not None else StageClock(logger=log)
    root = bundle_root(config)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log.info("building the default bundle in %s", root)
    with clock.stage("phantom data set"):
        manifest = build_phantom_dataset(
            size=config.phantom_size,
            seed=config.phantom_seed,
            gaze_fraction=config.gaze_fraction,
            progress=progress,
            cache_dir=rag_report_home(),
        )
        studies = read_manifest(manifest)
    train_studies = [s for s in studies if s.split == "train"]
    if not train_studies:
        raise BundleError(f"phantom manifest {manifest} has no train studies")
    with clock.stage("train eCLIP"):
        eclip_dir = train_bundle_model(config, manifest, "eclip", progress=progress, clock=clock)
    with clock.stage("load model"):
        model = EClip.from_pretrained(eclip_dir).eval()
    # The val X-rays (and their tiles) serve three stages below: embedded once.
    memo = EmbeddingMemo(model)
    index_dir = root / "index"
    val_studies = [s for s in studies if s.split == "val"]
    with clock.stage("index build"):
        if not is_current_index(index_dir):
            ReportIndex.build(
                memo,
                train_studies,
                index_dir,
                index_type=config.index_type,
                progress=progress,
                corpus_name="open-i-train (phantom default)",
                val_studies=val_studies,
                classifier_views=config.classifier_views,
                clock=clock,
                text_features=text_feature_dir(),  # the training's: the reports are not encoded again
            )
        index = ReportIndex.load(index_dir, model=model)
    with clock.stage("similarity floor"):
        floor = _similarity_floor(memo, index, val_studies, progress)
    with clock.stage("checker thresholds"):
        write_checker_thresholds(memo, index, val_studies)
    examples = _pick_examples([s for s in studies if s.split == "test"], config.n_examples)
    info = {
        "config": asdict(config),
        "key": config.key(),
        "manifest": str(manifest),
        "similarity_floor": floor,
        "examples": examples,
        "n_train_reports": len(train_studies),
        "build_seconds": time.perf_counter() - t0,
        "stages": clock.as_dicts(),
        "simulated": True,
    }
    with atomic_path(root / "bundle.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    log.info("default bundle ready in %.0f s", info["build_seconds"])
    return Bundle(root, manifest, floor, examples, info, config)


def _ensure_checker_thresholds(bundle: Bundle) -> None:
    """A bundle built before the draft checker had image thresholds gets them once (its val split)."""
    from rag_report.drafting.checker import THRESHOLDS_FILE

    if (bundle.index_dir / THRESHOLDS_FILE).is_file():
        return
    from eclip_core.data.manifest import read_manifest
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex

    log.info("choosing the draft checker's thresholds on the bundle's val split (once)")
    model = EClip.from_pretrained(bundle.eclip_dir).eval()
    index = ReportIndex.load(bundle.index_dir, model=model)
    write_checker_thresholds(model, index, read_manifest(bundle.manifest_path, split="val"))


def write_checker_thresholds(model, index, val_studies, batch_size: int = 64) -> Path | None:
    """Choose the draft checker's image thresholds on ``val_studies`` (:func:`rag_report.drafting.checker.
    choose_thresholds` of the index's label-classifier probabilities, each study's first X-ray read as
    ``generate_report`` reads it) and store them in the index folder, where the pipeline reads them. Returns
    the file, or None when the index has no label classifiers or there is no val X-ray with a report; an
    existing file is kept."""
    from eclip_core.data.image_io import load_nonblank_image as read_image
    from eclip_core.data.study_labels import study_label_rows
    from rag_report.drafting.checker import THRESHOLDS_FILE, choose_thresholds, save_thresholds
    from rag_report.retrieval.image_views import classifier_features

    clf, path = index.label_classifiers, Path(index.directory) / THRESHOLDS_FILE
    studies = [s for s in val_studies if s.report_text and s.image_paths]
    if clf is None or not studies:
        return None
    if path.exists():
        return path
    probs = []
    for start in range(0, len(studies), batch_size):
        paths = [s.image_paths[0] for s in studies[start : start + batch_size]]
        images = [read_image(p) for p in paths]  # refuses a blank X-ray, as the pipeline does
        # by path: the same pixels (load_image of a [0, 1] array returns it), and a model that remembers
        # what it embedded (EmbeddingMemo) knows the path from the index build
        vectors = model.embed_images(paths, progress=False)
        probs.append(clf.predict_proba(classifier_features(model, images, vectors, clf.views)))
    save_thresholds(choose_thresholds(np.concatenate(probs), study_label_rows(studies)), path)
    return path


def _similarity_floor(model, index, val_studies, progress: bool) -> float | None:
    """1st percentile of the best image->report similarity over validation images (the usual range)."""
    if not val_studies:
        return None
    vectors = model.embed_images([s.image_paths[0] for s in val_studies], progress=progress)
    scores, _ = index.search(vectors, 1)
    return float(np.percentile(np.asarray(scores)[:, 0], 1.0))


def _pick_examples(test_studies, n: int) -> list[str]:
    """A normal study first, then studies with distinct positive findings."""
    picked, seen = [], set()
    for s in sorted(test_studies, key=lambda s: s.study_id):
        pos = tuple(sorted(k for k, v in (s.labels or {}).items() if v == 1.0))
        if pos and pos not in seen and len(pos) == 1:
            seen.add(pos)
            picked.append(s.image_paths[0])
        if len(picked) >= n:
            break
    return picked
