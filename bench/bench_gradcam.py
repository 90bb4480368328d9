"""Grad-CAM cost against one compiled forward pass of the same model on the same input, and
the pointing game on lesion phantoms when the bundled phantom model is present."""

from pathlib import Path

import numpy as np

from bench.common import interleaved, report
from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier
from vol3d_gui.ml.bundle import ModelBundle, load_bundle
from vol3d_gui.ml.gradcam import _cam_function, gradcam

MODEL = Path(__file__).resolve().parents[1] / "models" / "phantom-lesion.keras"


def main(repeat: int = 10) -> dict:
    if MODEL.exists():
        bundle = load_bundle(MODEL)
    else:  # same architecture, untrained: the timing does not depend on the weights
        card = {"name": "untrained", "class_names": ["no lesion", "lesion"], "input_shape": [64, 64, 48],
                "preprocessing": {"type": "hu_window", "low": -200.0, "high": 250.0},
                "gradcam_layer": GRADCAM_LAYER}
        bundle = ModelBundle(build_classifier((64, 64, 48), 2, width=8), card)
    vol, _ = lesion_phantom(0, True)
    x = bundle.preprocess(vol)[None]
    cam_fn = _cam_function(bundle)
    ci = np.array([1], np.int32)
    t = interleaved({
        "forward": lambda: bundle.forward(x),
        "gradcam_pass": lambda: [np.asarray(a) for a in cam_fn(x, ci)],
        "gradcam_end_to_end": lambda: gradcam(bundle, vol, 1),
    }, repeat=repeat, warmup=2)
    res = {"model": bundle.label, "input": list(bundle.input_shape), **t,
           "ratio_gradcam_pass_over_forward": t["gradcam_pass"]["median_s"] / t["forward"]["median_s"],
           "ratio_end_to_end_over_forward": t["gradcam_end_to_end"]["median_s"] / t["forward"]["median_s"]}
    if MODEL.exists():
        from tests.ml.test_gradcam import pointing_game

        seeds = np.random.default_rng(1234).integers(0, 2**31 - 1, 40)
        hit, mass = pointing_game(bundle, seeds)
        res.update(pointing_game_hit_rate=hit, saliency_mass_in_lesion=mass, pointing_game_n=len(seeds))
    return report("gradcam", res)


if __name__ == "__main__":
    main()
