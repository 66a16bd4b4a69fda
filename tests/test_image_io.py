"""load_image: every accepted source, the real NIH PNGs, and every bad input with a clear error."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eclip_core.data.image_io import DEFAULT_MAX_PIXELS, image_size, load_image
from eclip_core.errors import EClipError, ImageLoadError

FIXTURES = Path(__file__).parent / "fixtures"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(path: Path, width: int, height: int, full: bool) -> Path:
    """A 1-bit grey PNG with the given header size; ``full`` writes every (zero) row."""
    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(1)
    rows = height if full else 10
    data = b"".join(comp.compress(row * min(500, rows - i)) for i in range(0, rows, 500)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")
    )
    return path


def test_png_8bit_round_trip(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.float32 and out.shape == (20, 30)
    np.testing.assert_allclose(out, a / 255.0, atol=1e-7)
    assert image_size(tmp_path / "a.png") == (20, 30)


def test_png_16bit_fixture_keeps_full_precision():
    out = load_image(FIXTURES / "ramp16.png")
    expected = (np.arange(32 * 40).reshape(32, 40) * 40) / 65535.0
    assert Image.open(FIXTURES / "ramp16.png").mode.startswith("I;16")
    np.testing.assert_allclose(out, expected, atol=1e-7)
    # Neighbouring values differ by 40/65535: an 8-bit path would have merged them.
    assert len(np.unique(out)) == 32 * 40


def test_jpeg_and_rgb_to_luma(tmp_path):
    grey = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    Image.fromarray(grey).save(tmp_path / "g.jpg", quality=95)
    out = load_image(tmp_path / "g.jpg")
    assert out.shape == (48, 64) and np.abs(out - grey / 255.0).mean() < 0.01
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, 0
    Image.fromarray(rgb).save(tmp_path / "c.png")
    expected = (0.299 * 255 + 0.587 * 128) / 255.0
    np.testing.assert_allclose(load_image(tmp_path / "c.png"), expected, atol=1e-6)
    rgba = np.dstack([rgb, np.full((4, 4), 7, np.uint8)])
    np.testing.assert_allclose(load_image(rgba), expected, atol=1e-6)


def test_other_sources_agree(tmp_path):
    a = np.random.default_rng(1).integers(0, 256, (8, 9), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    ref = load_image(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    for src in (
        data,
        bytearray(data),
        io.BytesIO(data),
        Image.open(tmp_path / "a.png"),
        a,
        a[..., None],
        str(tmp_path / "a.png"),
    ):
        np.testing.assert_array_equal(load_image(src), ref)
    Image.open(tmp_path / "a.png").convert("P").save(tmp_path / "p.png")
    np.testing.assert_allclose(load_image(tmp_path / "p.png"), ref, atol=1 / 255)
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(load_image(tmp_path / "a.npy"), ref)


def test_array_scaling_rules():
    np.testing.assert_allclose(load_image(np.array([[0, 65535]], np.uint16)), [[0, 1]])
    np.testing.assert_allclose(load_image(np.array([[0.25, 0.5]])), [[0.25, 0.5]])
    np.testing.assert_allclose(load_image(np.array([[-100, 0, 100]], np.int16)), [[0, 0.5, 1]])
    np.testing.assert_allclose(load_image(np.array([[2.0, 4.0]])), [[0, 1]])
    np.testing.assert_allclose(load_image(np.array([[True, False]])), [[1, 0]])


def test_real_nih_pngs(shared_data):
    paths = sorted((shared_data / "sample_cxr").glob("*.png"))
    assert len(paths) == 2
    for p in paths:
        out = load_image(p)
        ref = np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0
        assert out.shape == (512, 512) and out.dtype == np.float32
        np.testing.assert_allclose(out, ref, atol=1e-6)
        assert 0.0 <= out.min() < 0.2 and 0.8 < out.max() <= 1.0  # a real radiograph spans the range


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "folder",
        "empty",
        "text",
        "truncated_png",
        "truncated_jpeg",
        "corrupt_png",
        "empty_array",
        "nan_array",
        "bad_shape",
        "bad_type",
    ],
)
def test_bad_inputs_raise_clear_errors(tmp_path, case):
    a = np.random.default_rng(2).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "ok.png")
    Image.fromarray(a).save(tmp_path / "ok.jpg")
    png, jpg = (tmp_path / "ok.png").read_bytes(), (tmp_path / "ok.jpg").read_bytes()
    src, expect = {
        "missing": (tmp_path / "nope.png", "file not found"),
        "folder": (tmp_path, "folder"),
        "empty": (tmp_path / "empty.png", "empty file"),
        "text": (tmp_path / "notes.png", "not a recognised image"),
        "truncated_png": (tmp_path / "t.png", "truncated or corrupt"),
        "truncated_jpeg": (tmp_path / "t.jpg", "truncated or corrupt"),
        "corrupt_png": (tmp_path / "c.png", "corrupt"),
        "empty_array": (np.zeros((0, 5), np.uint8), "empty"),
        "nan_array": (np.array([[np.nan, 1.0]]), "NaN"),
        "bad_shape": (np.zeros((2, 3, 4, 5)), "shape"),
        "bad_type": (12345, "unsupported image source"),
    }[case]
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("FINDINGS: lungs clear\n" * 20)
    (tmp_path / "t.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "t.jpg").write_bytes(jpg[: len(jpg) // 2])
    (tmp_path / "c.png").write_bytes(png[:40] + b"\x00garbage" * 50 + png[-12:])
    with pytest.raises(ImageLoadError) as exc:
        load_image(src)
    assert expect in str(exc.value)
    assert isinstance(exc.value, EClipError)
    if isinstance(src, Path) and src != tmp_path:
        assert str(src) in str(exc.value)  # the message names the file


def test_decompression_bomb_50k_rejected_from_header(tmp_path):
    path = _bomb_png(tmp_path / "bomb.png", 50_000, 50_000, full=False)
    t = time.perf_counter()
    with pytest.raises(ImageLoadError, match="decompression bomb") as exc:
        load_image(path)
    assert time.perf_counter() - t < 2.0  # rejected from the header, nothing decoded
    assert "bomb.png" in str(exc.value)


def test_max_pixels_setting(tmp_path):
    # 12,000 x 12,000 is below Pillow's own guard but above the default limit: our check fires.
    path = _bomb_png(tmp_path / "big.png", 12_000, 12_000, full=True)
    assert 12_000 * 12_000 > DEFAULT_MAX_PIXELS
    with pytest.raises(ImageLoadError, match="12000x12000"):
        load_image(path)
    small = tmp_path / "s.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(small)
    with pytest.raises(ImageLoadError, match="over the limit of 50"):
        load_image(small, max_pixels=50)
    assert load_image(small, max_pixels=100).shape == (10, 10)


def test_misnamed_png_with_dicom_suffix(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(a).save(tmp_path / "x.png")
    (tmp_path / "x.dcm").write_bytes((tmp_path / "x.png").read_bytes())
    np.testing.assert_allclose(load_image(tmp_path / "x.dcm"), a / 255.0, atol=1e-7)
