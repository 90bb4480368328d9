"""The viewer layer without a display: model events, layers, geometry, windows, requests."""

import subprocess
import sys

import numpy as np
import pytest

from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.core.volume import Volume, isotropic_affine
from vol3d_gui.core.windowing import Window
from vol3d_gui.viewer.colormaps import lut
from vol3d_gui.viewer.geometry import (
    PlaneGeometry,
    invert_x,
    overlay_texture_matrix,
    screen_letters,
    texture_affine,
)
from vol3d_gui.viewer.layers import OverlayLayer
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.requests import RequestTracker
from vol3d_gui.viewer.windows import dragged_window


def test_importing_the_viewer_layer_loads_no_qt_and_no_tensorflow():
    code = ("import sys, vol3d_gui.viewer, vol3d_gui.viewer.review, vol3d_gui.viewer.prepare;"
            "bad = [m for m in ('PySide6', 'pyqtgraph', 'OpenGL', 'tensorflow', 'keras') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _asym_volume():
    """Anisotropic, non-cubic, with an offset: every axis and scale distinguishable."""
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    return Volume(data, isotropic_affine((2.0, 3.0, 4.0), (10.0, -20.0, 30.0)), name="asym")


def test_set_case_emits_volume_before_cursor_and_window_and_replaces_overlays():
    m = ViewerModel()
    vol = _asym_volume()
    seen = []
    for name in ("volume", "item", "cursor", "window"):
        getattr(m.events, name).connect(lambda v, name=name: seen.append(name))
    m.add_overlay(vol.with_data(np.ones(vol.shape, np.uint8)), "old")
    m.set_case(vol, window=Window(5, 10))
    assert seen[0] == "volume" and "cursor" in seen and "window" in seen
    assert m.overlays == {} and m.layers.base.volume is vol
    np.testing.assert_allclose(m.cursor, vol.center_world)
    assert m.window == Window(5, 10)


def test_model_validates_its_properties():
    m = ViewerModel()
    with pytest.raises(ValueError):
        m.cursor = [np.nan, 0, 0]
    with pytest.raises(ValueError):
        m.cursor = [1, 2]
    with pytest.raises(ValueError):
        m.window = (40, 400)
    vol = _asym_volume()
    m.set_case(vol)
    layer = m.add_overlay(vol.with_data(np.ones(vol.shape, np.float32)), "map")
    for bad in ({"opacity": 1.5}, {"opacity": float("nan")}, {"colormap": "rainbow"}, {"threshold": float("inf")}):
        with pytest.raises(ValueError):
            layer.update(**bad)
    assert layer.opacity == 0.5 and layer.colormap == "hot"  # a refused update changes nothing
    layer.update(opacity=0.2, colormap="jet")
    assert (layer.opacity, layer.colormap) == (0.2, "jet")


def test_layer_changes_reach_observers_of_the_layer_list_once_per_real_change():
    m = ViewerModel()
    vol = _asym_volume()
    m.set_case(vol)
    got = []
    m.layers.changed.connect(lambda layer, field, value: got.append((layer.name, field, value)))
    layer = m.add_overlay(vol.with_data(np.zeros(vol.shape, np.float32)), "map")
    layer.threshold = 0.3
    layer.threshold = 0.3
    m.update_overlay("map", visible=False)
    assert got == [("map", "threshold", 0.3), ("map", "visible", False)]
    m.remove_overlay("map")
    layer.threshold = 0.9  # a removed layer no longer reports
    assert len(got) == 2


def test_readout_names_voxel_world_value_and_says_outside():
    m = ViewerModel()
    vol = _asym_volume()
    vol.meta["modality"] = "MR"
    m.set_case(vol)
    world = vol.voxel_to_world([1, 2, 3])
    text = m.readout(world)
    assert "voxel (1, 2, 3)" in text and f"value {vol.data[1, 2, 3]}" in text and "[MR]" in text
    assert "RAS (12.0, -14.0, 42.0) mm" in text
    assert "outside the volume" in m.readout(vol.voxel_to_world([-5, 0, 0]))


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
def test_plane_geometry_round_trips_world_points(orientation):
    vol = _asym_volume()
    g = PlaneGeometry(vol, orientation)
    rng = np.random.default_rng(0)
    for _ in range(20):
        ijk = rng.uniform(0, np.asarray(vol.shape) - 1)
        ijk[g.axis] = np.rint(ijk[g.axis])
        world = vol.voxel_to_world(ijk)
        x, y = g.to_view(world)
        np.testing.assert_allclose(g.to_world(x, y, g.slice_index(world)), world, atol=1e-9)
    x0, y0, w, h = g.rect
    a, b = g.in_plane_axes
    assert (w, h) == (vol.shape[a] * vol.spacing[a], vol.shape[b] * vol.spacing[b])
    assert (x0, y0) == (-vol.spacing[a] / 2, -vol.spacing[b] / 2)
    top = g.stepped(vol.center_world, 1000)
    assert vol.world_to_voxel(top)[g.axis] == pytest.approx(vol.shape[g.axis] - 1)


def test_display_convention_letters_and_flip():
    assert screen_letters("axial", True) == ("R", "L", "A", "P")
    assert screen_letters("axial", False) == ("L", "R", "A", "P")
    assert screen_letters("sagittal", False) == ("A", "P", "S", "I")
    assert invert_x("coronal", True) and not invert_x("coronal", False) and invert_x("sagittal", False)


def test_texture_matrices_place_an_overlay_by_its_own_affine():
    vol = _asym_volume()
    tex = texture_affine(vol.affine, vol.shape)
    # texture (0,0,0) is the outer corner of voxel (0,0,0): half a voxel before its centre
    np.testing.assert_allclose(tex @ [0, 0, 0, 1], [*vol.voxel_to_world([-0.5, -0.5, -0.5]), 1])
    np.testing.assert_allclose(tex @ [1, 1, 1, 1], [*vol.voxel_to_world(np.asarray(vol.shape) - 0.5), 1])
    coarse = Volume(np.zeros((2, 5, 3), np.float32), vol.affine @ np.diag([2.0, 1.0, 2.0, 1.0]))
    m = overlay_texture_matrix(coarse, tex)
    # the same world point in both textures: base voxel centre (1, 2, 1) is coarse voxel (0.5, 2, 0.5)
    base_tex = np.array([1.5 / 4, 2.5 / 5, 1.5 / 6, 1])
    np.testing.assert_allclose(m @ base_tex, [1.0 / 2, 2.5 / 5, 1.0 / 3, 1], atol=1e-12)


def test_dragged_window_follows_the_mouse_and_never_goes_non_positive():
    start = Window(40, 400)
    w = dragged_window(start, dx=100, dy=-50)
    assert w.width == pytest.approx(600) and w.center == pytest.approx(140)
    assert dragged_window(start, dx=-10_000, dy=0).width > 0


def test_request_tracker_drops_superseded_answers():
    t = RequestTracker()
    first = t.issue("predict")
    second = t.issue("predict")
    other = t.issue("gradcam")
    assert not t.is_current("predict", first) and t.is_current("predict", second)
    assert t.is_current("gradcam", other)


def test_overlay_layer_draws_in_world_space_and_hides_below_threshold():
    vol, mask = lesion_phantom(3, True, shape=(48, 48, 36))
    layer = OverlayLayer(mask, "m", colormap="green", threshold=0.5, opacity=0.4)
    k = int(np.argwhere(mask.data > 0)[:, 2].mean())
    rgba = layer.rgba_plane(vol, 2, k)
    assert rgba.shape == (48, 48, 4)
    np.testing.assert_array_equal(rgba[..., 3] > 0, mask.data[:, :, k] > 0)
    layer.visible = False
    assert layer.rgba_plane(vol, 2, k) is None


def test_initial_cursor_avoids_filler_slices_and_prefers_a_finding():
    vol = _asym_volume()
    vol.meta.update(filler_slices=[2, 3], slice_axis=2)
    ijk = vol.world_to_voxel(ViewerModel.initial_cursor(vol))
    assert round(ijk[2]) not in (2, 3)
    mask = vol.with_data(np.zeros(vol.shape, np.uint8))
    mask.data[3, 4, 5] = 1
    np.testing.assert_allclose(vol.world_to_voxel(ViewerModel.initial_cursor(vol, mask)), [3, 4, 5])


def test_notices_stay_until_dismissed():
    m = ViewerModel()
    vol = _asym_volume()
    vol.meta["warnings"] = ["4-D series of 3 volumes: showing the first"]
    m.set_case(vol)
    m.add_notice("3d-downsampled", "3-D view downsampled 2x")
    assert [n.key for n in m.notices] == ["reader", "3d-downsampled"]
    m.cursor = vol.center_world + 1
    assert len(m.notices) == 2
    m.dismiss_notice("3d-downsampled")
    assert [n.key for n in m.notices] == ["reader"]


def test_a_colour_mapped_overlay_is_its_lookup_table_where_it_shows():
    vol, _ = lesion_phantom(3, True, shape=(48, 48, 36))
    rng = np.random.default_rng(4)
    sal = vol.with_data(rng.random(vol.shape).astype(np.float32))
    layer = OverlayLayer(sal, "s", colormap="hot", threshold=0.3, opacity=0.5, vmin=0.0, vmax=1.0, order=1)
    rgba = layer.rgba_plane(vol, 1, 20)
    vals = sal.data[:, 20, :]
    on = vals > 0.3
    idx = np.clip((vals - 0.0) * np.float32(255.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(rgba[..., 3], np.where(on, round(255 * 0.5), 0))
    np.testing.assert_array_equal(rgba[on][:, :3], lut("hot")[idx[on]])
    assert not rgba[~on].any()
