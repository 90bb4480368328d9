"""The bundled cards' trust fields, and the issue's measured promises for the bundled models
(the slow test: every test volume and every out-of-domain set goes through
ModelBundle.assess, as in `python -m bench domain`):

- out-of-domain AUROC of DomainCheck.score >= 0.95 against the other bundle's data, brain
  MRIs, random noise and volumes at the wrong scale (each set and pooled);
- >= 95% of the in-domain test split passes;
- the uncertainty ranks misclassified test cases above correct ones with AUROC >= 0.75.
"""

import pytest

from tests.ml.test_bundled_models import _bundle


@pytest.mark.slow
@pytest.mark.parametrize("name", ["phantom-lesion", "adrenal3d"])
def test_bundled_model_knows_its_domain_and_its_errors(name, adrenal64, monkeypatch):
    import bench.bench_domain as bd

    monkeypatch.setattr(bd, "ADRENAL", adrenal64)  # the other bundle's data, wherever the fixture found it
    bundle = _bundle(name)
    if not (bundle.card.get("domain") or {}).get("features"):
        pytest.skip(f"{name}'s card has no domain (vol3d card-domain, see models/README.md)")
    inside, ood = bd.sets_for(name)
    r = bd.evaluate(bundle, inside, ood)
    assert set(r["ood"]) == {"other", "brain", "noise", "scale"} and all(v["n"] >= 4 for v in r["ood"].values())
    for set_name, v in r["ood"].items():
        assert v["auroc"] >= 0.95, (set_name, v)
    assert r["ood_auroc_pooled"] >= 0.95
    assert r["in_domain_pass_rate"] >= 0.95
    assert r["uncertainty_error_auroc"] >= 0.75


@pytest.mark.parametrize("name", ["phantom-lesion", "adrenal3d"])
def test_bundled_cards_hold_domain_calibration_and_operating_point(name):
    card = _bundle(name).card
    for key in ("domain", "reliability", "operating_point", "uncertainty"):
        assert key in card, f"{name}: run the vol3d card-domain command of models/README.md"
    assert card["domain"]["features"]["threshold"] > 0
    assert card["domain"]["test_pass_rate_features"] >= 0.95
    op = card["operating_point"]
    if op.get("target_sensitivity") is not None:  # a screening point (vol3d card-domain --target-sensitivity)
        assert op["val_sensitivity"] >= op["target_sensitivity"]
    else:  # the balanced point: neither class given up for the other on validation
        assert min(op["val_sensitivity"], op["val_specificity"]) >= 0.6
    assert card["uncertainty"]["error_auroc"] >= 0.75
    assert sum(b["n"] for b in card["reliability"]["bins"]) == card["reliability"]["n"] == card["metrics"]["n"]


def test_phantom_model_accepts_a_new_phantom_and_flags_a_brain():
    import nibabel as nib

    from vol3d_gui.core.io import load_volume
    from vol3d_gui.core.phantom import lesion_phantom

    bundle = _bundle("phantom-lesion")
    if "domain" not in bundle.card:
        pytest.skip("the card has no domain")
    vol, _ = lesion_phantom(987654, True)  # a seed no split drew
    assert bundle.check_domain(vol).in_domain
    brain = load_volume(f"{nib.__path__[0]}/tests/data/anatomical.nii")
    check = bundle.check_domain(brain)
    assert not check.in_domain and any("field of view 66 x 82 x 50 mm" in r for r in check.reasons)
