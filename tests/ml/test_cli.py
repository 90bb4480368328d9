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
    assert m["confusion"] == card["metrics"]["confusion"]
    assert sum(map(sum, m["confusion"])) == 24


def test_evaluate_text_report(trained, capsys):
    data, out = trained
    assert main(["evaluate", "--model", str(out), "--dataset", str(data), "--limit", "8"]) == 0
    text = capsys.readouterr().out
    assert "AUC" in text and "recall hyperplasia" in text and "confusion" in text


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
    assert "error" in lines[2]


def test_bad_model_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"garbage")
    rc = main(["predict", "--model", str(bad), str(tmp_path / "x.nii")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bad" in err and "card" in err
