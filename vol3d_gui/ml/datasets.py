"""Training data as preprocessed arrays: MedMNIST .npz splits, labelled folder studies, or
phantoms generated on the fly. Arrays stay uint8/int16 until preprocessing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.ml.preprocess import preprocess_array


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


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _preprocess_stack(raw, shape, spec, limit=None) -> np.ndarray:
    raw = raw[:limit] if limit else raw
    out = np.empty((len(raw), *shape, 1), np.float32)
    for i, v in enumerate(raw):
        out[i] = preprocess_array(v[..., 0] if v.ndim == 4 else v, shape, spec)
    return out


def load_npz_dataset(path, input_shape, limit: int | None = None, splits=("train", "val", "test")) -> Dataset:
    from vol3d_gui.core.study import open_study

    path = Path(path)
    study = open_study(path)  # validates the layout and names the classes
    spec = {"type": "scale", "divisor": 255.0}
    npz = np.load(path)
    ds = Dataset(name=path.name, class_names=study.class_names or ["class 0", "class 1"],
                 preprocessing=spec, content_hash=file_sha256(path))
    for s in splits:
        if f"{s}_images" not in npz.files:
            continue
        y = npz[f"{s}_labels"].reshape(-1).astype(int)
        ds.splits[s] = Split(_preprocess_stack(npz[f"{s}_images"], input_shape, spec, limit), y[:limit] if limit else y)
    return ds


def phantom_dataset(n_train: int, n_val: int, n_test: int, input_shape, seed: int = 0,
                    contrast: float = 1.0, shape=(128, 128, 96), spacing=(1.0, 1.0, 1.5)) -> Dataset:
    """Phantoms at the demo's size, preprocessed exactly like a volume opened in the GUI."""
    from vol3d_gui.core.phantom import lesion_phantom

    spec = {"type": "hu_window", "low": -200.0, "high": 250.0}
    ds = Dataset(name=f"phantom(seed={seed}, contrast={contrast}, n={n_train}/{n_val}/{n_test})",
                 class_names=["no lesion", "lesion"], preprocessing=spec,
                 content_hash=hashlib.sha256(f"phantom:{seed}:{contrast}:{n_train}:{n_val}:{n_test}:{shape}:{spacing}".encode()).hexdigest())
    rng = np.random.default_rng(seed)
    for name, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        y = np.array([i % 2 for i in range(n)])
        rng.shuffle(y)
        seeds = rng.integers(0, 2**31 - 1, size=n)
        x = np.empty((n, *input_shape, 1), np.float32)
        for i in range(n):
            vol, _ = lesion_phantom(int(seeds[i]), bool(y[i]), shape, spacing, contrast)
            x[i] = preprocess_array(vol.data, input_shape, spec)
        ds.splits[name] = Split(x, y)
    return ds


def load_folder_dataset(path, input_shape, spec) -> Dataset:
    """A labelled folder study: items need ground-truth labels (e.g. class sub-folders)."""
    from vol3d_gui.core.study import open_study

    study = open_study(path)
    labelled = [it for it in study if it.label is not None]
    if not labelled:
        raise VolumeReadError(path, "the folder's items carry no labels to train on")
    x = np.stack([preprocess_array(it.load().data, input_shape, spec) for it in labelled])
    y = np.array([it.label for it in labelled])
    return Dataset(name=Path(path).name, class_names=study.class_names or [], preprocessing=spec,
                   splits={"train": Split(x, y)})
