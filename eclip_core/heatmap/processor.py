"""The eCLIP heatmap processor H(I, E): an image plus an expert heatmap -> an "expert-processed" image.

Variant ``"mha"`` (the method): P = conv16(I) and Q = conv16(E * I) share one patch conv to ``dim``
(256) channels; 8-head attention with queries Q and keys/values P; a linear layer; tokens back to the
patch grid; a transposed conv (kernel = stride = patch) back to 3 x H x W. No residual, no norm: the
priming loss (eclip_core.losses.priming_loss) teaches it to start as an identity map.
``"mask"``: I^E = E * I, no parameters. ``"random"``: the "mha" processor fed a random smooth heatmap
instead of the expert one (control that the expert signal matters).

>>> import torch
>>> p = HeatmapProcessor(dim=32, heads=4, patch_size=16)
>>> p(torch.randn(2, 3, 64, 64), torch.rand(2, 1, 64, 64)).shape
torch.Size([2, 3, 64, 64])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eclip_core.errors import ConfigError
from eclip_core.patch_embed import PatchConv2d

VARIANTS = ("mha", "mask", "random")


def normalize_heatmaps(heatmaps: torch.Tensor, mode: str = "sample", eps: float = 1e-8) -> torch.Tensor:
    """Scale heatmaps [B,1,H,W] to [0, 1] by their per-sample max (``"sample"``) or the batch max (``"batch"``,
    the reference code's behaviour). All-zero maps stay zero."""
    h = heatmaps.clamp(min=0)
    if mode == "sample":
        peak = h.flatten(1).amax(dim=1).view(-1, *([1] * (h.dim() - 1)))
    elif mode == "batch":
        peak = h.amax()
    else:
        raise ConfigError(f"heatmap_norm must be 'sample' or 'batch', got {mode!r}")
    return h / peak.clamp(min=eps)


def random_heatmaps(
    shape: tuple[int, ...], generator: torch.Generator | None = None, device: torch.device | str = "cpu", grid: int = 4
) -> torch.Tensor:
    """Smooth random heatmaps [B,1,H,W] with max 1: uniform noise on a coarse grid, upsampled bicubically."""
    b, _, h, w = shape
    coarse = torch.rand((b, 1, grid, grid), generator=generator).to(device)
    up = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(min=0)
    return normalize_heatmaps(up, "sample")


def _conv_then(
    x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor | None, w2: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    """linear(linear(x, w1, b1), w2, b2), or the same as one linear with w2 @ w1 when that costs fewer
    multiply-adds (rows x in x out + the product) than two (rows x (in x mid + mid x out)): e.g. 256-pixel
    grey patches and a 256 -> 512 key/value projection over 1,568 rows. Exact up to float rounding."""
    rows = x.shape[:-1].numel()
    (mid, n_in), n_out = w1.shape, w2.shape[0]
    if rows * n_in * n_out + n_out * mid * n_in < rows * mid * (n_in + n_out):
        b = b2 if b1 is None else w2 @ b1 + b2
        return F.linear(x, w2 @ w1, b)
    return F.linear(F.linear(x, w1, b1), w2, b2)


class HeatmapProcessor(nn.Module):
    """H(I, E): images [B,3,H,W] (normalised) and heatmaps [B,1,H,W] in [0, 1] -> images [B,3,H,W].

    H and W must be multiples of ``patch_size``. ``heatmap_norm`` rescales incoming heatmaps by their
    max (per sample or per batch) so callers may pass raw maps.
    """

    def __init__(
        self,
        variant: str = "mha",
        dim: int = 256,
        heads: int = 8,
        patch_size: int = 16,
        in_channels: int = 3,
        heatmap_norm: str = "sample",
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"heatmap processor variant must be one of {VARIANTS}, got {variant!r}")
        if dim % heads:
            raise ConfigError(f"processor dim {dim} is not divisible by heads {heads}")
        self.variant, self.dim, self.heads, self.patch_size = variant, dim, heads, patch_size
        self.heatmap_norm = heatmap_norm
        if variant == "mask":
            return  # no parameters
        self.patch_embed = PatchConv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.linear = nn.Linear(dim, dim)
        self.unpatch = nn.ConvTranspose2d(dim, in_channels, kernel_size=patch_size, stride=patch_size)

    @property
    def has_parameters(self) -> bool:
        return self.variant != "mask"

    def forward(
        self,
        images: torch.Tensor,
        heatmaps: torch.Tensor,
        generator: torch.Generator | None = None,
        randomize: bool = True,
    ) -> torch.Tensor:
        """``randomize=False`` makes the "random" variant use the given heatmap (priming uses all-ones)."""
        if self.variant == "mask":
            return self._masked(images, heatmaps, generator, randomize)
        tokens, (gh, gw) = self.attend(images, heatmaps, generator, randomize)
        weight, bias = self.output_map()
        return self._fold(F.linear(tokens, weight, bias), gh, gw)

    def attend(
        self,
        images: torch.Tensor,
        heatmaps: torch.Tensor,
        generator: torch.Generator | None = None,
        randomize: bool = True,
        patches: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Steps 1-3 up to the attention output, heads merged, before its output projection: ([B, N, dim],
        patch grid). Everything after it (output projection, linear, transposed conv) is linear, see
        :meth:`output_map`. ``patches``: the images already unfolded as ``self.patch_embed.unfold`` does
        (a caller that needs them too unfolds once); ``images`` may then be the grey one-channel view the
        patches came from (``PatchConv2d.grey``)."""
        if self.variant == "mask":
            raise ConfigError("the 'mask' heatmap processor has no attention stage")
        heat = self._heat(images, heatmaps, generator, randomize)
        h, w = images.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the processor patch {self.patch_size}")
        conv = self.patch_embed
        if patches is None:
            images = conv.grey(images)  # a grey X-ray: one channel's patches and the channel-summed kernel
            patches, grid = conv.unfold(images)
        else:
            grid = (h // self.patch_size, w // self.patch_size)
        c = images.shape[1]
        w_conv = conv.weight_for(c)
        # E * I, patch by patch: the same products as masking the image first, without a second unfold.
        heat_patches, _ = conv.unfold(heat)  # [B, N, p*p]
        masked = (patches.unflatten(-1, (c, -1)) * heat_patches.unsqueeze(-2)).flatten(-2)
        # nn.MultiheadAttention's own arithmetic (its in-projection parameters, scaled dot-product, no
        # dropout), stopped before out_proj so that the linear tail can be composed into one map. One conv
        # for both streams (the spec's "same conv"): queries W_q conv(E * I) + b_q, keys/values from
        # P = conv(I); each in-projection is folded into the conv where that is cheaper (see _conv_then).
        wq, wkv = self.attn.in_proj_weight.split([self.dim, 2 * self.dim])
        bq, bkv = self.attn.in_proj_bias.split([self.dim, 2 * self.dim])
        q = _conv_then(masked, w_conv, conv.bias, wq, bq)
        k, v = _conv_then(patches, w_conv, conv.bias, wkv, bkv).chunk(2, dim=-1)
        heads = [x.unflatten(-1, (self.heads, -1)).transpose(1, 2) for x in (q, k, v)]
        out = F.scaled_dot_product_attention(*heads)  # [B, heads, N, dim / heads]
        return out.transpose(1, 2).flatten(2), grid

    def output_map(self, then: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The processor's linear tail (attention output projection -> linear -> transposed conv, per token)
        as one map: (weight [C*p*p, dim], bias [C*p*p]) with patch pixels in (channel, row, column) order.
        ``then`` ([out, C*p*p], a linear map of patch pixels such as a ViT's patch embedding) is composed
        after it: (weight [out, dim], bias [out]), multiplied in the cheaper order.

        A transposed conv with kernel = stride maps each token to its own p x p patch, so the three layers
        compose exactly; applying the product once costs one matmul instead of three (~1/3 of the
        processor's per-token arithmetic). Gradients reach all three layers' parameters through the product.
        """
        w_out, b_out = self.attn.out_proj.weight, self.attn.out_proj.bias
        w_unpatch = self.unpatch.weight.reshape(self.dim, -1)  # [dim, C*p*p]: token -> patch pixels
        b_unpatch = self.unpatch.bias.repeat_interleave(self.patch_size * self.patch_size)
        mid_w = self.linear.weight @ w_out  # [dim, dim]
        mid_b = self.linear.weight @ b_out + self.linear.bias
        if then is None:
            return w_unpatch.t() @ mid_w, mid_b @ w_unpatch + b_unpatch
        head = then @ w_unpatch.t()  # [out, dim]: (then @ unpatch) @ mid, never a [C*p*p, dim] product
        return head @ mid_w, head @ mid_b + then @ b_unpatch

    def _heat(
        self, images: torch.Tensor, heatmaps: torch.Tensor, generator: torch.Generator | None, randomize: bool
    ) -> torch.Tensor:
        """E scaled to [0, 1] in the images' dtype (a random smooth map for the "random" variant)."""
        if images.dim() != 4 or heatmaps.dim() != 4 or heatmaps.shape[1] != 1:
            raise ValueError(
                f"expected images [B,3,H,W] and heatmaps [B,1,H,W], got {tuple(images.shape)} "
                f"and {tuple(heatmaps.shape)}"
            )
        if images.shape[0] != heatmaps.shape[0] or images.shape[-2:] != heatmaps.shape[-2:]:
            raise ValueError(f"images {tuple(images.shape)} and heatmaps {tuple(heatmaps.shape)} do not match")
        if self.variant == "random" and randomize:
            heat = random_heatmaps(tuple(heatmaps.shape), generator, images.device)
        else:
            heat = normalize_heatmaps(heatmaps.float(), self.heatmap_norm)
        return heat.to(images.dtype)

    def _masked(
        self, images: torch.Tensor, heatmaps: torch.Tensor, generator: torch.Generator | None, randomize: bool
    ) -> torch.Tensor:
        """E * I with E scaled to [0, 1] (the "mask" variant's output)."""
        return self._heat(images, heatmaps, generator, randomize) * images

    def _fold(self, patches: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        """Per-token patches [B, N, C*p*p] back to images [B, C, gh*p, gw*p]."""
        b, p = patches.shape[0], self.patch_size
        c = patches.shape[-1] // (p * p)
        return patches.reshape(b, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, gh * p, gw * p)
