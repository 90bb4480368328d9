"""The main window's menus and its list of recent files (kept in the settings)."""

from __future__ import annotations

from PySide6 import QtGui, QtWidgets

from vol3d_gui.core.windowing import CT_PRESETS
from vol3d_gui.ui.exports import export_saliency_dialog, export_view_dialog
from vol3d_gui.ui.settings import app_settings

MAX_RECENT = 10
VOLUME_FILTER = ("Volumes (*.nii *.nii.gz *.nrrd *.nhdr *.dcm *.npz *.mgz *.mnc);;"
                 "Results of vol3d score (*.csv *.parquet);;All files (*)")


def build_menus(window) -> None:
    """The menu bar of a MainWindow."""
    mb = window.menuBar()
    file_menu = mb.addMenu("&File")
    add_action(window, file_menu, "&Open file...", lambda: _open_file_dialog(window), QtGui.QKeySequence.StandardKey.Open)
    add_action(window, file_menu, "Open &folder (DICOM series or study)...", lambda: _open_folder_dialog(window), "Ctrl+Shift+O")
    add_action(window, file_menu, "Choose &series...", window.choose_series)
    window.recent_menu = file_menu.addMenu("Open &recent")
    file_menu.addSeparator()
    export = file_menu.addMenu("&Export screenshot")
    for key, label in (("axial", "Axial view"), ("coronal", "Coronal view"), ("sagittal", "Sagittal view"),
                       ("3d", "3-D view"), ("window", "Whole window")):
        add_action(window, export, label + "...", lambda k=key: export_view_dialog(window, k))
    add_action(window, file_menu, "Export &saliency (NIfTI)...", lambda: export_saliency_dialog(window))
    window.file_menu = file_menu
    file_menu.addSeparator()
    add_action(window, file_menu, "&Quit", window.close, QtGui.QKeySequence.StandardKey.Quit)

    view = mb.addMenu("&View")
    window.view_menu = view
    window.act_radiological = add_action(window, view, "&Radiological display (patient right on screen left)",
                                         lambda checked: window.set_radiological(checked))
    window.act_radiological.setCheckable(True)
    window.act_radiological.setChecked(True)
    wl = view.addMenu("&Window / level")
    for name, w in CT_PRESETS.items():
        if name == "soft tissue":
            continue
        add_action(window, wl, f"{name.capitalize()} (W {w.width:g} / L {w.center:g})",
                     lambda n=name: window.apply_preset(n))
    add_action(window, wl, "&Auto (robust percentiles)", lambda: window.apply_preset("auto"), "Ctrl+A")
    add_action(window, view, "&Fit slices to their views (undo zoom and pan)",
                 lambda: [v.reset_zoom() for v in window.slice_views.values()], "Ctrl+0")
    if getattr(window.volume_view, "available", False):
        modes = view.addMenu("3-D &mode")
        for mode, label in (("mip", "Maximum intensity projection"), ("translucent", "Translucent"),
                            ("iso", "Isosurface")):
            add_action(window, modes, label, lambda m=mode: window.volume_view.set_mode(m))
        add_action(window, view, "Reset 3-D &camera", window.volume_view.reset_camera)
    view.addSeparator()
    for dock in window.findChildren(QtWidgets.QDockWidget):
        view.addAction(dock.toggleViewAction())
    review = mb.addMenu("&Review")
    sc = window.shortcuts
    add_action(window, review, f"&Undo the last label\t{sc.key_of('undo')}", window.review_controller.undo)
    add_action(window, review, f"&Clear this case's label\t{sc.key_of('clear')}", window.review_controller.clear)
    window.act_blind = add_action(window, review, "&Blind reading (answers shown after labelling)",
                                  lambda checked: window.review_controller.set_blind(checked))
    window.act_blind.setCheckable(True)
    review.addSeparator()
    add_action(window, review, "&Key bindings…", sc.edit)
    help_menu = mb.addMenu("&Help")
    add_action(window, help_menu, f"&Keyboard shortcuts\t{sc.key_of('help')}", sc.show_overview)
    refresh_recent_menu(window)

def add_action(window, menu, text, slot, shortcut=None):
    act = QtGui.QAction(text, window)
    if shortcut is not None:
        act.setShortcut(QtGui.QKeySequence(shortcut))
    act.triggered.connect(slot)
    menu.addAction(act)
    return act

def _open_file_dialog(window) -> None:
    path, _ = QtWidgets.QFileDialog.getOpenFileName(window, "Open volume or study", "", VOLUME_FILTER)
    if path:
        window.open_path(path, wait=False)

def _open_folder_dialog(window) -> None:
    path = QtWidgets.QFileDialog.getExistingDirectory(window, "Open DICOM series or study folder")
    if path:
        window.open_path(path, wait=False)


def add_recent(path: str) -> None:
    s = app_settings()
    recent = [p for p in (s.value("recent", []) or []) if p != path]
    s.setValue("recent", [path, *recent][:MAX_RECENT])

def recent_files() -> list[str]:
    value = app_settings().value("recent", []) or []
    return [value] if isinstance(value, str) else list(value)

def refresh_recent_menu(window) -> None:
    window.recent_menu.clear()
    for p in recent_files():
        add_action(window, window.recent_menu, p, lambda p=p: window.open_path(p, wait=False))
    window.recent_menu.setEnabled(bool(recent_files()))
