"""The issue's measured promises for the bundled models (slow: every test volume and every
out-of-domain set goes through ModelBundle.assess, as in `python -m bench domain`):

- out-of-domain AUROC of DomainCheck.score >= 0.95 against the other bundle's data, brain
  MRIs, random noise and volumes at the wrong scale (each set and pooled);
- >= 95% of the in-domain test split passes;
- the uncertainty ranks misclassified test cases above correct ones with AUROC >= 0.75.
"""

import pytest

from tests.ml.test_bundled_models import _bundle

pytestmark = pytest.mark.slow


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
