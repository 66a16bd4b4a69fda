"""Test-wide setup: nothing may reach the network; artifacts go to a per-session temp home."""

from __future__ import annotations

import os

for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
}.items():
    os.environ.setdefault(_k, _v)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Every test runs on one torch intra-op thread (restored at the end).

    On a CPU shared by several processes, OpenMP threads spin-wait on each other: a tiny model's decoding
    was 7x slower with 2 threads than with 1 on the oversubscribed 2-core machine.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real reference data); tests needing it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="module")
def tiny_model_seed() -> int:
    """The torch seed :func:`tiny_model` is drawn under; a test module overrides this fixture for another draw."""
    return 0


@pytest.fixture(scope="module")
def tiny_model(tiny_model_seed):
    """An untrained eclip-tiny in eval mode, drawn under ``torch.manual_seed(tiny_model_seed)``; one per test
    module (its tests embed with it and save it, none changes its weights)."""
    import torch

    from eclip_core.model import EClip

    torch.manual_seed(tiny_model_seed)
    return EClip.from_config("eclip-tiny").eval()


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small real world: phantom studies (64 px), an untrained eclip-tiny checkpoint, an index of the
    train reports. Shared by the pipeline, app and benchmark-harness tests."""
    from eclip_core.data.manifest import read_manifest
    from eclip_core.data.phantom import build_phantom_dataset
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex

    root = tmp_path_factory.mktemp("tiny_world")
    manifest = build_phantom_dataset(out_dir=root / "phantom", size=64, limit=90, workers=1, progress=False)
    studies = read_manifest(manifest)
    model = EClip.from_config("eclip-tiny").eval()
    model.save_pretrained(root / "eclip")
    train = [s for s in studies if s.split == "train" and s.report_text]
    ReportIndex.build(model, train, root / "index", progress=False, corpus_name="tiny-phantom-train")
    return {
        "root": root,
        "manifest": manifest,
        "studies": studies,
        "model_dir": root / "eclip",
        "index_dir": root / "index",
    }


@pytest.fixture(scope="session")
def tiny_pipeline_config(tiny_world):
    """PipelineConfig over the tiny world; consensus mode so no LLM is needed unless a test asks."""
    from rag_report.pipeline import PipelineConfig

    return PipelineConfig(
        model_dir=str(tiny_world["model_dir"]),
        index_dir=str(tiny_world["index_dir"]),
        mode="consensus",
        k=3,
        candidates=20,
    )


class Killed(BaseException):
    """A simulated kill -9 (BaseException: no ``except Exception`` in the code under test catches it)."""


class KillSwitch:
    """Counts the file-system steps (os.replace / os.rename / os.mkdir / shutil.rmtree) under ``root``;
    from step ``at`` on, every such step raises :class:`Killed`, as if the process had died right before it
    (a dead process takes no further step, so cleanup code in ``finally`` blocks cannot run either)."""

    Killed = Killed

    def __init__(self) -> None:
        self.root: str | None = None
        self.at: int | None = None
        self.calls = 0

    def arm(self, root, at: int | None) -> None:
        """Watch ``root``; ``at=None`` only counts (to learn how many steps a save takes)."""
        self.root, self.at, self.calls = str(root), at, 0

    def disarm(self) -> None:
        self.root, self.at = None, None

    def guard(self, *paths) -> None:
        if self.root is None or not any(str(p).startswith(self.root) for p in paths):
            return
        self.calls += 1
        if self.at is not None and self.calls >= self.at:
            raise Killed(f"killed before file-system step {self.calls}")


@pytest.fixture
def kill_switch(monkeypatch):
    """A :class:`KillSwitch` wired into os.replace / os.rename / os.mkdir / shutil.rmtree for one test."""
    import os
    import shutil

    switch = KillSwitch()
    real_replace, real_rename, real_mkdir, real_rmtree = os.replace, os.rename, os.mkdir, shutil.rmtree

    def replace(src, dst, *a, **kw):
        switch.guard(src, dst)
        return real_replace(src, dst, *a, **kw)

    def rename(src, dst, *a, **kw):
        switch.guard(src, dst)
        return real_rename(src, dst, *a, **kw)

    def mkdir(path, *a, **kw):
        switch.guard(path)
        return real_mkdir(path, *a, **kw)

    def rmtree(path, *a, **kw):
        switch.guard(path)
        return real_rmtree(path, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    yield switch
    switch.disarm()


@pytest.fixture
def library_switches_restored(monkeypatch):
    """For in-process --quiet runs (eclip_core.chatter.quiet_libraries): they change process-wide switches
    (environment, transformers' verbosity and bars, huggingface_hub's bars); put them back afterwards."""
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as hf_logging

    for key in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.delenv(key, raising=False)
    before = hf_logging.get_verbosity()
    yield
    hf_logging.set_verbosity(before)
    hf_logging.enable_progress_bar()
    enable_progress_bars()
