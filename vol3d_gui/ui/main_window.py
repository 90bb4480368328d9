"""The main window composes: the viewer model and its views (three linked slice views and the
3-D view in a 2x2 grid), the worklist, the overlay, review and model panels, the controllers
that change the model, menus and the status bar. It keeps no reading state of its own: that
is the ViewerModel's (``window.viewer``)."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from vol3d_gui.core.windowing import Window
from vol3d_gui.ui import exports, session_restore
from vol3d_gui.ui.gl_slice_view import make_slice_view, slice_backend_notice
from vol3d_gui.ui.io_controller import IOController
from vol3d_gui.ui.menus import (
    add_action,
    add_recent,
    build_menus,
    recent_files,
    refresh_recent_menu,
)
from vol3d_gui.ui.overlay_panel import OverlayPanel
from vol3d_gui.ui.review import ReviewController, ReviewPanel
from vol3d_gui.ui.settings import app_settings
from vol3d_gui.ui.shortcuts import Shortcuts
from vol3d_gui.ui.status import NoticeBar, Readout
from vol3d_gui.ui.toast import Toast
from vol3d_gui.ui.worklist import WorklistPanel
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.review import ReviewSession
from vol3d_gui.viewer.worklist import Worklist


def _make_volume_view(model):
    """The 3-D view, or a label saying why there is none (the slices work regardless)."""
    try:
        from vol3d_gui.ui.volume_view import VolumeView

        return VolumeView(model)
    except Exception as exc:  # no GL, missing module: keep the slice views
        label = QtWidgets.QLabel(f"3-D view unavailable:\n{exc}")
        label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        label.setStyleSheet("color: #bbb; background: black;")
        label.available = False
        return label


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("vol3d")
        self.setAcceptDrops(True)
        self.viewer = ViewerModel()
        self.worklist_state = Worklist()
        self._maximised: str | None = None
        self.model_panel = None

        self.slice_views = {name: make_slice_view(self.viewer, name) for name in ("axial", "coronal", "sagittal")}
        self.volume_view = _make_volume_view(self.viewer)
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
        self.notice_bar = NoticeBar(self.viewer, central)
        self.setCentralWidget(central)
        for view in self.slice_views.values():
            view.hovered.connect(self._show_hover)
            view.maximiseRequested.connect(self.toggle_maximise)

        self.io = IOController(self.viewer, self.worklist_state, self._max_texture, self)
        self.io.failed.connect(self._on_open_failed)
        self.io.opened.connect(self._add_recent)
        self.io.started.connect(self._on_open_started)
        self.io.progress.connect(lambda text: self.statusBar().showMessage(f"Opening {self.io.pending}: {text}…"))
        self.io.idle.connect(self._on_open_idle)
        self.worklist = WorklistPanel(self.worklist_state, self.viewer)
        self.worklist.itemRequested.connect(self.io.open_item)
        self.worklist_dock = self.add_dock(self.worklist, "Worklist", QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.overlay_panel = OverlayPanel(self.viewer)
        self.overlay_dock = self.add_dock(self.overlay_panel, "Overlays", QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.review_controller = ReviewController(ReviewSession(self.viewer, self.worklist_state), self.io, self)
        self.review_controller.failed.connect(self.show_error)
        self.review = ReviewPanel(self.review_controller)
        self.toast = Toast(self.centralWidget())
        self.review_controller.labelled.connect(self._confirm_label)
        self.review.finetune_button.clicked.connect(self._finetune)
        self.review_dock = self.add_dock(self.review, "Review", QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.shortcuts = Shortcuts(self, self._key_handlers())
        self._build_menus()
        self.cursor_label = Readout()
        self.device_label = QtWidgets.QLabel("")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop opening; the case on screen stays")
        self.cancel_button.clicked.connect(self.io.cancel)
        # hidden, it keeps its place: a status bar that changes height resizes the GL view,
        # which then renders a frame on the spot
        policy = self.cancel_button.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.cancel_button.setSizePolicy(policy)
        self.cancel_button.setVisible(False)
        self.statusBar().addPermanentWidget(self.cursor_label, 1)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self.statusBar().addPermanentWidget(self.device_label)
        if slice_backend_notice():  # decided once per process: GL slice views or the CPU ones
            self.statusBar().showMessage(slice_backend_notice(), 10000)
        ev = self.viewer.events
        ev.cursor.connect(lambda _c: self._show_cursor_readout())
        ev.radiological.connect(lambda v: self.act_radiological.setChecked(v))
        self.viewer.caseChanged.connect(self._on_case)
        self._restore_settings()
        self.review_controller.start_polling()

    # --- scripting surface: thin delegations to the model and the controllers ------------------
    @property
    def cursor(self):
        return self.viewer.cursor.copy()

    @property
    def current_volume(self):
        return self.viewer.volume

    @property
    def current_item(self):
        return self.viewer.item

    @property
    def study(self):
        return self.viewer.study

    @property
    def window_level(self) -> Window:
        return self.viewer.window

    @property
    def overlays(self):
        return self.viewer.overlays

    @property
    def current_saliency(self):
        return self.viewer.saliency

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

    def open_volume(self, source, *, name: str | None = None, wait: bool = True) -> bool:
        """Open a path (file or DICOM folder) or a Volume; on error a dialog, and the case on
        screen stays. Reading runs off the GUI thread; ``wait`` returns once it is on screen
        (scripts and tests), the GUI's own actions do not wait."""
        before = self.viewer.volume
        self.io.open_volume(source, name=name)
        return self._waited(wait, before)

    def open_path(self, path, wait: bool = True) -> bool:
        """A file, a DICOM folder or a study (.npz, a folder of volumes, a `vol3d score` results table)."""
        before = self.viewer.volume
        self.io.open_path(path)
        return self._waited(wait, before)

    def open_study(self, source, wait: bool = True) -> bool:
        before = self.viewer.volume
        self.io.open_study(source)
        return self._waited(wait, before)

    def open_item(self, row_or_id, wait: bool = True) -> bool:
        """Open a study item by id (or by its row in the study)."""
        study = self.viewer.study
        if study is None:
            return False
        item_id = study[row_or_id].id if isinstance(row_or_id, int) else row_or_id
        before = self.viewer.volume
        self.io.open_item(item_id)
        return self._waited(wait, before)

    def choose_series(self) -> bool:
        """File > Choose series: the folder's DICOM series and volume files (description,
        modality, slices, spacing) in a dialog; the one chosen opens."""
        from vol3d_gui.ui.series_chooser import SeriesChooser

        study = self.viewer.study
        if study is None:
            return False
        entries = [{"id": it.id, "name": it.name, **it.extras} for it in study if it.split is None]
        if not entries:
            return False
        dlg = SeriesChooser(entries, self, current_id=getattr(self.viewer.item, "id", None))
        if dlg.exec() != QtWidgets.QDialog.DialogCode.Accepted or dlg.chosen_id is None:
            return False
        return self.open_item(dlg.chosen_id, wait=False)

    def _waited(self, wait: bool, before) -> bool:
        if not wait:
            return True
        self.io.wait()
        return self.viewer.volume is not before

    def set_cursor(self, ras_mm) -> None:
        self.viewer.cursor = ras_mm

    def set_window(self, window: Window) -> None:
        self.viewer.window = window

    def apply_preset(self, name: str) -> None:
        self.viewer.apply_preset(name)

    def set_radiological(self, radiological: bool) -> None:
        self.viewer.radiological = radiological

    def add_overlay(self, volume, name: str, colormap: str = "hot", opacity: float = 0.5,
                    threshold: float = 0.0, **kw):
        return self.viewer.add_overlay(volume, name, colormap=colormap, opacity=opacity,
                                       threshold=threshold, **kw)

    def remove_overlay(self, name: str) -> None:
        self.viewer.remove_overlay(name)

    def update_overlay(self, name: str, **changes) -> None:
        self.viewer.update_overlay(name, **changes)

    def attach_model(self, model=None):
        """Create the ML worker and the model panel (loads ``model`` or the default bundle)."""
        if self.model_panel is None:
            from vol3d_gui.ui.model_panel import attach_model_panel

            attach_model_panel(self, model)
        elif model:
            self.model_panel.load_model(model)
        return self.model_panel

    def export_saliency(self, path) -> Path:
        return exports.export_saliency(self.viewer, path)

    def toggle_maximise(self, key: str) -> None:
        self._maximised = None if self._maximised == key else key
        for k, widget in self._cells.items():
            widget.setVisible(self._maximised in (None, k))

    def export_view(self, key: str, path) -> Path:
        """Save a PNG of one view ('axial', 'coronal', 'sagittal', '3d') or 'window'."""
        return exports.export_view(self, key, path)

    def view_cell(self, key: str):
        return self._cells[key]

    def save_session(self) -> None:
        session_restore.save_session(self)

    def restore_session(self) -> bool:
        return session_restore.restore_session(self)

    # --- internals -----------------------------------------------------------------------
    def _key_handlers(self) -> dict:
        rc = self.review_controller
        handlers = {f"class_{i}": (lambda i=i: rc.assign(i - 1)) for i in range(1, 10)}
        handlers.update({
            "next": lambda: rc.step(1), "previous": lambda: rc.step(-1),
            "next_unlabelled": lambda: rc.step(1, unlabelled_only=True),
            "undo": rc.undo, "clear": rc.clear, "help": lambda: self.shortcuts.show_overview(),
            "preset_auto": lambda: self.apply_preset("auto"),
        })
        for name in ("brain", "lung", "bone", "abdomen"):
            handlers[f"preset_{name}"] = lambda n=name: self.apply_preset(n)
        return handlers

    def _confirm_label(self, done) -> None:
        from html import escape

        text = f"<b>{escape(done.item_name)}</b>: {escape(done.class_name)}"
        if done.model_answer and done.class_index is not None:
            text += f"<br>model: {escape(done.model_answer)}"
        self.toast.show_text(text)

    def _max_texture(self):
        view = self.volume_view
        return view.max_texture_size() if getattr(view, "available", False) else None

    def _on_open_started(self, what: str) -> None:
        self.cancel_button.setVisible(True)
        self.statusBar().showMessage(f"Opening {what}…")

    def _on_open_idle(self) -> None:
        self.cancel_button.setVisible(False)

    def _on_open_failed(self, title: str, message: str) -> None:
        self.worklist.follow_current()  # the selection goes back to the case on screen
        self.show_error(title, message)

    def _on_case(self, volume, item) -> None:
        if volume is None:
            self.setWindowTitle("vol3d")
            return
        title = item.name if item is not None else (volume.name or "volume")
        self.setWindowTitle(f"vol3d - {title}")
        shape = "x".join(map(str, volume.shape))
        sp = "x".join(f"{s:.3g}" for s in volume.spacing)
        self.statusBar().showMessage(f"{title}: {shape} voxels, {sp} mm, {volume.dtype}", 15000)
        self._show_cursor_readout()

    def _show_cursor_readout(self) -> None:
        self.cursor_label.setText(self.viewer.readout())

    def _show_hover(self, world) -> None:
        self.cursor_label.setText(self.viewer.readout(world))

    def _finetune(self) -> None:
        from vol3d_gui.ui.finetune_dialog import FinetuneDialog

        panel = self.model_panel
        if panel is None or panel.bundle is None:
            self.show_error("Cannot fine-tune", "Load a model first.")
            return
        FinetuneDialog(self, panel, self.review_controller.session.labelled_items()).open()

    def _build_menus(self) -> None:
        build_menus(self)

    def _action(self, menu, text, slot, shortcut=None):
        return add_action(self, menu, text, slot, shortcut)

    def _add_recent(self, path: str) -> None:
        add_recent(path)
        self._refresh_recent_menu()

    def recent_files(self) -> list[str]:
        return recent_files()

    def _refresh_recent_menu(self) -> None:
        refresh_recent_menu(self)

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
        self.save_session()
        self.io.shutdown()
        self.review_controller.stop()
        self.toast.hide()
        s = app_settings()
        s.setValue("geometry", self.saveGeometry())
        s.setValue("state", self.saveState())
        s.sync()
        super().closeEvent(ev)

    def keyPressEvent(self, ev):
        # the review keys also work where the window-level shortcuts are not active
        # (no window manager, or focus in a child that passed the key on)
        if not self.shortcuts.dispatch(ev):
            super().keyPressEvent(ev)

    def dragEnterEvent(self, ev):
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            ev.acceptProposedAction()
            self.open_path(urls[0], wait=False)

