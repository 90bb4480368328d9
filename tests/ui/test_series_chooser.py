"""The series chooser lists what a folder scan found and hands back the chosen item id."""

from PySide6 import QtCore

from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.study import open_study
from vol3d_gui.ui.series_chooser import SeriesChooser


def _entries(tmp_path):
    write_dicom_series(tmp_path, marker_volume().astype(float), description="arterial",
                       spacing=(0.7, 0.8, 2.5), modality="CT")
    write_dicom_series(tmp_path, marker_volume()[:, :, :5].astype(float), description="t2",
                       spacing=(1.0, 1.0, 3.0), modality="MR", shuffle_seed=2)
    return [{"id": it.id, "name": it.name, **it.extras} for it in open_study(tmp_path)]


def test_lists_description_modality_slices_and_spacing(qtbot, tmp_path):
    entries = _entries(tmp_path)
    dlg = SeriesChooser(entries)
    qtbot.addWidget(dlg)
    rows = [[dlg.table.item(r, c).text() for c in range(4)] for r in range(dlg.table.rowCount())]
    assert sorted(rows) == [["arterial", "CT", "16", "0.7 x 0.8 x 2.5"], ["t2", "MR", "5", "1 x 1 x 3"]]
    assert dlg.chosen_id == entries[0]["id"] and dlg.open_button.isEnabled()


def test_the_chosen_row_is_the_returned_id(qtbot, tmp_path):
    entries = _entries(tmp_path)
    dlg = SeriesChooser(entries, current_id=entries[0]["id"])
    qtbot.addWidget(dlg)
    target = next(r for r in range(2) if dlg.table.item(r, 0).text() == "t2")
    rect = dlg.table.visualItemRect(dlg.table.item(target, 1))
    qtbot.mouseClick(dlg.table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    assert dlg.chosen_id == entries[target]["id"] and entries[target]["modality"] == "MR"
    with qtbot.waitSignal(dlg.accepted):
        qtbot.mouseDClick(dlg.table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    assert dlg.result() == dlg.DialogCode.Accepted


def test_an_empty_list_cannot_be_opened(qtbot):
    dlg = SeriesChooser([])
    qtbot.addWidget(dlg)
    assert dlg.chosen_id is None and not dlg.open_button.isEnabled()
    assert dlg.table.rowCount() == 0


def test_file_choose_series_opens_the_chosen_series_in_the_window(window, tmp_path, monkeypatch):
    entries = _entries(tmp_path)
    assert window.open_path(tmp_path)
    first = window.viewer.item.id
    other = next(e["id"] for e in entries if e["id"] != first)
    shown = []

    def pick(dlg):  # the reader picks the other series and presses Open
        shown.append([dlg.table.item(r, 0).text() for r in range(dlg.table.rowCount())])
        dlg.table.selectRow(next(r for r, e in enumerate(dlg.entries) if e["id"] == other))
        return SeriesChooser.DialogCode.Accepted

    monkeypatch.setattr(SeriesChooser, "exec", pick)
    assert window.choose_series()
    window.io.wait()
    assert sorted(shown[0]) == ["arterial", "t2"]
    assert window.viewer.item.id == other
    assert window.viewer.volume.meta["series_description"] in ("arterial", "t2")
