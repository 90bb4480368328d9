"""ModelBundle.predict(volume) end to end against the raw compiled forward pass on the
already preprocessed tensor, and against keras' model.predict; volumes/s of predict_batch.

    python -m bench predict                      # a fresh 64^3 width-8 model (timing only)
    python -m bench.bench_predict models/adrenal3d.keras

The volume is the demo's CT phantom (128x128x96 int16 HU), so "end to end" includes the
by-shape resampling and intensity normalisation that the GUI pays for every volume. It is
timed as the phantom comes (C order) and x-fastest, as the NIfTI and DICOM readers give a scan
(``*_x_fastest``). All of them run in many rounds, each round in a new random order: the forward
pass alone varies by 10-20 % between runs on a loaded machine, and a call pays for what ran
before it (see _shuffled_rounds).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import report, timeit
from vol3d_gui.core.phantom import lesion_phantom


def _bundle(path: str | None, tmp: Path):
    from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier
    from vol3d_gui.ml.bundle import load_bundle, save_bundle

    if path:
        return load_bundle(path)
    model = build_classifier((64, 64, 64), 2, width=8, stem_stride=2, name="bench")
    card = {"name": "bench", "class_names": ["no lesion", "lesion"], "input_shape": [64, 64, 64],
            "preprocessing": {"type": "hu_window", "low": -200.0, "high": 250.0},
            "gradcam_layer": GRADCAM_LAYER}
    return load_bundle(save_bundle(model, card, tmp / "bench.keras"))


def _shuffled_rounds(fns: dict, repeat: int, seed: int = 0) -> dict:
    """Like bench.common.interleaved, but each round runs the callables in a new (seeded)
    random order: what ran just before a call matters here (a call right after keras'
    model.predict pays 0.5-1 ms more; one after a forward pass finds TensorFlow warm), and a
    fixed order would give that to the same variant every round."""
    rng = np.random.default_rng(seed)
    names = list(fns)
    for name in names:
        fns[name]()
        fns[name]()
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(repeat):
        for i in rng.permutation(len(names)):
            t0 = time.perf_counter()
            fns[names[i]]()
            times[names[i]].append(time.perf_counter() - t0)
    return {k: {"best_s": min(v), "median_s": statistics.median(v), "runs": repeat} for k, v in times.items()}


def main(repeat: int = 40, model_path: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        bundle = _bundle(model_path, Path(d))
        vol, _ = lesion_phantom(0, True)
        vol_f = dataclasses.replace(vol, data=np.asfortranarray(vol.data))
        x = bundle.preprocess(vol)[None]
        np.testing.assert_allclose(bundle.predict(vol), bundle.forward(x)[0], atol=1e-6)
        np.testing.assert_allclose(bundle.predict(vol_f), bundle.forward(x)[0], atol=1e-6)
        model = bundle.model

        t = _shuffled_rounds({
            "predict_end_to_end": lambda: bundle.predict(vol),
            "preprocess_only": lambda: bundle.preprocess(vol),
            "forward_compiled": lambda: bundle.forward(x),
            "keras_model_predict": lambda: model.predict(x, verbose=0),
            "predict_end_to_end_x_fastest": lambda: bundle.predict(vol_f),
            "preprocess_only_x_fastest": lambda: bundle.preprocess(vol_f),
        }, repeat=repeat)
        fwd = t["forward_compiled"]["median_s"]
        vols = [lesion_phantom(s, s % 2 == 0)[0] for s in range(16)]
        tb = timeit(lambda: bundle.predict_batch(vols, batch_size=8), repeat=3, warmup=1)
        return report("predict", {
            "model": bundle.label, "input_shape": list(bundle.input_shape),
            "params": int(model.count_params()),
            "volume": f"{'x'.join(map(str, vol.shape))} {vol.dtype} phantom",
            **t,
            "ratio_predict_over_forward": t["predict_end_to_end"]["median_s"] / fwd,
            "ratio_predict_x_fastest_over_forward": t["predict_end_to_end_x_fastest"]["median_s"] / fwd,
            "ratio_model_predict_over_forward": t["keras_model_predict"]["median_s"] / fwd,
            "predict_batch_16_volumes": tb,
            "predict_batch_volumes_per_s": 16 / tb["median_s"],
        })


if __name__ == "__main__":
    main(model_path=sys.argv[1] if len(sys.argv) > 1 else None)
