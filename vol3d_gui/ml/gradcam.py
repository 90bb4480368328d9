"""Grad-CAM (and Grad-CAM++) for 3-D classifiers, returned as a Volume in world space.

Gradients of the class score with respect to the bundle's Grad-CAM layer, averaged over
space, weight that layer's activations; ReLU; normalised to [0, 1] (as MONAI's N-D
GradCAM). A fold ensemble (ml/ensemble.py) lists one Grad-CAM layer per member, all on the
same grid: the map is the sum of the members' maps (each one ReLU'd, as a single member's
would be) before the normalisation; the gradients are those of the ensemble's own score. The
map stays on the layer's own small grid; its affine places it in the source
volume's world space (layer grid -> model input grid -> source voxels -> RAS mm), so the
viewer draws it like any overlay and it can be saved as NIfTI as it is.
"""

from __future__ import annotations

import numpy as np

from vol3d_gui.core.volume import Volume


def _cam_function(bundle):
    """A compiled forward + backward pass: (x, class_index) -> (activations, probs, grads), with
    activations and gradients lists over ``bundle.gradcam_layers``."""
    fn = getattr(bundle, "_gradcam_fn", None)
    if fn is not None:
        return fn
    import keras
    import tensorflow as tf

    model = bundle.model
    outputs = [model.get_layer(name).output for name in bundle.gradcam_layers]
    probe = keras.Model(model.inputs, [*outputs, model.output])
    spec = tf.TensorSpec((None, *bundle.input_shape, 1), tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)], reduce_retracing=True)
    def fn(x, class_index):
        with tf.GradientTape() as tape:
            *acts, probs = probe(x, training=False)
            tape.watch(acts)
            # explain the pre-softmax evidence where we can: log-probabilities keep the
            # gradients from vanishing when the model is confident
            score = tf.gather(tf.math.log(probs + 1e-7), class_index, axis=1, batch_dims=1)
        grads = tape.gradient(score, acts)
        return acts, probs, grads

    bundle._gradcam_fn = fn
    return fn


def _weights(acts: np.ndarray, grads: np.ndarray, plus: bool) -> np.ndarray:
    """Channel weights (N, C) from activations and gradients (N, d, h, w, C)."""
    axes = (1, 2, 3)
    if not plus:
        return grads.mean(axis=axes)
    # Grad-CAM++ (Chattopadhyay et al. 2018), with the exponential-score closed form
    g2, g3 = grads**2, grads**3
    denom = 2.0 * g2 + acts.sum(axis=axes, keepdims=True) * g3
    alpha = np.where(np.abs(denom) > 1e-12, g2 / np.where(np.abs(denom) > 1e-12, denom, 1.0), 0.0)
    return (alpha * np.maximum(grads, 0.0)).sum(axis=axes)


def cam_affine(input_shape, grid_affine: np.ndarray, cam_shape) -> np.ndarray:
    """Affine of a Grad-CAM grid given the model grid's affine (edge-aligned)."""
    f = np.asarray(input_shape, float) / np.asarray(cam_shape, float)
    m = np.eye(4)
    m[:3, :3] = np.diag(f)
    m[:3, 3] = 0.5 * f - 0.5
    return np.asarray(grid_affine, float) @ m


def cam_grid_affine(bundle, volume: Volume, cam_shape) -> np.ndarray:
    """Affine of the Grad-CAM grid in the source volume's world space (edge-aligned)."""
    return cam_affine(bundle.input_shape, bundle.grid_affine(volume), cam_shape)


def gradcam_tensors(bundle, x: np.ndarray, class_indices=None, plus: bool = False, normalise: bool = True):
    """Grad-CAM on preprocessed tensors (N, D, H, W, 1): (maps (N, d, h, w) float32 in [0, 1]
    on the layer's grid, class indices (N,), probabilities (N, n_classes)). A fold ensemble's
    map is the sum of its members' (un-normalised) maps; ``normalise=False`` returns that sum
    as it is (for tests and for comparing members)."""
    x = np.asarray(x, dtype=np.float32)
    fn = _cam_function(bundle)
    if class_indices is None:
        class_indices = bundle.forward(x).argmax(axis=1)
    ci = np.asarray(class_indices, dtype=np.int32).reshape(-1)
    acts_all, probs, grads_all = fn(x, ci)
    probs = np.asarray(probs, dtype=np.float64)
    cams = 0.0
    for acts, grads in zip(acts_all, grads_all):
        acts, grads = np.asarray(acts, np.float64), np.asarray(grads, np.float64)
        w = _weights(acts, grads, plus)
        cams = cams + np.maximum(np.einsum("ndhwc,nc->ndhw", acts, w), 0.0)
    if not normalise:
        return cams.astype(np.float32), ci, probs
    top = cams.max(axis=(1, 2, 3), keepdims=True)
    cams = np.where(top > 0, cams / np.where(top > 0, top, 1.0), cams).astype(np.float32)
    return cams, ci, probs


def saliency_meta(bundle, class_index: int, probs, plus: bool) -> dict:
    return {"kind": "saliency", "method": "Grad-CAM++" if plus else "Grad-CAM", "class_index": int(class_index),
            "class_name": bundle.class_names[int(class_index)], "model": bundle.label,
            "layer": "+".join(bundle.gradcam_layers), "probabilities": np.asarray(probs).tolist()}


def gradcam_grid(bundle, x: np.ndarray, grid_affine: np.ndarray, class_index: int | None = None,
                 plus: bool = False) -> dict:
    """What the ML service returns for one tensor: the small map, its affine and its meta."""
    cams, ci, probs = gradcam_tensors(bundle, x, None if class_index is None else [class_index], plus)
    return {"cam": cams[0], "affine": cam_affine(bundle.input_shape, grid_affine, cams[0].shape),
            "meta": saliency_meta(bundle, int(ci[0]), probs[0], plus)}


def saliency_volume(cam: np.ndarray, affine: np.ndarray, meta: dict, source=None) -> Volume:
    """The map as a Volume over the scan (built on the GUI side from what the service sent)."""
    return Volume(cam, affine, name=f"Grad-CAM: {meta['class_name']}", source=source, meta=meta)


def gradcam_batch(bundle, volumes, class_indices=None, plus: bool = False):
    """Grad-CAM maps for several volumes in one compiled pass: list of (Volume, probs)."""
    volumes = list(volumes)
    x = np.stack([bundle.preprocess(v) for v in volumes]).astype(np.float32)
    cams, ci, probs = gradcam_tensors(bundle, x, class_indices, plus)
    return [(saliency_volume(cams[i], cam_grid_affine(bundle, vol, cams[i].shape),
                             saliency_meta(bundle, int(ci[i]), probs[i], plus), vol.source), probs[i])
            for i, vol in enumerate(volumes)]


def gradcam(bundle, volume: Volume, class_index: int | None = None, plus: bool = False) -> Volume:
    """Saliency map for ``class_index`` (None: the predicted class) as a small Volume."""
    return gradcam_batch(bundle, [volume], None if class_index is None else [class_index], plus)[0][0]


def gradcam_in_body(bundle, volume: Volume, class_index: int | None = None, plus: bool = False,
                    mask: Volume | None = None) -> tuple[Volume, Volume]:
    """(saliency masked to the body, the body mask): the map as the viewer should draw it.

    The class defaults to the one displayed (the card's operating point, ``bundle.decide``),
    not the argmax. The map is resampled onto the foreground mask's grid (at most 64 per
    axis, core.foreground) and is zero outside the body, so a peak in the air cannot draw
    the reader's eye, or the crosshair (core.foreground.crosshair_target)."""
    from vol3d_gui.core.foreground import foreground_mask, mask_saliency

    if class_index is None:
        class_index = bundle.decide(bundle.predict(volume))
    cam = gradcam(bundle, volume, class_index, plus=plus)
    mask = foreground_mask(volume) if mask is None else mask
    return mask_saliency(cam, mask), mask
