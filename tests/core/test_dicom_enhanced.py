"""Enhanced multi-frame objects: geometry from functional groups equals the classic series'."""

import numpy as np
import pytest

from tests.core.dicom_fixtures import compress_series, enhanced_from_classic
from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.io import list_series, load_volume
from vol3d_gui.core.study import open_study
from vol3d_gui.core.windowing import Window, default_window

SPACING, ORIGIN = (0.7, 0.8, 2.5), (-80.0, -90.0, 30.0)


@pytest.fixture
def classic(tmp_path):
    data = marker_volume((36, 40, 12)).astype(np.float64) * 0.5 + 10
    paths = write_dicom_series(tmp_path / "classic", data, spacing=SPACING, origin=ORIGIN,
                               intercept=0.0, modality="MR")
    return data, paths, load_volume(tmp_path / "classic")


def test_enhanced_object_has_the_classic_geometry_and_voxels(tmp_path, classic):
    data, paths, ref = classic
    (tmp_path / "enh").mkdir()
    enhanced_from_classic(paths, tmp_path / "enh" / "mf.dcm")
    vol = load_volume(tmp_path / "enh")
    assert vol.meta["enhanced"] and vol.meta["modality"] == "MR"
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-6)
    np.testing.assert_array_equal(vol.data, ref.data)
    np.testing.assert_array_equal(vol.data, data.astype(vol.dtype))
    # the window comes from the shared FrameVOILUTSequence
    assert default_window(vol) == Window(300, 900)


def test_per_frame_rescale_is_applied_per_frame(tmp_path, classic):
    data, paths, ref = classic
    (tmp_path / "enh").mkdir()
    enhanced_from_classic(paths, tmp_path / "enh" / "mf.dcm", per_frame_intercepts={3: -7.0, 8: -20.0})
    vol = load_volume(tmp_path / "enh")
    np.testing.assert_array_equal(vol.data, ref.data)


def test_echoes_are_split_into_items_by_dimension_index(tmp_path, classic):
    data, paths, ref = classic
    (tmp_path / "enh").mkdir()
    enhanced_from_classic(paths, tmp_path / "enh" / "mf.dcm", echoes=2, seed=3)
    series = list_series(tmp_path / "enh")
    assert len(series) == 2 and all(s.n_slices == data.shape[2] for s in series)
    assert all("EffectiveEchoTime" in s.note for s in series)
    vols = sorted((load_volume(tmp_path / "enh", series=s.key) for s in series),
                  key=lambda v: float(v.data.mean()))
    for echo, vol in enumerate(vols):
        np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-6)
        np.testing.assert_array_equal(vol.data, ref.data + 100 * echo)
    study = open_study(tmp_path / "enh")
    assert len(study) == 2 and len({it.id for it in study}) == 2


def test_jpeg2000_enhanced_object_decodes_frame_by_frame(tmp_path, classic):
    from pydicom.uid import JPEG2000Lossless

    data, paths, ref = classic
    (tmp_path / "enh").mkdir()
    mf = enhanced_from_classic(paths, tmp_path / "enh" / "mf.dcm")
    compress_series([mf], JPEG2000Lossless)
    vol = load_volume(mf)
    np.testing.assert_array_equal(vol.data, ref.data)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-6)
