"""The results table of an archive run (`vol3d score`) opened in the window: its items are
the worklist, with the stored predictions, sortable by uncertainty or by the domain flag."""

from tests.core.results_fixtures import write_results


def test_a_results_table_opens_as_a_worklist_of_its_predictions(qtbot, window, tmp_path):
    out, arrays = write_results(tmp_path / "run")
    assert window.open_path(out)
    assert window.current_item.id == "a"
    assert (window.viewer.volume.data == arrays["a"]).all()
    panel, table = window.worklist, window.worklist.table_model
    assert panel.header.text() == "results.csv: 4 items"
    shown = [table.data(table.index(r, 3)) for r in range(4)]
    assert shown == ["lesion (90%)", "no lesion (60%)", "no lesion (80%)", None]
    assert table.data(table.index(3, 0)) == "d (VolumeReadError)"
    panel.sort_button.click()
    assert panel.shown_ids() == ["b", "c", "a", "d"]
    panel.domain_button.click()  # one order at a time: the uncertainty order gives way
    assert not panel.sort_button.isChecked() and window.worklist_state.sort == "domain"
    assert panel.shown_ids() == ["c", "b", "a", "d"]
    panel.domain_button.click()
    assert window.worklist_state.sort == "study" and panel.shown_ids() == ["a", "b", "c", "d"]
