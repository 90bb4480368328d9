"""Compressed transfer syntaxes, built with the real encoders or taken from pydicom's own
test files, decoded losslessly and placed exactly like the uncompressed series."""

import shutil

import numpy as np
import pytest

from tests.core.dicom_fixtures import compress_series, save_deflated
from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.io import load_volume


def _hu():
    # at least 32 pixels a side: OpenJPEG's default 6 resolution levels need it
    hu = marker_volume((36, 40, 12)).astype(np.float64) - 1000.0
    hu[2:6, 3:8, 4:6] = 500.0
    return hu


LOSSLESS = {
    "RLE": ("1.2.840.10008.1.2.5", {}),
    "JPEG-LS lossless": ("1.2.840.10008.1.2.4.80", {}),
    "JPEG 2000 lossless": ("1.2.840.10008.1.2.4.90", {}),
}


@pytest.mark.parametrize("name", sorted(LOSSLESS))
def test_lossless_series_equal_the_uncompressed_one(tmp_path, name):
    from pydicom.uid import UID

    uid, kw = LOSSLESS[name]
    hu = _hu()
    write_dicom_series(tmp_path / "plain", hu, spacing=(0.7, 0.8, 2.5), origin=(-80.0, -90.0, 30.0))
    paths = write_dicom_series(tmp_path / "packed", hu, spacing=(0.7, 0.8, 2.5), origin=(-80.0, -90.0, 30.0))
    compress_series(paths, UID(uid), **kw)
    import pydicom

    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == uid
    vol = load_volume(tmp_path / "packed")
    np.testing.assert_array_equal(vol.data, hu.astype(np.int16))  # lossless, in RAS order
    np.testing.assert_allclose(vol.affine, load_volume(tmp_path / "plain").affine, atol=1e-6)
    np.testing.assert_allclose(vol.voxel_to_world([0, 0, 0]), [-80, -90, 30], atol=1e-3)
    assert vol.meta["transfer_syntax"] == UID(uid).name


def test_deflated_series_equals_the_uncompressed_one(tmp_path):
    hu = _hu()
    paths = write_dicom_series(tmp_path / "s", hu)
    save_deflated(paths)
    assert paths[0].read_bytes()[128:132] == b"DICM"
    np.testing.assert_array_equal(load_volume(tmp_path / "s").data, hu.astype(np.int16))


def _mr_reference():
    """pydicom's MR_small.dcm decoded with plain numpy from its uncompressed pixel bytes."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    dtype = np.dtype("<i2" if ds.PixelRepresentation else "<u2")
    px = np.frombuffer(ds.PixelData, dtype=dtype).reshape(ds.Rows, ds.Columns)
    return ds, px


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm"])
def test_pydicom_shipped_compressed_files_open_as_one_slice_volumes(tmp_path, name):
    from pydicom.data import get_testdata_file

    ref_ds, px = _mr_reference()
    shutil.copy(get_testdata_file(name), tmp_path / name)
    vol = load_volume(tmp_path / name)
    assert vol.shape == (ref_ds.Columns, ref_ds.Rows, 1) and vol.meta["single_slice"]
    # independent geometry: column c, row r of the image sit at IPP + c*dc*row_dir + r*dr*col_dir
    iop = np.array(ref_ds.ImageOrientationPatient, float)
    ipp = np.array(ref_ds.ImagePositionPatient, float)
    dr, dc = (float(v) for v in ref_ds.PixelSpacing)
    slope = float(ref_ds.get("RescaleSlope", 1) or 1)
    inter = float(ref_ds.get("RescaleIntercept", 0) or 0)
    rng = np.random.default_rng(0)
    for r, c in rng.integers(0, 64, size=(20, 2)):
        lps = ipp + c * dc * iop[:3] + r * dr * iop[3:]
        ras = lps * [-1, -1, 1]
        assert vol.value_at(ras) == px[r, c] * slope + inter


def test_jpeg_extended_codestream_is_decoded_and_placed(tmp_path):
    """pydicom's JPGExtended.dcm (12-bit JPEG process 4, encoded by a real encoder) placed in a
    two-slice series; compared with libjpeg decoding the same fragments directly."""
    import libjpeg
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import get_frame

    src = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))
    expected = libjpeg.decode(get_frame(src.PixelData, 0, number_of_frames=1))
    for k in range(2):
        ds = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))
        ds.SeriesInstanceUID = "1.2.3.4.5"
        ds.Modality = "CT"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 3.0 * k]
        ds.PixelSpacing = [0.5, 0.25]
        ds.save_as(tmp_path / f"{k}.dcm")
    vol = load_volume(tmp_path)
    assert vol.shape == (src.Columns, src.Rows, 2)
    np.testing.assert_allclose(vol.spacing, [0.25, 0.5, 3.0])
    # RAS axis 0 runs against DICOM columns (LPS x), axis 1 against rows (LPS y)
    np.testing.assert_array_equal(vol.data[:, :, 1], expected[::-1, ::-1].T)


def test_jpeg_lossless_process_14_has_a_decoder_and_colour_is_refused_for_its_reason(tmp_path):
    """pydicom ships JPEG lossless (process 14) only as an RGB secondary capture (GDCM-encoded):
    the libjpeg plugin decodes it exactly like libjpeg itself, and the reader refuses it for
    being colour, not for a missing decoder."""
    import libjpeg
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import get_frame
    from pydicom.pixels import pixel_array

    from vol3d_gui.core.io import VolumeReadError

    src = get_testdata_file("SC_rgb_jpeg_gdcm.dcm")
    ds = pydicom.dcmread(src)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    direct = libjpeg.decode(get_frame(ds.PixelData, 0, number_of_frames=1))
    np.testing.assert_array_equal(pixel_array(ds, raw=True), direct)
    ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0, 0, 0]
    ds.PixelSpacing = [1, 1]
    ds.save_as(tmp_path / "rgb.dcm")
    with pytest.raises(VolumeReadError, match="colour"):
        load_volume(tmp_path / "rgb.dcm")


def test_jpeg_baseline_series_encoded_by_pillow(tmp_path):
    """8-bit JPEG baseline (process 1) slices encoded by Pillow, checked against Pillow's own
    decode of the same bytes (lossy: two decoders' IDCTs may differ by one grey level)."""
    import io

    import pydicom
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    rng = np.random.default_rng(0)
    base = marker_volume((36, 40, 5)).astype(np.float64) / 5 + rng.integers(0, 40, (36, 40, 5))  # < 256
    paths = write_dicom_series(tmp_path, base, intercept=0.0, modality="MR")
    expected = {}
    for p in paths:
        ds = pydicom.dcmread(p)
        px = ds.pixel_array.astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(px, mode="L").save(buf, "JPEG", quality=90)
        expected[float(ds.ImagePositionPatient[2])] = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = encapsulate([buf.getvalue()])
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.save_as(p)
    vol = load_volume(tmp_path)
    assert vol.shape == (36, 40, 5) and vol.meta["transfer_syntax"] == JPEGBaseline8Bit.name
    for k, z in enumerate(sorted(expected)):
        # RAS axis 0 runs against DICOM columns, axis 1 against rows (see write_dicom_series)
        decoded_by_pillow = expected[z][::-1, ::-1].T
        assert np.abs(vol.data[:, :, k].astype(int) - decoded_by_pillow).max() <= 1
