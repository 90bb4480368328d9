"""The ML service: a child process that owns TensorFlow and the loaded model bundle.

Why a process and not only a thread: TensorFlow's libtensorflow_framework exports LLVM
symbols that Mesa's llvmpipe then binds to, and the first GL draw after TensorFlow is
loaded segfaults (gdb: swrast_dri.so -> llvm::FixedVectorType::get in
libtensorflow_framework.so.2). Keeping TensorFlow out of the GUI process removes that
clash, and a TensorFlow crash can no longer take the viewer (and unsaved work) with it.
The GUI's single ML worker thread talks to this process, one request at a time.

Protocol over a multiprocessing Connection: the parent sends ``(kind, kwargs)``; the child
answers with any number of ``("progress", Progress)`` (vol3d_gui.ml.tasks: data, not text)
then one ``("result", payload)`` or ``("error", error_type, message)``. A shared Event asks
the running request to stop (polled per batch; a stopped request answers
``("error", "TrainingStopped", ...)``).

Requests carry the preprocessed model-grid tensor (float32 (1, d, h, w, 1)), never a Volume:
the GUI process preprocesses on its worker thread (numpy/scipy, no TensorFlow), so a 150 MB
CT is not pickled across the pipe twice per opened case.
"""

from __future__ import annotations

import os
import traceback

from vol3d_gui.core.errors import Vol3dError


class Service:
    def __init__(self, conn, stop_event, mixed_precision: bool = False):
        self.conn = conn
        self.stop_event = stop_event
        self.mixed_precision = mixed_precision
        self.bundle = None
        self.device = None

    # --- helpers passed to handlers ------------------------------------------------------------
    def progress(self, progress) -> None:
        """Relay one ``Progress`` to the GUI's worker."""
        self.conn.send(("progress", progress))

    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def need_bundle(self):
        if self.bundle is None:
            raise Vol3dError("no model is loaded")
        return self.bundle

    # --- handlers --------------------------------------------------------------------------------
    def do_device(self):
        if self.device is None:
            from vol3d_gui.ml.device import configure_device

            self.device = configure_device(self.mixed_precision)
        return self.device.description

    def do_load_model(self, path):
        from vol3d_gui.ml.bundle import load_bundle

        bundle = load_bundle(path)
        bundle.forward(bundle_dummy(bundle))  # compile now, not on the first volume
        self.bundle = bundle
        return {"card": bundle.card, "path": str(bundle.path)}

    def do_predict(self, x):
        """Probabilities (n_classes,) for one preprocessed tensor (1, d, h, w, 1)."""
        return self.need_bundle().forward(_tensor(x, self.need_bundle()))[0]

    def do_assess(self, x):
        """What the model panel shows for one preprocessed tensor (1, d, h, w, 1), from one pass:
        probabilities, uncertainty and each class's spread over the MC-dropout samples, and the
        feature half of the domain check (the GUI adds the metadata half: ml.tasks.assess_answer)."""
        bundle = self.need_bundle()
        return bundle.assess_tensor(_tensor(x, bundle))

    def do_analyse(self, x):
        """(probabilities, uncertainty, feature_score) for a preprocessed model-grid tensor."""
        return tuple(self.need_bundle().analyse_tensor(x))

    def do_gradcam(self, x, grid_affine, class_index=None, plus=False):
        """The map on its small grid, its affine in the scan's world space and its meta."""
        from vol3d_gui.ml.gradcam import gradcam_grid

        bundle = self.need_bundle()
        return gradcam_grid(bundle, _tensor(x, bundle), grid_affine, class_index, plus=plus)

    def do_call(self, module, function, kwargs):
        """Run ``module.function(service, **kwargs)`` (Qt-free ML code such as fine-tuning)."""
        import importlib

        if not module.startswith("vol3d_gui.ml."):
            raise Vol3dError(f"refusing to run {module}: only vol3d_gui.ml jobs run in the ML service")
        return getattr(importlib.import_module(module), function)(self, **kwargs)

    def serve(self):
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                return
            if msg is None:
                return
            kind, kwargs = msg
            try:
                payload = getattr(self, f"do_{kind}")(**kwargs)
                self.conn.send(("result", payload))
            except Vol3dError as exc:
                self.conn.send(("error", "Vol3dError", str(exc)))
            except _stopped() as exc:
                self.conn.send(("error", "TrainingStopped", str(exc) or "stopped"))
            except Exception as exc:
                self.conn.send(("error", type(exc).__name__,
                                f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"))


def _stopped():
    from vol3d_gui.ml.training import TrainingStopped

    return TrainingStopped


def _tensor(x, bundle):
    """Check a request's tensor against the loaded model's grid (a stale request made for
    another bundle must fail clearly, not inside TensorFlow)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    want = (1, *bundle.input_shape, 1)
    if x.ndim != 5 or x.shape[1:] != want[1:]:
        raise Vol3dError(f"the request's tensor {x.shape} does not fit {bundle.label} (expects {want})")
    return x


def bundle_dummy(bundle):
    import numpy as np

    return np.zeros((1, *bundle.input_shape, 1), np.float32)


def serve(conn, stop_event, mixed_precision: bool = False) -> None:
    """Entry point of the child process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    Service(conn, stop_event, mixed_precision).serve()
