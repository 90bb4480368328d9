import nrrd
import numpy as np
import pytest

from tests.core.io_fixtures import marker_volume
from vol3d_gui.core.io import load_volume
from vol3d_gui.core.volume import axis_codes


@pytest.mark.parametrize("space,flip", [("left-posterior-superior", (True, True)),
                                        ("right-anterior-superior", (False, False)),
                                        ("left-anterior-superior", (True, False))])
def test_space_directions_honoured(tmp_path, space, flip):
    data = marker_volume()
    stored = data[::-1] if flip[0] else data
    stored = stored[:, ::-1] if flip[1] else stored
    # stored axes point along the space's own +x/+y, i.e. toward L and/or P when flipped
    dirs = np.diag([0.9, 1.1, 2.5])
    origin = np.array([5.0, -7.0, 11.0])
    path = tmp_path / "m.nrrd"
    nrrd.write(str(path), np.ascontiguousarray(stored),
               {"space": space, "space directions": dirs, "space origin": origin}, index_order="F")
    vol = load_volume(path)
    assert axis_codes(vol.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(vol.data, data)
    # stored voxel (0,0,0) sits at `origin` in the file's space; find it in RAS
    ras0 = origin * np.array([-1 if f else 1 for f in flip] + [1])
    stored_zero_ras_index = [data.shape[0] - 1 if flip[0] else 0, data.shape[1] - 1 if flip[1] else 0, 0]
    np.testing.assert_allclose(vol.voxel_to_world(stored_zero_ras_index), ras0, atol=1e-6)
    np.testing.assert_allclose(vol.spacing, [0.9, 1.1, 2.5])


def test_nrrd_without_orientation_uses_spacings(tmp_path):
    path = tmp_path / "plain.nrrd"
    nrrd.write(str(path), marker_volume(), {"spacings": [2.0, 2.0, 3.0]}, index_order="F")
    vol = load_volume(path)
    np.testing.assert_allclose(vol.spacing, [2, 2, 3])
    assert vol.meta["warnings"]
