"""Training data: row validation, the deterministic per-step plan, and the step-batch dataset.

Everything random about step ``s`` (which main rows, whether an expert batch is injected, its rows,
lambda, augmentation seeds) is drawn from a generator seeded by (seed, s). A resumed run therefore
sees exactly the batches the uninterrupted run would have seen, without replaying data loaders.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from eclip_core.config import TrainConfig
from eclip_core.curriculum import expert_probability
from eclip_core.data.manifest import Study, find_missing_files
from eclip_core.errors import EClipError, ManifestError

logger = logging.getLogger(__name__)


def step_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across runs and platforms)."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts])
        .generate_state(2, np.uint32)
        .astype(np.uint64)
        .dot(np.array([1, 1 << 32], dtype=np.uint64))
        & ((1 << 63) - 1)
    )


@dataclass
class RowCheck:
    """Result of validating manifest rows: the usable studies and what was wrong with the others."""

    good: list[Study]
    bad: list[tuple[str, str]] = field(default_factory=list)  # (study_id, reason)


def _load_study_image(study: Study) -> np.ndarray:
    from eclip_core.data.image_io import load_image

    return load_image(study.image_paths[0])


def _load_study_heatmap(study: Study, shape: tuple[int, int]) -> np.ndarray:
    from eclip_core.data.expert_heatmap import load_expert_heatmap

    hm = load_expert_heatmap(study, shape)
    if hm is None:
        raise ManifestError(f"study {study.study_id}: expert row without a usable heatmap or fixations")
    return hm


def check_rows(studies: Sequence[Study], decode: bool, progress: bool = False) -> RowCheck:
    """Drop rows with missing files and (``decode``) rows whose image or expert map cannot be read."""
    from tqdm.auto import tqdm

    missing = {s.study_id: msg for s, msg in find_missing_files(studies)}
    good, bad = [], [(sid, msg) for sid, msg in missing.items()]
    for s in tqdm(studies, desc="check rows", disable=not (progress and decode), unit="row"):
        if s.study_id in missing:
            continue
        if decode:
            try:
                img = _load_study_image(s)
                if s.has_expert:
                    _load_study_heatmap(s, img.shape)
            except EClipError as exc:
                bad.append((s.study_id, str(exc)))
                continue
        good.append(s)
    return RowCheck(good, bad)


@dataclass
class StepPlan:
    """What step ``step`` (0-based) trains on, for one rank."""

    step: int
    main_idx: list[int]
    main_seeds: list[int]
    inject: bool
    expert_idx: list[int]
    expert_seeds: list[int]
    lam: float
    p_expert: float
    torch_seed: int


class StepPlanner:
    """Deterministic plan per step: epoch permutations for the main stream, curriculum draws for experts."""

    def __init__(self, cfg: TrainConfig, n_main: int, n_expert: int, rank: int = 0, world: int = 1):
        if n_main < 1:
            raise ManifestError("no usable training rows")
        self.cfg, self.n_main, self.n_expert, self.rank, self.world = cfg, n_main, n_expert, rank, world

    @lru_cache(maxsize=4)  # noqa: B019 -- one planner per run; 4 epochs of permutations
    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng(step_seed(self.cfg.seed, 1, epoch)).permutation(self.n_main)

    def plan(self, step: int) -> StepPlan:
        cfg, b, be = self.cfg, self.cfg.batch_size, self.cfg.effective_expert_batch_size
        rng = np.random.default_rng(step_seed(cfg.seed, 2, step))
        start = (step * self.world + self.rank) * b
        main_idx = [int(self._perm(i // self.n_main)[i % self.n_main]) for i in range(start, start + b)]
        p = expert_probability(step + 1, cfg.steps, cfg) if self.n_expert else 0.0
        inject = bool(rng.uniform() < p)
        lam = 1.0
        if cfg.method == "naive":
            lam = 0.0
        elif inject:
            lam = float(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha))
        # Every rank draws the same global expert rows and takes its slice (same injection decision).
        expert_all = (
            rng.choice(self.n_expert, size=be * self.world, replace=self.n_expert < be * self.world)
            if inject
            else np.zeros(0, dtype=int)
        )
        expert_idx = [int(i) for i in expert_all[self.rank * be : (self.rank + 1) * be]]
        seeds = rng.integers(0, 1 << 62, size=2 * b * self.world + 2 * be * self.world + 1)
        off = self.rank * b
        return StepPlan(
            step=step,
            main_idx=main_idx,
            main_seeds=[int(x) for x in seeds[off : off + b]],
            inject=inject,
            expert_idx=expert_idx,
            expert_seeds=[int(x) for x in seeds[2 * b * self.world + self.rank * be :][: len(expert_idx)]],
            lam=lam,
            p_expert=float(p),
            torch_seed=step_seed(cfg.seed, 3, step, self.rank),
        )


class HeatmapCache:
    """Expert heatmaps by (study, image shape), least recently used first out past ``max_mb``.

    A heatmap built from fixations (a Gaussian over every fixation on the full image grid) costs far more
    than decoding its image, and the curriculum draws the same few expert rows again and again.
    """

    def __init__(self, max_mb: float = 1024.0):
        self.max_bytes, self.used = int(max_mb * 2**20), 0
        self._maps: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, study: Study, shape: tuple[int, int]) -> np.ndarray:
        key = (study.study_id, tuple(shape))
        if key in self._maps:
            self.hits += 1
            self._maps.move_to_end(key)
            return self._maps[key].copy()  # callers get their own array; the cached one stays pristine
        self.misses += 1
        hm = _load_study_heatmap(study, shape)
        if hm.nbytes <= self.max_bytes:
            self._maps[key] = hm.copy()
            self.used += hm.nbytes
            while self.used > self.max_bytes:
                self.used -= self._maps.popitem(last=False)[1].nbytes
        return hm


#: Decoded training images kept per data-loader process (8-bit images take a quarter of their float size).
IMAGE_CACHE_MB = 512.0


def pack_image(pixels: np.ndarray) -> np.ndarray:
    """A compact copy of a float image in [0, 1]: uint8 where that restores it exactly (an 8-bit file)."""
    u8 = np.rint(pixels * np.float32(255.0)).clip(0, 255).astype(np.uint8)
    return u8 if np.array_equal(unpack_image(u8), pixels) else pixels.copy()


def unpack_image(packed: np.ndarray) -> np.ndarray:
    """The float image [0, 1] of :func:`pack_image` (the same values load_image gives an 8-bit file)."""
    if packed.dtype != np.uint8:
        return packed.copy()
    out = packed.astype(np.float32)
    out /= np.float32(255.0)
    return out


class ImageCache:
    """Each training X-ray decoded once per run: later epochs reuse its pixels (exactly; see :func:`pack_image`)
    until ``max_mb`` is full, after which new images are decoded each time they are drawn."""

    def __init__(self, max_mb: float = IMAGE_CACHE_MB):
        self.max_bytes, self.used = int(max_mb * 2**20), 0
        self._images: dict[str, np.ndarray] = {}
        self.hits = self.misses = 0

    def get(self, study: Study) -> np.ndarray:
        key = study.image_paths[0]
        packed = self._images.get(key)
        if packed is not None:
            self.hits += 1
            return unpack_image(packed)
        self.misses += 1
        pixels = _load_study_image(study)
        packed = pack_image(pixels)
        if self.used + packed.nbytes <= self.max_bytes:
            self._images[key] = packed
            self.used += packed.nbytes
        return pixels


class StepBatches(Dataset):
    """Item ``i`` = the whole batch of step ``first_step + i`` (images, token ids, expert images/maps)."""

    def __init__(
        self,
        planner: StepPlanner,
        main: Sequence[Study],
        expert: Sequence[Study],
        transform: Callable,
        tokenize: Callable[[list[str]], torch.Tensor],
        first_step: int,
        last_step: int,
        fail_on_bad_rows: bool = False,
        heatmap_cache_mb: float = 1024.0,
        with_labels: bool = False,
    ):
        self.planner, self.main, self.expert = planner, list(main), list(expert)
        self.transform, self.tokenize = transform, tokenize
        self.first_step, self.last_step = first_step, last_step
        self.fail_on_bad_rows = fail_on_bad_rows
        self.heatmaps = HeatmapCache(heatmap_cache_mb)
        self.images = ImageCache()
        self._token_rows: dict[str, torch.Tensor] = {}  # each report's token ids, tokenized once
        # Label rows (1/0/-1/NaN per CheXpert observation) of each study, for the label-aware terms.
        self.labels: dict[str, np.ndarray] | None = None
        if with_labels:
            from eclip_core.data.study_labels import study_label_rows

            rows = self.main + self.expert
            self.labels = dict(zip((s.study_id for s in rows), study_label_rows(rows)))

    def __len__(self) -> int:
        return max(0, self.last_step - self.first_step)

    def _load(self, rows: Sequence[Study], idx: int, seed: int, expert: bool, bad: list[str]):
        # A row that fails now (validation off, or a file changed) is replaced by the next readable row
        # so every rank keeps the same batch size (the distributed gather needs equal sizes).
        for k in range(len(rows)):
            s = rows[(idx + k) % len(rows)]
            rng = np.random.default_rng(seed)
            try:
                img = self.images.get(s)
                if expert:
                    hm = self.heatmaps.get(s, img.shape)
                    x, h = self.transform(img, heatmap=hm, train=True, rng=rng)
                    return x, h, s.report_text, s.study_id
                return self.transform(img, train=True, rng=rng)[0], None, s.report_text, s.study_id
            except EClipError as exc:
                if self.fail_on_bad_rows:
                    raise ManifestError(f"bad training row {s.study_id}: {exc}") from exc
                bad.append(f"{s.study_id}: {exc}")
        raise ManifestError("no readable rows left in the training stream")

    def __getitem__(self, i: int) -> dict:
        plan = self.planner.plan(self.first_step + i)
        bad: list[str] = []
        main = [self._load(self.main, j, sd, False, bad) for j, sd in zip(plan.main_idx, plan.main_seeds)]
        batch = {
            "step": plan.step,
            "images": torch.stack([m[0] for m in main]),
            "tokens": self._tokens([m[2] for m in main]),
            "inject": plan.inject,
            "lam": plan.lam,
            "p_expert": plan.p_expert,
            "torch_seed": plan.torch_seed,
            "bad": bad,
        }
        if self.labels is not None:
            batch["labels"] = self._label_rows(main)
        if plan.inject:
            ex = [self._load(self.expert, j, sd, True, bad) for j, sd in zip(plan.expert_idx, plan.expert_seeds)]
            batch.update(
                expert_images=torch.stack([e[0] for e in ex]),
                expert_heatmaps=torch.stack([e[1] for e in ex]),
                expert_tokens=self._tokens([e[2] for e in ex]),
            )
            if self.labels is not None:
                batch["expert_labels"] = self._label_rows(ex)
        return batch

    def _tokens(self, texts: list[str]) -> torch.Tensor:
        # Rows are padded to the context length, so a report's row does not depend on its batch.
        new = [t for t in dict.fromkeys(texts) if t not in self._token_rows]
        if new:
            self._token_rows.update(zip(new, self.tokenize(new)))
        return torch.stack([self._token_rows[t] for t in texts])

    def _label_rows(self, loaded: list[tuple]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.labels[item[3]] for item in loaded])).float()
