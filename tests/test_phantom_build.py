"""The phantom data set builder: manifest, determinism, cache, split, gaze files (tiny builds)."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eclip_core.data.expert_heatmap import load_expert_heatmap
from eclip_core.data.manifest import find_missing_files, read_manifest
from eclip_core.data.phantom import build_phantom_dataset
from eclip_core.data.phantom.split import assign_split, hashed_split, load_r2gen_split
from eclip_core.errors import ConfigError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchxrayvision") is None, reason="the Open-I reports come from torchxrayvision"
)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "a"
    manifest = build_phantom_dataset(out, size=64, limit=24, gaze_fraction=0.5, progress=False, workers=2)
    return manifest


def test_manifest_rows_are_complete_and_simulated(built):
    studies = read_manifest(built)
    assert len(studies) == 24
    assert find_missing_files(studies) == []
    for s in studies:
        assert s.meta["simulated"] is True
        assert s.view == "PA" and s.split in ("train", "val", "test")
        assert s.findings or s.impression
        assert isinstance(s.meta["mesh"], list) and isinstance(s.meta["findings"], list)
        img = np.asarray(Image.open(s.image_paths[0]))
        assert img.shape == (64, 64) and img.dtype == np.uint8
    by_id = {s.study_id: s for s in studies}
    assert by_id["CXR1"].labels.get("No Finding") == 1.0  # the project's labeler over the text
    marker = json.loads((built.parent / "COMPLETE.json").read_text())
    assert marker["studies"] == 24 and marker["dropped_no_text"] == 28


def test_gaze_only_in_train_and_loads_through_the_expert_heatmap_path(built):
    studies = read_manifest(built)
    gaze = [s for s in studies if s.fixations_paths]
    assert gaze, "gaze_fraction=0.5 of ~17 train studies should give some"
    assert all(s.split == "train" and s.gaze_format == "egd" for s in gaze)
    for s in gaze[:3]:
        heat = load_expert_heatmap(s, (64, 64))
        assert heat is not None and heat.shape == (64, 64) and np.isclose(heat.max(), 1.0)
        assert (heat > 0.5).mean() < 0.3  # focal, not a uniform blur


def test_split_matches_r2gen_and_test_never_leaks(built, shared_data):
    studies = read_manifest(built)
    with open(shared_data / "openi_r2gen_split.csv", newline="") as fh:
        ref = {r["uid"]: r["split"] for r in csv.DictReader(fh)}
    assert load_r2gen_split() == ref  # the project copy is faithful
    for s in studies:
        assert s.split == ref.get(s.study_id, hashed_split(s.study_id))
    assert all(assign_split(u) == "test" for u, sp in ref.items() if sp == "test")


def test_hashed_split_is_stable_and_proportioned():
    uids = [f"X{i}" for i in range(3000)]
    splits = [hashed_split(u) for u in uids]
    assert splits == [hashed_split(u) for u in uids]
    frac = {k: splits.count(k) / len(splits) for k in ("train", "val", "test")}
    assert abs(frac["train"] - 0.7) < 0.03 and abs(frac["test"] - 0.2) < 0.03


def test_deterministic_byte_identical_and_cached(built, tmp_path):
    again = build_phantom_dataset(tmp_path / "b", size=64, limit=24, gaze_fraction=0.5, progress=False, workers=1)
    assert _digest(built.parent) == _digest(again.parent)  # 1 vs 2 workers, same bytes
    stamp = again.stat().st_mtime_ns
    assert build_phantom_dataset(tmp_path / "b", size=64, limit=24, gaze_fraction=0.5, progress=False) == again
    assert again.stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_default_location_16_bit_and_config_errors(tmp_path):
    m = build_phantom_dataset(size=64, bits=16, limit=3, progress=False, workers=1, cache_dir=tmp_path)
    assert m.parent.parent == tmp_path / "phantom"
    img = np.asarray(Image.open(read_manifest(m)[0].image_paths[0]))
    assert img.dtype in (np.uint16, np.int32) and img.max() > 255
    with pytest.raises(ConfigError):
        build_phantom_dataset(tmp_path / "x", size=5000, progress=False)
    with pytest.raises(ConfigError):
        build_phantom_dataset(tmp_path / "x", gaze_fraction=2.0, progress=False)
    with pytest.raises(ConfigError, match="needs out_dir .* or cache_dir"):  # eclip_core knows no cache of its own
        build_phantom_dataset(size=64, limit=3, progress=False)


def test_command_line_builds_and_prints_the_manifest(tmp_path, capsys):
    from eclip_core.data.phantom.__main__ import main

    assert main(["--out-dir", str(tmp_path / "cli"), "--size", "64", "--limit", "2", "--workers", "1", "--quiet"]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == tmp_path / "cli" / "manifest.csv" and len(read_manifest(printed)) == 2
