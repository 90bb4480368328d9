"""Deterministic CT-like synthetic volumes in HU, with optional lesions.

Used by the demo, the tests, the bundled phantom model and the Grad-CAM pointing game.
An abdomen-like slab: air, an elliptical body with a fat rim, soft tissue, a liver, two
kidneys, a vertebra and, in the superior part, lung bases. Organ sizes and positions vary
per seed so that a classifier cannot memorise one layout. A lesion is an ellipsoid inside
the liver or a kidney, hypo- or hyper-dense by 50-80 HU times ``contrast``.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from vol3d_gui.core.volume import Volume, centered_affine

AIR, FAT, SOFT, LIVER, KIDNEY, BONE, LUNG = -1000, -100, 40, 60, 30, 700, -820


def _ellipsoid(xyz, center, radii) -> np.ndarray:
    x, y, z = xyz
    return (((x - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2
            + ((z - center[2]) / radii[2]) ** 2) <= 1.0


def _grid(shape, spacing):
    """World coordinates (mm, RAS, centred on the volume) of every voxel centre, broadcastable."""
    axes = [((np.arange(n) - (n - 1) / 2.0) * s).astype(np.float32) for n, s in zip(shape, spacing)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def lesion_phantom(seed: int, lesion: bool, shape=(128, 128, 96), spacing=(1.0, 1.0, 1.5),
                   contrast: float = 1.0, noise_hu: float = 12.0,
                   mask_spacing=None) -> tuple[Volume, Volume | None]:
    """A CT-like phantom (int16 HU) and, when ``lesion``, its lesion mask (uint8).

    ``mask_spacing`` (mm, optional) puts the mask on a coarser grid covering the same
    field of view: the viewer must still line it up (overlays are placed by affine).
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
    img[liver] = LIVER
    kid_y = -body_r[1] * rng.uniform(0.30, 0.42)
    kid_r = (body_r[0] * 0.12, body_r[1] * 0.17, ext[2] * rng.uniform(0.3, 0.4))
    kidneys = []
    for side in (-1, 1):
        c = (side * body_r[0] * rng.uniform(0.36, 0.46), kid_y, ext[2] * rng.uniform(-0.3, 0.0))
        k = _ellipsoid(xyz, c, kid_r) & inner & ~liver
        img[k] = KIDNEY
        kidneys.append((c, kid_r))
    spine_c = (0.0, -body_r[1] * 0.55)
    spine = ((x - spine_c[0]) ** 2 + (y - spine_c[1]) ** 2) <= (body_r[1] * 0.16) ** 2
    img[np.broadcast_to(spine, shape)] = BONE
    # lung bases in the superior part, posterior-lateral
    for side in (-1, 1):
        lung = _ellipsoid(xyz, (side * body_r[0] * 0.45, -body_r[1] * 0.05, ext[2] * 1.25),
                          (body_r[0] * 0.35, body_r[1] * 0.55, ext[2] * 0.6)) & inner & ~liver
        img[lung] = LUNG

    mask_arr = None
    if lesion:
        organs = [(liver_c, liver_r, liver)] + [(c, r, None) for c, r in kidneys]
        weights = np.array([0.7, 0.15, 0.15])
        organ = int(rng.choice(3, p=weights))
        c, r, _ = organs[organ]
        radius_mm = rng.uniform(7.0, 14.0)
        lr = np.array([radius_mm, radius_mm * rng.uniform(0.8, 1.2), radius_mm * rng.uniform(0.8, 1.2)])
        # centre inside the organ, at least the lesion radius from its boundary
        margin = np.clip(1.0 - lr / np.asarray(r), 0.05, 1.0)
        offset = rng.uniform(-0.55, 0.55, 3) * margin * np.asarray(r)
        lc = np.asarray(c) + offset
        lesion_m = _ellipsoid(xyz, lc, lr) & inner
        sign = -1.0 if rng.random() < 0.6 else 1.0
        delta = sign * rng.uniform(50, 80) * float(contrast)
        img[lesion_m] += delta
        mask_arr = lesion_m.astype(np.uint8)

    # slight blur so edges are not piecewise flat, then quantum-like noise
    img = ndimage.gaussian_filter(img, sigma=0.7, truncate=2.0)
    img += rng.normal(0.0, noise_hu, size=shape).astype(np.float32)
    affine = centered_affine(shape, spacing)
    vol = Volume(np.clip(np.rint(img), -1024, 3071).astype(np.int16), affine,
                 name=f"phantom-{seed:04d}", source=f"phantom:{seed}",
                 meta={"modality": "CT", "synthetic": True, "lesion": bool(lesion),
                       "contrast": float(contrast)})
    mask = None
    if mask_arr is not None:
        mask = Volume(mask_arr, affine.copy(), name=f"lesion-{seed:04d}", source=vol.source,
                      meta={"kind": "mask"})
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
    return lesion_phantom(seed, lesion, shape, spacing, contrast)


def phantom_study(n: int = 12, seed: int = 0, lesion_fraction: float = 0.5, shape=(128, 128, 96),
                  spacing=(1.0, 1.0, 1.5), contrast: float = 1.0, name: str | None = None):
    """A Study of n phantoms, generated lazily on load, with labels, splits and lesion masks.

    Each item's ``extras['mask_loader']`` returns the lesion mask Volume (or None)."""
    from vol3d_gui.core.study import Study, StudyItem

    rng = np.random.default_rng(seed)
    n_lesion = int(round(n * lesion_fraction))
    labels = np.array([1] * n_lesion + [0] * (n - n_lesion))
    rng.shuffle(labels)
    seeds = rng.integers(0, 2**31 - 1, size=n)
    items = []
    for i in range(n):
        s, lab = int(seeds[i]), bool(labels[i])
        split = "train" if i < int(n * 0.6) else ("val" if i < int(n * 0.8) else "test")

        def load(s=s, lab=lab):
            return _cached(s, lab, tuple(shape), tuple(spacing), contrast)[0]

        def load_mask(s=s, lab=lab):
            return _cached(s, lab, tuple(shape), tuple(spacing), contrast)[1]

        items.append(StudyItem(id=f"phantom/{seed}/{i:03d}", name=f"case {i + 1:03d}", loader=load,
                               label=int(lab), split=split,
                               extras={"mask_loader": load_mask, "seed": s, "contrast": contrast}))
    return Study(name=name or f"Phantom demo ({n} cases)", items=items,
                 class_names=["no lesion", "lesion"], source=f"phantom:{seed}", folder=None)
