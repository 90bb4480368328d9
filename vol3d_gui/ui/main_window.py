"""The main window: three linked slice views and the 3-D view in a 2x2 grid, the worklist,
overlay controls, menus and the status bar readout. One world-space cursor links all views."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from vol3d_gui.core.errors import Vol3dError
from vol3d_gui.core.volume import Volume
from vol3d_gui.core.windowing import CT_PRESETS, Window, auto_window
from vol3d_gui.ui.colormaps import COLORMAPS
from vol3d_gui.ui.overlays import OverlayLayer
from vol3d_gui.ui.slice_view import SliceView
from vol3d_gui.ui.worklist import WorklistPanel

MAX_RECENT = 10
VOLUME_FILTER = "Volumes (*.nii *.nii.gz *.nrrd *.nhdr *.dcm *.npz);;All files (*)"


def app_settings() -> QtCore.QSettings:
    """Settings in $VOL3D_SETTINGS_DIR when set (tests), else the user's Qt settings."""
    folder = os.environ.get("VOL3D_SETTINGS_DIR")
    if folder:
        return QtCore.QSettings(str(Path(folder) / "vol3d.ini"), QtCore.QSettings.Format.IniFormat)
    return QtCore.QSettings("vol3d", "vol3d")


def _make_volume_view():
    """The 3-D view, or a label saying why there is none (the slices work regardless)."""
    try:
        from vol3d_gui.ui.volume_view import VolumeView

        return VolumeView()
    except Exception as exc:  # no GL, missing module: keep the slice views
        label = QtWidgets.QLabel(f"3-D view unavailable:\n{exc}")
        label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        label.setStyleSheet("color: #bbb; background: black;")
        label.available = False
        return label


class MainWindow(QtWidgets.QMainWindow):
    volumeChanged = QtCore.Signal(object)  # Volume or None
    cursorChanged = QtCore.Signal(object)  # np.ndarray RAS mm
    studyChanged = QtCore.Signal(object)
    overlaysChanged = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("vol3d")
        self.setAcceptDrops(True)
        self.current_volume: Volume | None = None
        self.current_item = None
        self.window_level = Window(40, 400)
        self._cursor = np.zeros(3)
        self.overlays: dict[str, OverlayLayer] = {}
        self.radiological = True
        self._maximised: str | None = None
        self.model_panel = None
        self.current_saliency: Volume | None = None

        self.slice_views = {name: SliceView(name) for name in ("axial", "coronal", "sagittal")}
        self.volume_view = _make_volume_view()
        self._cells = {"axial": self.slice_views["axial"], "3d": self.volume_view,
                       "coronal": self.slice_views["coronal"], "sagittal": self.slice_views["sagittal"]}
        grid = QtWidgets.QGridLayout()
        grid.setSpacing(2)
        grid.setContentsMargins(0, 0, 0, 0)
        for (r, c), key in zip(((0, 0), (0, 1), (1, 0), (1, 1)), self._cells):
            grid.addWidget(self._cells[key], r, c)
        central = QtWidgets.QWidget()
        central.setLayout(grid)
        central.setStyleSheet("background: #202020;")
        self.setCentralWidget(central)
        for view in self.slice_views.values():
            view.cursorRequested.connect(self.set_cursor)
            view.windowRequested.connect(self.set_window)
            view.hovered.connect(self._show_hover)
            view.maximiseRequested.connect(self.toggle_maximise)

        self.worklist = WorklistPanel()
        self.worklist.itemActivated.connect(self.open_item)
        self.worklist_dock = self.add_dock(self.worklist, "Worklist", QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self._build_overlay_panel()
        from vol3d_gui.ui.review import ReviewPanel

        self.review = ReviewPanel(self)
        self.review_dock = self.add_dock(self.review, "Review", QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self._build_menus()
        self.cursor_label = QtWidgets.QLabel("")
        self.device_label = QtWidgets.QLabel("")
        self.statusBar().addPermanentWidget(self.cursor_label, 1)
        self.statusBar().addPermanentWidget(self.device_label)
        self._restore_settings()

    # --- scripting surface ---------------------------------------------------------------
    @property
    def cursor(self) -> np.ndarray:
        return self._cursor.copy()

    @property
    def study(self):
        return self.worklist.study

    def add_dock(self, widget, title: str, area=QtCore.Qt.DockWidgetArea.RightDockWidgetArea):
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        if hasattr(self, "view_menu"):  # docks added after the menus were built
            self.view_menu.addAction(dock.toggleViewAction())
        return dock

    def show_error(self, title: str, exc) -> None:
        self.statusBar().showMessage(f"{title}: {exc}", 10000)
        QtWidgets.QMessageBox.critical(self, title, str(exc))

    def open_volume(self, source, *, name: str | None = None) -> bool:
        """Open a path (file or DICOM folder) or a Volume. On error, show a dialog and keep the
        current volume. Returns True on success."""
        if isinstance(source, Volume):
            volume = source
        else:
            from vol3d_gui.core.io import load_volume

            try:
                with _busy():
                    volume = load_volume(source)
            except Vol3dError as exc:
                self.show_error("Cannot open volume", exc)
                return False
            self._add_recent(str(source))
        if name:
            volume.name = name
        self._set_volume(volume)
        return True

    def open_path(self, path) -> bool:
        """A file, a DICOM folder or a study (.npz or a folder of volumes)."""
        from vol3d_gui.core.io import list_series

        path = Path(path)
        if path.suffix.lower() == ".npz" or (path.is_dir() and not list_series(path)):
            return self.open_study(path)
        return self.open_volume(path)

    def open_study(self, source) -> bool:
        from vol3d_gui.core.study import Study, open_study

        if isinstance(source, Study):
            study = source
        else:
            try:
                with _busy():
                    study = open_study(source)
            except Vol3dError as exc:
                self.show_error("Cannot open study", exc)
                return False
            self._add_recent(str(source))
        self.worklist.set_study(study)
        self.studyChanged.emit(study)
        if len(study):
            self.worklist.select_row(0)
        return True

    def open_item(self, row: int) -> bool:
        study = self.study
        if study is None or not (0 <= row < len(study)):
            return False
        item = study[row]
        try:
            with _busy():
                volume = item.load()
                mask = item.load_mask()
        except Vol3dError as exc:
            self.show_error("Cannot open item", exc)
            return False
        self._set_volume(volume, item=item)
        if mask is not None:
            self.add_overlay(mask, "lesion mask", colormap="green", opacity=0.35, threshold=0.5)
            found = np.argwhere(mask.data > 0.5)
            if len(found):  # an annotated finding: put the crosshair on it, as a reader would
                self.set_cursor(mask.voxel_to_world(found.mean(axis=0)))
        return True

    def set_cursor(self, ras_mm) -> None:
        self._cursor = np.asarray(ras_mm, dtype=np.float64).copy()
        for view in self.slice_views.values():
            view.set_cursor(self._cursor)
        if getattr(self.volume_view, "available", False):
            self.volume_view.set_cursor(self._cursor)
        self._show_cursor_readout()
        self.cursorChanged.emit(self.cursor)

    def set_window(self, window: Window) -> None:
        self.window_level = window
        for view in self.slice_views.values():
            view.set_window(window)
        if getattr(self.volume_view, "available", False):
            self.volume_view.set_window(window)

    def apply_preset(self, name: str) -> None:
        if name == "auto":
            if self.current_volume is not None:
                self.set_window(auto_window(self.current_volume.data))
        else:
            self.set_window(CT_PRESETS[name])

    def set_radiological(self, radiological: bool) -> None:
        self.radiological = radiological
        for view in self.slice_views.values():
            view.set_radiological(radiological)
        self.act_radiological.setChecked(radiological)

    def add_overlay(self, volume: Volume, name: str, colormap: str = "hot", opacity: float = 0.5,
                    threshold: float = 0.0, **kw) -> OverlayLayer:
        layer = OverlayLayer(volume, name, colormap=colormap, opacity=opacity, threshold=threshold, **kw)
        self.overlays[name] = layer
        self._overlays_changed()
        return layer

    def remove_overlay(self, name: str) -> None:
        if self.overlays.pop(name, None) is not None:
            self._overlays_changed()

    def update_overlay(self, name: str, **changes) -> None:
        layer = self.overlays[name]
        for k, v in changes.items():
            setattr(layer, k, v)
        self._overlays_changed()

    def attach_model(self, model=None):
        """Create the ML worker and the model panel (loads ``model`` or the default bundle)."""
        if self.model_panel is None:
            from vol3d_gui.ui.model_panel import attach_model_panel

            attach_model_panel(self, model)
        elif model:
            self.model_panel.load_model(model)
        return self.model_panel

    def export_saliency(self, path) -> Path:
        """Write the saliency map on screen as NIfTI, in the source volume's world space."""
        from vol3d_gui.core.io import save_nifti

        if self.current_saliency is None:
            raise Vol3dError("no saliency map to export: classify a volume with a model first")
        return save_nifti(self.current_saliency, path)

    def _export_saliency_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export saliency", "saliency.nii.gz",
                                                        "NIfTI (*.nii.gz *.nii)")
        if path:
            try:
                self.export_saliency(path)
                self.statusBar().showMessage(f"Saliency written to {path}", 8000)
            except (Vol3dError, OSError) as exc:
                self.show_error("Cannot export saliency", exc)

    def toggle_maximise(self, key: str) -> None:
        self._maximised = None if self._maximised == key else key
        for k, widget in self._cells.items():
            widget.setVisible(self._maximised in (None, k))

    def export_view(self, key: str, path) -> Path:
        """Save a PNG of one view ('axial', 'coronal', 'sagittal', '3d') or 'window'."""
        path = Path(path)
        if key == "window":
            image = self.grab().toImage()
        elif key == "3d" and getattr(self.volume_view, "available", False):
            image = self.volume_view.grab_frame()
        else:
            image = self._cells[key].grab().toImage()
        tmp = path.with_name(f".{path.name}.tmp.png")
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"cannot write {path}")
        os.replace(tmp, path)
        return path

    # --- internals -----------------------------------------------------------------------
    def _set_volume(self, volume: Volume, item=None) -> None:
        self.current_volume = volume
        self.current_item = item
        self.overlays.clear()  # overlays belong to the previous image
        self.current_saliency = None
        looks_ct = np.issubdtype(volume.dtype, np.signedinteger) and volume.data.min() < -500
        if volume.meta.get("modality") == "CT" or looks_ct:
            window = CT_PRESETS["abdomen"]
        elif "WindowCenter" in volume.meta and "WindowWidth" in volume.meta:
            window = Window(volume.meta["WindowCenter"], volume.meta["WindowWidth"])
        else:
            window = auto_window(volume.data)
        self.window_level = window
        for view in self.slice_views.values():
            view.set_volume(volume, window)
            view.set_overlays(list(self.overlays.values()))
        if getattr(self.volume_view, "available", False):
            self.volume_view.set_volume(volume)
            self.volume_view.set_window(window)
        title = item.name if item is not None else (volume.name or "volume")
        self.setWindowTitle(f"vol3d - {title}")
        shape = "x".join(map(str, volume.shape))
        sp = "x".join(f"{s:.3g}" for s in volume.spacing)
        warn = "; ".join(volume.meta.get("warnings", []))
        self.statusBar().showMessage(f"{title}: {shape} voxels, {sp} mm, {volume.dtype}"
                                     + (f"  (warning: {warn})" if warn else ""), 15000)
        self._refresh_overlay_panel()
        self.set_cursor(volume.center_world)
        self.volumeChanged.emit(volume)

    def _overlays_changed(self) -> None:
        layers = list(self.overlays.values())
        for view in self.slice_views.values():
            view.set_overlays(layers)
        if getattr(self.volume_view, "available", False):
            shown = [lay for lay in layers if lay.visible]
            top = shown[-1] if shown else None
            if top is None:
                self.volume_view.set_overlay(None)
            else:
                # the 3-D view draws an overlay in one colour: the map's colour for a strong
                # value (its top is near white for hot and inferno, and read as bone in 3-D)
                rgb = COLORMAPS[top.colormap][int(0.6 * 255)] / 255.0
                self.volume_view.set_overlay(top.volume, color=tuple(rgb), opacity=top.opacity,
                                             threshold=top.threshold)
        self._refresh_overlay_panel()
        self.overlaysChanged.emit()

    def _readout(self, world) -> str:
        vol = self.current_volume
        if vol is None or world is None:
            return ""
        ijk = vol.nearest_voxel(world)
        x, y, z = world
        pos = f"RAS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        if ijk is None:
            return f"{pos}  outside the volume"
        value = vol.data[ijk]
        vtxt = f"{value:.4g}" if np.issubdtype(type(value), np.floating) else f"{value}"
        return f"voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})  {pos}  value {vtxt}"

    def _show_cursor_readout(self) -> None:
        self.cursor_label.setText(self._readout(self._cursor))

    def _show_hover(self, world) -> None:
        self.cursor_label.setText(self._readout(world) if world is not None else self._readout(self._cursor))

    def _build_overlay_panel(self) -> None:
        panel = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(panel)
        self.overlay_combo = QtWidgets.QComboBox()
        self.overlay_visible = QtWidgets.QCheckBox("shown")
        self.overlay_cmap = QtWidgets.QComboBox()
        self.overlay_cmap.addItems([n for n in COLORMAPS if n != "grey"])
        self.overlay_opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.overlay_opacity.setRange(0, 100)
        self.overlay_threshold = QtWidgets.QDoubleSpinBox()
        self.overlay_threshold.setDecimals(3)
        self.overlay_threshold.setRange(-1e6, 1e6)
        self.overlay_threshold.setSingleStep(0.05)
        form.addRow("Overlay", self.overlay_combo)
        form.addRow("", self.overlay_visible)
        form.addRow("Colour map", self.overlay_cmap)
        form.addRow("Opacity", self.overlay_opacity)
        form.addRow("Threshold", self.overlay_threshold)
        from vol3d_gui.ui.colour_bar import ColourBar

        self.colour_bar = ColourBar()
        form.addRow("", self.colour_bar)
        self.overlay_combo.currentTextChanged.connect(lambda _: self._refresh_overlay_panel(select=False))
        self.overlay_visible.toggled.connect(lambda v: self._edit_overlay(visible=v))
        self.overlay_cmap.currentTextChanged.connect(lambda v: self._edit_overlay(colormap=v))
        self.overlay_opacity.valueChanged.connect(lambda v: self._edit_overlay(opacity=v / 100))
        self.overlay_threshold.valueChanged.connect(lambda v: self._edit_overlay(threshold=v))
        self.overlay_panel = panel
        self.overlay_dock = self.add_dock(panel, "Overlays", QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self._refresh_overlay_panel()

    def _refresh_overlay_panel(self, select: bool = True) -> None:
        combo = self.overlay_combo
        names = list(self.overlays)
        if select and [combo.itemText(i) for i in range(combo.count())] != names:
            combo.blockSignals(True)
            current = combo.currentText()
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            elif names:
                combo.setCurrentIndex(len(names) - 1)
            combo.blockSignals(False)
        layer = self.overlays.get(combo.currentText())
        widgets = (self.overlay_visible, self.overlay_cmap, self.overlay_opacity, self.overlay_threshold)
        for w in widgets:
            w.setEnabled(layer is not None)
            w.blockSignals(True)
        if layer is not None:
            self.overlay_visible.setChecked(layer.visible)
            self.overlay_cmap.setCurrentText(layer.colormap)
            self.overlay_opacity.setValue(int(round(layer.opacity * 100)))
            self.overlay_threshold.setValue(layer.threshold)
        for w in widgets:
            w.blockSignals(False)
        self.colour_bar.set_layer(layer)

    def _edit_overlay(self, **changes) -> None:
        name = self.overlay_combo.currentText()
        if name in self.overlays:
            self.update_overlay(name, **changes)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        self._action(file_menu, "&Open file...", self._open_file_dialog, QtGui.QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &folder (DICOM series or study)...", self._open_folder_dialog, "Ctrl+Shift+O")
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        export = file_menu.addMenu("&Export screenshot")
        for key, label in (("axial", "Axial view"), ("coronal", "Coronal view"), ("sagittal", "Sagittal view"),
                           ("3d", "3-D view"), ("window", "Whole window")):
            self._action(export, label + "...", lambda k=key: self._export_dialog(k))
        self._action(file_menu, "Export &saliency (NIfTI)...", self._export_saliency_dialog)
        self.file_menu = file_menu
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QtGui.QKeySequence.StandardKey.Quit)

        view = mb.addMenu("&View")
        self.view_menu = view
        self.act_radiological = self._action(view, "&Radiological display (patient right on screen left)",
                                             lambda checked: self.set_radiological(checked))
        self.act_radiological.setCheckable(True)
        self.act_radiological.setChecked(True)
        wl = view.addMenu("&Window / level")
        for name, w in CT_PRESETS.items():
            if name == "soft tissue":
                continue
            self._action(wl, f"{name.capitalize()} (W {w.width:g} / L {w.center:g})",
                         lambda n=name: self.apply_preset(n))
        self._action(wl, "&Auto (robust percentiles)", lambda: self.apply_preset("auto"), "Ctrl+A")
        self._action(view, "&Fit slices to their views (undo zoom and pan)",
                     lambda: [v.reset_zoom() for v in self.slice_views.values()], "Ctrl+0")
        if getattr(self.volume_view, "available", False):
            modes = view.addMenu("3-D &mode")
            for mode, label in (("mip", "Maximum intensity projection"), ("translucent", "Translucent"),
                                ("iso", "Isosurface")):
                self._action(modes, label, lambda m=mode: self.volume_view.set_mode(m))
            self._action(view, "Reset 3-D &camera", self.volume_view.reset_camera)
        view.addSeparator()
        for dock in self.findChildren(QtWidgets.QDockWidget):
            view.addAction(dock.toggleViewAction())
        self._refresh_recent_menu()

    def _action(self, menu, text, slot, shortcut=None):
        act = QtGui.QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QtGui.QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _open_file_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open volume or study", "", VOLUME_FILTER)
        if path:
            self.open_path(path)

    def _open_folder_dialog(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open DICOM series or study folder")
        if path:
            self.open_path(path)

    def _export_dialog(self, key: str) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export screenshot", f"vol3d-{key}.png", "PNG (*.png)")
        if path:
            try:
                self.export_view(key, path)
            except OSError as exc:
                self.show_error("Cannot export screenshot", exc)

    def _add_recent(self, path: str) -> None:
        s = app_settings()
        recent = [p for p in (s.value("recent", []) or []) if p != path]
        s.setValue("recent", [path, *recent][:MAX_RECENT])
        self._refresh_recent_menu()

    def recent_files(self) -> list[str]:
        value = app_settings().value("recent", []) or []
        return [value] if isinstance(value, str) else list(value)

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        for p in self.recent_files():
            self._action(self.recent_menu, p, lambda p=p: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def _restore_settings(self) -> None:
        s = app_settings()
        geometry = s.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        state = s.value("state")
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, ev):
        if self.model_panel is not None:
            self.model_panel.worker.stop()
        s = app_settings()
        s.setValue("geometry", self.saveGeometry())
        s.setValue("state", self.saveState())
        s.sync()
        super().closeEvent(ev)

    def keyPressEvent(self, ev):
        # the review keys also work where the window-level shortcuts are not active
        # (no window manager, or focus in a child that passed the key on)
        key = ev.key()
        if QtCore.Qt.Key.Key_1 <= key <= QtCore.Qt.Key.Key_9 and not ev.modifiers():
            self.review.assign(key - QtCore.Qt.Key.Key_1)
        elif key == QtCore.Qt.Key.Key_N:
            self.worklist.step(1)
        elif key == QtCore.Qt.Key.Key_B:
            self.worklist.step(-1)
        else:
            super().keyPressEvent(ev)

    def dragEnterEvent(self, ev):
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            ev.acceptProposedAction()
            self.open_path(urls[0])


class _busy:
    """Wait cursor for the duration of a blocking load."""

    def __enter__(self):
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)

    def __exit__(self, *exc):
        QtWidgets.QApplication.restoreOverrideCursor()
