"""A Study is an ordered list of items to review, each loaded lazily as a Volume.

Sources: a folder (each NIfTI/NRRD file and each DICOM series, recursively), a
MedMNIST-style .npz (items per split with ground-truth labels), or a single volume file.
Item ids are stable across sessions: the label store keys on them.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.volume import Volume, centered_affine

# Class names of the MedMNIST 3-D files in ../shared/datasets (see its README).
KNOWN_CLASS_NAMES = {
    "adrenalmnist3d": ["normal", "hyperplasia"],
    "vesselmnist3d": ["vessel", "aneurysm"],
}
SPLITS = ("train", "val", "test")


@dataclass
class StudyItem:
    id: str
    name: str
    loader: Callable[[], Volume] = field(repr=False)
    label: int | None = None
    split: str | None = None
    extras: dict = field(default_factory=dict, repr=False)

    def load(self) -> Volume:
        return self.loader()

    def load_mask(self) -> Volume | None:
        """A ground-truth mask when the source has one (the phantoms do)."""
        loader = self.extras.get("mask_loader")
        return loader() if loader else None


@dataclass
class Study:
    name: str
    items: list[StudyItem]
    class_names: list[str] | None = None
    source: str | None = None
    folder: Path | None = None  # where a study-local label database would live

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> StudyItem:
        return self.items[i]

    def __iter__(self):
        return iter(self.items)

    def by_id(self, item_id: str) -> StudyItem:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def split(self, name: str) -> list[StudyItem]:
        return [it for it in self.items if it.split == name]

    @property
    def has_labels(self) -> bool:
        return any(it.label is not None for it in self.items)


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


class NpzArrays:
    """Per-split uint8 arrays of a MedMNIST .npz, each decoded on first use only."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._npz = np.load(path, allow_pickle=False)
            self.keys = set(self._npz.files)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise VolumeReadError(path, f"not a readable .npz archive ({exc})") from exc
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            try:
                self._cache[key] = self._npz[key]
            except Exception as exc:
                raise VolumeReadError(self.path, f"cannot read array {key!r} ({exc})") from exc
        return self._cache[key]

    def count(self, split: str) -> int:
        """Number of images in a split, from the .npy header (no decoding)."""
        with zipfile.ZipFile(self.path) as zf, zf.open(f"{split}_images.npy") as fh:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, _ = read(fh)
        return int(shape[0])


def _open_npz(path: Path) -> Study:
    arrays = NpzArrays(path)
    splits = [s for s in SPLITS if f"{s}_images" in arrays.keys]
    if not splits:
        raise VolumeReadError(path, "not a MedMNIST-style study: no train/val/test_images arrays")
    stem = path.stem.lower()
    class_names = next((v for k, v in KNOWN_CLASS_NAMES.items() if stem.startswith(k)), None)
    items: list[StudyItem] = []
    n_classes = 0
    for split in splits:
        try:
            n = arrays.count(split)
        except Exception as exc:
            raise VolumeReadError(path, f"cannot read {split}_images header ({exc})") from exc
        labels = None
        if f"{split}_labels" in arrays.keys:
            labels = np.asarray(arrays[f"{split}_labels"]).reshape(-1)
            if len(labels) != n:
                raise VolumeReadError(path, f"{split}: {n} images but {len(labels)} labels")
            n_classes = max(n_classes, int(labels.max()) + 1 if n else 0)
        width = len(str(max(n - 1, 1)))
        for i in range(n):
            item_id = f"{split}/{i:0{width}d}"

            def load(split=split, i=i, item_id=item_id):
                img = arrays[f"{split}_images"][i]
                if img.ndim == 4 and img.shape[-1] == 1:
                    img = img[..., 0]
                if img.ndim != 3:
                    raise VolumeReadError(path, f"{split}_images[{i}] is not 3-D: {img.shape}")
                # MedMNIST resampled to a 1 mm cube without orientation: taken as RAS
                return Volume(img, centered_affine(img.shape), name=item_id,
                              source=f"{path}#{split}/{i}", meta={"synthetic": False})
            label = None if labels is None else int(labels[i])
            items.append(StudyItem(id=item_id, name=f"{split} {i:0{width}d}",
                                   loader=load, label=label, split=split))
    if class_names is None and n_classes:
        class_names = [f"class {c}" for c in range(n_classes)]
    return Study(name=path.name, items=items, class_names=class_names, source=str(path),
                 folder=path.parent)


def _open_folder(path: Path) -> Study:
    from vol3d_gui.core.io import is_volume_file, list_series, load_volume

    if not any(path.iterdir()):
        raise VolumeReadError(path, "the folder is empty")
    items: list[StudyItem] = []
    folders = [path, *sorted((p for p in path.rglob("*") if p.is_dir() and not p.name.startswith(".")),
                             key=lambda p: _natural_key(str(p)))]
    for folder in folders:
        files = sorted((f for f in folder.iterdir() if is_volume_file(f) and not f.name.startswith(".")),
                       key=lambda f: _natural_key(f.name))
        for f in files:
            rel = f.relative_to(path).as_posix()
            items.append(StudyItem(id=rel, name=rel, loader=lambda f=f: load_volume(f)))
        for s in list_series(folder):
            rel = folder.relative_to(path).as_posix()
            label = f"{rel}/{s.description or s.uid}" if rel != "." else (s.description or s.uid)
            items.append(StudyItem(id=f"{rel}#{s.uid}", name=f"{label} ({s.n_slices} slices)",
                                   loader=lambda folder=folder, uid=s.uid: load_volume(folder, series=uid)))
    if not items:
        raise VolumeReadError(path, "no volumes found (NIfTI, NRRD or DICOM) in the folder")
    return Study(name=path.name, items=items, source=str(path), folder=path)


def open_study(path) -> Study:
    """A study from a folder, a MedMNIST-style .npz, or a single volume file."""
    path = Path(path)
    if not path.exists():
        raise VolumeReadError(path, "no such file or folder")
    if path.is_dir():
        return _open_folder(path)
    if path.suffix.lower() == ".npz":
        return _open_npz(path)
    from vol3d_gui.core.io import load_volume

    item = StudyItem(id=path.name, name=path.name, loader=lambda: load_volume(path))
    return Study(name=path.name, items=[item], source=str(path), folder=path.parent)
