"""Can a bundled model tell when a volume is outside its training data, and does its
uncertainty point at its errors?

    python -m bench domain                       # both bundled models
    python -m bench.bench_domain phantom-lesion  # one

In-domain: the bundle's own test split (as Volumes, through the whole ModelBundle.assess path:
preprocessing, one compiled pass, metadata checks). Out of domain:
  other     the other bundle's test data (adrenal masks for phantom-lesion, CT phantoms for adrenal3d)
  brain     brain MRIs shipped with packages: nibabel's test anatomical.nii and example4d.nii.gz,
            and, when nilearn is installed, its MNI152 T1 template at 1 and 2 mm
  noise     white and smoothed random volumes with the in-domain shape, spacing and dtype
  scale     in-domain test volumes zoomed 2x (centre crop) or shrunk 0.5x (padded with their
            background), same shape and spacing: only the anatomy's size is wrong
Reported: AUROC of DomainCheck.score (in-domain vs each set and all pooled; also of the
feature score alone, without the metadata checks), the share of
in-domain volumes that pass, and the AUROC of the uncertainty for misclassified vs correct
test cases. Timing: assess() against predict() on one volume (the <= 3x budget).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from bench.common import interleaved, report
from vol3d_gui.core.volume import Volume

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("VOL3D_DATASETS", REPO.parent / "shared" / "datasets"))
ADRENAL = DATASETS / "adrenalmnist3d_64.npz"
PHANTOM_STUDY = {"n": 400, "seed": 0}  # the phantom-lesion card's training study


def phantom_test_volumes(n: int | None = None) -> list[tuple[Volume, int]]:
    from vol3d_gui.core.phantom import phantom_study

    items = phantom_study(**PHANTOM_STUDY).split("test")[:n]
    return [(it.load(), int(it.label)) for it in items]


def adrenal_test_volumes(n: int | None = None) -> list[tuple[Volume, int]]:
    from vol3d_gui.core.study import open_study

    items = open_study(ADRENAL).split("test")[:n]
    return [(it.load(), int(it.label)) for it in items]


def brain_volumes() -> list[Volume]:
    import nibabel as nib

    from vol3d_gui.core.io import load_volume

    data = Path(nib.__file__).parent / "tests" / "data"
    vols = [load_volume(data / "anatomical.nii"), load_volume(data / "example4d.nii.gz")]
    try:
        from nilearn.datasets import load_mni152_template
    except ImportError:
        return vols
    for res in (1, 2):
        img = nib.as_closest_canonical(load_mni152_template(resolution=res))
        # no modality in the metadata, as with any NIfTI file: the other checks must catch it
        vols.append(Volume(np.asarray(img.dataobj), img.affine, name=f"MNI152 T1 {res} mm"))
    return vols


def noise_volumes(like: Volume, n: int = 20, seed: int = 0) -> list[Volume]:
    """Half white noise, half smoothed noise, spanning the in-domain dtype's usual range."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(like.dtype) if np.issubdtype(like.dtype, np.integer) else None
    lo, hi = (0, 255) if like.dtype == np.uint8 else (-1000, 1000)
    out = []
    for i in range(n):
        mean, sd = rng.uniform(lo, hi), rng.uniform(0.02, 0.5) * (hi - lo)
        a = rng.normal(mean, sd, like.shape)
        if i % 2:
            a = ndimage.gaussian_filter(a, rng.uniform(1, 4))
            a = (a - a.mean()) / (a.std() + 1e-9) * sd + mean
        if info is not None:
            a = np.clip(np.rint(a), max(info.min, -1024 if lo < 0 else 0), min(info.max, 3071))
        out.append(Volume(a.astype(like.dtype), like.affine.copy(), name=f"noise {i}"))
    return out


def rescaled(vol: Volume, factor: float) -> Volume:
    """The same field of view with the anatomy ``factor`` times its size (shape, spacing kept)."""
    a = np.asarray(vol.data, np.float32)
    if factor > 1:
        crop = [slice(int(s * (1 - 1 / factor) / 2), int(s * (1 - 1 / factor) / 2) + int(round(s / factor)))
                for s in a.shape]
        part = a[tuple(crop)]
        z = ndimage.zoom(part, [s / c for s, c in zip(a.shape, part.shape)], order=1, grid_mode=True,
                         mode="nearest")
    else:
        small = ndimage.zoom(a, factor, order=1, grid_mode=True, mode="nearest")
        z = np.full(a.shape, float(np.percentile(a, 1)), np.float32)
        off = [(s - t) // 2 for s, t in zip(a.shape, small.shape)]
        z[tuple(slice(o, o + t) for o, t in zip(off, small.shape))] = small
    z = z[: a.shape[0], : a.shape[1], : a.shape[2]]
    z = np.pad(z, [(0, s - t) for s, t in zip(a.shape, z.shape)], mode="edge")
    return Volume(np.rint(z).astype(vol.dtype), vol.affine.copy(), name=f"{vol.name} x{factor:g}",
                  meta=dict(vol.meta))


def evaluate(bundle, in_domain: list[tuple[Volume, int]], ood: dict[str, list[Volume]]) -> dict:
    from vol3d_gui.ml.evaluation import binary_auc

    res = [bundle.assess(v) for v, _ in in_domain]
    y = np.array([lab for _, lab in in_domain])
    scores_in = np.array([c.score for _, c in res])
    feats_in = feature_only(bundle, [v for v, _ in in_domain])
    shown = np.array([bundle.decide(p.probabilities) for p, _ in res])
    unc = np.array([p.uncertainty for p, _ in res])
    wrong = shown != y
    out = {"model": bundle.label, "n_in_domain": len(in_domain),
           "in_domain_pass_rate": float(np.mean([c.in_domain for _, c in res])),
           "n_errors": int(wrong.sum()),
           "uncertainty_error_auroc": binary_auc(wrong, unc) if 0 < wrong.sum() < len(wrong) else None,
           "ood": {}}
    pooled = []
    for name, vols in ood.items():
        checks = [bundle.check_domain(v) for v in vols]
        s = np.array([c.score for c in checks])
        pooled.append(s)
        out["ood"][name] = {"n": len(vols), "auroc": binary_auc(np.r_[np.zeros(len(s_in := scores_in)), np.ones(len(s))],
                                                                  np.r_[s_in, s]),
                            "flagged": float(np.mean([not c.in_domain for c in checks])),
                            # the network's half alone, without the metadata checks
                            "auroc_features_only": binary_auc(np.r_[np.zeros(len(feats_in)), np.ones(len(s))],
                                                              np.r_[feats_in, feature_only(bundle, vols)]),
                            "example_reason": next((c.reasons[0] for c in checks if c.reasons), None)}
    allood = np.concatenate(pooled)
    out["ood_auroc_pooled"] = binary_auc(np.r_[np.zeros(len(scores_in)), np.ones(len(allood))],
                                         np.r_[scores_in, allood])
    out["ood_auroc_min_over_sets"] = min(v["auroc"] for v in out["ood"].values())
    return out


def feature_only(bundle, vols) -> np.ndarray:
    return np.array([bundle.analyse_tensor(bundle.preprocess(v)).feature_score for v in vols])


def sets_for(name: str, n_in: int | None = None):
    """(in-domain (Volume, label) list, {set name: [Volume]}) for a bundled model."""
    phantoms = phantom_test_volumes(n_in if name == "phantom-lesion" else 40)
    if name == "phantom-lesion":
        inside, other = phantoms, [v for v, _ in adrenal_test_volumes(40)]
    else:
        inside, other = adrenal_test_volumes(n_in), [v for v, _ in phantoms]
    like = inside[0][0]
    base = [v for v, _ in inside[:10]]
    return inside, {"other": other, "brain": brain_volumes(), "noise": noise_volumes(like),
                    "scale": [rescaled(v, 2.0) for v in base] + [rescaled(v, 0.5) for v in base]}


def bench_one(name: str) -> dict:
    from vol3d_gui.ml.bundle import load_bundle

    bundle = load_bundle(REPO / "models" / f"{name}.keras")
    inside, ood = sets_for(name)
    r = evaluate(bundle, inside, ood)
    r["uncertainty_candidates"] = uncertainty_candidates(bundle, inside)
    vol = inside[0][0]
    r["timing"] = interleaved({"predict": lambda: bundle.predict(vol),
                               "assess (domain + uncertainty)": lambda: bundle.assess(vol)},
                              repeat=9, warmup=2)
    r["assess_over_predict"] = (r["timing"]["assess (domain + uncertainty)"]["median_s"]
                                / r["timing"]["predict"]["median_s"])
    return r


def uncertainty_candidates(bundle, inside) -> dict:
    """AUROC for errors of other uncertainty measures on the same test cases, for the record
    of why the predictive entropy of MC dropout was chosen."""
    from vol3d_gui.ml.evaluation import binary_auc
    from vol3d_gui.ml.uncertainty import analyse, entropy_bits, head_weights

    x = np.stack([bundle.preprocess(v) for v, _ in inside])
    y = np.array([lab for _, lab in inside])
    a = analyse(bundle, x)
    kernel, bias, rate = head_weights(bundle.model)
    rng = np.random.default_rng(0)
    keep = (rng.random((64, 1, a.features.shape[1])) >= rate) / (1.0 - rate)  # as mc_dropout
    z = np.einsum("knd,dc->knc", keep * a.features[None], kernel) + bias
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    mean = p.mean(0)
    cands = {"mc_entropy (used)": entropy_bits(mean), "softmax_entropy": entropy_bits(a.probabilities),
             "mc_mutual_information": entropy_bits(mean) - entropy_bits(p).mean(0),
             "mc_std_positive": p[..., -1].std(0)}
    out = {}
    for rule, pred in (("operating_point", np.array([bundle.decide(q) for q in a.probabilities])),
                       ("argmax", a.probabilities.argmax(1))):
        wrong = pred != y
        out[rule] = {"n_errors": int(wrong.sum()),
                     **{k: binary_auc(wrong, v) if 0 < wrong.sum() < len(y) else None for k, v in cands.items()}}
    return out


def main(names=("phantom-lesion", "adrenal3d")) -> dict:
    if not ADRENAL.is_file():
        print(f"skipped: {ADRENAL} is absent")
        return {}
    return report("domain", {name: bench_one(name) for name in names})


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("phantom-lesion", "adrenal3d"))
