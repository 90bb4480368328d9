"""A model bundle is a Keras model plus its contract: ``NAME.keras`` beside ``NAME.json``.

The card (the JSON) holds the class names, input shape, intensity preprocessing, the layer
Grad-CAM uses, the parent bundle it was fine-tuned from, the training data and the metrics
measured on held-out data. Bundles are never overwritten; loading uses Keras' safe_mode so
that a model file from elsewhere cannot run code.
"""

from __future__ import annotations

import errno
import json
import numbers
import os
import re
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import Vol3dError
from vol3d_gui.core.volume import Volume
from vol3d_gui.ml.bundle_trust import TrustMixin
from vol3d_gui.ml.preprocess import PREPROCESSING_TYPES, grid_affine, preprocess_volume

REQUIRED_CARD_KEYS = ("name", "class_names", "input_shape", "preprocessing", "gradcam_layer")
# what a card's layout is: every card this code writes says it (``card_format``), and a card of a
# later format than this code reads is refused by name, not half-read (format 2: the feature
# precision may be stored as its upper triangle, ml/domain.encode_matrix). Cards without the
# field are format 1 (models/ holds such cards).
CARD_FORMAT = 2
# save_bundle writes ".tmp-<pid>-*" beside the bundle, then renames: a process killed in between
# leaves them behind; they are never listed or loaded, and removed once their process is gone
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 24 * 3600  # a temp file without a pid (older vol3d) is removed after a day


class ModelError(Vol3dError):
    """A model bundle cannot be used. The message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def bundle_paths(path) -> tuple[Path, Path]:
    """(model.keras, card.json) for a .keras file, a .json card, a stem, or a folder
    holding exactly one bundle."""
    path = Path(path)
    if path.is_dir():
        # hidden files are not bundles: a killed save leaves .tmp-*.keras beside the real one
        kerases = sorted(p for p in path.glob("*.keras") if not p.name.startswith("."))
        if len(kerases) != 1:
            raise ModelError(path, f"expected one .keras file in the folder, found {len(kerases)}")
        path = kerases[0]
    if path.suffix in (".keras", ".json"):
        path = path.with_suffix("")
    # append rather than with_suffix: a stem such as "liver.v2" keeps its dot
    return path.with_name(path.name + ".keras"), path.with_name(path.name + ".json")


def read_card(path) -> dict:
    model_path, card_path = bundle_paths(path)
    if not card_path.is_file():
        raise ModelError(card_path, "model card (.json beside the .keras file) is missing")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(card_path, f"model card is not valid JSON ({exc})") from exc
    check_card(card, card_path)
    return card


def check_card(card, card_path) -> None:
    """Refuse a card whose required fields are missing or of the wrong kind (a card that is a
    JSON number, or a class list that is a string, would fail later with a TypeError)."""
    if not isinstance(card, dict):
        raise ModelError(card_path, f"model card is a JSON {type(card).__name__}, not an object with fields")
    fmt = card.get("card_format", 1)
    if not isinstance(fmt, numbers.Integral) or isinstance(fmt, bool) or fmt < 1:
        raise ModelError(card_path, f"invalid model card: card_format must be a positive integer, not {fmt!r}")
    if fmt > CARD_FORMAT:
        raise ModelError(card_path, f"model card of format {fmt}, written by a newer vol3d (this one reads "
                                    f"formats up to {CARD_FORMAT}): update vol3d to use this model")
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise ModelError(card_path, f"model card lacks {', '.join(missing)}")
    problems = []
    if not isinstance(card["name"], str) or not card["name"].strip():
        problems.append("name must be a non-empty string")
    names = card["class_names"]
    if not (isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names)):
        problems.append("class_names must be a list of strings")
    shape = card["input_shape"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 < v <= 4096
                    for v in shape)):
        problems.append("input_shape must be three positive integers")
    if not isinstance(card["preprocessing"], dict):
        problems.append("preprocessing must be an object")
    elif card["preprocessing"].get("type", "minmax") not in PREPROCESSING_TYPES:
        problems.append(f"preprocessing type {card['preprocessing'].get('type')!r} is not one this vol3d knows "
                        f"({', '.join(sorted(PREPROCESSING_TYPES))})")
    if not isinstance(card["gradcam_layer"], str):
        problems.append("gradcam_layer must be a layer name")
    extra = card.get("gradcam_layers")
    if extra is not None and not (isinstance(extra, list) and extra and all(isinstance(n, str) for n in extra)):
        problems.append("gradcam_layers must be a list of layer names")
    if problems:
        raise ModelError(card_path, "invalid model card: " + "; ".join(problems))


def safe_bundle_name(name) -> str:
    """A bundle name usable as a file stem inside its folder: a card's name such as '../../x'
    or '/etc/x' must not make fine-tuning write outside --out."""
    text = re.sub(r"[^\w.-]+", "_", str(name), flags=re.ASCII).strip("._-")
    return text[:100] or "model"


class ModelBundle(TrustMixin):
    def __init__(self, model, card: dict, path: Path | None = None):
        self.model = model
        self.card = card
        self.path = path
        self._forward = None

    # --- the contract ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def version(self) -> str:
        return str(self.card.get("version", "1"))

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def class_names(self) -> list[str]:
        return list(self.card["class_names"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.card["input_shape"])  # type: ignore[return-value]

    @property
    def gradcam_layer(self) -> str:
        return self.card["gradcam_layer"]

    @property
    def gradcam_layers(self) -> list[str]:
        """Every layer whose Grad-CAM the map sums: a fold ensemble's members' (the card's
        ``gradcam_layers``), else the one ``gradcam_layer``."""
        layers = self.card.get("gradcam_layers")
        return [str(n) for n in layers] if layers else [self.gradcam_layer]

    @property
    def preprocessing(self) -> dict:
        return dict(self.card["preprocessing"])

    @property
    def training_flips(self) -> tuple[int, ...] | None:
        """The flip axes the model was trained with, or None when it was trained without
        augmentation (then fine-tuning should not augment by default either)."""
        training = self.card.get("training") or {}
        if not training.get("augment"):
            return None
        return tuple(int(a) for a in training.get("flips", ()))

    def preprocess(self, volume: Volume) -> np.ndarray:
        return preprocess_volume(volume, self.input_shape, self.preprocessing)

    def grid_affine(self, volume: Volume) -> np.ndarray:
        return grid_affine(volume, self.input_shape)

    # --- inference ------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for a preprocessed batch (N, D, H, W, 1): one compiled call, no
        per-call overhead of model.predict."""
        if self._forward is None:
            import tensorflow as tf

            model = self.model
            spec = tf.TensorSpec((None, *self.input_shape, 1), tf.float32)

            @tf.function(input_signature=[spec], reduce_retracing=True)
            def fwd(batch):
                return model(batch, training=False)

            self._forward = fwd
        x = np.asarray(x, dtype=np.float32)
        return np.asarray(self._forward(x), dtype=np.float64)

    def predict(self, volume: Volume) -> np.ndarray:
        return self.forward(self.preprocess(volume)[None])[0]

    def predict_batch(self, volumes, batch_size: int = 8, progress=None, should_stop=None) -> np.ndarray:
        """Probabilities (N, n_classes). ``volumes`` may be Volumes or zero-argument loaders;
        ``progress(done, total)`` after each volume; ``should_stop()`` is polled per volume."""
        volumes = list(volumes)
        out = np.zeros((len(volumes), len(self.class_names)))
        batch, idx = [], []
        for i, v in enumerate(volumes):
            if should_stop is not None and should_stop():
                return out[: idx[0] if idx else i]
            vol = v() if callable(v) else v
            batch.append(self.preprocess(vol))
            idx.append(i)
            if len(batch) == batch_size or i == len(volumes) - 1:
                out[idx] = self.forward(np.stack(batch))
                batch, idx = [], []
            if progress is not None:
                progress(i + 1, len(volumes))
        return out

    def summary(self) -> str:
        c = self.card
        lines = [f"{self.label}", f"classes: {', '.join(self.class_names)}",
                 f"input: {'x'.join(map(str, self.input_shape))}, {self.preprocessing.get('type')}"]
        if c.get("parent"):
            lines.append(f"fine-tuned from: {c['parent']}")
        data = c.get("training_data") or {}
        if data.get("name"):
            lines.append(f"trained on: {data['name']}")
        m = c.get("metrics") or {}
        if m:
            split = m.get("split", "held-out")
            from vol3d_gui.ml.intervals import with_interval

            ci = m.get("intervals") or {}
            parts = [f"{k} {with_interval(m[k], ci.get(k))}" for k in ("auc", "accuracy")
                     if isinstance(m.get(k), (int, float))]
            lines.append(f"{split} ({m.get('n', '?')}): " + ", ".join(parts))
        return "\n".join(lines)


def load_bundle(path) -> ModelBundle:
    model_path, card_path = bundle_paths(path)
    if not model_path.is_file():
        raise ModelError(model_path, "model file not found")
    card = read_card(model_path)
    if not zipfile.is_zipfile(model_path):
        raise ModelError(model_path, "not a Keras model file (.keras archives are zip files)")
    import keras

    try:
        model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as exc:
        raise ModelError(model_path, f"cannot load the Keras model ({type(exc).__name__}: {exc})") from exc
    expected_in = (None, *map(int, card["input_shape"]), 1)
    got_in = tuple(model.input_shape)
    if got_in != expected_in:
        raise ModelError(model_path, f"model input {got_in} does not fit the card's input_shape "
                                     f"{tuple(card['input_shape'])}")
    n_out = model.output_shape[-1]
    if n_out != len(card["class_names"]):
        raise ModelError(model_path, f"model has {n_out} outputs but the card names "
                                     f"{len(card['class_names'])} classes")
    bundle = ModelBundle(model, card, model_path)
    shapes = set()
    for name in dict.fromkeys([card["gradcam_layer"], *bundle.gradcam_layers]):
        try:
            cam_layer = model.get_layer(name)
        except ValueError as exc:
            raise ModelError(model_path, f"the card's gradcam_layer {name!r} is not a layer of the model") from exc
        if len(cam_layer.output.shape) != 5:
            raise ModelError(model_path, f"the card's gradcam_layer {name!r} is not a 3-D "
                                         f"feature map (output shape {tuple(cam_layer.output.shape)})")
        shapes.add(tuple(cam_layer.output.shape[1:4]))
    if len(shapes) > 1:  # the members' maps are summed cell by cell
        raise ModelError(model_path, f"the card's Grad-CAM layers have different grids {sorted(shapes)}")
    return bundle


def save_bundle(model, card: dict, path) -> Path:
    """Write NAME.keras and NAME.json atomically; refuse to overwrite an existing bundle."""
    model_path, card_path = bundle_paths(path)
    if model_path.exists() or card_path.exists():
        raise ModelError(model_path, "a bundle with this name exists; bundles are never overwritten")
    try:
        model_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(model_path.parent, f"cannot create the folder ({exc.strerror or exc})") from exc
    card = dict(card)
    card["card_format"] = CARD_FORMAT  # written by this code, whatever card it started from
    card.setdefault("name", model_path.stem)
    card.setdefault("version", "1")
    card.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    card.setdefault("gradcam_layer", "gradcam_conv")
    card.setdefault("input_shape", list(model.input_shape[1:4]))
    try:
        import keras
        import tensorflow as tf

        card.setdefault("framework", {"keras": keras.__version__, "tensorflow": tf.__version__})
    except ImportError:  # pragma: no cover
        pass
    check_card(card, card_path)
    clean_interrupted_saves(model_path.parent)
    tmp_model = tmp_card = None
    try:
        fd, tmp_model = tempfile.mkstemp(suffix=".keras", dir=model_path.parent,
                                         prefix=f"{_TMP_PREFIX}{os.getpid()}-")
        os.close(fd)
        tmp_card = Path(str(tmp_model) + ".json")
        model.save(tmp_model)
        tmp_card.write_text(json.dumps(card, indent=2, default=_json_default) + "\n")
        # card last: a bundle is visible (listed) only once its model is in place
        os.replace(tmp_model, model_path)
        os.replace(tmp_card, card_path)
    except BaseException as exc:
        for tmp in (tmp_model, tmp_card):
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        if not card_path.exists():
            model_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
            raise ModelError(model_path, "cannot save the bundle: the disk is full" if full else
                             f"cannot save the bundle ({exc.strerror or exc})") from exc
        raise
    return model_path


def clean_interrupted_saves(folder) -> list[Path]:
    """Remove what killed saves left in ``folder``: temp files of processes that are gone (or,
    without a pid, older than a day). A save still running in another process is left alone."""
    removed = []
    folder = Path(folder)
    try:
        leftovers = list(folder.glob(f"{_TMP_PREFIX}*"))
    except OSError:
        return removed
    for p in leftovers:
        m = re.match(rf"{re.escape(_TMP_PREFIX)}(\d+)-", p.name)
        try:
            stale = (not _process_alive(int(m[1]))) if m else time.time() - p.stat().st_mtime > _STALE_TMP_S
            if stale and p.is_file():
                p.unlink()
                removed.append(p)
        except OSError:
            pass  # a read-only models folder: the leftovers stay, and are ignored
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def list_bundles(*dirs) -> list[Path]:
    """Every NAME.keras with a NAME.json beside it under the given folders (recursively); the
    leftovers of interrupted saves (hidden .tmp-* files) are skipped and cleaned up."""
    found = []
    for d in dirs:
        d = Path(d)
        if d.is_dir():
            for folder in {p.parent for p in d.rglob(f"{_TMP_PREFIX}*")}:
                clean_interrupted_saves(folder)
            found += [p for p in sorted(d.rglob("*.keras")) if p.with_suffix(".json").is_file()
                      and not p.name.startswith(".")]
    return found


def next_version_path(parent: Path, base_name: str) -> Path:
    """models/NAME-ft-N.keras with the first N not taken; NAME is made safe as a file stem."""
    base_name = safe_bundle_name(base_name)
    n = 1
    while (parent / f"{base_name}-ft-{n}.keras").exists() or (parent / f"{base_name}-ft-{n}.json").exists():
        n += 1
    return parent / f"{base_name}-ft-{n}.keras"


def update_card(path, fields: dict) -> Path:
    """Add or replace top-level ``fields`` of an existing bundle's card, keeping every other
    field, and write it atomically (temp file, then os.replace). The .keras file is not
    touched: this is for what is measured about fixed weights (domain, calibration table,
    operating point), never for anything that changes what the model computes."""
    model_path, card_path = bundle_paths(path)
    card = read_card(model_path)
    card.update(fields)
    card["card_format"] = CARD_FORMAT  # the fields are written in this code's layout
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=card_path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(card, indent=2, default=_json_default) + "\n")
        os.replace(tmp, card_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return card_path
