"""Saliency where the body is, with the bundled phantom model: the map drawn is zero in the air,
its peak stays where the model's evidence is, and the crosshair jumps to it only for an in-domain case."""

import numpy as np

from vol3d_gui.core.foreground import crosshair_target, inside, saliency_peak
from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.core.volume import Volume
from vol3d_gui.ml.gradcam import gradcam, gradcam_in_body


def test_masked_map_is_zero_outside_the_body_and_keeps_a_peak_in_the_body(phantom_bundle):
    vol, mask_truth = lesion_phantom(4321, True)
    sal, body = gradcam_in_body(phantom_bundle, vol)
    assert sal.shape == body.shape and sal.meta["masked_to"] == "foreground"
    assert sal.data[body.data == 0].max() == 0.0 and sal.data.max() == 1.0
    peak = saliency_peak(sal)
    assert inside(body, peak)
    # where the raw map's peak is in the body, masking leaves it where it was (to within one
    # voxel of the mask's grid): the lesion the model points at stays the target
    raw = gradcam(phantom_bundle, vol, sal.meta["class_index"])
    assert inside(body, saliency_peak(raw))
    assert np.linalg.norm(peak - saliency_peak(raw)) <= np.linalg.norm(body.spacing) + 1e-6
    check = phantom_bundle.check_domain(vol)
    if check.in_domain:  # the bundled card records the domain (vol3d card-domain)
        assert np.allclose(crosshair_target(sal, body, check.in_domain), peak)


def test_no_jump_for_a_case_outside_the_domain(phantom_bundle):
    if not (phantom_bundle.card.get("domain") or {}).get("features"):
        import pytest

        pytest.skip("the phantom-lesion card has no domain (run vol3d card-domain)")
    rng = np.random.default_rng(0)
    vol, _ = lesion_phantom(5, False)
    noise = Volume(rng.normal(0, 400, vol.shape).astype(np.int16), vol.affine, name="noise")
    check = phantom_bundle.check_domain(noise)
    assert not check.in_domain and check.reasons
    sal, body = gradcam_in_body(phantom_bundle, noise)
    assert crosshair_target(sal, body, check.in_domain) is None
