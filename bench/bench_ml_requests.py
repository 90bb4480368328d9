"""What one on-screen predict costs on the GUI path before and after the service took tensors.

Before: the Volume was pickled to the TensorFlow process, which preprocessed it. After: the
worker thread preprocesses (same numpy/scipy code) and sends the model-grid tensor. The
forward pass is the same in both, so the difference is the transport: measured here as a
round trip to a spawned echo process over the same multiprocessing Pipe the worker uses
(send request, the child unpickles it and answers a small array), plus the preprocessing
that runs in either process. Sizes are the pickled request bytes.

    python -m bench ml_requests            # 512x512x300 and 256x256x150 int16, phantom-lesion's card
"""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import numpy as np

from bench.common import interleaved, report
from vol3d_gui.core.volume import Volume
from vol3d_gui.ml.bundle import ModelBundle, read_card
from vol3d_gui.ml.tasks import gradcam_request, predict_request

MODEL = Path(__file__).resolve().parents[1] / "models" / "phantom-lesion.keras"


def _echo(conn) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(("result", np.zeros(2)))


def _volume(shape) -> Volume:
    rng = np.random.default_rng(0)
    return Volume(rng.integers(-1000, 1500, shape, dtype=np.int16), np.diag([0.7, 0.7, 1.0, 1.0]))


def main(repeat: int = 5) -> dict:
    bundle = ModelBundle(None, read_card(MODEL), MODEL)  # the GUI side: card only
    mp = multiprocessing.get_context("spawn")
    conn, child = mp.Pipe()
    proc = mp.Process(target=_echo, args=(child,), daemon=True)
    proc.start()
    child.close()

    def round_trip(request):
        conn.send(request)
        return conn.recv()

    out = {"model": bundle.label, "input_shape": list(bundle.input_shape)}
    try:
        for shape in ((256, 256, 150), (512, 512, 300)):
            vol = _volume(shape)
            name = "x".join(map(str, shape))
            t = interleaved({
                # before: pickle + send the Volume; the service preprocessed it
                "before_send_volume": lambda vol=vol: round_trip(("predict", {"volume": vol})),
                "preprocess": lambda vol=vol: bundle.preprocess(vol),
                # after: the worker preprocesses, then sends the tensor
                "after_preprocess_and_send_tensor": lambda vol=vol: round_trip(("predict", predict_request(bundle, vol))),
            }, repeat=repeat, warmup=1)
            before = t["before_send_volume"]["median_s"] + t["preprocess"]["median_s"]
            after = t["after_preprocess_and_send_tensor"]["median_s"]
            out[name] = {
                "request_bytes_volume": len(pickle.dumps(("predict", {"volume": vol}), protocol=5)),
                "request_bytes_predict_tensor": len(pickle.dumps(("predict", predict_request(bundle, vol)),
                                                                 protocol=5)),
                "request_bytes_gradcam_tensor": len(pickle.dumps(("gradcam", gradcam_request(bundle, vol, 1)),
                                                                 protocol=5)),
                **t,
                "per_predict_before_s": before, "per_predict_after_s": after,
                "ratio_after_over_before": after / before,
            }
    finally:
        conn.send(None)
        proc.join(10)
    return report("ml_requests", out)


if __name__ == "__main__":
    main()
