"""Does a volume belong to a model's training domain? Two halves, both Qt- and TF-free.

(a) ``metadata_reasons(card, volume)``: what the card says the model was trained on
    (modality, voxel spacing and field-of-view ranges, intensity statistics of the
    preprocessed model-grid tensor) against the volume; each mismatch is a reason in words.
(b) ``feature_score(card, features)``: a Mahalanobis distance of the network's penultimate
    features to the nearest training-class mean under a shared covariance (Lee et al. 2018,
    "A simple unified framework for detecting out-of-distribution samples"), divided by the
    threshold set on the validation split (97.5% pass, conformal rank). A softmax says nothing about
    whether its input resembles anything it was trained on (phantom-lesion answered 99.99% on
    a brain); the feature space does.

Every check gives a *ratio*: 0 inside the training range, 1 at the edge of its tolerance,
above 1 outside. ``DomainCheck.score`` is the largest ratio, so one number ranks volumes by
how far they are from the training data, and ``in_domain`` is ``score <= 1`` (and no
modality mismatch). The GUI combines (a), computed where the Volume is, with the feature
score that the ML process returns for the tensor it was sent.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field

import numpy as np

# A model resampled by shape sees a different field of view as a different anatomy size:
# allow 30% either way. Spacing only changes how finely that field is sampled: allow 2x.
FOV_TOLERANCE = 1.3
SPACING_TOLERANCE = 2.0
# How far outside the training range an intensity statistic may go, as a share of the range
# (plus a floor, for statistics that were constant in training).
INTENSITY_MARGIN = 0.25
INTENSITY_FLOOR = 0.02
PASS_QUANTILE = 0.975  # conformal rank on validation; see fit_feature_reference
INTENSITY_STATS = ("mean", "std", "low_fraction", "high_fraction")
NOT_FINITE = 1e6  # the score of a feature vector with NaN or Inf: far outside, and valid JSON


@dataclass
class DomainCheck:
    in_domain: bool
    score: float
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def intensity_stats(x: np.ndarray) -> dict[str, float]:
    """Statistics of a preprocessed tensor (values in [0, 1]): mean, std and the shares of
    voxels clipped at the low and high ends of the card's intensity mapping."""
    a = np.asarray(x, np.float32).reshape(-1)
    return {"mean": float(a.mean()), "std": float(a.std()),
            "low_fraction": float(np.mean(a <= 1e-6)), "high_fraction": float(np.mean(a >= 1 - 1e-6))}


def volume_geometry(volume) -> dict:
    spacing = np.asarray(volume.spacing, np.float64)
    return {"spacing": spacing.tolist(), "fov": (spacing * np.asarray(volume.shape)).tolist(),
            "modality": volume.meta.get("modality")}


def _range_ratio(v: float, lo: float, hi: float, margin: float) -> float:
    """0 inside [lo, hi], 1 at ``margin`` outside it, growing linearly beyond."""
    out = max(lo - v, v - hi, 0.0)
    return out / margin if margin > 0 else (0.0 if out == 0 else np.inf)


def _fmt3(values) -> str:
    return " x ".join(f"{v:.3g}" for v in values)


def geometry_ratios(domain: dict, spacing, fov) -> list[tuple[float, str]]:
    out = []
    for key, values, tol, what in (("spacing_mm", spacing, SPACING_TOLERANCE, "voxel spacing"),
                                   ("fov_mm", fov, FOV_TOLERANCE, "field of view")):
        ref = domain.get(key)
        if not ref or values is None:
            continue
        lo, hi = np.log(np.asarray(ref["min"], float)), np.log(np.asarray(ref["max"], float))
        v = np.log(np.maximum(np.asarray(values, float), 1e-9))
        r = max(_range_ratio(float(v[i]), float(lo[i]), float(hi[i]), np.log(tol)) for i in range(3))
        ranges = " x ".join(f"{a:.3g}" if a == b else f"{a:.3g}-{b:.3g}"
                            for a, b in zip(ref["min"], ref["max"]))
        out.append((r, f"{what} {_fmt3(values)} mm, trained on {ranges} mm"))
    return out


def intensity_ratios(domain: dict, stats: dict) -> list[tuple[float, str]]:
    ref = domain.get("intensity") or {}
    out = []
    for k in INTENSITY_STATS:
        if k not in ref or k not in stats:
            continue
        lo, hi = float(ref[k]["min"]), float(ref[k]["max"])
        r = _range_ratio(float(stats[k]), lo, hi, INTENSITY_MARGIN * (hi - lo) + INTENSITY_FLOOR)
        out.append((r, f"intensity {k.replace('_', ' ')} {stats[k]:.3g} after preprocessing, "
                       f"trained on {lo:.3g}-{hi:.3g}"))
    return out


def _modality_reason(domain: dict, modality) -> str | None:
    want = domain.get("modality")
    if want and modality and str(modality).upper() != str(want).upper():
        return f"modality {modality}, trained on {want}"
    return None


def metadata_ratios(card: dict, volume, x: np.ndarray | None = None) -> tuple[list[tuple[float, str]], str | None]:
    """(ratio, reason) for each metadata check and a modality reason (or None). ``x`` is the
    preprocessed tensor when the caller has it (else it is computed here, numpy only)."""
    domain = card.get("domain") or {}
    geo = volume_geometry(volume)
    ratios = geometry_ratios(domain, geo["spacing"], geo["fov"])
    if domain.get("intensity"):
        if x is None:
            from vol3d_gui.ml.preprocess import preprocess_volume

            x = preprocess_volume(volume, card["input_shape"], card["preprocessing"])
        ratios += intensity_ratios(domain, intensity_stats(x))
    return ratios, _modality_reason(domain, geo["modality"])


def metadata_reasons(card: dict, volume, x: np.ndarray | None = None) -> list[str]:
    """The metadata mismatches in words (empty when the volume looks like the training data
    or the card records no domain)."""
    ratios, modality = metadata_ratios(card, volume, x)
    return ([modality] if modality else []) + [why for r, why in ratios if r > 1.0]


# --- (b) the feature-space reference ------------------------------------------------------
def encode_matrix(a: np.ndarray, symmetric: bool = False) -> dict:
    """A d x d matrix for the card as base64 float32 (little-endian, row-major): as a JSON list
    of lists the 64 x 64 precision of adrenal3d would be 4096 lines of the card.

    ``symmetric=True`` stores the upper triangle only (row by row, diagonal included:
    ``"layout": "upper"``): half the bytes, the same float32 values. A precision matrix grows
    with the square of the feature width; a five-member fold ensemble's 640 features made it
    2.2 MB of card (models/README.md, adrenal3d, fourth round)."""
    a = np.asarray(a, np.float64)
    if not symmetric:
        a = np.ascontiguousarray(a, dtype="<f4")
        return {"dtype": "float32", "shape": list(a.shape), "base64": base64.b64encode(a.tobytes()).decode("ascii")}
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a symmetric matrix must be square, got shape {a.shape}")
    upper = ((a + a.T) / 2)[np.triu_indices(a.shape[0])].astype("<f4")
    return {"dtype": "float32", "shape": list(a.shape), "layout": "upper",
            "base64": base64.b64encode(upper.tobytes()).decode("ascii")}


def decode_matrix(m) -> np.ndarray:
    """The matrix ``encode_matrix`` wrote (either layout), or a plain list of lists."""
    if isinstance(m, dict):
        raw = np.frombuffer(base64.b64decode(m["base64"]), dtype="<f4").astype(np.float64)
        if m.get("layout", "full") == "full":
            return raw.reshape(m["shape"])
        if m["layout"] != "upper":
            raise ValueError(f"unknown matrix layout {m['layout']!r}")
        d = int(m["shape"][0])
        if raw.size != d * (d + 1) // 2:
            raise ValueError(f"{raw.size} values for the upper triangle of a {d} x {d} matrix")
        out = np.zeros((d, d))
        out[np.triu_indices(d)] = raw
        return out + np.triu(out, 1).T
    return np.asarray(m, np.float64)  # a plain list of lists (hand-written cards, tests)


def fit_feature_reference(train_features, train_labels, val_features, shrinkage: float = 0.05,
                          quantile: float = PASS_QUANTILE) -> dict:
    """Class means and a shared, shrunk covariance of the training features; the threshold is
    set on the validation distances so that ``quantile`` of in-domain volumes passes."""
    f = np.asarray(train_features, np.float64)
    y = np.asarray(train_labels).astype(int).reshape(-1)
    classes = sorted(set(y.tolist()))
    means = np.stack([f[y == c].mean(axis=0) for c in classes])
    centred = f - means[np.searchsorted(classes, y)]
    cov = centred.T @ centred / max(len(f) - len(classes), 1)
    # shrink towards a scaled identity: features of a ReLU network are often rank-deficient
    # (dead channels), and a few hundred samples do not pin down 64 x 64 covariances
    d = cov.shape[0]
    cov = (1 - shrinkage) * cov + shrinkage * (np.trace(cov) / d + 1e-12) * np.eye(d)
    ref = {"method": "mahalanobis, nearest class mean, shared covariance", "classes": classes,
           "means": means.tolist(), "precision": encode_matrix(np.linalg.inv(cov), symmetric=True),
           "shrinkage": shrinkage, "n_train": int(len(f))}
    val = np.sort(mahalanobis(ref, val_features))
    # the split-conformal rank: with n validation volumes, the ceil((n + 1) q)-th smallest
    # distance is a threshold that a new in-domain volume stays under with probability >= q
    # (a plain q-quantile of 80 volumes lets through only ~91% of the test split). The default
    # q is 0.975, not 0.95: phantom-lesion's 80 validation cases are a little tighter than new
    # phantoms, and at 0.95 only 91% of its test split and 94% of 200 fresh phantoms passed
    # (97.5% of both at 0.975); out-of-domain volumes score 2.6x the threshold and more.
    rank = min(int(np.ceil((len(val) + 1) * quantile)), len(val))
    ref["threshold"] = float(val[rank - 1])
    ref["threshold_quantile"] = quantile
    ref["n_val"] = int(len(val))
    return ref


def mahalanobis(ref: dict, features) -> np.ndarray:
    """Distance of each feature vector (N, d) to the nearest class mean."""
    f = np.atleast_2d(np.asarray(features, np.float64))
    means = np.asarray(ref["means"], np.float64)
    prec = decode_matrix(ref["precision"])
    diff = f[:, None, :] - means[None]  # (N, C, d)
    d2 = np.einsum("ncd,de,nce->nc", diff, prec, diff)
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def feature_score(card: dict, features) -> np.ndarray | None:
    """Feature distance / threshold for each row (1 = the edge of the training domain), or
    None when the card has no feature reference."""
    ref = (card.get("domain") or {}).get("features")
    if not ref:
        return None
    return mahalanobis(ref, features) / float(ref["threshold"])


def combine(metadata: tuple[list[tuple[float, str]], str | None], feature_ratio: float | None) -> DomainCheck:
    """One DomainCheck from the metadata ratios and the feature ratio (either may be absent)."""
    ratios, modality = metadata
    ratios = list(ratios)
    if feature_ratio is not None and not np.isfinite(feature_ratio):
        feature_ratio = NOT_FINITE  # NaN features (a broken input) must never pass as in-domain
    if feature_ratio is not None:
        ratios.append((float(feature_ratio), f"the network's features are far from its training data "
                                             f"({feature_ratio:.2f}x the in-domain threshold)"))
    score = max((r for r, _ in ratios), default=0.0)
    # named mismatches first (modality, spacing, field of view, intensity), the feature score
    # last: "field of view 197 x 233 x 189 mm, trained on 128 x 128 x 144 mm" tells a reader more
    # than "12x the threshold", whichever ratio is larger
    reasons = ([modality] if modality else []) + [why for r, why in ratios if r > 1.0]
    return DomainCheck(in_domain=not reasons, score=float(score), reasons=reasons)


def check(card: dict, volume, x: np.ndarray, features) -> DomainCheck:
    f = feature_score(card, np.asarray(features)[None] if np.ndim(features) == 1 else features)
    return combine(metadata_ratios(card, volume, x), None if f is None else float(f[0]))


# --- what the card records ------------------------------------------------------------------
def geometry_reference(geometries) -> dict:
    """Ranges of spacing and field of view (per axis) and the modality of the training volumes
    (``geometries``: dicts as volume_geometry returns)."""
    geometries = list(geometries)
    out: dict = {}
    for key, card_key in (("spacing", "spacing_mm"), ("fov", "fov_mm")):
        a = np.asarray([g[key] for g in geometries], float)
        out[card_key] = {"min": a.min(axis=0).round(4).tolist(), "max": a.max(axis=0).round(4).tolist()}
    modalities = {g.get("modality") for g in geometries}
    out["modality"] = modalities.pop() if len(modalities) == 1 else None
    return out


def intensity_reference(x_train) -> dict:
    """Range of each intensity statistic over the training tensors (N, D, H, W, 1)."""
    stats = [intensity_stats(v) for v in x_train]
    return {k: {"min": float(min(s[k] for s in stats)), "max": float(max(s[k] for s in stats))}
            for k in INTENSITY_STATS}
