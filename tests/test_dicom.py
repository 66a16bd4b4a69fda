"""DICOM: LUT pipeline against hand computations, compressed round trips, and no identifier leaks."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from eclip_core.data.dicom import apply_window, read_dicom, read_dicom_display, write_test_dicom
from eclip_core.data.image_io import image_size, load_image
from eclip_core.errors import ImageLoadError, MissingDecoderError

FIXTURES = Path(__file__).parent / "fixtures"
NAME, PID = "Doe^Jane", "MRN-99812"


def _ramp(rows=16, cols=20, hi=4095) -> np.ndarray:
    return np.linspace(0, hi, rows * cols).round().astype(np.uint16).reshape(rows, cols)


def test_monochrome1_fixture_is_inverted():
    img = load_image(FIXTURES / "mono1_12bit.dcm")
    stored = np.tile(np.linspace(0, 4095, 48).round(), (64, 1))
    # No window in the file: min/max display, then MONOCHROME1 inversion (low stored value = white).
    np.testing.assert_allclose(img, 1.0 - stored / 4095.0, atol=1e-6)
    assert img[0, 0] == 1.0 and img[0, -1] == 0.0
    assert image_size(FIXTURES / "mono1_12bit.dcm") == (64, 48)


def test_monochrome1_vs_2_are_complements(tmp_path):
    px = _ramp()
    write_test_dicom(tmp_path / "m1.dcm", px, photometric="MONOCHROME1", bits_stored=12, window=(2048, 4096))
    write_test_dicom(tmp_path / "m2.dcm", px, photometric="MONOCHROME2", bits_stored=12, window=(2048, 4096))
    np.testing.assert_allclose(read_dicom(tmp_path / "m1.dcm"), 1.0 - read_dicom(tmp_path / "m2.dcm"), atol=1e-6)


def test_16bit_rescale_and_window_match_hand_computation(tmp_path):
    px = np.array([[0, 1000, 2000], [3000, 40000, 65535]], dtype=np.uint16)
    slope, intercept, c, w = 2.0, -1024.0, 3000.0, 4001.0
    write_test_dicom(tmp_path / "r.dcm", px, bits_stored=16, rescale=(slope, intercept), window=(c, w))
    hu = px.astype(np.float64) * slope + intercept
    expected = np.clip((hu - (c - 0.5)) / (w - 1) + 0.5, 0, 1)  # PS3.3 C.11.2.1.2.1, LINEAR
    np.testing.assert_allclose(read_dicom(tmp_path / "r.dcm"), expected, atol=1e-6)
    disp = read_dicom_display(tmp_path / "r.dcm")
    np.testing.assert_allclose(disp.values, hu, atol=1e-3)
    assert (disp.window_center, disp.window_width) == (c, w)
    # Re-windowing for a viewer: a narrow window saturates everything above it.
    np.testing.assert_allclose(disp.render(0.0, 2.0), (hu > 0).astype(np.float32) * 1.0, atol=1e-6)


def test_voi_lut_sequence_is_preferred_over_window(tmp_path):
    px = np.array([[0, 1, 2, 3]], dtype=np.uint16)
    write_test_dicom(tmp_path / "v.dcm", px, bits_stored=12, window=(100, 10))
    ds = pydicom.dcmread(tmp_path / "v.dcm")
    item = pydicom.Dataset()
    item.LUTDescriptor = [4, 0, 16]
    # A non-monotonic LUT no window could produce; LUT Data is OW (raw little-endian words).
    item.add_new(0x00283006, "OW", np.array([1000, 3000, 2000, 5000], "<u2").tobytes())
    ds.VOILUTSequence = pydicom.Sequence([item])
    ds.save_as(tmp_path / "v.dcm")
    np.testing.assert_allclose(read_dicom(tmp_path / "v.dcm"), [[0.0, 0.5, 0.25, 1.0]], atol=1e-6)


def test_apply_window_functions():
    x = np.array([0.0, 50.0, 100.0])
    np.testing.assert_allclose(apply_window(x, 50, 100, "LINEAR_EXACT"), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(apply_window(x, 50, 100, "SIGMOID"), 1 / (1 + np.exp(-4 * (x - 50) / 100)))


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless])
def test_compressed_round_trips_are_lossless(tmp_path, syntax):
    px = _ramp(64, 72)  # JPEG 2000's default 6 resolution levels need >= 64 px
    write_test_dicom(tmp_path / "raw.dcm", px, bits_stored=12, photometric="MONOCHROME1")
    write_test_dicom(tmp_path / "c.dcm", px, bits_stored=12, photometric="MONOCHROME1", transfer_syntax=syntax)
    assert pydicom.dcmread(tmp_path / "c.dcm").file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(pydicom.dcmread(tmp_path / "c.dcm").pixel_array, px)
    np.testing.assert_array_equal(load_image(tmp_path / "c.dcm"), load_image(tmp_path / "raw.dcm"))


def test_missing_decoder_names_the_package(tmp_path):
    write_test_dicom(tmp_path / "j.dcm", _ramp(8, 8), bits_stored=12)
    ds = pydicom.dcmread(tmp_path / "j.dcm")
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + b"\x00" * 60])  # a JPEG Lossless (process 14) frame
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.save_as(tmp_path / "j.dcm", enforce_file_format=True)
    from pydicom.pixels import get_decoder

    if get_decoder(JPEGLosslessSV1).is_available:
        pytest.skip("a JPEG Lossless decoder is installed here")
    with pytest.raises(MissingDecoderError) as exc:
        load_image(tmp_path / "j.dcm")
    msg = str(exc.value)
    assert "pylibjpeg-libjpeg" in msg and "python-gdcm" in msg and "j.dcm" in msg and "JPEG Lossless" in msg


def test_no_pixel_data_and_no_identifier_leaks(tmp_path, caplog):
    write_test_dicom(tmp_path / "p.dcm", _ramp(4, 4), patient_name=NAME, patient_id=PID)
    ds = pydicom.dcmread(tmp_path / "p.dcm")
    del ds.PixelData
    ds.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ImageLoadError, match="no pixel data") as exc:
        load_image(tmp_path / "sr.dcm")
    assert "sr.dcm" in str(exc.value)
    # Truncated pixel data: the decode error must not echo header values.
    data = (tmp_path / "p.dcm").read_bytes()
    (tmp_path / "t.dcm").write_bytes(data[:-10])
    with pytest.raises(ImageLoadError) as exc2:
        load_image(tmp_path / "t.dcm")
    for text in (str(exc.value), str(exc2.value), caplog.text):
        assert "Doe" not in text and "Jane" not in text and PID not in text and "19700101" not in text


def test_dicom_detected_by_magic_and_from_bytes(tmp_path):
    px = _ramp(6, 5)
    write_test_dicom(tmp_path / "a.dcm", px, bits_stored=12)
    (tmp_path / "noext").write_bytes((tmp_path / "a.dcm").read_bytes())
    ref = load_image(tmp_path / "a.dcm")
    np.testing.assert_array_equal(load_image(tmp_path / "noext"), ref)
    np.testing.assert_array_equal(load_image((tmp_path / "a.dcm").read_bytes()), ref)
    assert ref.dtype == np.float32 and ref.min() == 0.0 and ref.max() == 1.0


def test_not_dicom_and_oversized_dicom(tmp_path):
    (tmp_path / "x.dcm").write_bytes(b"hello, not a dicom file at all" * 10)
    with pytest.raises(ImageLoadError, match="x.dcm"):
        load_image(tmp_path / "x.dcm")
    write_test_dicom(tmp_path / "b.dcm", _ramp(20, 20), bits_stored=12)
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(tmp_path / "b.dcm", max_pixels=100)


def test_signed_pixels_sigmoid_colour_and_multiframe(tmp_path):
    signed = np.array([[-1000, 0], [500, 1000]], dtype=np.int16)
    write_test_dicom(tmp_path / "s.dcm", signed, rescale=(1.0, -24.0), window=(0.0, 400.0))
    ds = pydicom.dcmread(tmp_path / "s.dcm")
    ds.VOILUTFunction = "SIGMOID"
    ds.save_as(tmp_path / "s.dcm")
    hu = signed.astype(float) - 24.0
    np.testing.assert_allclose(read_dicom(tmp_path / "s.dcm"), 1 / (1 + np.exp(-4 * hu / 400.0)), atol=1e-6)
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 255
    write_test_dicom(tmp_path / "c.dcm", rgb, photometric="RGB")
    np.testing.assert_allclose(load_image(tmp_path / "c.dcm"), 0.587, atol=1e-6)
    frames = np.stack([_ramp(8, 8), 4095 - _ramp(8, 8)])
    write_test_dicom(tmp_path / "m.dcm", frames, bits_stored=12)
    np.testing.assert_allclose(load_image(tmp_path / "m.dcm"), _ramp(8, 8) / 4095.0, atol=1e-6)  # first frame
