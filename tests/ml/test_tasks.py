"""What the GUI's ML tasks send to the TensorFlow process (tensors, not Volumes), that the
answers equal the CLI's, and the structured progress of fine-tuning."""

import pickle
import threading

import numpy as np
import pytest

from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.core.volume import Volume
from vol3d_gui.ml.bundle import ModelBundle, load_bundle, read_card
from vol3d_gui.ml.finetune import finetune_bundle, stratified_split
from vol3d_gui.ml.gradcam import gradcam, saliency_volume
from vol3d_gui.ml.service import Service
from vol3d_gui.ml.tasks import (
    EtaClock,
    Progress,
    assess_answer,
    gradcam_request,
    model_input,
    predict_request,
)
from vol3d_gui.ml.training import TrainingStopped

from .conftest import PHANTOM_MODEL

SMALL = (32, 32, 24)


class _Pipe:
    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


def _service(bundle):
    service = Service(_Pipe(), threading.Event())
    service.bundle = bundle
    return service


def _card_only(bundle):
    """What the GUI process holds: the card, no weights, no TensorFlow."""
    return ModelBundle(None, bundle.card, bundle.path)


def test_gui_path_probabilities_equal_the_cli(phantom_bundle):
    vol, _ = lesion_phantom(5, True)
    request = predict_request(_card_only(phantom_bundle), vol)
    assert request["x"].dtype == np.float32 and request["x"].shape == (1, *phantom_bundle.input_shape, 1)
    np.testing.assert_allclose(_service(phantom_bundle).do_predict(**request), phantom_bundle.predict(vol),
                               atol=1e-5)


@pytest.mark.parametrize("case", ["phantom", "brain-sized"])
def test_gui_path_assessment_equals_the_cli(phantom_bundle, case):
    """The service sees the tensor only; the GUI adds the metadata half of the domain check
    and the operating point: together they give what `vol3d predict` reports."""
    vol, _ = lesion_phantom(7, True)
    if case != "phantom":  # another field of view and spacing: out of the domain by its metadata
        vol = Volume(vol.data, vol.affine @ np.diag([1.6, 1.6, 1.4, 1.0]))
    card_only = _card_only(phantom_bundle)
    x = model_input(card_only, vol)
    got = assess_answer(card_only, vol, x, _service(phantom_bundle).do_assess(x))
    want = phantom_bundle.assess_detail(vol)
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)
    assert got["class_index"] == want["class_index"] and got["domain"] == want["domain"]
    assert got["uncertainty"] == pytest.approx(want["uncertainty"], abs=1e-5)
    assert want["domain"]["in_domain"] is (case == "phantom")


def test_gui_path_gradcam_equals_the_cli(tiny_bundle_path):
    bundle = load_bundle(tiny_bundle_path)
    # anisotropic, off-origin: the map's placement comes only from the affine sent along
    vol, _ = lesion_phantom(3, True, SMALL, spacing=(4.0, 3.0, 6.0))
    affine = vol.affine.copy()
    affine[:3, 3] += [7.0, -5.0, 11.0]
    vol = Volume(vol.data, affine, source="x.nii.gz")
    for cls in (0, 1, None):
        reply = _service(bundle).do_gradcam(**gradcam_request(_card_only(bundle), vol, cls))
        got = saliency_volume(reply["cam"], reply["affine"], reply["meta"], vol.source)
        want = gradcam(bundle, vol, cls)
        np.testing.assert_allclose(got.data, want.data, atol=1e-5)
        np.testing.assert_allclose(got.affine, want.affine)
        assert got.meta == want.meta and got.name == want.name and got.source == "x.nii.gz"


def test_a_request_for_another_model_grid_is_a_clear_error(tiny_bundle_path):
    from vol3d_gui.core.errors import Vol3dError

    bundle = load_bundle(tiny_bundle_path)
    with pytest.raises(Vol3dError, match="does not fit"):
        _service(bundle).do_predict(np.zeros((1, 8, 8, 8, 1), np.float32))


def test_what_crosses_the_pipe_is_the_model_grid_not_the_volume():
    if not PHANTOM_MODEL.exists():
        pytest.skip("models/phantom-lesion is not in the tree")
    card = read_card(PHANTOM_MODEL)
    bundle = ModelBundle(None, card, PHANTOM_MODEL)
    data = np.random.default_rng(0).integers(-1000, 1000, (256, 256, 150), dtype=np.int16)
    vol = Volume(data, np.diag([0.8, 0.8, 2.0, 1.0]))
    whole = len(pickle.dumps(("predict", {"volume": vol})))  # what was sent before
    predict = len(pickle.dumps(("predict", predict_request(bundle, vol))))
    cam = len(pickle.dumps(("gradcam", gradcam_request(bundle, vol, 1))))
    assert whole > 19_000_000
    tensor = 4 * int(np.prod(bundle.input_shape))
    for size in (predict, cam):
        assert size < tensor + 4096 < 3_000_000, size


def test_finetuning_reports_structured_progress(tiny_bundle_path, tmp_path):
    base = load_bundle(tiny_bundle_path)
    labels = [i % 2 for i in range(10)]
    vols = [lesion_phantom(200 + i, bool(c), SMALL, spacing=(4.0, 4.0, 6.0))[0] for i, c in enumerate(labels)]
    seen: list[Progress] = []
    finetune_bundle(base, vols, labels, out_dir=tmp_path, epochs=2, batch_size=3, augment=False,
                    progress=seen.append)
    prep = [p for p in seen if p.stage == "preparing volumes"]
    batches = [p for p in seen if p.stage == "training"]
    epochs = [p for p in seen if p.stage == "epoch done"]
    assert [p.done for p in prep] == list(range(1, 11)) and {p.total for p in prep} == {10}
    n = batches[0].n_batches
    assert n == -(-len(stratified_split(labels, 0.3)[0]) // 3)  # the training part in batches of 3
    assert [(p.epoch, p.batch) for p in batches] == [(e, b) for e in (1, 2) for b in range(1, n + 1)]
    assert [p.done for p in batches] == list(range(1, 2 * n + 1)) and {p.total for p in batches} == {2 * n}
    assert all(isinstance(p.loss, float) and np.isfinite(p.loss) for p in batches)
    assert all("accuracy" in p.metrics for p in batches) and batches[0].n_epochs == 2
    assert batches[0].eta_s is None and all(p.eta_s >= 0 for p in batches[1:])
    assert batches[-1].eta_s == 0
    assert [p.epoch for p in epochs] == [1, 2] and all("val_loss" in p.metrics for p in epochs)


def test_the_service_stop_event_ends_finetuning_within_a_batch(tiny_bundle_path, tmp_path):
    from vol3d_gui.ml.finetune import run_in_service

    base = load_bundle(tiny_bundle_path)
    service = _service(base)
    x = np.stack([base.preprocess(lesion_phantom(300 + i, bool(i % 2), SMALL)[0]) for i in range(8)])

    def stop_on_first_batch(p):
        if p.stage == "training":
            service.stop_event.set()

    service.progress = stop_on_first_batch
    with pytest.raises(TrainingStopped):
        run_in_service(service, x=x, labels=[i % 2 for i in range(8)], out_dir=str(tmp_path), epochs=20,
                       batch_size=2)
    assert not list(tmp_path.glob("*.keras"))


def test_eta_is_the_mean_time_per_unit_times_what_is_left():
    now = [100.0]
    clock = EtaClock(lambda: now[0])
    assert clock.eta(0, 10) is None
    now[0] = 104.0
    assert clock.eta(2, 10) == pytest.approx(16.0)
    clock.restart(2)  # e.g. after the first, tracing batch
    now[0] = 105.0
    assert clock.eta(3, 10) == pytest.approx(7.0)
    assert clock.eta(10, 10) == 0.0
    assert Progress(3, 4, "training", epoch=2, n_epochs=5, loss=0.25).text() == "training  epoch 2/5  loss 0.250"
