"""Grad-CAM cost against one compiled forward pass of the same model on the same input, and
the pointing game on lesion phantoms when the bundled phantom model is present: on the
tests' seeds, and on 100 held-out phantoms whose seeds no test and no training study uses
(``--held-out`` for only that; ``--model PATH`` for another bundle than models/)."""

import sys
from pathlib import Path

import numpy as np

from bench.common import interleaved, report
from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier
from vol3d_gui.ml.bundle import ModelBundle, load_bundle
from vol3d_gui.ml.gradcam import _cam_function, gradcam

MODEL = Path(__file__).resolve().parents[1] / "models" / "phantom-lesion.keras"


# seeds of the held-out pointing game: a generator no test or training command uses
HELD_OUT_RNG = 15_2026


def held_out_seeds(n: int = 100) -> list[int]:
    """``n`` phantom seeds that are none of the training study's (vol3d train --dataset phantom
    --phantoms 400 --seed 0) nor the tests' (default_rng(1234), 900001-900006)."""
    from vol3d_gui.core.phantom import phantom_study

    used = {int(it.extras["seed"]) for it in phantom_study(n=400, seed=0, shape=(8, 8, 8))}
    used |= {int(s) for s in np.random.default_rng(1234).integers(0, 2**31 - 1, 100)} | set(range(900001, 900007))
    cand = np.random.default_rng(HELD_OUT_RNG).integers(0, 2**31 - 1, 2 * n)
    return [int(s) for s in cand if int(s) not in used][:n]


def held_out_pointing_game(bundle, n: int = 100) -> dict:
    from tests.ml.test_gradcam import pointing_game

    hit, mass = pointing_game(bundle, held_out_seeds(n))
    return {"held_out_pointing_game_hit_rate": hit, "held_out_saliency_mass_in_lesion": mass,
            "held_out_n": n, "cam_grid": list(bundle.model.get_layer(bundle.gradcam_layer).output.shape[1:4])}


def main(repeat: int = 10) -> dict:
    model = Path(sys.argv[sys.argv.index("--model") + 1]) if "--model" in sys.argv else MODEL
    if "--held-out" in sys.argv:
        bundle = load_bundle(model)
        return report("gradcam_held_out", {"model": bundle.label, "path": str(model),
                                           **held_out_pointing_game(bundle)})
    if model.exists():
        bundle = load_bundle(model)
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
    if model.exists():
        from tests.ml.test_gradcam import pointing_game

        seeds = np.random.default_rng(1234).integers(0, 2**31 - 1, 40)
        hit, mass = pointing_game(bundle, seeds)
        res.update(pointing_game_hit_rate=hit, saliency_mass_in_lesion=mass, pointing_game_n=len(seeds),
                   **held_out_pointing_game(bundle))
    return report("gradcam", res)


if __name__ == "__main__":
    main()
