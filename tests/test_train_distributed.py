"""Training in 2 CPU processes (torchrun, gloo) reaches the weights of 1 process with the same global batch.

The step planner gives every rank its slice of the same global draws (rows, injection, lambda, augmentation
seeds), the contrastive loss gathers features across ranks with their gradient, and DDP averages the
gradients: together, the same updates as one process with a batch twice as large.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from eclip_core.config import EClipConfig, TrainConfig
from eclip_core.model import EClip
from eclip_core.train import train
from eclip_core.training.synthetic import make_blob_dataset

STEPS, PER_RANK = 4, 4


def _cfg(manifest, out, batch_size: int) -> TrainConfig:
    # p = 1 after a one-step cold start: step 1 primes the processor, steps 2-4 inject expert batches.
    return TrainConfig(
        manifest=str(manifest),
        output_dir=str(out),
        steps=STEPS,
        batch_size=batch_size,
        lr=1e-3,
        method="eclip",
        p_start=1.0,
        p_peak=1.0,
        p_floor=1.0,
        cold_frac=0.25,
        checkpoint_every=2,
        model=EClipConfig(name="eclip-tiny"),
        progress=False,
        validate_images=False,
        log_every=1,
        seed=7,
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_processes_reach_the_weights_of_one_with_the_same_global_batch(tmp_path):
    manifest = make_blob_dataset(tmp_path / "blobs", n=40, size=64, expert_fraction=0.4, seed=1)
    config = tmp_path / "train.json"
    config.write_text(json.dumps(_cfg(manifest, tmp_path / "ddp", PER_RANK).to_dict()))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "eclip_core.train",
            "--config",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    single = train(_cfg(manifest, tmp_path / "single", 2 * PER_RANK))
    assert single.expert_steps == STEPS - 1
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))  # written once, by the main process
    assert [r["injected"] for r in records] == [False] + [True] * (STEPS - 1)
    for r, loss in zip(records, single.losses):  # logged: the global loss (the mean of the ranks' own rows)
        assert r["loss"] == pytest.approx(loss, rel=1e-4)

    ddp = EClip.from_pretrained(tmp_path / "ddp" / "model").state_dict()
    ref = EClip.from_pretrained(single.model_dir).state_dict()
    torch.manual_seed(7)  # as train() seeds before it builds the model: both runs' starting weights
    init = EClip(EClipConfig(name="eclip-tiny")).state_dict()
    assert ddp.keys() == ref.keys()
    moved = [k for k in ref if not torch.equal(ref[k], init[k])]
    assert any(k.startswith("heatmap_processor.") for k in moved) and any(k.startswith("clip.visual.") for k in moved)
    for k in ref:
        assert torch.allclose(ddp[k], ref[k], rtol=1e-4, atol=1e-5), k
    assert (tmp_path / "ddp" / "checkpoint" / "training_state.pt").is_file()
