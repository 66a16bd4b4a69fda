"""A full disk (or another write failure) while saving a model, a checkpoint or an index gives the project's
error naming the path and the bytes needed, and the version saved before stays intact and loadable."""

from __future__ import annotations

import errno
import os
import re

import numpy as np
import pytest
import torch

from eclip_core.data.manifest import Study, write_manifest
from eclip_core.errors import DiskFullError, SaveError
from eclip_core.model import EClip
from eclip_core.save_errors import nested_nbytes
from eclip_core.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from rag_report.index import ReportIndex

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def _needed(message: str) -> int:
    return int(re.search(r"\((\d+) bytes\)", message).group(1))


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    a, b = EClip.from_config("eclip-tiny"), EClip.from_config("eclip-tiny")
    with torch.no_grad():
        next(b.parameters()).add_(1.0)
    return a, b


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc

    return fail


@pytest.mark.parametrize(
    "exc",
    [
        ENOSPC,
        pytest.param("safetensors", id="SafetensorError"),
    ],
)
def test_model_save_on_a_full_disk(tmp_path, monkeypatch, models, exc):
    import safetensors.torch
    from safetensors import SafetensorError

    if exc == "safetensors":  # how safetensors words it: no errno, a Rust io error in the text
        exc = SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )
    a, b = models
    a.save_pretrained(tmp_path / "model")
    monkeypatch.setattr(safetensors.torch, "save_file", _raise(exc))
    with pytest.raises(DiskFullError) as err:
        b.save_pretrained(tmp_path / "model")
    message = str(err.value)
    assert str(tmp_path / "model") in message and ".tmp." not in message
    assert _needed(message) >= nested_nbytes(a.state_dict())  # at least the weights
    monkeypatch.undo()
    assert EClip.from_pretrained(tmp_path / "model").checkpoint_hash == a.checkpoint_hash
    assert os.listdir(tmp_path) == ["model"]


def test_a_writer_that_silently_loses_data_is_caught(tmp_path, monkeypatch, models):
    import safetensors.torch

    real = safetensors.torch.save_file

    def short_write(state, path, metadata=None):
        real(state, path, metadata=metadata)
        with open(path, "r+b") as fh:
            fh.truncate(100)

    a, b = models
    a.save_pretrained(tmp_path / "model")
    monkeypatch.setattr(safetensors.torch, "save_file", short_write)
    with pytest.raises(SaveError, match="expected at least"):
        b.save_pretrained(tmp_path / "model")
    monkeypatch.undo()
    assert EClip.from_pretrained(tmp_path / "model").checkpoint_hash == a.checkpoint_hash


def test_another_write_failure_is_a_save_error_not_disk_full(tmp_path, monkeypatch, models):
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", _raise(PermissionError(errno.EACCES, "Permission denied")))
    with pytest.raises(SaveError) as err:
        models[0].save_pretrained(tmp_path / "model")
    assert not isinstance(err.value, DiskFullError) and "writable" in str(err.value)
    assert os.listdir(tmp_path) == []


def _optim(model):
    """SGD with momentum after one (zero) step: its state holds one buffer per weight."""
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


@pytest.mark.parametrize("where", ["state", "weights"])
def test_checkpoint_save_on_a_full_disk(tmp_path, monkeypatch, models, where):
    import safetensors.torch

    a, b = models
    ckpt = tmp_path / "checkpoint"
    save_checkpoint(ckpt, a, *_optim(a), 3, {}, {})
    if where == "state":
        monkeypatch.setattr(torch, "save", _raise(ENOSPC))
    else:  # the model folder inside the checkpoint: the message still names the checkpoint
        monkeypatch.setattr(safetensors.torch, "save_file", _raise(ENOSPC))
    with pytest.raises(DiskFullError) as err:
        save_checkpoint(ckpt, b, *_optim(b), 6, {}, {})
    message = str(err.value)
    assert f"{ckpt}:" in message and "checkpoint" in message and ".tmp." not in message
    assert _needed(message) >= 2 * nested_nbytes(b.state_dict())  # the weights and their momentum buffers
    monkeypatch.undo()
    fresh = EClip.from_config("eclip-tiny")
    step, _ = load_checkpoint(find_checkpoint(ckpt), fresh, *_optim(fresh))
    assert step == 3 and fresh.checkpoint_hash == a.checkpoint_hash
    assert os.listdir(tmp_path) == ["checkpoint"]


def _corpus(n: int) -> list[Study]:
    return [Study(f"S{i:02d}", [f"x{i}.png"], "train", findings=f"Finding number {i}.") for i in range(n)]


@pytest.mark.parametrize("writer", ["faiss", "docstore"])
def test_index_build_on_a_full_disk(tmp_path, monkeypatch, writer):
    import faiss
    from llama_index.core.storage.kvstore.simple_kvstore import SimpleKVStore

    vectors = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    ReportIndex.build_from_vectors(vectors[:5], _corpus(5), tmp_path / "index", checkpoint_hash="h")
    if writer == "faiss":  # FAISS raises a RuntimeError carrying the C library's text
        monkeypatch.setattr(
            faiss,
            "write_index",
            _raise(
                RuntimeError(
                    "Error in void faiss::write_index(const Index*, IOWriter*, int) at index_write.cpp:499: Error: "
                    "'ret == (size * 4)' failed: write error in x: 4051 != 320000 (No space left on device)"
                )
            ),
        )
    else:
        monkeypatch.setattr(SimpleKVStore, "persist", _raise(ENOSPC))
    with pytest.raises(DiskFullError) as err:
        ReportIndex.build_from_vectors(vectors, _corpus(8), tmp_path / "index", checkpoint_hash="h")
    message = str(err.value)
    assert str(tmp_path / "index") in message and "index" in message
    assert _needed(message) >= vectors.nbytes
    monkeypatch.undo()
    assert len(ReportIndex.load(tmp_path / "index")) == 5 and os.listdir(tmp_path) == ["index"]


def test_rag_report_index_on_a_full_disk_prints_one_line(tmp_path, monkeypatch, capsys):
    import faiss

    from rag_report.cli import main

    EClip.from_config("eclip-tiny").save_pretrained(tmp_path / "eclip")
    write_manifest(_corpus(6), tmp_path / "m.csv")
    monkeypatch.setattr(faiss, "write_index", _raise(RuntimeError("write error in x (No space left on device)")))
    code = main(
        [
            "--quiet",
            "index",
            "--manifest",
            str(tmp_path / "m.csv"),
            "--model",
            str(tmp_path / "eclip"),
            "--out",
            str(tmp_path / "idx"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: disk full") and str(tmp_path / "idx") in err
    assert not (tmp_path / "idx").exists() and sorted(os.listdir(tmp_path)) == ["eclip", "m.csv"]
