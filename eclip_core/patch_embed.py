"""Patch embedding (a conv with kernel = stride, no padding) computed as one matmul over unfolded patches.

Such a conv maps every non-overlapping p x p patch to a vector: the same numbers as a reshape plus a linear
layer. On the CPU the matmul form is much cheaper when the input needs a gradient: the expert step of eCLIP
back-propagates into the mixed images, and the CPU conv kernel's gradient with respect to its input is slow
(the rows tagged "conv kernel" in docs/perf/train_step.md measure it). :class:`PatchConv2d` keeps the ``weight`` / ``bias``
parameters of the conv it replaces, so checkpoints and state dicts are unchanged. Grey X-rays repeated to
3 channels are embedded from one channel with the kernel summed over channels (:meth:`PatchConv2d.grey`).

>>> import torch
>>> conv = torch.nn.Conv2d(3, 8, kernel_size=16, stride=16)
>>> fast = PatchConv2d.from_conv(conv)
>>> x = torch.randn(2, 3, 64, 48)
>>> bool(torch.allclose(fast(x), conv(x), atol=1e-5)), fast.weight is conv.weight
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def is_patch_conv(module: nn.Module) -> bool:
    """True for a plain Conv2d whose kernel equals its stride (no padding, dilation or groups)."""
    return (
        type(module) is nn.Conv2d
        and module.kernel_size == module.stride
        and module.groups == 1
        and module.dilation == (1, 1)
        and module.padding in ((0, 0), "valid")
    )


class PatchConv2d(nn.Conv2d):
    """A kernel = stride Conv2d evaluated as unfold-by-reshape + linear (same parameters, same outputs)."""

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> PatchConv2d:
        if not is_patch_conv(conv):
            raise ValueError(f"not a patch conv (kernel = stride, no padding/dilation/groups): {conv}")
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            bias=conv.bias is not None,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        new.weight = conv.weight  # the same Parameter objects: optimisers and checkpoints see no change
        new.bias = conv.bias
        return new

    _appended: torch.Tensor | None = None

    @contextmanager
    def appending(self, rows: torch.Tensor) -> Iterator[None]:
        """Within the block, every output gets ``rows`` ([n, out, gh, gw], patch embeddings computed
        elsewhere) appended along the batch: a model encodes images plus rows it already embedded."""
        self._appended = rows
        try:
            yield
        finally:
            self._appended = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._embed(x)
        return out if self._appended is None else torch.cat([out, self._appended.to(out.dtype)])

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.grey(x)
        patches, (gh, gw) = self.unfold(x)
        out = F.linear(patches, self.weight_for(x.shape[1]), self.bias)  # [B, N, out]
        return out.transpose(1, 2).reshape(x.shape[0], self.out_channels, gh, gw)

    # Set False on an instance to embed every channel even when they are equal (the benchmark's before row).
    collapse_grey: bool = True

    def grey(self, x: torch.Tensor) -> torch.Tensor:
        """``x[:, :1]`` when every channel of ``x`` equals the first (a grey X-ray repeated to 3 channels, as
        the transforms make it), else ``x``. A conv over C equal channels is a conv over one channel with
        the kernel summed over channels (:meth:`weight_for`): the same numbers and weight gradients for 1/C
        of the arithmetic. Not when ``x`` needs its own gradient (channels 2..C would get none), and only
        for CPU tensors: the check reads the data, which on a GPU stalls the queue of launched kernels, and
        the patch embedding is a small share of a GPU step.

        >>> conv = PatchConv2d(3, 4, kernel_size=2, stride=2)
        >>> conv.grey(torch.ones(1, 1, 4, 4).expand(1, 3, 4, 4)).shape, conv.grey(torch.randn(1, 3, 4, 4)).shape
        (torch.Size([1, 1, 4, 4]), torch.Size([1, 3, 4, 4]))
        """
        c = x.shape[1] if x.dim() == 4 else 0
        if not self.collapse_grey or c < 2 or c != self.in_channels or x.requires_grad or x.device.type != "cpu":
            return x
        first = x[:, :1]
        if x.stride(1) == 0 or torch.equal(x[:, 1:], first.expand(-1, c - 1, -1, -1)):
            return first
        return x

    @property
    def flat_weight(self) -> torch.Tensor:
        """The kernel as a matrix [out, C*p*p] acting on :meth:`unfold`'s patch vectors."""
        return self.weight.reshape(self.out_channels, -1)

    def weight_for(self, channels: int) -> torch.Tensor:
        """:attr:`flat_weight` for inputs with ``channels`` channels: all of them, or 1 (a :meth:`grey`
        input: the kernel summed over channels, [out, p*p])."""
        if channels == self.in_channels:
            return self.flat_weight
        if channels == 1:
            return self.weight.sum(dim=1).reshape(self.out_channels, -1)
        raise ValueError(f"a patch conv over {self.in_channels} channels cannot embed {channels}-channel input")

    def unfold(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Non-overlapping patches [B, N, C*p*p] (row-major over the grid; pixels in (channel, row, column)
        order, as :attr:`flat_weight` expects) and the grid (gh, gw). ``x`` may have any channel count."""
        (ph, pw), c = self.kernel_size, x.shape[1]
        b, gh, gw = x.shape[0], x.shape[-2] // ph, x.shape[-1] // pw
        x = x[..., : gh * ph, : gw * pw]  # a conv drops the pixels that do not fill a whole patch
        patches = x.reshape(b, c, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, c * ph * pw)
        return patches, (gh, gw)


def use_patch_matmul(parent: nn.Module, name: str) -> bool:
    """Swap ``parent.<name>`` for a :class:`PatchConv2d` when it is a patch conv; True if swapped."""
    module = getattr(parent, name, None)
    if isinstance(module, nn.Module) and is_patch_conv(module):
        setattr(parent, name, PatchConv2d.from_conv(module))
        return True
    return False
