"""Fit what a card says about a model's domain, calibration and operating point, from
forward passes only (no training): run at the end of `vol3d train` and by `vol3d card-domain`
for bundles trained before these fields existed.

Splits play their usual roles: the feature reference and the metadata ranges come from the
training split, the feature threshold (97.5% pass) and the operating point from validation,
and the reliability table, ECE, test sensitivity/specificity and the uncertainty's AUROC for
errors from the test split, which none of the fitting saw.
"""

from __future__ import annotations

import numpy as np

from vol3d_gui.ml import domain
from vol3d_gui.ml.evaluation import binary_auc
from vol3d_gui.ml.reliability import decide, operating_point_record, reliability_table
from vol3d_gui.ml.uncertainty import MC_SAMPLES, analyse


def fit_card_fields(bundle, splits: dict, geometries, target_sensitivity: float | None = None,
                    held_out: tuple | None = None) -> dict:
    """New card fields from ``splits`` ({"train"|"val"|"test": (x, y)}, preprocessed as the
    card says) and the training volumes' geometries (dicts as domain.volume_geometry gives).
    ``target_sensitivity`` None: the operating point with the highest validation balanced
    accuracy; a number: the highest threshold reaching that sensitivity on validation.
    ``held_out``: (labels, probabilities, name) the operating point is chosen on instead of the
    validation split's forward pass: a fold ensemble's out-of-fold predictions (every pooled
    case scored by the member that never saw it; the validation split trained most members)."""
    x_tr, y_tr = splits["train"]
    x_val, y_val = splits["val"]
    a_tr, a_val = analyse(bundle, x_tr), analyse(bundle, x_val)
    dom = domain.geometry_reference(geometries)
    dom["intensity"] = domain.intensity_reference(x_tr)
    dom["features"] = domain.fit_feature_reference(a_tr.features, y_tr, a_val.features)
    dom["features"]["layer"] = "input of the final Dense layer ('probabilities')"
    fields: dict = {"domain": dom}
    test = splits.get("test")
    a_test = analyse(bundle, test[0]) if test is not None and len(test[1]) else None
    y_op, p_op, op_name = held_out if held_out is not None else (y_val, a_val.probabilities, "val")
    if len(bundle.class_names) == 2 and (np.asarray(y_op) == 1).any():
        fields["operating_point"] = operating_point_record(
            y_op, p_op, None if a_test is None else test[1],
            None if a_test is None else a_test.probabilities, target_sensitivity, chosen_on=op_name)
    if a_test is not None:
        y_test = np.asarray(test[1]).astype(int)
        fields["reliability"] = {"split": "test", **reliability_table(y_test, a_test.probabilities)}
        shown = np.array([decide(fields, p) for p in a_test.probabilities])
        wrong = shown != y_test
        fields["uncertainty"] = {
            "method": f"MC dropout on the final layer, {MC_SAMPLES} samples; predictive entropy (bits)",
            "split": "test", "n": int(len(y_test)), "n_errors": int(wrong.sum()),
            "error_auroc": binary_auc(wrong, a_test.uncertainty) if 0 < wrong.sum() < len(wrong) else None,
            "error_definition": "displayed class (operating point) differs from the truth"}
        feats = domain.feature_score({"domain": dom}, a_test.features)
        fields["domain"]["test_pass_rate_features"] = float(np.mean(feats <= 1.0))
    return fields
