"""Validation during training: how well the model being trained retrieves each val X-ray's own report.

Every ``val_every`` steps (and at the last step) the training loop scores the manifest's val rows: the
image -> report cross-entropy at the model's temperature (``loss``, lower is better) and R@1/5/10 (a hit:
one of the k nearest reports is the X-ray's own text; X-rays that share a report text share one
candidate). ``keep_best`` and ``val_patience`` compare one of them (``val_metric``: the loss, or
``recall``, the mean of R@1/5/10, which a later step must beat by more than one standard error). On a
small archive the last step is often past the best one: the projections keep fitting the train pairs
after they stop generalising. The loss also rises as the model grows confident while its ranking may
still improve: on a few hundred X-rays it can bottom out within the first steps, before training has
moved the model.

>>> import torch
>>> images = torch.eye(3)                       # three X-rays, each nearest its own report
>>> texts = torch.eye(3)
>>> s = score_embeddings(images, texts, ["a", "b", "c"], logit_scale=10.0, step=5)
>>> s.recall[1], s.step
(1.0, 5)
>>> round(s.loss, 4)  # -log(e^10 / (e^10 + 2))
0.0001
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from eclip_core.config import TrainConfig
from eclip_core.data.manifest import Study
from eclip_core.model import WEIGHTS_NAME
from eclip_core.quality import l2_normalize, retrieval_hits

logger = logging.getLogger(__name__)

#: Val rows scored at most (a seeded sample of a larger val split): each scoring embeds all of them, and
#: their preprocessed pixels stay in memory (one grey channel: 256 rows at 224 px take 50 MB).
MAX_VAL_ROWS = 256
RECALL_KS = (1, 5, 10)
#: How a scoring replaces the kept step, by val_metric (part of the cache keys of runs that select on val).
SELECTION_RULES = {"loss": "lower loss", "recall": "mean recall higher by more than the kept step's standard error"}


@dataclass
class ValScore:
    """One scoring of the val rows at ``step``."""

    step: int
    loss: float
    recall: dict[int, float] = field(default_factory=dict)
    n: int = 0
    #: Standard error of the mean recall (the mean of R@1/5/10) over the val rows.
    recall_se: float = 0.0

    def record(self) -> dict:
        """The row written to metrics.jsonl."""
        return (
            {"step": self.step, "val_loss": self.loss, "val_n": self.n}
            | {f"val_R@{k}": v for k, v in self.recall.items()}
            | {"val_recall_se": self.recall_se}
        )


def merit(row: dict, metric: str) -> float:
    """How good a metrics row's val score is by ``metric`` (higher is better): minus the loss, or the mean
    of R@1/5/10 (a later scoring beats it only by more than its ``val_recall_se``, see :class:`Validation`).

    >>> merit({"val_loss": 2.0, "val_R@1": 0.1, "val_R@5": 0.2, "val_R@10": 0.6}, "recall")
    0.3
    >>> merit({"val_loss": 2.0}, "loss")
    -2.0
    """
    if metric == "loss":
        return -float(row["val_loss"])
    return round(sum(float(row[f"val_R@{k}"]) for k in RECALL_KS) / len(RECALL_KS), 12)


def score_embeddings(
    images: torch.Tensor, texts: torch.Tensor, reports: Sequence[str], logit_scale: float, step: int
) -> ValScore:
    """:class:`ValScore` of L2-normalised image embeddings [n, D] against the embeddings [n, D] of their
    reports (row i is X-ray i's report; equal report texts count as one candidate)."""
    unique = list(dict.fromkeys(reports))  # first-seen order
    first = {text: i for i, text in reversed(list(enumerate(reports)))}  # each text's first row
    column = {text: j for j, text in enumerate(unique)}
    candidates = texts[[first[t] for t in unique]].float()
    logits = logit_scale * images.float() @ candidates.T
    loss = float(F.cross_entropy(logits, torch.tensor([column[t] for t in reports])))
    hits = retrieval_hits(
        l2_normalize(images.float().numpy()), l2_normalize(candidates.numpy()),
        np.asarray(reports, dtype=object), np.asarray(unique, dtype=object), RECALL_KS,
    )  # fmt: skip
    per_row = np.mean([hits[k] for k in RECALL_KS], axis=0)  # each X-ray's share of the ks it is found within
    se = float(per_row.std(ddof=1) / np.sqrt(len(per_row))) if len(per_row) > 1 else 0.0
    recall = {k: float(hits[k].mean()) for k in RECALL_KS}
    return ValScore(step=step, loss=loss, recall=recall, n=len(reports), recall_se=se)


class ValScorer:
    """Scores a model on fixed val rows; the X-rays are decoded and preprocessed once, at construction."""

    def __init__(self, model, studies: Sequence[Study], seed: int = 0):
        from eclip_core.data.image_io import load_image

        rows = [s for s in studies if s.report_text and s.image_paths]
        if len(rows) > MAX_VAL_ROWS:
            keep = np.random.default_rng(seed).choice(len(rows), MAX_VAL_ROWS, replace=False)
            rows = [rows[i] for i in sorted(keep)]
        self.reports = [s.report_text for s in rows]
        # The preprocessed X-ray's three channels are equal (grey): keep one.
        grey = [model.preprocess(load_image(s.image_paths[0]))[:1] for s in rows]
        self.pixels = torch.stack(grey) if grey else None

    def __len__(self) -> int:
        return len(self.reports)

    def score(self, model, step: int, batch_size: int = 32) -> ValScore:
        """The model's score now (eval mode for the scoring; its mode is restored)."""
        if self.pixels is None or len(self.reports) < 2:
            raise ValueError("validation needs at least two val rows with report text")
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                device = model.device
                batches = [self.pixels[i : i + batch_size] for i in range(0, len(self), batch_size)]
                images = torch.cat([model.encode_image(torch.cat([b, b, b], 1).to(device)) for b in batches])
                texts = torch.from_numpy(model.embed_texts(self.reports, progress=False)).to(images.device)
                scale = float(model.logit_scale())
        finally:
            model.train(was_training)
        return score_embeddings(images.cpu(), texts.cpu(), self.reports, scale, step)


class Validation:
    """The training loop's validation: when to score, the metrics rows, the best val score so far (with
    ``earlier``: the val rows a resumed run logged before its checkpoint), whether ``patience`` scorings in a
    row have not improved it, and (``keep_best``) that step's weights, kept in ``best_dir`` across a resume."""

    def __init__(self, scorer: ValScorer, cfg: TrainConfig, best_dir: Path, start_step: int = 0, earlier=()):
        self.scorer, self.every, self.last_step, self.keep_best = scorer, cfg.val_every, cfg.steps, cfg.keep_best
        self.best_dir, self.patience, self.metric, self.scores = best_dir, cfg.val_patience, cfg.val_metric, []
        self.best: dict | None = None  # {"step", "val_loss", "metric", "merit", "margin"} of the kept scoring
        self.since_best = 0
        for row in earlier:
            self._note(row)
        saved = best_dir / BEST_NAME
        # Weights saved after the checkpoint a run resumes from (those steps are trained again), or by an
        # earlier run in this folder, or without keep_best: not this run's.
        if saved.is_file() and not (self.keep_best and 0 < json.loads(saved.read_text())["step"] <= start_step):
            shutil.rmtree(best_dir)

    @classmethod
    def for_run(cls, cfg: TrainConfig, model, out: Path, start_step: int) -> Validation | None:
        """A training run's validation (None without ``val_every`` or without two val rows, which a warning
        says); its best weights go to ``out / "best"``."""
        from eclip_core.data.manifest import read_manifest

        if not cfg.val_every:
            if cfg.keep_best:
                logger.info("keep_best: no val scores to choose by (val_every is 0); the last step is kept")
            return None
        scorer = ValScorer(model, read_manifest(cfg.manifest, split=cfg.val_split), cfg.seed)
        if len(scorer) < 2:
            logger.warning(
                "val_every: manifest %s has %d %s row(s) with report text (2 needed); training without validation%s",
                cfg.manifest, len(scorer), cfg.val_split, " and keeps the last step" if cfg.keep_best else "",
            )  # fmt: skip
            return None
        # A resumed run: what it scored before its checkpoint.
        return cls(scorer, cfg, out / "best", start_step, val_rows(out / "metrics.jsonl", start_step))

    def _note(self, row: dict) -> bool:
        value = merit(row, self.metric)
        # By recall a later step must beat the kept one by more than one standard error of the kept one's
        # recall: on a few dozen val rows smaller gains are noise, and the later step is the more overfit.
        # A tie keeps the earlier step.
        improved = self.best is None or value > self.best["merit"] + self.best["margin"]
        if improved:
            margin = float(row.get("val_recall_se", 0.0)) if self.metric == "recall" else 0.0
            self.best = {"step": int(row["step"]), "val_loss": float(row["val_loss"]), "metric": self.metric}
            self.best |= {"merit": value, "margin": margin}
            self.since_best = 0
        else:
            self.since_best += 1
        return improved

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.last_step

    @property
    def exhausted(self) -> bool:
        """``patience`` scorings in a row have not improved the val metric: training may stop."""
        return self.patience > 0 and self.since_best >= self.patience

    def run(self, model, step: int) -> dict:
        """Score the model at ``step``; keep its weights when they are the best so far; the metrics row."""
        score = self.scorer.score(model, step)
        self.scores.append(score)
        if self._note(score.record()) and self.keep_best:
            model.save_pretrained(self.best_dir, extra_files={BEST_NAME: json.dumps(self.best)})
        logger.info(
            "step %d: val loss %.4f, R@1/5/10 %s (%d val rows)",
            step, score.loss, "/".join(f"{v:.3f}" for v in score.recall.values()), score.n,
        )  # fmt: skip
        return score.record()

    def restore_best(self, model) -> int | None:
        """Load the best step's weights into ``model`` (keep_best); that step, or None."""
        saved = self.best_dir / BEST_NAME
        if not (self.keep_best and self.best and saved.is_file()):
            return None
        if json.loads(saved.read_text())["step"] != self.best["step"]:
            logger.warning("the weights of val's best step %d were not kept; the last step is saved", self.best["step"])
            return None
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(self.best_dir / WEIGHTS_NAME)))
        return int(self.best["step"])


def val_rows(metrics: Path, up_to_step: int) -> list[dict]:
    """The val rows of a metrics.jsonl up to a step (those a resumed run logged before its checkpoint)."""
    lines = metrics.read_text(encoding="utf-8").splitlines() if metrics.is_file() else []
    return [r for r in map(json.loads, lines) if "val_loss" in r and r["step"] <= up_to_step]


#: The file in ``<output_dir>/best`` naming the step kept there, its val loss and what chose it.
BEST_NAME = "val_best.json"
