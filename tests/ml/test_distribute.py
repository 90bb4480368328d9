"""`vol3d train --strategy mirrored`: MirroredStrategy over two logical CPU devices, in a
child process (logical devices must be set before TensorFlow starts, once per process)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vol3d_gui.ml.distribute import make_strategy

REPO = Path(__file__).resolve().parents[2]

_TRAIN = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import vol3d_gui.ml.training as training

plain_train = training.train_model


def train_and_tell(model, *args, **kwargs):  # what the strategy did to the model's variables
    history = plain_train(model, *args, **kwargs)
    kinds = {type(v.value).__name__ for v in [*model.trainable_variables, *model.optimizer.variables]}
    print("variables:", ",".join(sorted(kinds)), "replicas:", model.distribute_strategy.num_replicas_in_sync)
    return history


training.train_model = train_and_tell
from vol3d_gui.cli import main
raise SystemExit(main(["train", "--dataset", "phantom", "--phantoms", "20", "--input-size", "16",
                       "--width", "2", "--epochs", "2", "--batch-size", "4", "--strategy", "mirrored", "--no-calibrate",
                       "--out", sys.argv[1]]))
"""


@pytest.mark.slow
def test_mirrored_training_runs_on_two_replicas_and_writes_a_usable_bundle(tmp_path):
    out = tmp_path / "mirrored"
    res = subprocess.run([sys.executable, "-c", _TRAIN, str(out)], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "strategy: mirrored over 2 replicas" in res.stdout
    # weights and optimizer state are mirrored (one copy per replica), none left on one device
    assert "variables: MirroredVariable replicas: 2" in res.stdout, res.stdout[-2000:]
    card = json.loads(out.with_suffix(".json").read_text())
    strategy = card["training"]["strategy"]
    assert strategy["name"] == "mirrored" and strategy["replicas"] == 2
    assert [d.split("/")[-1] for d in strategy["devices"]] == ["device:CPU:0", "device:CPU:1"]
    history = card["training"]["history"]
    assert len(history) == 2 and all(0 < e["loss"] < 10 for e in history)
    assert card["metrics"]["n"] == 4  # the test split of 20 phantoms, scored after training


def test_the_default_strategy_changes_nothing():
    info = make_strategy("default")
    assert info.strategy is None and info.replicas == 1
    with info.scope():
        pass
    with pytest.raises(ValueError, match="mirrored"):
        make_strategy("multiworker")
