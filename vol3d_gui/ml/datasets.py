"""Training data as preprocessed arrays: MedMNIST .npz splits, labelled folder studies, or
lesion phantoms. Every source goes through the one preprocessing function of
vol3d_gui.ml.preprocess, so that what a model is trained on is exactly what it sees when
a volume is opened in the viewer.

Raw images stay in their stored dtype (uint8 for MedMNIST, int16 HU for phantoms) until
each one is preprocessed into the float32 stack the model takes: never a float64 copy of
a whole set.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.ml.preprocess import preprocess_array

# MedMNIST stores uint8 intensities in [0, 255]: a fixed scale keeps every volume's
# brightness comparable (min-max per volume would not, for the binary adrenal masks).
MEDMNIST_PREPROCESSING = {"type": "scale", "divisor": 255.0}
# A soft-tissue window: liver and kidney lesions differ from their organ by 50-80 HU,
# which a [-1000, 400] lung-to-bone window would squeeze into a few percent of [0, 1].
PHANTOM_PREPROCESSING = {"type": "hu_window", "low": -200.0, "high": 250.0}


@dataclass
class Split:
    x: np.ndarray  # (N, D, H, W, 1) float32
    y: np.ndarray  # (N,) int


@dataclass
class Dataset:
    name: str
    class_names: list[str]
    preprocessing: dict
    splits: dict[str, Split] = field(default_factory=dict)
    content_hash: str = ""
    source: str = ""
    # spacing, field of view and modality of the training volumes (ml.domain.volume_geometry),
    # which a card records as the model's training domain
    geometries: list[dict] = field(default_factory=list)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def preprocess_stack(raw, shape, spec, limit=None) -> np.ndarray:
    """(N, ...) raw 3-D images (optionally with a trailing channel) -> (N, *shape, 1) float32."""
    raw = raw[:limit] if limit else raw
    out = np.empty((len(raw), *shape, 1), np.float32)
    for i, v in enumerate(raw):
        out[i] = preprocess_array(v[..., 0] if v.ndim == 4 else v, shape, spec)
    return out


_preprocess_stack = preprocess_stack  # the name the first CLI version used


def load_npz_dataset(path, input_shape, limit: int | None = None, splits=("train", "val", "test"),
                     preprocessing: dict | None = None) -> Dataset:
    """The splits of a MedMNIST-style .npz, preprocessed with ``preprocessing`` (default:
    the fixed /255 scale). ``limit`` keeps the first N items of each split (smoke runs)."""
    from vol3d_gui.core.study import open_study

    path = Path(path)
    study = open_study(path)  # validates the layout and names the classes
    spec = dict(preprocessing or MEDMNIST_PREPROCESSING)
    shape = tuple(int(s) for s in input_shape)
    # the uint8 arrays directly: one decode per split, not one Volume per item
    npz = np.load(path, allow_pickle=False)
    ds = Dataset(name=path.name, class_names=study.class_names or ["class 0", "class 1"],
                 preprocessing=spec, content_hash=file_sha256(path), source=str(path))
    for s in splits:
        if f"{s}_images" not in npz.files:
            continue
        if f"{s}_labels" not in npz.files:
            raise VolumeReadError(path, f"split {s!r} has images but no labels")
        y = npz[f"{s}_labels"].reshape(-1).astype(np.int64)
        raw = npz[f"{s}_images"]
        ds.splits[s] = Split(preprocess_stack(raw, shape, spec, limit), y[:limit] if limit else y)
        if not ds.geometries:
            # MedMNIST cubes open as 1 mm voxels without a modality (core.study): one geometry
            ds.geometries = [{"spacing": [1.0, 1.0, 1.0], "fov": [float(n) for n in raw.shape[1:4]],
                              "modality": None}]
    if not ds.splits:
        raise VolumeReadError(path, f"none of the splits {', '.join(splits)} is in the file")
    return ds


def _stack_items(items, shape, spec, hasher, progress=None, geometries=None):
    from vol3d_gui.ml.domain import volume_geometry

    x = np.empty((len(items), *shape, 1), np.float32)
    for i, it in enumerate(items):
        vol = it.load()
        if geometries is not None:
            geometries.append(volume_geometry(vol))
        hasher.update(f"{it.id}\t{it.label}\t{vol.content_hash()}\n".encode())
        x[i] = preprocess_array(vol.data, shape, spec)
        if progress is not None:
            progress(i + 1, len(items))
    return x, np.array([int(it.label) for it in items], dtype=np.int64)


def phantom_dataset(n: int, input_shape, seed: int = 0, contrast: float = 1.0,
                    shape=(128, 128, 96), spacing=(1.0, 1.0, 1.5), progress=None,
                    paired: bool = False) -> Dataset:
    """A phantom study of ``n`` cases (half with a lesion) at the demo's size and spacing,
    split 60/20/20 per class by core.phantom.phantom_study, preprocessed exactly like a
    volume opened in the GUI.

    ``paired``: the training split holds both versions of each training case, with and
    without its lesion (same anatomy and noise). The only thing that then tells the two
    classes apart is the lesion, so a network stops fitting anatomy and finds it in a few
    hundred steps instead of thousands. Validation and test stay unpaired cases."""
    from vol3d_gui.core.phantom import lesion_phantom, phantom_study

    study = phantom_study(n=n, seed=seed, lesion_fraction=0.5, shape=shape, spacing=spacing,
                          contrast=contrast)
    spec = dict(PHANTOM_PREPROCESSING)
    mshape = tuple(int(s) for s in input_shape)
    ds = Dataset(name=f"phantom_study({study.source})", class_names=list(study.class_names),
                 preprocessing=spec, source=study.source)
    # hashed from the generated images, so a change in the phantom code shows in the card
    h = hashlib.sha256()
    done = [0]

    total = len(study) + (len(study.split("train")) if paired else 0)

    def step(_i, _n):
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    for split in ("train", "val", "test"):
        items = study.split(split)
        if not items:
            continue
        if paired and split == "train":
            from vol3d_gui.core.study import StudyItem

            twins = [StudyItem(id=f"{it.id}/twin", name=it.name, label=1 - int(it.label), split=split,
                               loader=lambda it=it: lesion_phantom(int(it.extras["seed"]), not it.label,
                                                                   shape, spacing, contrast)[0])
                     for it in items]
            items = [v for pair in zip(items, twins) for v in pair]
        ds.splits[split] = Split(*_stack_items(items, mshape, spec, h, step,
                                               ds.geometries if split == "train" else None))
    if paired:
        ds.name += " + lesion-free/lesion twins of the training cases"
    ds.content_hash = h.hexdigest()
    return ds


def stratified_split(labels, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> list[str]:
    """'train'/'val'/'test' per item, the same fractions within each class, reproducibly."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = [""] * len(labels)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = len(members)
        n_train = int(round(fractions[0] * k))
        n_val = int(round(fractions[1] * k))
        for rank, i in enumerate(members):
            out[i] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    return out


def load_folder_dataset(path, input_shape, spec, seed: int = 0, progress=None) -> Dataset:
    """A labelled folder study. Labels come from the folder's ``labels.csv`` (read by
    core.study: columns id, label, optional split) or, without one, from one sub-folder per
    class (``FOLDER/CLASS/...``, classes in natural order). Items without a split are split
    70/15/15 per class with ``seed``; unlabelled items are left out."""
    from vol3d_gui.core.study import open_study
    from vol3d_gui.ml.domain import volume_geometry

    path = Path(path)
    study = open_study(path)
    if study.has_labels:
        labelled = [it for it in study if it.label is not None]
        classes = list(study.class_names or [f"class {c}" for c in range(max(it.label for it in labelled) + 1)])
        y = np.array([int(it.label) for it in labelled])
    else:
        labelled = [it for it in study if "/" in it.id]
        classes = sorted({it.id.split("/", 1)[0] for it in labelled},
                         key=lambda c: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", c)])
        y = np.array([classes.index(it.id.split("/", 1)[0]) for it in labelled])
    if len(set(y.tolist())) < 2:
        raise VolumeReadError(path, "a training folder needs labels of at least two classes: a labels.csv "
                                    "or one sub-folder per class")
    auto = stratified_split(y, seed=seed)
    splits = [it.split if it.split in ("train", "val", "test") else a for it, a in zip(labelled, auto)]
    if "train" not in splits:
        raise VolumeReadError(path, "no item is in the 'train' split")
    shape = tuple(int(s) for s in input_shape)
    ds = Dataset(name=path.name, class_names=classes, preprocessing=dict(spec), source=str(path))
    # the set's hash: every (item id, label, image content hash), split by split
    h = hashlib.sha256()
    done = 0
    for split in ("train", "val", "test"):
        idx = [i for i, s in enumerate(splits) if s == split]
        if not idx:
            continue
        x = np.empty((len(idx), *shape, 1), np.float32)
        for j, i in enumerate(idx):
            vol = labelled[i].load()
            if split == "train":
                ds.geometries.append(volume_geometry(vol))
            h.update(f"{labelled[i].id}\t{y[i]}\t{vol.content_hash()}\n".encode())
            x[j] = preprocess_array(vol.data, shape, spec)
            done += 1
            if progress is not None:
                progress(done, len(labelled))
        ds.splits[split] = Split(x, y[idx])
    ds.content_hash = h.hexdigest()
    return ds
