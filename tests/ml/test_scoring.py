"""Scoring rows without an engine: items of a folder or manifest, one row per item, the
optional parts of the bundle contract (domain check, uncertainty, operating point)."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.io import save_nifti
from vol3d_gui.core.volume import Volume, centered_affine
from vol3d_gui.ml.scoring import ScoreItem, list_items, read_manifest, result_columns, score_batch


class StubBundle:
    """The part of ModelBundle that scoring uses; probabilities from the mean voxel."""

    name, version, class_names = "stub", "3", ["no", "yes"]

    def preprocess(self, vol):
        return np.full((2, 2, 2, 1), float(np.mean(vol.data)) / 1000.0, np.float32)

    def forward(self, x):
        p = 1.0 / (1.0 + np.exp(-x.reshape(len(x), -1).mean(axis=1)))
        return np.stack([1 - p, p], axis=1)


@dataclass
class Check:
    in_domain: bool
    score: float
    reasons: list


class TrustingStub(StubBundle):
    def check_domain(self, vol):
        big = float(np.mean(vol.data)) > 100
        return Check(not big, float(np.mean(vol.data)), ["mean above 100"] if big else [])

    def predict_with_uncertainty(self, vol):
        p = self.forward(self.preprocess(vol)[None])[0]
        return p, 1.0 - abs(p[1] - p[0])

    def decide(self, probs):  # an operating point below 0.5
        return int(probs[1] >= 0.3)


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    for i, level in enumerate((0, 50, 400)):
        data = np.full((8, 7, 6), level, np.int16)
        (root / f"p{i}").mkdir(parents=True)
        save_nifti(Volume(data, centered_affine(data.shape)), root / f"p{i}" / f"case{i}.nii.gz")
    write_dicom_series(root / "p3" / "ct", marker_volume(), description="abdomen")
    (root / "p4").mkdir()
    (root / "p4" / "broken.nii").write_bytes(b"\x00" * 10)
    return root


def test_a_folder_lists_every_file_and_series(archive):
    items = list_items(archive)
    ids = [it.id for it in items]
    assert ids[:3] == ["p0/case0.nii.gz", "p1/case1.nii.gz", "p2/case2.nii.gz"]
    series = [it for it in items if it.series]
    assert len(series) == 1 and series[0].path == str(archive.resolve() / "p3" / "ct")
    assert series[0].id == f"p3/ct#{series[0].series}"


def test_rows_record_predictions_and_errors_without_stopping(archive):
    items = list_items(archive)
    rows = score_batch(StubBundle(), items, worker="w")
    assert len(rows) == len(items)
    by_id = {r["item_id"]: r for r in rows}
    ok = by_id["p2/case2.nii.gz"]
    assert ok["status"] == "ok" and ok["predicted_class"] == "yes"
    assert ok["prob_yes"] == pytest.approx(1 / (1 + np.exp(-0.4)))
    assert ok["model_name"] == "stub" and ok["model_version"] == "3" and len(ok["content_hash"]) == 64
    assert ok["total_s"] >= ok["load_s"] >= 0
    bad = by_id["p4/broken.nii"]
    assert bad["status"] == "error" and bad["error_type"] == "VolumeReadError"
    assert "broken.nii" in bad["error_message"]
    dicom = next(r for r in rows if r["series"])
    assert dicom["status"] == "ok"
    assert "uncertainty" not in ok and "in_domain" not in ok  # the plain bundle has neither
    assert set(ok) <= set(result_columns(StubBundle.class_names, {}))


def test_domain_uncertainty_and_operating_point_when_the_bundle_has_them(archive):
    rows = {r["item_id"]: r for r in score_batch(TrustingStub(), list_items(archive))}
    cols = result_columns(TrustingStub.class_names, {"check_domain": True, "predict_with_uncertainty": True})
    assert {"uncertainty", "in_domain", "domain_score", "domain_reasons"} <= set(cols)
    low, high = rows["p0/case0.nii.gz"], rows["p2/case2.nii.gz"]
    assert low["in_domain"] is True and high["in_domain"] is False
    assert high["domain_reasons"] == "mean above 100"
    assert low["uncertainty"] == pytest.approx(1.0) and high["uncertainty"] < 0.9
    mid = rows["p1/case1.nii.gz"]  # p(yes) = 0.512 either way; decide() is what picks the class
    assert mid["predicted_class"] == "yes"
    assert low["predicted_class"] == "yes"  # p(yes) 0.5 >= the operating point 0.3, argmax would tie


def test_a_manifest_names_paths_ids_and_series(tmp_path, archive):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,path,series\nfirst,{archive}/p0/case0.nii.gz,\nsecond,archive/p1/case1.nii.gz,\n")
    items = read_manifest(manifest)
    assert items == [ScoreItem("first", str(archive / "p0" / "case0.nii.gz")),
                     ScoreItem("second", str((archive / "p1" / "case1.nii.gz").resolve()))]
    assert list_items(manifest) == items
    manifest.write_text("file\nx.nii\n")
    with pytest.raises(VolumeReadError, match="'path' column"):
        list_items(manifest)
    manifest.write_text("id,path\na,x.nii\na,y.nii\n")
    with pytest.raises(VolumeReadError, match="twice"):
        list_items(manifest)


def test_a_medmnist_npz_is_scored_item_by_item(tmp_path):
    rng = np.random.default_rng(0)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, train_images=rng.integers(0, 255, (3, 6, 6, 6), dtype=np.uint8),
             train_labels=np.array([[0], [1], [0]]), test_images=np.full((1, 6, 6, 6), 200, np.uint8))
    items = list_items(npz)
    assert [it.id for it in items] == ["train/0", "train/1", "train/2", "test/0"]
    rows = score_batch(StubBundle(), items)
    assert all(r["status"] == "ok" and r["path"] == str(npz.resolve()) for r in rows)
    assert rows[3]["prob_yes"] == pytest.approx(1 / (1 + np.exp(-0.2)))


def test_ray_is_started_small_and_quiet_and_actors_share_the_gpus():
    from vol3d_gui.ml.score_engines import actor_resources, ray_init_args

    local = ray_init_args(2, None)
    assert local["num_cpus"] == 2 and local["include_dashboard"] is False
    assert local["object_store_memory"] == 200 * 2**20
    first = local["runtime_env"]["env_vars"]["PYTHONPATH"].split(os.pathsep)[0]
    assert (Path(first) / "vol3d_gui" / "ml" / "score_engines.py").is_file()  # the workers import this tree
    remote = ray_init_args(None, "ray://head:10001")
    assert remote["address"] == "ray://head:10001" and "num_cpus" not in remote and "runtime_env" not in remote
    assert actor_resources({"CPU": 8.0}, 4) == {"num_cpus": 1, "num_gpus": 0}
    assert actor_resources({"CPU": 8.0, "GPU": 2.0}, 4) == {"num_cpus": 1, "num_gpus": 0.5}
    assert actor_resources({"CPU": 8.0, "GPU": 8.0}, 2) == {"num_cpus": 1, "num_gpus": 1.0}
