"""`vol3d train --folds K` end to end on tiny data: one bundle of K members, calibrated and
given its operating point on the out-of-fold predictions, which `vol3d card-domain` refits
from the card without retraining; `vol3d evaluate` and the GUI-facing bundle API read it."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from vol3d_gui.cli import main


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    from tests.conftest import dataset_path

    data = dataset_path("adrenalmnist3d_28.npz")
    out = tmp_path_factory.mktemp("folds") / "cv"
    rc = main(["train", "--dataset", str(data), "--out", str(out), "--epochs", "1", "--limit", "30",
               "--input-size", "16", "--width", "2", "--batch-size", "8", "--folds", "3", "--seed", "2"])
    assert rc == 0
    return data, out


def test_card_describes_the_members_and_the_out_of_fold_fit(folded):
    _, out = folded
    card = json.loads(out.with_suffix(".json").read_text())
    ens = card["ensemble"]
    assert ens["folds"] == 3 and ens["n_pooled"] == 60 and len(ens["oof_log_odds"]) == 60
    assert ens["pooled_splits"] == ["train", "val"] and "validation" in ens
    assert [m["member"] for m in card["training"]["members"]] == [0, 1, 2]
    assert sum(m["n_fold"] for m in card["training"]["members"]) == 60
    assert all(m["n_train"] + m["n_fold"] == 60 for m in card["training"]["members"])
    assert card["gradcam_layers"] == ["m0_gradcam_conv", "m1_gradcam_conv", "m2_gradcam_conv"]
    assert card["gradcam_layer"] == "m0_gradcam_conv"
    if card["calibration"]:  # a 1-epoch model may not rank the pooled cases (then it is kept as trained)
        assert card["calibration"]["n"] == 60 and card["calibration"]["split"].startswith("out-of-fold")
    assert card["operating_point"]["chosen_on"] == "out-of-fold (train+val)"
    assert "--folds 3" in card["training"]["command"]


def test_bundle_api_and_evaluate_read_the_ensemble(folded, capsys):
    from vol3d_gui.core.phantom import lesion_phantom
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.gradcam import gradcam

    data, out = folded
    bundle = load_bundle(out)
    vol, _ = lesion_phantom(0, True, (20, 20, 16))
    detail = bundle.assess_detail(vol)  # what the model panel shows: MC dropout and the domain check
    np.testing.assert_allclose(detail["probabilities"], bundle.predict(vol), atol=1e-5)
    assert 0.0 <= detail["uncertainty"] <= 1.0 and np.asarray(detail["spread"]).shape == (2,)
    assert detail["domain"] and detail["class_index"] in (0, 1)
    sal = gradcam(bundle, vol)
    assert sal.shape == (2, 2, 2) and sal.meta["layer"].count("+") == 2
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--dataset", str(data), "--split", "test",
                 "--limit", "30", "--json"]) == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = json.loads(out.with_suffix(".json").read_text())
    assert m["auc"] == pytest.approx(card["metrics"]["auc"], abs=1e-6)


def test_out_of_fold_predictions_belong_to_the_ensemble_only():
    from vol3d_gui.commands.train_folds import card_oof
    from vol3d_gui.ml.datasets import Dataset, Split

    ds = Dataset("d", ["a", "b"], {}, splits={"train": Split(None, np.array([0, 1, 1])),
                                              "val": Split(None, np.array([0, 1]))})
    card = {"ensemble": {"oof_log_odds": [-1.0, 0.0, 2.0, -3.0, 1.0], "pooled_splits": ["train", "val"]},
            "calibration": {"slope": 2.0, "intercept": -1.0}, "parent": None}
    y, p, name = card_oof(card, ds)
    np.testing.assert_array_equal(y, [0, 1, 1, 0, 1])
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-(2.0 * np.array([-1.0, 0, 2, -3, 1]) - 1.0))))
    assert name.startswith("out-of-fold")
    assert card_oof({**card, "parent": "cv v3"}, ds) is None  # fine-tuned: the parent's predictions
    with pytest.raises(ValueError, match="5 out-of-fold predictions for 3"):
        card_oof({**card, "ensemble": {**card["ensemble"], "pooled_splits": ["train"]}}, ds)


def test_card_domain_refits_the_point_from_the_out_of_fold_predictions(folded):
    data, out = folded
    before = json.loads(out.with_suffix(".json").read_text())
    assert main(["card-domain", "--model", str(out), "--dataset", str(data)]) == 0
    after = json.loads(out.with_suffix(".json").read_text())
    op0, op1 = before["operating_point"], after["operating_point"]
    assert op1["chosen_on"] == "out-of-fold (train+val)"
    assert op1["threshold"] == pytest.approx(op0["threshold"], rel=1e-4)  # the same data, the same point
    assert after["ensemble"] == before["ensemble"]


def test_a_fine_tuned_ensemble_drops_its_parents_out_of_fold_scores(folded, tmp_path):
    """They scored the parent's weights: a fine-tuned card keeps what the ensemble is (its
    folds, its members' layers) but not those predictions."""
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.finetune import finetune_arrays

    _, out = folded
    bundle = load_bundle(out)
    rng = np.random.default_rng(0)
    x = rng.random((8, *bundle.input_shape, 1), dtype=np.float32)
    result = finetune_arrays(bundle, x, np.array([0, 1] * 4), out_dir=tmp_path, epochs=1, augment=False)
    card = json.loads(Path(result["path"]).with_suffix(".json").read_text())
    assert card["parent"] and card["ensemble"]["folds"] == 3 and "oof_log_odds" not in card["ensemble"]
    assert card["gradcam_layers"] == bundle.gradcam_layers
    assert load_bundle(result["path"]).gradcam_layers == bundle.gradcam_layers


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Three members of two recipes: the plain network and the erosion-profile head (its second
    path from the input, a BatchNorm of its own) without intensity jitter."""
    from tests.conftest import dataset_path

    data = dataset_path("adrenalmnist3d_28.npz")
    out = tmp_path_factory.mktemp("mixed") / "cv"
    rc = main(["train", "--dataset", str(data), "--out", str(out), "--epochs", "1", "--limit", "30",
               "--input-size", "16", "--width", "2", "--batch-size", "8", "--folds", "3", "--seed", "2",
               "--fold-recipe", "default", "--fold-recipe=--shape-features 2 --jitter 0 --width 3"])
    assert rc == 0
    return data, out


def test_members_of_different_recipes_make_one_bundle(mixed, capsys):
    from vol3d_gui.cli import _command_parser
    from vol3d_gui.core.phantom import lesion_phantom
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.gradcam import gradcam

    data, out = mixed
    card = json.loads(out.with_suffix(".json").read_text())
    members = card["training"]["members"]
    assert [m["recipe"] for m in members] == ["default", "--shape-features 2 --jitter 0 --width 3", "default"]
    assert members[0]["options"] == {} and members[2]["options"] == {}
    assert members[1]["options"] == {"shape_features": 2, "jitter": 0.0, "width": 3}
    assert card["ensemble"]["member_recipes"] == [m["recipe"] for m in members]
    bundle = load_bundle(out)  # safe mode: the erosion layers are Keras' own
    names = [layer.name for layer in bundle.model.layers]
    assert "m1_shape_bn" in names and not any(n.startswith(("m0_shape", "m2_shape")) for n in names)
    assert bundle.model.get_layer("m1_dense").input.shape[-1] == 4 * 3 + 3  # width 3's trunk + 3 erosion means
    vol, _ = lesion_phantom(0, True, (20, 20, 16))
    detail = bundle.assess_detail(vol)
    np.testing.assert_allclose(detail["probabilities"], bundle.predict(vol), atol=1e-5)
    assert detail["domain"] and gradcam(bundle, vol).shape == (2, 2, 2)
    # the card's command reproduces the recipes: it parses back to the same options
    args = _command_parser("train")[0].parse_args(shlex.split(card["training"]["command"])[2:])
    assert args.fold_recipe == ["default", "--shape-features 2 --jitter 0 --width 3"]
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--dataset", str(data), "--split", "test",
                 "--limit", "30", "--json"]) == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert m["auc"] == pytest.approx(card["metrics"]["auc"], abs=1e-6)


@pytest.mark.parametrize("recipe, message", [("--input-size 32", "input_size"), ("--seed 3", "seed"),
                                             ("--cam-stride 4", "cam_stride")])
def test_a_recipe_may_not_change_what_the_members_share(recipe, message):
    import argparse

    from vol3d_gui.commands.train_folds import member_recipes

    with pytest.raises(SystemExit, match=message):
        member_recipes(argparse.Namespace(folds=3, fold_recipe=[recipe]))


def test_recipes_cycle_over_the_folds_and_use_the_trainers_types():
    import argparse

    from vol3d_gui.commands.train_folds import member_recipes

    r = member_recipes(argparse.Namespace(folds=5, fold_recipe=["default", "--bn-refresh 192 --no-augment"]))
    assert [t for t, _ in r] == ["default", "--bn-refresh 192 --no-augment"] * 2 + ["default"]
    assert r[1][1] == {"bn_refresh": 192, "augment": False} and r[4][1] == {}
    assert member_recipes(argparse.Namespace(folds=2, fold_recipe=None)) == [("default", {}), ("default", {})]


def test_mean_fold_auc_is_recorded_with_its_interval(folded):
    from vol3d_gui.ml.intervals import fold_auc_influence

    _, out = folded
    ens = json.loads(out.with_suffix(".json").read_text())["ensemble"]
    assert len(ens["fold_aucs"]) == 3
    finite = [a for a in ens["fold_aucs"] if np.isfinite(a)]
    assert ens["fold_auc_mean"] == pytest.approx(np.mean(finite))
    lo, hi = ens["fold_auc_interval"]
    assert lo <= ens["fold_auc_mean"] <= hi
    # the card's out-of-fold log-odds give the same per-fold AUCs (calibration is monotone)
    from vol3d_gui.ml.ensemble import stratified_folds

    d = np.asarray(ens["oof_log_odds"])
    y = _pooled_labels(folded)
    aucs, mean, _ = fold_auc_influence(y, np.c_[-d, d], stratified_folds(y, 3, 2))
    assert mean == pytest.approx(ens["fold_auc_mean"], abs=1e-4)


def _pooled_labels(folded):
    from vol3d_gui.ml.datasets import load_npz_dataset

    data, _ = folded
    ds = load_npz_dataset(data, (16, 16, 16), limit=30, splits=("train", "val"))
    return np.concatenate([ds.splits["train"].y, ds.splits["val"].y])


def test_compare_oof_pairs_two_recipes_on_the_same_folds_without_the_test_split(folded, mixed, tmp_path, capsys):
    import shutil

    data, plain = folded
    _, recipes = mixed
    capsys.readouterr()
    args = ["--dataset", str(data), "--split", "oof", "--json"]
    assert main(["compare", "--model", str(recipes), "--model", str(plain), *args]) == 0
    c = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cards = [json.loads(p.with_suffix(".json").read_text())["ensemble"] for p in (recipes, plain)]
    assert c["n"] == 60 and c["split"] == "oof"
    for tag, ens in zip("ab", cards):
        assert c[tag]["auc"] == pytest.approx(ens["oof_auc"], abs=1e-4)  # the pooled figure the card holds
        assert c[tag]["fold_auc_mean"] == pytest.approx(ens["fold_auc_mean"], abs=1e-4)
    f = c["fold_auc_difference"]
    assert f["difference"] == pytest.approx(c["a"]["fold_auc_mean"] - c["b"]["fold_auc_mean"])
    assert "mean of the folds" in f["method"] and f["interval"][0] <= f["difference"] <= f["interval"][1]
    # a model against itself: no difference, pooled or by fold
    assert main(["compare", "--model", str(plain), "--model", str(plain), *args]) == 0
    same = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert same["fold_auc_difference"]["difference"] == 0 == same["auc_difference"]["difference"]
    # not the same folds, or not an ensemble: refused by name, nothing compared
    card = json.loads(plain.with_suffix(".json").read_text())
    for name, change, message in [("seed", {"fold_seed": 5}, "same folds"),
                                  ("single", {"oof_log_odds": None}, "no out-of-fold")]:
        copy = tmp_path / f"{name}.keras"
        shutil.copy(plain.with_suffix(".keras"), copy)
        copy.with_suffix(".json").write_text(json.dumps({**card, "ensemble": {**card["ensemble"], **change}}))
        assert main(["compare", "--model", str(copy), "--model", str(plain), *args]) == 2
        assert message in capsys.readouterr().err
