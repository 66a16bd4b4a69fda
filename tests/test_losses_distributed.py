"""ClipLoss across 2 processes (gloo): loss and gradients equal the single-process full-batch ones."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from eclip_core.losses import ClipLoss


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, v, t, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    n = v.shape[0] // world
    vi = v[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    ti = t[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    loss = ClipLoss()(vi, ti, torch.tensor(5.0))
    loss.backward()
    # DDP averages gradients over ranks; the gathered backward already summed the other ranks' terms.
    out[rank] = (float(loss), (vi.grad / world).clone(), (ti.grad / world).clone())
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_gather_with_gradient_matches_full_batch():
    torch.manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(6, 4), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(6, 4), dim=-1)
    vf, tf = v.clone().requires_grad_(True), t.clone().requires_grad_(True)
    full = ClipLoss()(vf, tf, torch.tensor(5.0))
    full.backward()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(2, _free_port(), v, t, out), nprocs=2, join=True)
        res = dict(out)
    assert abs((res[0][0] + res[1][0]) / 2 - full.item()) < 1e-5
    assert torch.allclose(torch.cat([res[0][1], res[1][1]]), vf.grad, atol=1e-6)
    assert torch.allclose(torch.cat([res[0][2], res[1][2]]), tf.grad, atol=1e-6)
