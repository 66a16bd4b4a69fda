"""A damaged index folder is refused at load with CorruptIndexError naming the file and saying to rebuild
(not a FAISS / JSON traceback, not an index that loads and then fails every draft); the app refuses to start."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from eclip_core.data.manifest import Study
from eclip_core.model import EClip
from rag_report.errors import CorruptIndexError, IndexNotFoundError
from rag_report.index import FAISS_FILE, IMAGE_SAMPLE_FILE, ReportIndex, is_current_index

DIM = 16
FILES = (FAISS_FILE, "docstore.json", "index_store.json", IMAGE_SAMPLE_FILE)


def _corpus(n: int) -> list[Study]:
    return [Study(f"S{i:02d}", [f"x{i}.png"], "train", findings=f"Finding number {i}.") for i in range(n)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("integrity") / "index"
    ReportIndex.build_from_vectors(
        rng.normal(size=(30, DIM)).astype(np.float32),
        _corpus(30),
        folder,
        checkpoint_hash="h",
        image_sample=rng.normal(size=(25, DIM)).astype(np.float32),
    )
    return folder


def _copy(built, tmp_path, legacy: bool):
    folder = tmp_path / ("legacy" if legacy else "index")
    shutil.copytree(built, folder)
    if legacy:  # an index built before the file record existed
        manifest = json.loads((folder / "manifest.json").read_text())
        del manifest["files"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_the_manifest_records_every_file_with_its_size_and_sha256(built):
    files = json.loads((built / "manifest.json").read_text())["files"]
    assert set(FILES) <= set(files) and "manifest.json" not in files
    for name, rec in files.items():
        data = (built / name).read_bytes()
        assert rec == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("legacy", [False, True], ids=["recorded", "legacy"])
@pytest.mark.parametrize("name", FILES)
def test_a_truncated_file_is_named(built, tmp_path, name, legacy):
    folder = _copy(built, tmp_path, legacy)
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptIndexError) as err:
        ReportIndex.load(folder)
    message = str(err.value)
    assert name in message and "rag-report index" in message and str(folder) in message
    assert isinstance(err.value, IndexNotFoundError)  # callers catching the older error still catch it
    if not legacy:  # the bundle rebuilds an index whose files fail their recorded sizes
        assert not is_current_index(folder)


@pytest.mark.parametrize("legacy", [False, True], ids=["recorded", "legacy"])
def test_a_missing_image_sample_is_named(built, tmp_path, legacy):
    folder = _copy(built, tmp_path, legacy)
    (folder / IMAGE_SAMPLE_FILE).unlink()
    with pytest.raises(CorruptIndexError, match=IMAGE_SAMPLE_FILE):
        ReportIndex.load(folder)


def test_a_flipped_byte_fails_the_checksum_but_not_the_size_check(built, tmp_path):
    folder = _copy(built, tmp_path, legacy=False)
    data = bytearray((folder / FAISS_FILE).read_bytes())
    data[-10] ^= 0xFF  # inside the stored vectors: FAISS itself would load it and return wrong neighbours
    (folder / FAISS_FILE).write_bytes(bytes(data))
    with pytest.raises(CorruptIndexError, match=f"{FAISS_FILE} is corrupt.*sha256"):
        ReportIndex.load(folder)
    assert len(ReportIndex.load(folder, verify="size")) == 30


def test_an_intact_index_loads_its_image_sample_at_once(built):
    index = ReportIndex.load(built)
    assert index._image_sample is not None and index._image_sample.shape == (25, DIM)
    assert index.typicality(np.ones(DIM, dtype=np.float32)).shape == (1,)


def test_the_app_refuses_to_start_on_a_broken_index(tmp_path, capsys):
    from apps.gradio_app import main

    model = EClip.from_config("eclip-tiny").eval()
    model.save_pretrained(tmp_path / "eclip")
    rng = np.random.default_rng(1)
    ReportIndex.build_from_vectors(
        rng.normal(size=(12, model.embed_dim)).astype(np.float32),
        _corpus(12),
        tmp_path / "index",
        checkpoint_hash=model.checkpoint_hash,
        image_sample=rng.normal(size=(15, model.embed_dim)).astype(np.float32),
    )
    sample = tmp_path / "index" / IMAGE_SAMPLE_FILE
    sample.write_bytes(sample.read_bytes()[:100])
    code = main(
        ["--model", str(tmp_path / "eclip"), "--index", str(tmp_path / "index"), "--mode", "consensus", "--quiet"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and IMAGE_SAMPLE_FILE in err and "rag-report index" in err
    assert "Traceback" not in err
