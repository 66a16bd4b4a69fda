"""EClip: an open_clip CLIP (image and text towers) plus the heatmap processor used only in training.

Model configs are data: JSON files in ``eclip_core/configs`` (registered with open_clip under their file
names) or any built-in open_clip architecture. A text-tower path ``pkg:<module>`` in a config resolves at
run time to ``<module>.get_model_path()``; nothing is downloaded.

>>> import numpy as np
>>> m = EClip.from_config("eclip-tiny")
>>> v = m.embed_images([np.random.rand(80, 70).astype("float32")], progress=False)
>>> t = m.embed_texts(["Small bright blob in the left lung."], progress=False)
>>> v.shape, t.shape, round(float((v ** 2).sum()), 4)
((1, 64), (1, 64), 1.0)
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from eclip_core.atomic import atomic_dir
from eclip_core.chatter import install_log_filters
from eclip_core.config import EClipConfig
from eclip_core.errors import CheckpointError, ConfigError
from eclip_core.heatmap.processor import HeatmapProcessor
from eclip_core.labels import CHEXPERT_OBSERVATIONS
from eclip_core.model_configs import (  # re-exported: callers import them from here
    build_clip,
    model_config,
    register_model_configs,
    resolve_model_config,
    text_param_names,
    with_image_tower,
)
from eclip_core.patch_embed import PatchConv2d, use_patch_matmul
from eclip_core.safe_dir import recover_dir
from eclip_core.save_errors import check_written, nested_nbytes, saving
from eclip_core.text_features import TextFeatureCache
from eclip_core.towers import (
    resolve_tower_config,
)
from eclip_core.transforms import ImageTransform
from eclip_core.weights_hash import weights_hash

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1


def is_model_dir(folder: Path) -> bool:
    """Whether ``folder`` holds the files of a saved model (accepts a save interrupted by a kill)."""
    return (folder / WEIGHTS_NAME).is_file() and (folder / CONFIG_NAME).is_file()


class EClip(nn.Module):
    """CLIP image/text towers + :class:`HeatmapProcessor`. See the module docstring for an example."""

    #: Mixed expert images enter a ViT as patch embeddings (exact, faster); False: as images.
    token_space_mixup: bool = True

    def __init__(self, config: EClipConfig, model_cfg: dict[str, Any] | None = None, *, load_text_weights: bool = True):
        super().__init__()
        self.config = config = resolve_tower_config(config.validate())
        self.model_cfg = with_image_tower(
            model_cfg if model_cfg is not None else model_config(config.name), self.config
        )
        self.clip = build_clip(self.model_cfg, config, load_text_weights)
        # ViT patch embedding as a matmul: same weights and outputs, far cheaper input gradients on the
        # CPU (the expert step back-propagates into the mixed images).
        use_patch_matmul(self.clip.visual, "conv1")
        size = self.clip.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.embed_dim = int(self.model_cfg["embed_dim"])
        self.heatmap_processor = HeatmapProcessor(
            config.processor_variant,
            config.processor_dim,
            config.processor_heads,
            config.processor_patch,
            heatmap_norm=config.heatmap_norm,
        )
        self.transform = ImageTransform(
            size=self.image_size,
            mean=float(config.image_mean),  # type: ignore[arg-type]  # filled in by resolve_tower_config
            std=float(config.image_std),  # type: ignore[arg-type]
            crop_scale=(config.crop_scale_min, config.crop_scale_max),
            clahe_p=config.clahe_p,
            clahe_clip_limit=config.clahe_clip_limit,
            clahe_tiles=config.clahe_tiles,
        )
        self._tokenizer = None
        self._text_cache: TextFeatureCache | None = None  # see enable_text_feature_cache
        self.clamp_logit_scale_()
        if config.lock_text:
            self.lock_text_tower()
        if config.lock_image:
            self.lock_image_trunk()
        # Built last, so a model without it draws every other initial weight exactly as before.
        self.label_head = nn.Linear(self.embed_dim, len(CHEXPERT_OBSERVATIONS)) if config.label_head else None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, name_or_config: str | EClipConfig | dict, pretrained: str | None = None) -> EClip:
        """Build from a config name (``eclip-tiny``, ``eclip-small``, ``ViT-B-16``...), an EClipConfig or a dict."""
        if isinstance(name_or_config, str):
            config = EClipConfig(name=name_or_config)
        elif isinstance(name_or_config, dict):
            config = EClipConfig.from_dict(name_or_config)
        else:
            config = copy.deepcopy(name_or_config)
        if pretrained is not None:
            config.pretrained = pretrained
        return cls(config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            text = resolve_model_config(self.model_cfg)["text_cfg"]
            ctx = int(text.get("context_length", 77))
            if "hf_tokenizer_name" in text:
                self._tokenizer = open_clip.tokenizer.HFTokenizer(text["hf_tokenizer_name"], context_length=ctx)
            else:
                self._tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=ctx)
        return self._tokenizer

    def lock_text_tower(self) -> None:
        """Freeze the text tower except its projection; a frozen HF tower also stays in eval mode (no dropout)."""
        freeze, _ = text_param_names(self.clip)
        params = dict(self.clip.named_parameters())
        for name in freeze:
            params[name].requires_grad_(False)
        self._text_locked = True
        self.train(self.training)

    def lock_image_trunk(self) -> None:
        """Freeze a timm image tower's trunk (parameters and BatchNorm statistics); its projection trains."""
        trunk = getattr(self.clip.visual, "trunk", None)
        if not isinstance(trunk, nn.Module):
            raise ConfigError(
                "lock_image freezes a timm image tower's trunk, but this model's image tower is the model "
                f"config's own ({self.config.name!r}); give image_weights (e.g. efficientnet-lite0) or image_tower"
            )
        for param in trunk.parameters():
            param.requires_grad_(False)
        self._image_locked = True
        self.train(self.training)

    def train(self, mode: bool = True) -> EClip:
        super().train(mode)
        if getattr(self, "_image_locked", False):
            self.clip.visual.trunk.train(False)
        if getattr(self, "_text_locked", False) and isinstance(getattr(self.clip, "text", None), nn.Module):
            self.clip.text.train(False)
            proj = getattr(self.clip.text, "proj", None)
            if isinstance(proj, nn.Module):
                proj.train(mode)
        return self

    # ------------------------------------------------------------------ temperature
    def clamp_logit_scale_(self) -> None:
        """Keep tau = 1/exp(logit_scale) within [temperature_min, temperature_max] (call after each step)."""
        lo, hi = self.config.logit_scale_bounds
        with torch.no_grad():
            self.clip.logit_scale.clamp_(lo, hi)

    def logit_scale(self) -> torch.Tensor:
        """The multiplier 1/tau as a tensor in the graph (clamped)."""
        lo, hi = self.config.logit_scale_bounds
        return self.clip.logit_scale.clamp(lo, hi).exp()

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale().detach())

    # ------------------------------------------------------------------ encoding
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] normalised images -> [B,D] L2-normalised embeddings."""
        return F.normalize(self.clip.encode_image(images), dim=-1)

    def label_logits(self, image_features: torch.Tensor) -> torch.Tensor:
        """[B,D] L2-normalised image embeddings -> [B,14] logits of the CheXpert observations (needs the
        label head, ``EClipConfig.label_head``). The embedding is scaled by sqrt(D) so that its entries have
        unit scale at the head's initialisation."""
        if self.label_head is None:
            raise ConfigError("this model has no label head (EClipConfig.label_head is False)")
        return self.label_head(image_features * math.sqrt(self.embed_dim))

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    def encode_text(self, texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """Report strings (tokenized here) or token ids [B,L] -> [B,D] L2-normalised embeddings."""
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(texts)
        tokens = tokens.to(self.device)
        if self._text_cache is not None:
            return F.normalize(self.clip.text.proj(self._text_cache.features(tokens)), dim=-1)
        return F.normalize(self.clip.encode_text(self._trim_padding(tokens)), dim=-1)

    def enable_text_feature_cache(self) -> bool:
        """Remember each report's frozen text-tower output (before the trainable projection); True if enabled.

        Only with a locked Hugging Face text tower (``lock_text``): a report seen again costs one projection
        instead of a transformer pass (:mod:`eclip_core.text_features`: one pass per report, on one CPU
        thread, so the values do not depend on the batch or run that made them).
        """
        text = getattr(self.clip, "text", None)
        if not (
            getattr(self, "_text_locked", False) and all(hasattr(text, a) for a in ("transformer", "pooler", "proj"))
        ):
            return False
        if self._text_cache is None:
            self._text_cache = TextFeatureCache(text)
        return True

    def use_text_features(self, folder: str | os.PathLike | None) -> bool:
        """Enable the cache and add the features stored in ``folder`` (None: none stored); False when the
        text tower is not a locked HF tower."""
        if not self.enable_text_feature_cache():
            return False
        if folder is not None:
            self.load_text_feature_cache(folder)
        return True

    def precompute_text_features(self, texts: Sequence[str], workers: int | None = None, progress: bool = False) -> int:
        """Encode every report of ``texts`` not cached yet, ``workers`` passes at a time on a CPU (default:
        torch's thread count; the values are those of a lazy pass); returns how many were encoded, 0
        without a cache."""
        if self._text_cache is None:
            return 0
        workers = workers or torch.get_num_threads()
        return self._text_cache.fill(self.tokenize(list(dict.fromkeys(texts))), workers, progress)

    @property
    def text_feature_seconds(self) -> float:
        return self._text_cache.seconds if self._text_cache is not None else 0.0

    @property
    def text_feature_cpu_seconds(self) -> float:
        return self._text_cache.cpu_seconds if self._text_cache is not None else 0.0

    def frozen_text_fingerprint(self) -> str:
        """sha256 (16 hex) of the frozen text tower's weights (what the cached features depend on)."""
        return TextFeatureCache(self.clip.text).fingerprint()

    def load_text_feature_cache(self, folder: str | os.PathLike) -> int:
        """Add the frozen text features stored in ``folder`` for this text tower (see
        :meth:`save_text_feature_cache`) to the cache; returns how many were loaded. A later training run on
        the same reports (another seed, the baseline, the index) then skips their transformer passes."""
        return self._text_cache.load(folder) if self._text_cache is not None else 0

    def save_text_feature_cache(self, folder: str | os.PathLike) -> Path | None:
        """Write the cached frozen text features to ``folder`` (atomically), keyed by the tower's weights."""
        return self._text_cache.save(folder) if self._text_cache is not None else None

    def _trim_padding(self, tokens: torch.Tensor) -> torch.Tensor:
        # Drop trailing columns that are padding in every row: both text towers mask or ignore padding,
        # so the embeddings are unchanged while short reports cost far less than the full context.
        # Only HF towers: open_clip's own CLIP.encode_text adds the full-length positional embedding.
        config = getattr(getattr(self.clip, "text", None), "config", None)
        pad = getattr(config, "pad_token_id", None)
        if pad is None:
            return tokens
        used = (tokens != int(pad)).any(dim=0).nonzero()
        if used.numel() == 0:
            return tokens
        return tokens[:, : int(used.max()) + 1]

    def mix_expert(
        self, images: torch.Tensor, heatmaps: torch.Tensor, lam: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Expert mixup I^lam = lam * I + (1 - lam) * H(I, E) (lam = 1: the original images)."""
        processed = self.heatmap_processor(images, heatmaps, generator=generator)
        return lam * images + (1.0 - lam) * processed

    def mixed_patch_embeddings(
        self, images: torch.Tensor, heatmaps: torch.Tensor, lam: float, generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """The ViT's patch embeddings of the mixed images I^lam, computed without making I^lam; None where
        that does not apply (not a ViT, another patch size, the parameter-free "mask" processor).

        The processor ends in linear maps to p x p patches and the ViT's patch embedding is linear in them,
        so PE(lam I + (1 - lam) I^E) = lam PE(I) + (1 - lam) PE(I^E), and PE(I^E) is one matmul of the
        attention output with the product of both maps. Same numbers as encoding ``mix_expert``'s images
        (up to float rounding; tested), while skipping the image-sized round trip and the input gradient
        through the ViT's patch embedding; the expert images are unfolded once for both patch embeddings,
        from one channel when they are grey (``PatchConv2d.grey``). The cost of an expert step this way and
        through ``mix_expert``, measured in one process: docs/perf/train_step.md.
        """
        conv, proc = getattr(self.clip.visual, "conv1", None), self.heatmap_processor
        if not (
            self.token_space_mixup
            and isinstance(conv, PatchConv2d)
            and proc.variant != "mask"
            and conv.kernel_size == (proc.patch_size, proc.patch_size)
            and conv.in_channels == images.shape[1]
        ):
            return None
        grey = conv.grey(images)  # a grey X-ray: one channel's patches, channel-summed kernels (same numbers)
        patches, (gh, gw) = conv.unfold(grey)  # shared by the ViT's and the processor's patch embeddings
        tokens, _ = proc.attend(grey, heatmaps, generator, patches=patches)
        w_vit = conv.weight_for(grey.shape[1])  # patch pixels -> ViT token
        w_proc, b_proc = proc.output_map(then=conv.flat_weight)  # attention output -> ViT token (3-channel I^E)
        rows = torch.lerp(F.linear(patches, w_vit), F.linear(tokens, w_proc, b_proc), 1.0 - lam)  # [B, N, width]
        if conv.bias is not None:
            rows = rows + conv.bias
        return rows.transpose(1, 2).reshape(images.shape[0], conv.out_channels, gh, gw)

    def forward(
        self,
        images: torch.Tensor,
        tokens: torch.Tensor,
        expert_images: torch.Tensor | None = None,
        expert_heatmaps: torch.Tensor | None = None,
        expert_tokens: torch.Tensor | None = None,
        lam: float = 1.0,
        prime: bool = False,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """One training forward: main pairs plus (optionally) mixed expert pairs appended to both sides.

        Returns image_features, text_features (L2-normalised, [B(+Be), D]), logit_scale (1/tau),
        label_logits [B(+Be), 14] when the model has a label head and, with ``prime``, prime_loss =
        MSE(H(I, 1), I) on the main images. Training calls this (not the
        encoders directly) so a DistributedDataParallel wrapper sees every parameter use. The mixed expert
        images go through the ViT as patch embeddings (:meth:`mixed_patch_embeddings`) where that applies;
        ``model.token_space_mixup = False`` forces the image-space path (:meth:`mix_expert`).
        """
        all_tokens = tokens
        if expert_images is None:
            image_features = self.encode_image(images)
        else:
            all_tokens = torch.cat([tokens, expert_tokens])
            rows = self.mixed_patch_embeddings(expert_images, expert_heatmaps, lam, generator)
            if rows is None:
                mixed = self.mix_expert(expert_images, expert_heatmaps, lam, generator)
                image_features = self.encode_image(torch.cat([images, mixed]))
            else:
                with self.clip.visual.conv1.appending(rows):
                    image_features = self.encode_image(images)
                if image_features.shape[0] != images.shape[0] + rows.shape[0]:
                    raise RuntimeError(
                        "the open_clip ViT dropped the appended expert patch embeddings; "
                        "set model.token_space_mixup = False"
                    )
        out = {
            "image_features": image_features,
            "text_features": self.encode_text(all_tokens),
            "logit_scale": self.logit_scale(),
        }
        if self.label_head is not None:
            out["label_logits"] = self.label_logits(image_features)
        if prime:
            from eclip_core.losses import priming_loss

            out["prime_loss"] = priming_loss(self.heatmap_processor, images)
        return out

    def preprocess(
        self, image: np.ndarray, train: bool = False, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """Grey HxW image in [0, 1] -> [3,S,S] normalised tensor (train: random crop + CLAHE-like step)."""
        return self.transform(image, train=train, rng=rng)[0]

    def preprocess_pair(
        self, image: np.ndarray, heatmap: np.ndarray, train: bool = False, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and its heatmap through the same geometry -> ([3,S,S], [1,S,S])."""
        return self.transform(image, heatmap=heatmap, train=train, rng=rng)

    def _run_batches(self, items: list, batch_size: int, fn, progress: bool, desc: str) -> np.ndarray:
        was_training = self.training
        self.eval()
        out = []
        try:
            with torch.inference_mode():
                for start in tqdm(range(0, len(items), batch_size), desc=desc, disable=not progress, unit="batch"):
                    out.append(fn(items[start : start + batch_size]).float().cpu().numpy())
        finally:
            self.train(was_training)
        if not out:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def embed_images(self, sources: Iterable[Any], batch_size: int = 32, progress: bool = True) -> np.ndarray:
        """Embed images (paths, PIL images, arrays or bytes: anything load_image accepts) -> [n, D] float32."""
        from eclip_core.data.image_io import load_image

        def run(batch):
            x = torch.stack([self.preprocess(load_image(s)) for s in batch]).to(self.device)
            return self.encode_image(x)

        return self._run_batches(list(sources), batch_size, run, progress, "embed images")

    def embed_texts(self, texts: Iterable[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """Embed report texts -> [n, D] float32, L2-normalised."""
        return self._run_batches([str(t) for t in texts], batch_size, self.encode_text, progress, "embed texts")

    # ------------------------------------------------------------------ persistence
    @property
    def checkpoint_hash(self) -> str:
        """sha256 (first 16 hex chars) of all weights, in key order; equal for a model and its saved copy
        (cached until a weight changes: eclip_core.weights_hash)."""
        return weights_hash(self)

    def save_pretrained(self, directory: str | os.PathLike, extra_files: dict[str, str | bytes] | None = None) -> Path:
        """Write model.safetensors + config.json (+ extra files) to ``directory`` atomically (replaces it whole)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        meta = {
            "format_version": FORMAT_VERSION,
            "eclip_config": self.config.to_dict(),
            "model_cfg": self.model_cfg,
            "checkpoint_hash": self.checkpoint_hash,
            "embed_dim": self.embed_dim,
            "image_size": self.image_size,
        }
        config_text = json.dumps(meta, indent=2)
        weight_bytes = nested_nbytes(state)
        needed = weight_bytes + len(config_text) + sum(len(c) for c in (extra_files or {}).values())
        with saving("the eCLIP model", directory, needed), atomic_dir(directory, validate=is_model_dir) as tmp:
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            check_written(tmp / WEIGHTS_NAME, weight_bytes)
            (tmp / CONFIG_NAME).write_text(config_text, encoding="utf-8")
            for name, content in (extra_files or {}).items():
                mode = "wb" if isinstance(content, bytes) else "w"
                with open(tmp / name, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
                    fh.write(content)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> EClip:
        """Load a folder written by :meth:`save_pretrained` (CheckpointError naming what is missing/wrong)."""
        from safetensors.torch import load_file

        directory = recover_dir(directory, is_model_dir)  # a save killed mid-replacement: find its version
        cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise CheckpointError(f"checkpoint {directory} is incomplete: {p.name} is missing")
        try:
            meta = json.loads(cfg_path.read_text(encoding="utf-8"))
            config = EClipConfig.from_dict(meta["eclip_config"])
            model_cfg = meta["model_cfg"]
        except (json.JSONDecodeError, KeyError, ConfigError) as exc:
            raise CheckpointError(f"checkpoint {directory}: {CONFIG_NAME} is not a valid eCLIP config ({exc})") from exc
        started_from = config.image_weights
        config.pretrained = config.image_weights = None  # the weights come from the folder
        model = cls(config, model_cfg, load_text_weights=False)
        model.config.image_weights = started_from  # a record of the weights training started from
        try:
            state = load_file(str(w_path), device="cpu")
            model.load_state_dict(state, strict=True)
        except Exception as exc:  # safetensors and torch raise several types; all mean "unusable"
            raise CheckpointError(f"checkpoint {directory}: weights do not match its config ({exc})") from exc
        expected = meta.get("checkpoint_hash")
        if expected and expected != model.checkpoint_hash:
            raise CheckpointError(
                f"checkpoint {directory}: weights hash {model.checkpoint_hash} differs from "
                f"the recorded {expected} (corrupted file?)"
            )
        return model.to(device)


register_model_configs()
install_log_filters()  # the HF text tower's unused-pooler load report is expected (eclip_core.chatter)
