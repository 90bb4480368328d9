"""`vol3d train`, `vol3d evaluate` and `vol3d predict` end to end on tiny data."""

import json

import numpy as np
import pytest

from vol3d_gui.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import dataset_path

    data = dataset_path("adrenalmnist3d_28.npz")
    out = tmp_path_factory.mktemp("cli") / "tiny-adrenal"
    rc = main(["train", "--dataset", str(data), "--out", str(out), "--epochs", "1", "--limit", "24",
               "--input-size", "16", "--width", "2", "--batch-size", "8", "--augment", "--seed", "3"])
    assert rc == 0
    return data, out


def test_train_writes_a_bundle_with_test_metrics_in_its_card(trained):
    _, out = trained
    card = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".keras").is_file()
    assert card["class_names"] == ["normal", "hyperplasia"]
    assert card["input_shape"] == [16, 16, 16]
    assert card["preprocessing"] == {"type": "scale", "divisor": 255.0}
    assert card["metrics"]["split"] == "test" and card["metrics"]["n"] == 24
    assert len(card["training_data"]["sha256"]) == 64
    assert card["training"]["seed"] == 3 and card["training"]["epochs_run"] == 1
    assert card["framework"]["keras"]


def test_train_refuses_to_overwrite(trained, capsys):
    data, out = trained
    rc = main(["train", "--dataset", str(data), "--out", str(out), "--epochs", "1", "--limit", "8",
               "--input-size", "16", "--width", "2"])
    assert rc == 2
    assert "never overwritten" in capsys.readouterr().err


def test_evaluate_json_matches_the_card(trained, capsys):
    data, out = trained
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--dataset", str(data), "--split", "test",
                 "--limit", "24", "--json"]) == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = json.loads(out.with_suffix(".json").read_text())
    assert m["n"] == 24
    assert m["auc"] == pytest.approx(card["metrics"]["auc"], abs=1e-6)
    assert m["intervals"]["auc"] == pytest.approx(card["metrics"]["intervals"]["auc"], abs=1e-6)
    assert m["confusion"] == card["metrics"]["confusion"]
    assert sum(map(sum, m["confusion"])) == 24
    if "at_operating_point" in card["metrics"]:  # the class shown to a reader, as the card measured it
        assert m["at_operating_point"]["confusion"] == card["metrics"]["at_operating_point"]["confusion"]


def test_evaluate_text_report(trained, capsys):
    data, out = trained
    assert main(["evaluate", "--model", str(out), "--dataset", str(data), "--limit", "8"]) == 0
    text = capsys.readouterr().out
    assert "AUC" in text and "recall hyperplasia" in text and "confusion" in text
    assert "95% CI" in text and "DeLong" in text


def test_evaluate_record_writes_the_measured_test_figures_and_nothing_else(trained, tmp_path, capsys):
    import shutil

    from tests.conftest import dataset_path

    data, out = trained
    copy = tmp_path / "rec.keras"
    shutil.copy(out.with_suffix(".keras"), copy)
    shutil.copy(out.with_suffix(".json"), copy.with_suffix(".json"))
    before, weights = json.loads(copy.with_suffix(".json").read_text()), copy.read_bytes()
    refused = {"--limit": ["--limit", "8"], "only the test split": ["--split", "val"]}
    for why, extra in refused.items():
        capsys.readouterr()
        assert main(["evaluate", "--model", str(copy), "--dataset", str(data), "--record", *extra]) == 2
        assert why in capsys.readouterr().err
    assert main(["evaluate", "--model", str(copy), "--dataset", str(dataset_path("vesselmnist3d_28.npz")),
                 "--record"]) == 2
    assert "not the data" in capsys.readouterr().err
    assert json.loads(copy.with_suffix(".json").read_text()) == before  # a refusal writes nothing
    assert main(["evaluate", "--model", str(copy), "--dataset", str(data), "--record", "--json"]) == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = json.loads(copy.with_suffix(".json").read_text())
    assert copy.read_bytes() == weights
    assert {k: v for k, v in card.items() if k not in ("metrics", "card_format")} == \
        {k: v for k, v in before.items() if k not in ("metrics", "card_format")}
    recorded = card["metrics"]
    assert recorded["n"] == m["n"] > 24 and recorded["auc"] == pytest.approx(m["auc"])  # the whole split
    assert recorded["intervals"]["auc"] == pytest.approx(m["intervals"]["auc"])
    assert recorded["split"] == "test" and "vol3d evaluate --record" in recorded["recorded_by"]


def test_compare_is_paired_and_refuses_models_of_other_classes(trained, tmp_path, capsys, phantom_bundle):
    data, out = trained
    other = tmp_path / "other"
    assert main(["train", "--dataset", str(data), "--out", str(other), "--epochs", "1", "--limit", "24",
                 "--input-size", "16", "--width", "2", "--batch-size", "8", "--seed", "4"]) == 0
    capsys.readouterr()
    args = ["--dataset", str(data), "--limit", "40", "--json"]
    assert main(["compare", "--model", str(out), "--model", str(other), *args]) == 0
    c = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for tag, path in (("a", out), ("b", other)):
        assert main(["evaluate", "--model", str(path), "--dataset", str(data), "--limit", "40", "--json"]) == 0
        m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert c[tag]["auc"] == pytest.approx(m["auc"]) and c[tag]["auc_interval"] == pytest.approx(m["intervals"]["auc"])
    d = c["auc_difference"]
    assert d["difference"] == pytest.approx(c["a"]["auc"] - c["b"]["auc"])
    assert d["interval"][0] <= d["difference"] <= d["interval"][1] and 0 <= d["p_value"] <= 1
    assert main(["compare", "--model", str(out), "--model", str(out), *args]) == 0
    same = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert same["auc_difference"]["difference"] == 0 and same["decisions"]["p_value"] == 1.0
    assert main(["compare", "--model", str(out), "--model", str(phantom_bundle.path), *args]) == 2
    assert "different classes" in capsys.readouterr().err
    assert main(["compare", "--model", str(out), *args]) == 2
    assert "exactly two" in capsys.readouterr().err


def test_predict_prints_one_json_line_per_volume(trained, tmp_path, capsys):
    import nibabel as nib

    _, out = trained
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"v{i}.nii.gz"
        nib.save(nib.Nifti1Image(rng.integers(0, 255, (20, 18, 16)).astype(np.uint8), np.eye(4)), p)
        paths.append(str(p))
    missing = str(tmp_path / "missing.nii")
    capsys.readouterr()
    rc = main(["predict", "--model", str(out), *paths, missing])
    lines = [json.loads(s) for s in capsys.readouterr().out.strip().splitlines()]
    assert rc == 1  # one input could not be read
    assert [d["path"] for d in lines] == [*paths, missing]
    for d in lines[:2]:
        assert d["class"] in ("normal", "hyperplasia")
        assert sum(d["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= d["uncertainty"] <= 1.0
        # uniform noise in a 20 mm box is nothing like 28 mm adrenal masks: flagged, with reasons
        assert d["in_domain"] is False and d["domain"]["reasons"] and d["domain"]["score"] > 1.0
    assert "error" in lines[2]


def test_train_records_domain_reliability_and_operating_point(trained):
    _, out = trained
    card = json.loads(out.with_suffix(".json").read_text())
    dom = card["domain"]
    assert dom["fov_mm"] == {"min": [28.0, 28.0, 28.0], "max": [28.0, 28.0, 28.0]}
    assert dom["features"]["threshold"] > 0 and dom["features"]["n_train"] == 24
    assert card["reliability"]["split"] == "test" and card["reliability"]["n"] == 24
    assert 0.0 <= card["reliability"]["ece"] <= 1.0
    if "operating_point" in card:  # the 24 validation cases hold a positive
        op = card["operating_point"]
        assert op["rule"].startswith("balanced") and 0.0 < op["threshold"] < 1.0
        at = card["metrics"]["at_operating_point"]
        assert at["threshold"] == op["threshold"] and sum(map(sum, at["confusion"])) == 24
        assert at["per_class_recall"]["hyperplasia"] == pytest.approx(op["test_sensitivity"])


def test_train_defaults_keep_a_npz_at_its_own_size(tmp_path):
    # no --input-size: 28^3 MedMNIST is trained at 28^3, not upsampled
    from tests.conftest import dataset_path

    data = dataset_path("adrenalmnist3d_28.npz")
    out = tmp_path / "native"
    assert main(["train", "--dataset", str(data), "--out", str(out), "--epochs", "1", "--limit", "16",
                 "--width", "2", "--batch-size", "8", "--no-augment"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["input_shape"] == [28, 28, 28]
    t = card["training"]
    assert t["augment"] is False and t["ema"] is True and t["schedule"] == "cosine" and t["weight_decay"] > 0


def test_train_resnet_with_shape_features_records_its_options_and_reloads(tmp_path):
    # the adrenal3d options of issue 15 end to end: the card says how the network was built,
    # and the bundle loads in safe mode with its Grad-CAM layer
    from tests.conftest import dataset_path
    from vol3d_gui.ml.bundle import load_bundle

    data = dataset_path("adrenalmnist3d_28.npz")
    out = tmp_path / "resnet"
    assert main(["train", "--dataset", str(data), "--out", str(out), "--epochs", "1", "--limit", "16",
                 "--input-size", "16", "--width", "2", "--batch-size", "8", "--arch", "resnet",
                 "--stem-stride", "2", "--shape-features", "2", "--jitter", "0", "--bn-refresh", "8"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    t = card["training"]
    assert (t["arch"], t["shape_features"], t["jitter"], t["bn_refresh"]) == ("resnet", 2, 0.0, 8)
    assert "--arch resnet" in t["command"] and "--shape-features 2" in t["command"]
    bundle = load_bundle(out.with_suffix(".keras"))
    assert tuple(bundle.model.get_layer(bundle.gradcam_layer).output.shape[1:4]) == (2, 2, 2)


def test_card_domain_reproduces_the_fields_and_keeps_the_weights(trained, tmp_path, capsys):
    import shutil

    data, out = trained
    copy = tmp_path / "copy.keras"
    shutil.copy(out.with_suffix(".keras"), copy)
    written = json.loads(out.with_suffix(".json").read_text())
    stripped = {k: v for k, v in written.items()
                if k not in ("domain", "reliability", "operating_point", "uncertainty")}
    copy.with_suffix(".json").write_text(json.dumps(stripped))
    weights = copy.read_bytes()
    assert main(["card-domain", "--model", str(copy), "--dataset", str(data)]) == 0
    card = json.loads(copy.with_suffix(".json").read_text())
    assert copy.read_bytes() == weights
    assert {k: card[k] for k in stripped} == stripped  # every earlier field kept as it was
    assert card["domain"]["features"]["threshold"] == pytest.approx(written["domain"]["features"]["threshold"],
                                                                    rel=1e-4)
    assert card["reliability"]["ece"] == pytest.approx(written["reliability"]["ece"], abs=1e-4)
    # the domain is what the model was trained on: other data is refused
    capsys.readouterr()
    from tests.conftest import dataset_path

    assert main(["card-domain", "--model", str(copy), "--dataset", str(dataset_path("vesselmnist3d_28.npz"))]) == 2
    assert "not the data" in capsys.readouterr().err


def test_bad_model_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"garbage")
    rc = main(["predict", "--model", str(bad), str(tmp_path / "x.nii")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bad" in err and "card" in err


def test_train_with_mask_depth_and_no_flips_records_both_and_the_bundle_predicts_with_it(tmp_path):
    from tests.conftest import dataset_path
    from vol3d_gui.core.volume import Volume
    from vol3d_gui.ml.bundle import load_bundle

    data = dataset_path("adrenalmnist3d_28.npz")
    out = tmp_path / "depth"
    assert main(["train", "--dataset", str(data), "--out", str(out), "--epochs", "1", "--limit", "16",
                 "--input-size", "16", "--width", "2", "--batch-size", "8", "--jitter", "0",
                 "--mask-depth", "6", "--no-flips"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["preprocessing"] == {"type": "mask_depth", "divisor": 255.0, "scale": 6.0}
    assert card["training"]["flips"] == [] and "--no-flips" in card["training"]["command"]
    assert "--mask-depth 6" in card["training"]["command"]
    bundle = load_bundle(out.with_suffix(".keras"))
    mask = np.zeros((28, 28, 28), np.uint8)
    mask[8:20, 8:20, 10:16] = 255
    x = bundle.preprocess(Volume(mask, np.eye(4)))
    assert x.shape == (16, 16, 16, 1) and 0 < x.max() <= 1.0
    assert bundle.predict(Volume(mask, np.eye(4))).shape == (2,)


@pytest.mark.parametrize("extra", [["--dataset", "phantom"], ["--window", "0", "100"]])
def test_mask_depth_is_refused_where_there_is_no_mask(tmp_path, capsys, extra):
    from tests.conftest import dataset_path

    args = ["train", "--dataset", str(dataset_path("adrenalmnist3d_28.npz")), "--out", str(tmp_path / "x"),
            "--mask-depth", "6", "--epochs", "1", "--limit", "8", *extra]
    with pytest.raises(SystemExit, match="mask-depth"):
        main(args)


def test_a_card_with_a_preprocessing_this_vol3d_does_not_know_is_refused_by_name(trained, tmp_path):
    import shutil

    from vol3d_gui.ml.bundle import ModelError, load_bundle

    _, out = trained
    copy = tmp_path / "future.keras"
    shutil.copy(out.with_suffix(".keras"), copy)
    card = json.loads(out.with_suffix(".json").read_text())
    card["preprocessing"] = {"type": "zscore"}
    copy.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="'zscore' is not one this vol3d knows"):
        load_bundle(copy)
