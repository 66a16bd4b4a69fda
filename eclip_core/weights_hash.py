"""The checkpoint hash of a torch module's weights, recomputed only when a weight changed.

Hashing every weight of a CLIP-sized model reads ~100 MB (about 0.1 s); drafts, index checks and batch
bookkeeping ask for the hash once per call, so the digest is kept beside a cheap fingerprint of the
weights' identity (each tensor's storage address and in-place version counter, its dtype and shape).
Any optimiser step, ``load_state_dict`` or in-place edit bumps a version counter or swaps a tensor, so the
hash is recomputed then and only then.

>>> import torch
>>> layer = torch.nn.Linear(2, 2)
>>> before = weights_hash(layer)
>>> before == weights_hash(layer)
True
>>> with torch.no_grad():
...     _ = layer.weight.add_(1.0)
>>> weights_hash(layer) == before
False
"""

from __future__ import annotations

import hashlib

import torch

_CACHE_ATTR = "_weights_hash_cache"


def _fingerprint(module: torch.nn.Module) -> tuple | None:
    # Parameters and buffers (a superset of the state dict's tensors), without building the state dict.
    tensors = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    try:
        return tuple((k, v.data_ptr(), v._version, v.dtype, tuple(v.shape), v.device) for k, v in tensors)
    except RuntimeError:  # inference tensors keep no version counter: never cache those
        return None


def full_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 (first 16 hex chars) of all tensors, in key order, with their dtypes and shapes."""
    h = hashlib.sha256()
    for key, value in sorted(state.items()):
        t = value.detach().to("cpu").contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def weights_hash(module: torch.nn.Module) -> str:
    """:func:`full_hash` of ``module.state_dict()``, cached on the module until a weight changes."""
    key = _fingerprint(module)
    cached = module.__dict__.get(_CACHE_ATTR)
    if key is not None and cached is not None and cached[0] == key:
        return cached[1]
    digest = full_hash(module.state_dict())
    if key is not None:
        module.__dict__[_CACHE_ATTR] = (key, digest)
    return digest
