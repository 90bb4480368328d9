"""A file opened from a folder of other DICOM files: pydicom's own test folder holds an RT dose
series as a 15-frame file, 1-frame copies of it, and a damaged copy (NumberOfFrames '1A')."""

import shutil

import pytest
from pydicom.data import get_testdata_file

from vol3d_gui.core import io
from vol3d_gui.core.errors import VolumeReadError


@pytest.fixture
def rtdose_folder(tmp_path):
    for name in ("rtdose_rle.dcm", "rtdose_1frame.dcm", "badVR.dcm"):
        src = get_testdata_file(name)
        if src is None:
            pytest.skip(f"pydicom's {name} is not installed")
        shutil.copy(src, tmp_path / name)
    return tmp_path


def test_a_damaged_frame_count_in_a_sibling_does_not_stop_the_open(rtdose_folder):
    vol = io.load_volume(rtdose_folder / "rtdose_1frame.dcm")  # its series holds badVR.dcm too
    assert vol.shape[:2] == (10, 10)


def test_a_file_that_cannot_be_read_says_why_instead_of_opening_its_siblings(rtdose_folder):
    """The 15-frame RT dose has no per-frame placement vol3d reads: the open names that file and
    the reason, not a one-slice volume made of its 1-frame copies."""
    with pytest.raises(VolumeReadError) as err:
        io.load_volume(rtdose_folder / "rtdose_rle.dcm")
    assert "rtdose_rle.dcm" in str(err.value) and "frames" in str(err.value)
