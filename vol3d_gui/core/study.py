"""A Study is an ordered list of items to review, each loaded lazily as a Volume.

Sources: a folder (each NIfTI/NRRD/MINC/MGZ file and each DICOM series, recursively), a
MedMNIST-style .npz (items per split with ground-truth labels), a single volume file, or
the results table of `vol3d score` (.csv/.parquet; see core.results_study).
Item ids are stable across sessions: the label store keys on them.

Item ids: 'train/0042' for an .npz (split and index); for a folder, the file's path
relative to the folder ('liver/case2.nii.gz') or, for a DICOM series, its folder's
relative path and the series key ('patient1/ct#1.2.840...', '#1.2.840...' at the top): the
series UID, or 'UID~N' for the N-th part of a series split by orientation (localisers),
by a jump in position (a stray slice) or by dimension (echoes, phases, b-values).
Items are in natural order of those relative paths (case2 before case10).
A folder may hold ``labels.csv`` (columns ``id`` and ``label``, optional ``split``;
labels are class indices or class names) giving its items ground-truth labels.
"""

from __future__ import annotations

import csv
import os
import re
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.budget import check_nbytes, open_regular
from vol3d_gui.core.volume import Volume, centered_affine

# Class names of the MedMNIST 3-D files in ../shared/datasets (see its README).
KNOWN_CLASS_NAMES = {
    "adrenalmnist3d": ["normal", "hyperplasia"],
    "vesselmnist3d": ["vessel", "aneurysm"],
}
SPLITS = ("train", "val", "test")
LABELS_CSV = "labels.csv"
# A label is a class index: a file claiming class 3e8 is broken (or hostile), not a study with
# 3e8 class names to build and show.
MAX_CLASSES = 1000


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
        # an .npz study has ~1500 items and the worklist looks each one up: index once
        index = self.__dict__.get("_index")
        if index is None or len(index) != len(self.items):
            index = self.__dict__["_index"] = {it.id: it for it in self.items}
        try:
            return index[item_id]
        except KeyError:
            raise KeyError(item_id) from None

    def split(self, name: str) -> list[StudyItem]:
        return [it for it in self.items if it.split == name]

    @property
    def has_labels(self) -> bool:
        return any(it.label is not None for it in self.items)


def _natural_key(s: str):
    # isdecimal, not isdigit: '²' is a digit that int() refuses (a file 'x².nii' broke sorting)
    return [int(t) if t.isdecimal() else t.lower() for t in re.split(r"(\d+)", s)]


class NpzArrays:
    """Per-split uint8 arrays of a MedMNIST .npz, each decoded on first use only."""

    def __init__(self, path: Path):
        self.path = path
        try:
            with open_regular(path, ".npz file") as fh:
                magic = fh.read(4)
        except OSError as exc:
            raise VolumeReadError(path, f"cannot open the file ({exc.strerror or exc})") from exc
        # a zip starts with a local header, or an end record when empty; anything else (a
        # renamed .npy, a pickle) is refused before np.load reads it whole
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise VolumeReadError(path, "not a readable .npz archive (no zip header)")
        try:
            npz = np.load(path, allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise VolumeReadError(path, f"not a readable .npz archive ({exc})") from exc
        if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy array renamed .npz
            raise VolumeReadError(path, "not an .npz archive of named arrays")
        self._npz = npz
        self.keys = set(npz.files)
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> np.ndarray:
        # the UI thread and the ML worker may load items at once: one zip handle, one decode
        with self._lock:
            if key not in self._cache:
                # the .npy header says what np.load will allocate: check it before reading
                shape, dtype = self.header(key)
                nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                check_nbytes(self.path, nbytes, f"array {key!r} {shape}")
                try:
                    array = self._npz[key]
                except Exception as exc:
                    raise VolumeReadError(self.path, f"cannot read array {key!r} ({exc})") from exc
                # every item's Volume is a view into this array: nobody may write through it
                array.flags.writeable = False
                self._cache[key] = array
            return self._cache[key]

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """An array's shape and dtype from its .npy header: nothing is decompressed beyond it."""
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(f"{key}.npy") as fh:
                version = np.lib.format.read_magic(fh)
                # format 3.0 only differs from 2.0 by allowing utf-8 in the header
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(fh)
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise VolumeReadError(self.path, f"cannot read the header of array {key!r} ({exc})") from exc
        if dtype.hasobject:
            raise VolumeReadError(self.path, f"cannot read array {key!r}: it holds Python objects, not numbers")
        return tuple(int(v) for v in shape), np.dtype(dtype)

    def shape(self, key: str) -> tuple[int, ...]:
        """An array's shape from its .npy header: nothing is decompressed beyond it."""
        return self.header(key)[0]


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
            shape = arrays.shape(f"{split}_images")
        except Exception as exc:
            raise VolumeReadError(path, f"cannot read the {split}_images header ({exc})") from exc
        if not (len(shape) == 4 or (len(shape) == 5 and shape[-1] == 1)) or min(shape[1:4]) < 1:
            raise VolumeReadError(path, f"{split}_images has shape {shape}; expected (N, D, H, W)")
        n = shape[0]
        labels = None
        if f"{split}_labels" in arrays.keys:
            labels = np.asarray(arrays[f"{split}_labels"]).reshape(-1)
            if len(labels) != n:
                raise VolumeReadError(path, f"{split}: {n} images but {len(labels)} labels")
            if n and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
                raise VolumeReadError(path, f"{split}_labels are not class indices (0, 1, ...)")
            if n and labels.max() >= MAX_CLASSES:
                raise VolumeReadError(path, f"{split}_labels holds class {labels.max()}; "
                                            f"at most {MAX_CLASSES} classes are supported")
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


def _walk(root: Path):
    """Every folder under root (root first), skipping hidden ones, never following links
    (a link back up the tree would loop); an unreadable folder is skipped, not fatal."""
    for dirpath, dirnames, _ in os.walk(root, onerror=lambda exc: None, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        yield Path(dirpath)


def series_extras(s) -> dict:
    """What a series chooser shows of a DICOM series item (plain data, no headers)."""
    spacing = s.spacing
    return {"series_uid": s.uid, "series_key": s.key, "modality": s.modality,
            "description": s.description, "note": s.note, "n_slices": s.n_slices,
            "spacing": None if spacing is None else tuple(round(float(v), 4) for v in spacing)}


def _open_folder(path: Path) -> Study:
    from vol3d_gui.core.io import is_volume_file, list_series, load_series_volume, load_volume

    try:
        if not any(path.iterdir()):
            raise VolumeReadError(path, "the folder is empty")
    except OSError as exc:
        raise VolumeReadError(path, f"cannot list the folder ({exc.strerror or exc})") from exc
    found: list[tuple[list, StudyItem]] = []
    for folder in _walk(path):
        rel = folder.relative_to(path).as_posix()
        prefix = "" if rel == "." else rel
        try:
            # is_volume_file stats first: a FIFO or device in the tree is never opened
            files = [f for f in folder.iterdir() if not f.name.startswith(".") and is_volume_file(f)]
            series = list_series(folder)  # each DICOM header read once, here
        except (OSError, VolumeReadError):
            continue  # a folder we may not read is not a reason to refuse the others
        for f in files:
            rel_f = f.relative_to(path).as_posix()
            found.append((_natural_key(rel_f),
                          StudyItem(id=rel_f, name=rel_f, loader=lambda f=f: load_volume(f))))
        for s in series:
            title = s.description or s.uid
            if s.note:
                title = f"{title} ({s.note})"
            name = f"{prefix}/{title}" if prefix else title
            found.append((_natural_key(f"{prefix}/{title}/{s.key}" if prefix else f"{title}/{s.key}"),
                          StudyItem(id=f"{prefix}#{s.key}", name=f"{name} ({s.n_slices} slices)",
                                    loader=lambda folder=folder, s=s: load_series_volume(s, folder),
                                    extras=series_extras(s))))
    if not found:
        raise VolumeReadError(path, "no volumes found (NIfTI, NRRD, MINC, MGZ or DICOM) in the "
                                    "folder or its subfolders")
    found.sort(key=lambda pair: pair[0])
    items = [item for _, item in found]
    class_names = _apply_labels_csv(path, items)
    return Study(name=path.name, items=items, class_names=class_names, source=str(path), folder=path)


def _apply_labels_csv(root: Path, items: list[StudyItem]) -> list[str] | None:
    """Ground truth from ``labels.csv`` beside the volumes, if there is one: its class names."""
    csv_path = root / LABELS_CSV
    if not csv_path.is_file():
        return None
    by_id = {it.id: it for it in items}
    rows: list[tuple[StudyItem, str, str]] = []  # (item, label text, split)
    n_unknown, first_unknown = 0, None
    try:
        with open_regular(csv_path, "labels file") as raw_fh, \
                open(raw_fh.fileno(), newline="", encoding="utf-8-sig", closefd=False) as fh:
            reader = csv.DictReader(fh)
            if not {"id", "label"} <= set(reader.fieldnames or ()):
                raise VolumeReadError(csv_path, "expected a header with the columns 'id' and 'label'")
            for row in reader:  # streamed: one row per item at most is kept
                item_id = (row.get("id") or "").strip()
                if not item_id:
                    continue
                if item_id not in by_id:
                    n_unknown += 1
                    first_unknown = first_unknown or item_id
                    continue
                rows.append((by_id[item_id], (row.get("label") or "").strip(), (row.get("split") or "").strip()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise VolumeReadError(csv_path, f"cannot read the labels ({exc})") from exc
    if n_unknown:
        raise VolumeReadError(csv_path, f"{n_unknown} ids match no volume of the folder, e.g. {first_unknown!r}")
    if not rows:
        raise VolumeReadError(csv_path, "no labelled ids in the file")
    values = [v for _, v, _ in rows if v]
    # ASCII digits only: str.isdigit() accepts '²', which int() refuses
    if all(re.fullmatch(r"[0-9]+", v) for v in values):
        top = max((int(v) for v in values), default=-1)
        if top >= MAX_CLASSES:
            raise VolumeReadError(csv_path, f"label {top} is beyond the {MAX_CLASSES} classes supported")
        class_names = [f"class {c}" for c in range(top + 1)]
        to_index = {v: int(v) for v in values}
    else:
        class_names = sorted(set(values), key=_natural_key)
        if len(class_names) > MAX_CLASSES:
            raise VolumeReadError(csv_path, f"{len(class_names)} different labels; at most {MAX_CLASSES} "
                                            "classes are supported")
        to_index = {name: c for c, name in enumerate(class_names)}
    for item, value, split in rows:
        item.label = to_index[value] if value else None
        if split:
            item.split = split
    return class_names


def open_study(path) -> Study:
    """A study from a folder, a MedMNIST-style .npz, or a single volume file."""
    path = Path(path)
    if not path.exists():
        raise VolumeReadError(path, "no such file or folder")
    if path.is_dir():
        return _open_folder(path)
    if path.name.lower().endswith(".npz"):
        return _open_npz(path)
    if _is_results_table(path):  # what `vol3d score` wrote: its items with their scores
        from vol3d_gui.core.results_study import open_results

        return open_results(path)
    # the readers (nibabel, pydicom) load only when a study needs them, not for an .npz
    from vol3d_gui.core.io import DICOM_SUFFIXES, is_volume_file, load_volume

    if not (is_volume_file(path) or path.name.lower().endswith(DICOM_SUFFIXES) or _has_dicom_magic(path)):
        raise VolumeReadError(path, "not a study: expected a folder, a MedMNIST-style .npz, "
                                    "or a NIfTI, NRRD or DICOM file")
    item = StudyItem(id=path.name, name=path.name, loader=lambda: load_volume(path))
    return Study(name=path.name, items=[item], source=str(path), folder=path.parent)


def _is_results_table(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return True
    if not name.endswith(".csv"):
        return False
    try:  # a FIFO or device must not be opened (it would block or never end)
        with open_regular(path) as fh:
            header = fh.readline(4096).decode("utf-8", errors="replace")
    except (OSError, VolumeReadError):
        return False
    return {"item_id", "path", "status"} <= set(header.strip().split(","))


def _has_dicom_magic(path: Path) -> bool:
    try:  # a FIFO or device must not be opened (it would block or never end)
        with open_regular(path) as fh:
            head = fh.read(132)
    except (OSError, VolumeReadError):
        return False
    return len(head) == 132 and head[128:132] == b"DICM"
