"""Opening files, folders, studies and study items off the GUI thread.

Each request reads and prepares its case (viewer.prepare) in a worker thread, with progress
and Cancel; the GUI thread only hands the result to the viewer model. A newer request
supersedes an older one (its result is dropped, its thread stops at its next step). A failure
changes nothing: the previous case stays on screen and the worklist's selection goes back to
it, and the error is reported once, as a typed message for a dialog.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from vol3d_gui.core.cooperate import ReadCancelled, cancellable
from vol3d_gui.core.errors import Vol3dError
from vol3d_gui.core.study import Study, open_study
from vol3d_gui.core.volume import Volume
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.prepare import Cancelled, PreparedCase, prepare_case
from vol3d_gui.viewer.requests import RequestTracker
from vol3d_gui.viewer.worklist import Worklist


class IOController(QtCore.QObject):
    started = QtCore.Signal(str)  # what is being opened
    progress = QtCore.Signal(str)  # the step it is at
    opened = QtCore.Signal(str)  # a file or folder opened (for the recent list), "" for items
    failed = QtCore.Signal(str, str)  # dialog title, message
    idle = QtCore.Signal()  # nothing is loading any more (opened, failed or cancelled)
    prefetched = QtCore.Signal(object)  # the next case, read ahead (a PreparedCase)
    _done = QtCore.Signal(int, object, object)  # token, kind, result or exception (worker -> GUI)
    _step = QtCore.Signal(int, str)
    _prefetched = QtCore.Signal(str, object)  # item id, PreparedCase or exception

    def __init__(self, model: ViewerModel, worklist: Worklist, max_texture=lambda: None, parent=None):
        super().__init__(parent)
        self.model = model
        self.worklist = worklist
        self.max_texture = max_texture  # the 3-D view's texture limit, None without a 3-D view
        self.requests = RequestTracker()
        self._cancel: threading.Event | None = None
        self._threads: list[threading.Thread] = []
        self.pending: str | None = None  # description of the request in flight
        self.pending_item: str | None = None  # the item id being opened
        self.last_opened: str | None = None  # the last file or folder opened (the saved session)
        self._start_item: str | None = None  # the case a study opens on (session restore)
        # the next case in the worklist's order, read and prepared while the reader looks at this
        # one; only the neighbours of the case on screen are kept (memory stays bounded)
        self.prefetch_enabled = True
        self._ready: dict[str, PreparedCase] = {}
        self._prefetching: dict[str, threading.Event] = {}
        self._awaiting: tuple[int, str] | None = None  # (token, item id) shown when its prefetch lands
        self._done.connect(self._finish)
        self.opened.connect(lambda path: setattr(self, "last_opened", path))
        self._prefetched.connect(self._on_prefetched)
        self._step.connect(lambda token, text: self.requests.is_current("open", token)
                           and self.progress.emit(text))

    # --- requests ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.pending is not None

    def open_path(self, path) -> None:
        """A volume file, a DICOM folder or a study (.npz, a folder of volumes, or the results
        table of `vol3d score`)."""
        path = Path(path)
        if path.suffix.lower() in (".npz", ".csv", ".parquet") or path.is_dir():
            self.open_study(path)
        else:
            self.open_volume(path)

    def open_volume(self, source, *, name: str | None = None) -> None:
        if isinstance(source, Volume):
            if name:
                source.name = name
            self._start(f"{source.name or 'volume'}", "volume", lambda ev, step: self._prepare(
                lambda: source, None, ev, step))
            return
        path = Path(source)

        def load():
            # the readers (nibabel, pydicom: ~1 s to import) load in the worker, not on the GUI thread
            from vol3d_gui.core.io import load_volume

            vol = load_volume(path)
            if name:
                vol.name = name
            return vol

        self._start(str(path), "file", lambda ev, step: self._prepare(load, None, ev, step))

    def open_study(self, source, item_id: str | None = None) -> None:
        """A Study, or a path to list as one off the GUI thread; then ``item_id`` (or the first
        case shown) opens."""
        self._start_item = item_id
        if isinstance(source, Study):
            self._set_study(source)
            return
        path = Path(source)

        def work(ev, step):
            step("listing the study")
            study = open_study(path)
            if ev.is_set():
                raise Cancelled("listing")
            return study

        self._start(str(path), "study", work)

    def open_item(self, item_id: str) -> None:
        study = self.model.study
        if study is None:
            return
        try:
            item = study.by_id(item_id)
        except KeyError:
            return
        ready = self._ready.pop(item.id, None)
        if ready is not None:  # read while the reader looked at the previous case: show it now
            if self._cancel is not None:
                self._cancel.set()
            self.requests.issue("open")
            self._settle()
            self._show(ready)
            return
        if item.id in self._prefetching:  # on its way: show it when it lands, read nothing twice
            if self._cancel is not None:
                self._cancel.set()
            token = self.requests.issue("open")
            self.pending, self.pending_item = item.name, item.id
            self._awaiting = (token, item.id)
            self.started.emit(item.name)
            return
        self.pending_item = item.id
        self._start(item.name, "item", lambda ev, step: self._prepare(item.load, item, ev, step))

    def cancel(self) -> None:
        """Stop the load in flight; the case on screen stays."""
        if self._cancel is not None:
            self._cancel.set()
        self.requests.issue("open")  # whatever is in flight is stale now
        self._settle()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Process events until nothing is loading (scripts and tests)."""
        deadline = QtCore.QDeadlineTimer(timeout_ms)
        while self.busy and not deadline.hasExpired():
            QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        return not self.busy

    def shutdown(self) -> None:
        self.cancel()
        for ev in self._prefetching.values():
            ev.set()
        self._ready.clear()
        for t in self._threads:
            t.join(10)
        self._threads.clear()

    # --- worker side --------------------------------------------------------------------------------
    def _prepare(self, load, item, ev, step) -> PreparedCase:
        mask = item.load_mask if item is not None and item.extras.get("mask_loader") else None
        return prepare_case(load, item=item, load_mask=mask, max_texture=self._texture_limit,
                            cancel=ev, progress=step)

    def _start(self, what: str, kind: str, work) -> None:
        if self._cancel is not None:
            self._cancel.set()
        ev = self._cancel = threading.Event()
        token = self.requests.issue("open")
        self.pending = what
        if kind != "item":
            self.pending_item = None
        self._texture_limit = self.max_texture()
        self.started.emit(what)

        def run():
            try:
                with cancellable(ev):  # the readers stop at their next file or chunk
                    result = work(ev, lambda text: self._step.emit(token, text))
            except ReadCancelled:
                result = Cancelled("reading")
            except BaseException as exc:  # delivered to the GUI thread, which decides what it means
                result = exc
            self._done.emit(token, kind, result)

        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=run, name=f"vol3d-open-{kind}", daemon=True)
        self._threads.append(thread)
        thread.start()

    # --- GUI side -------------------------------------------------------------------------------------
    @QtCore.Slot(int, object, object)
    def _finish(self, token: int, kind, result) -> None:
        if not self.requests.is_current("open", token):
            return  # superseded or cancelled: nothing changes
        what = self.pending
        self._settle()
        if isinstance(result, Cancelled):
            return
        if isinstance(result, BaseException):
            title = {"study": "Cannot open study", "item": "Cannot open item"}.get(kind, "Cannot open volume")
            if isinstance(result, (Vol3dError, OSError)):
                message = str(result)
            elif isinstance(result, MemoryError):
                message = f"{what}: not enough memory to open it"
            else:
                message = f"{what}: {type(result).__name__}: {result}"
            self.failed.emit(title, message)
            return
        if kind == "study":
            self._set_study(result)
            self.opened.emit(what)
            return
        if kind == "file":
            self.opened.emit(what)
        self._show(result)

    def _show(self, case: PreparedCase) -> None:
        item_id = case.item.id if case.item is not None else None
        # the mask is the truth: hidden in blind reading until the case is labelled
        self.model.set_case(case.volume, case.item, window=case.window, mask=case.mask, grid=case.grid,
                            mask_visible=self.worklist.answer_visible(item_id))
        if item_id is not None:
            self.prefetch_neighbours()

    # --- prefetching the next case --------------------------------------------------------------
    def prefetch_neighbours(self) -> None:
        """Read the case after the one on screen (in the order shown) in the background; drop
        what is no longer a neighbour."""
        item = self.model.item
        if item is None or self.model.study is None:
            return
        wanted = {i for i in (self.worklist.step_from(item.id, 1), self.worklist.step_from(item.id, -1))
                  if i is not None}
        for item_id in list(self._ready):
            if item_id not in wanted:
                del self._ready[item_id]
        for item_id, ev in list(self._prefetching.items()):
            if item_id not in wanted and (self._awaiting is None or self._awaiting[1] != item_id):
                ev.set()
                del self._prefetching[item_id]
        nxt = self.worklist.step_from(item.id, 1)
        if not self.prefetch_enabled or nxt is None or nxt in self._ready or nxt in self._prefetching:
            return
        target = self.model.study.by_id(nxt)
        ev = self._prefetching[nxt] = threading.Event()
        limit = self.max_texture()

        def run():
            try:
                mask = target.load_mask if target.extras.get("mask_loader") else None
                result = prepare_case(target.load, item=target, load_mask=mask, max_texture=limit, cancel=ev)
            except BaseException as exc:  # a failure is reported if and when the reader opens it
                result = exc
            self._prefetched.emit(target.id, result)

        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=run, name="vol3d-prefetch", daemon=True)
        self._threads.append(thread)
        thread.start()

    @QtCore.Slot(str, object)
    def _on_prefetched(self, item_id: str, result) -> None:
        ev = self._prefetching.pop(item_id, None)
        if ev is None or ev.is_set():
            return  # no longer wanted
        awaiting = self._awaiting
        if awaiting is not None and awaiting[1] == item_id:
            # the reader asked for it while it was being read: it answers that request
            self._awaiting = None
            self._finish(awaiting[0], "item", result)
        elif isinstance(result, PreparedCase):
            self._ready[item_id] = result
            self.prefetched.emit(result)

    def _settle(self) -> None:
        self._awaiting = None
        was_busy = self.pending is not None
        self.pending = None
        self.pending_item = None
        self._cancel = None
        if was_busy:
            self.idle.emit()

    def _set_study(self, study) -> None:
        self.worklist.set_study(study)  # first: observers of the study (labels) fill it
        self.model.study = study
        ids = self.worklist.shown_ids()
        start, self._start_item = self._start_item, None
        if start is not None and any(it.id == start for it in study):
            self.open_item(start)
        elif ids:
            self.open_item(ids[0])
