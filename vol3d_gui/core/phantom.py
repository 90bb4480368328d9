"""Deterministic CT-like synthetic volumes in HU, with optional lesions.

Used by the demo, the tests, the bundled phantom model and the Grad-CAM pointing game.
An abdomen-like slab: air, an elliptical body with a fat rim, soft tissue, a liver, two
kidneys in perirenal fat, a spine of vertebrae and discs and, in the superior part, lung
bases. Organ sizes and positions vary per seed so that a classifier cannot memorise one
layout. A lesion is an ellipsoid of 7-14 mm radius (at most 80 % of its organ's half-axes,
so it never spills into fat, lung or bone) inside the liver or a kidney, hypo- or
hyper-dense by 50-80 HU times ``contrast``; its mask is the exact voxel set changed.
The images of one seed with and without a lesion share anatomy and noise: they differ only
around the mask (by the lesion, blurred by the slight smoothing).
The affine is RAS+ and centred on the body: +x is the patient's right (the liver side).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from vol3d_gui.core.volume import Volume, centered_affine

AIR, FAT, SOFT, LIVER, KIDNEY, BONE, LUNG, DISC = -1000, -100, 40, 60, 30, 700, -820, 80


def _ellipsoid(xyz, center, radii) -> np.ndarray:
    """Boolean 3-D mask of an axis-aligned ellipsoid on the sparse grid ``xyz``.

    Only its bounding box is evaluated: organs and lesions are small beside the grid,
    and this is most of the cost of a phantom. Outside the box one axis term exceeds 1,
    so the result is exactly that of the whole-grid formula."""
    shape = tuple(a.size for a in xyz)
    out = np.zeros(shape, bool)
    box, terms = [], []
    for axis, (coords, c, r) in enumerate(zip(xyz, center, radii)):
        coords = coords.reshape(-1)
        inside = np.flatnonzero(np.abs(coords - c) <= r)
        if inside.size == 0:
            return out
        lo, hi = int(inside[0]), int(inside[-1]) + 1
        box.append(slice(lo, hi))
        view = [1, 1, 1]
        view[axis] = hi - lo
        terms.append((((coords[lo:hi] - c) / r) ** 2).reshape(view))
    out[tuple(box)] = (terms[0] + terms[1] + terms[2]) <= 1.0
    return out


def _grid(shape, spacing):
    """World coordinates (mm, RAS, centred on the volume) of every voxel centre, broadcastable."""
    axes = [((np.arange(n) - (n - 1) / 2.0) * s).astype(np.float32) for n, s in zip(shape, spacing)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def _world_to_index(xyz, shape, spacing) -> np.ndarray:
    return np.asarray(xyz) / np.asarray(spacing) + (np.asarray(shape) - 1) / 2.0


def lesion_phantom(seed: int, lesion: bool, shape=(128, 128, 96), spacing=(1.0, 1.0, 1.5),
                   contrast: float = 1.0, noise_hu: float = 12.0,
                   mask_spacing=None) -> tuple[Volume, Volume | None]:
    """A CT-like phantom (int16 HU) and, when ``lesion``, its lesion mask (uint8).

    ``mask_spacing`` (mm, optional) puts the mask on a coarser grid covering the same
    field of view: the viewer must still line it up (overlays are placed by affine).
    With a lesion, both Volumes' ``meta`` hold its ground truth: ``lesion_organ``,
    ``lesion_center_mm`` (RAS+), ``lesion_radii_mm`` and ``lesion_delta_hu``.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    spacing = tuple(float(s) for s in spacing)
    xyz = _grid(shape, spacing)
    x, y, z = xyz
    ext = np.asarray(shape) * np.asarray(spacing) / 2.0  # half field of view in mm

    body_r = (ext[0] * rng.uniform(0.80, 0.90), ext[1] * rng.uniform(0.62, 0.72))
    body = (x / body_r[0]) ** 2 + (y / body_r[1]) ** 2 <= 1.0
    inner = (x / (body_r[0] - 8)) ** 2 + (y / (body_r[1] - 8)) ** 2 <= 1.0
    img = np.full(shape, AIR, np.float32)
    img[np.broadcast_to(body, shape)] = FAT
    img[np.broadcast_to(inner, shape)] = SOFT

    # liver: on the patient's right (+x in RAS), anterior-ish, large
    liver_c = (body_r[0] * rng.uniform(0.30, 0.42), body_r[1] * rng.uniform(0.0, 0.2), ext[2] * rng.uniform(0.0, 0.2))
    liver_r = (body_r[0] * rng.uniform(0.33, 0.40), body_r[1] * rng.uniform(0.42, 0.52), ext[2] * rng.uniform(0.55, 0.7))
    liver = _ellipsoid(xyz, liver_c, liver_r) & inner
    # kidneys: posterior, either side of the spine; about a third of the body's depth
    kid_y = -body_r[1] * rng.uniform(0.30, 0.40)
    kid_r = (body_r[0] * rng.uniform(0.17, 0.21), body_r[1] * rng.uniform(0.22, 0.27),
             ext[2] * rng.uniform(0.3, 0.4))
    kidneys = []
    for side in (-1, 1):
        c = (side * body_r[0] * rng.uniform(0.40, 0.48), kid_y, ext[2] * rng.uniform(-0.3, 0.0))
        # perirenal fat is what makes an unenhanced kidney (30 HU) stand out from muscle;
        # where the right kidney meets the liver it indents the liver, as in a patient
        capsule = _ellipsoid(xyz, c, np.add(kid_r, 3.0)) & inner
        liver &= ~capsule
        img[capsule] = FAT
        k = _ellipsoid(xyz, c, kid_r) & inner
        img[k] = KIDNEY
        kidneys.append((c, kid_r, k))
    img[liver] = LIVER
    # lung bases in the superior part, posterior-lateral
    lungs = np.zeros(shape, bool)
    for side in (-1, 1):
        lungs |= _ellipsoid(xyz, (side * body_r[0] * 0.45, -body_r[1] * 0.05, ext[2] * 1.25),
                            (body_r[0] * 0.35, body_r[1] * 0.55, ext[2] * 0.6))
    lungs &= inner & ~liver
    img[lungs] = LUNG
    # vertebral bodies separated by discs, painted last so that nothing cuts the spine
    spine_c = (0.0, -body_r[1] * 0.55)
    spine = ((x - spine_c[0]) ** 2 + (y - spine_c[1]) ** 2) <= (body_r[1] * 0.16) ** 2
    level = body_r[1] * rng.uniform(0.55, 0.65)  # one vertebra plus one disc, in mm
    disc = np.mod(z - rng.uniform(0.0, level), level) < 0.22 * level
    img[np.broadcast_to(spine, shape)] = BONE
    img[np.broadcast_to(spine & disc, shape)] = DISC

    mask_arr = None
    truth: dict = {}  # the lesion's ground truth, copied into both Volumes' meta
    if lesion:
        # the lesion draws from its own stream so that the anatomy and the noise of a seed
        # are the same with and without a lesion: the pair differs only at the lesion
        lrng = np.random.default_rng([seed, 1])
        organs = [(liver_c, liver_r, liver)] + kidneys
        organ = int(lrng.choice(3, p=[0.7, 0.15, 0.15]))
        c, r, region = organs[organ]
        r = np.asarray(r)
        radius_mm = lrng.uniform(7.0, 14.0)
        lr = np.array([radius_mm, radius_mm * lrng.uniform(0.8, 1.2), radius_mm * lrng.uniform(0.8, 1.2)])
        # a lesion fits inside its organ: small organs (kidneys, small fields of view) get
        # smaller lesions rather than lesions spilling into fat, lung or bone
        lr = np.minimum(lr, 0.8 * r)
        lc = np.asarray(c) + lrng.uniform(-0.5, 0.5, 3) * (r - lr)
        lesion_m = _ellipsoid(xyz, lc, lr) & region & ~lungs & ~np.broadcast_to(spine, shape)
        if not lesion_m.any():  # a grid too coarse for the ellipsoid: keep its centre voxel
            lesion_m[tuple(np.clip(np.rint(_world_to_index(lc, shape, spacing)).astype(int), 0,
                                   np.asarray(shape) - 1))] = True
        sign = -1.0 if lrng.random() < 0.6 else 1.0
        delta = sign * lrng.uniform(50, 80) * float(contrast)
        img[lesion_m] += delta
        mask_arr = lesion_m.astype(np.uint8)
        truth = {"lesion_organ": ("liver", "left kidney", "right kidney")[organ],
                 "lesion_center_mm": [round(float(v), 2) for v in lc],
                 "lesion_radii_mm": [round(float(v), 2) for v in lr],
                 "lesion_delta_hu": round(float(delta), 1)}

    # slight blur so edges are not piecewise flat, then quantum-like noise
    img = ndimage.gaussian_filter(img, sigma=0.7, truncate=2.0)
    img += rng.standard_normal(size=shape, dtype=np.float32) * np.float32(noise_hu)
    affine = centered_affine(shape, spacing)
    vol = Volume(np.clip(np.rint(img), -1024, 3071).astype(np.int16), affine,
                 name=f"phantom-{seed:04d}", source=f"phantom:{seed}",
                 meta={"modality": "CT", "synthetic": True, "lesion": bool(lesion),
                       "contrast": float(contrast), **truth})
    mask = None
    if mask_arr is not None:
        mask = Volume(mask_arr, affine.copy(), name=f"lesion-{seed:04d}", source=vol.source,
                      meta={"kind": "mask", **truth})
        if mask_spacing is not None:
            mask = _coarse_mask(vol, lc, lr, mask_spacing)
    return vol, mask


def _coarse_mask(vol: Volume, center, radii, mask_spacing) -> Volume:
    """The same lesion ellipsoid rasterised on a coarser grid over the same field of view."""
    ms = np.asarray(mask_spacing, dtype=np.float64)
    fov = np.asarray(vol.shape) * vol.spacing
    mshape = tuple(int(n) for n in np.maximum(np.round(fov / ms), 2))
    xyz = _grid(mshape, ms)
    arr = _ellipsoid(xyz, center, radii).astype(np.uint8)
    return Volume(arr, centered_affine(mshape, ms), name=f"lesion-coarse-{vol.name}",
                  source=vol.source, meta={"kind": "mask"})


def phantom_arrays(n: int, seed: int = 0, lesion_fraction: float = 0.5, shape=(64, 64, 48),
                   spacing=(2.0, 2.0, 3.0), contrast: float = 1.0):
    """n phantoms as an int16 stack (n, *shape) with 0/1 labels: quick training data."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < lesion_fraction).astype(np.int64)
    seeds = rng.integers(0, 2**31 - 1, size=n)
    x = np.empty((n, *shape), np.int16)
    for i in range(n):
        x[i] = lesion_phantom(int(seeds[i]), bool(labels[i]), shape, spacing, contrast)[0].data
    return x, labels


@functools.lru_cache(maxsize=4)
def _cached(seed, lesion, shape, spacing, contrast):
    # the volume and its mask come from one generation; the viewer asks for both
    vol, mask = lesion_phantom(seed, lesion, shape, spacing, contrast)
    # every load returns these same arrays: a write through one would change later loads
    for v in (vol, mask):
        if v is not None:
            v.data.flags.writeable = False
    return vol, mask


def phantom_study(n: int = 12, seed: int = 0, lesion_fraction: float = 0.5, shape=(128, 128, 96),
                  spacing=(1.0, 1.0, 1.5), contrast: float = 1.0, name: str | None = None):
    """A Study of n phantoms, generated lazily on load, with labels, splits and lesion masks.

    Exactly ``round(n * lesion_fraction)`` items carry a lesion (label 1). Splits are
    stratified: within each class the first 60 % are 'train', the next 20 % 'val', the
    rest 'test'. ``item.load_mask()`` (``extras['mask_loader']``) returns the lesion mask
    Volume, or None for a lesion-free item. Item ids ('phantom/<seed>/<index>') are unique
    within the study; ``study.source`` spells out every parameter that shapes the images.
    """
    from vol3d_gui.core.study import Study, StudyItem

    if n < 1:
        raise ValueError(f"a phantom study needs at least one item, got n={n}")
    if not 0.0 <= lesion_fraction <= 1.0:
        raise ValueError(f"lesion_fraction must be within [0, 1], got {lesion_fraction}")
    shape = tuple(int(v) for v in shape)
    spacing = tuple(float(v) for v in spacing)
    contrast = float(contrast)
    rng = np.random.default_rng(seed)
    n_lesion = int(round(n * lesion_fraction))
    labels = np.array([1] * n_lesion + [0] * (n - n_lesion))
    rng.shuffle(labels)
    seeds = rng.integers(0, 2**31 - 1, size=n)
    splits = [""] * n
    for cls in (0, 1):
        members = np.flatnonzero(labels == cls)
        k = len(members)
        for rank, i in enumerate(members):
            splits[i] = "train" if rank < round(0.6 * k) else ("val" if rank < round(0.8 * k) else "test")
    items = []
    for i in range(n):
        s, lab = int(seeds[i]), bool(labels[i])

        def load(s=s, lab=lab):
            return _cached(s, lab, shape, spacing, contrast)[0]

        def load_mask(s=s, lab=lab):
            return _cached(s, lab, shape, spacing, contrast)[1] if lab else None

        items.append(StudyItem(id=f"phantom/{seed}/{i:03d}", name=f"case {i + 1:03d}", loader=load,
                               label=int(lab), split=splits[i],
                               extras={"mask_loader": load_mask, "seed": s, "contrast": contrast}))
    source = (f"phantom:seed={seed},n={n},lesion_fraction={lesion_fraction},"
              f"shape={'x'.join(map(str, shape))},spacing={'x'.join(f'{v:g}' for v in spacing)},"
              f"contrast={contrast:g}")
    return Study(name=name or f"Phantom demo ({n} cases)", items=items,
                 class_names=["no lesion", "lesion"], source=source, folder=None)
