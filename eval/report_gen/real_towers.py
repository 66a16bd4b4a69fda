"""The towers of the real-image suite (``--towers``): what each is, how it is built, and its learning rate."""

from __future__ import annotations

from typing import Any

_LITE0 = {"name": "eclip-resnet16", "image_weights": "efficientnet-lite0"}
#: name -> (description, EClipConfig fields, trained on the manifest's train split).
TOWERS: dict[str, tuple[str, dict[str, Any] | None, bool]] = {
    "scratch_vit": ("ViT 128 px from scratch (eclip-small)", {"name": "eclip-small", "image_size": 128}, True),
    "scratch_resnet": ("ResNet 128 px from scratch (`--image-weights none`)", {"name": "eclip-resnet16"}, True),
    "lite0_frozen": (
        "EfficientNet-Lite0 ImageNet, frozen (pooled features, 224 px)",
        {**_LITE0, "image_size": 224},
        False,
    ),
    "lite0_finetuned": (
        "EfficientNet-Lite0 ImageNet, fine-tuned, 128 px (`--no-model-lock-image --model-image-size 128`)",
        _LITE0,
        True,
    ),
    "lite0_locked": (
        "EfficientNet-Lite0 ImageNet, trunk locked, 224 px (`rag-report train`'s default tower)",
        {**_LITE0, "image_size": 224, "lock_image": True},
        True,
    ),
    "bundle": ("default bundle's phantom tower (eclip)", None, False),
}
#: Towers trained at their own learning rate instead of RealSuiteConfig.lr: a locked trunk trains only the
#: projections, at `rag-report train`'s learning rate for that setting.
TOWER_LR = {"lite0_locked": 1e-3}
