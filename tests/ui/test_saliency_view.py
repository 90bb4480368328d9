"""Grad-CAM as the reader sees it: drawn over the slices at the lesion, not elsewhere in the
body, and redrawn when another class is explained. Uses the bundled lesion model (a map from
an untrained model would be noise, and proving placement needs a map that points somewhere)."""

from pathlib import Path

import numpy as np
import pytest

from tests.ui.conftest import grab
from vol3d_gui.core.phantom import lesion_phantom

MODEL = Path(__file__).resolve().parents[2] / "models" / "phantom-lesion.keras"
SEED = 11  # a lesion-positive phantom the demo study does not hold


@pytest.fixture
def explained(qtbot, window):
    if not MODEL.exists():
        pytest.skip("models/phantom-lesion is not in this checkout")
    panel = window.attach_model(str(MODEL))
    qtbot.waitUntil(lambda: panel.bundle is not None, timeout=90000)
    vol, mask = lesion_phantom(SEED, True)
    window.open_volume(vol, name="phantom with lesion")
    window.set_cursor(mask.meta["lesion_center_mm"])
    qtbot.waitUntil(lambda: "saliency" in window.overlays, timeout=60000)
    return window, panel, vol, mask


def _overlay_pixels(window, qtbot):
    """|with saliency - without| per pixel of the axial view (the saliency overlay alone)."""
    view = window.slice_views["axial"]
    window.update_overlay("saliency", visible=True)
    on = grab(view).astype(int)
    window.update_overlay("saliency", visible=False)
    off = grab(view).astype(int)
    window.update_overlay("saliency", visible=True)
    return np.abs(on - off).sum(axis=2), view


def _near(diff, point, radius):
    y, x = np.mgrid[: diff.shape[0], : diff.shape[1]]
    return diff[(x - point.x()) ** 2 + (y - point.y()) ** 2 <= radius**2]


def test_saliency_is_drawn_at_the_lesion_not_across_the_body(explained, qtbot):
    window, panel, vol, mask = explained
    assert panel.bundle.class_names[int(np.argmax(panel.probs))] == "lesion"
    assert window.overlays["saliency"].threshold == 0.5  # the panel's default: where the map peaks
    diff, view = _overlay_pixels(window, qtbot)
    centre = np.asarray(mask.meta["lesion_center_mm"], float)
    mirrored = centre * np.array([-1.0, -1.0, 1.0])  # the far side of the body, same slice
    at_lesion = view.world_to_widget(centre)
    far_side = view.world_to_widget(mirrored)
    radius = max(8, view.width() // 25)
    assert _near(diff, at_lesion, radius).mean() > 20, "no saliency colour at the lesion"
    assert _near(diff, at_lesion, radius).mean() > 3 * _near(diff, far_side, radius).mean() + 1


def test_explaining_the_other_class_redraws_the_overlay(explained, qtbot):
    window, panel, vol, mask = explained
    before = window.current_saliency
    first, _ = _overlay_pixels(window, qtbot)
    other = panel.bundle.class_names.index("no lesion")
    panel.explain_combo.setCurrentIndex(panel.explain_combo.findData(other))
    panel.explain_combo.activated.emit(panel.explain_combo.currentIndex())
    qtbot.waitUntil(lambda: window.current_saliency is not before, timeout=60000)
    assert not np.array_equal(window.current_saliency.data, before.data)
    second, _ = _overlay_pixels(window, qtbot)
    assert np.abs(first - second).sum() > 0, "the drawn overlay did not change"


def test_the_3d_view_draws_the_saliency_in_the_maps_colour(explained):
    window, panel, vol, mask = explained
    view = window.volume_view
    if not getattr(view, "available", False):
        pytest.skip("no OpenGL 3-D view here")
    from tests.ui.conftest import qimage_rgb

    def warm(frame):  # orange to yellow: what "hot" gives a strong value, unlike bone or soft tissue
        r, g, b = (frame[..., i].astype(int) for i in range(3))
        return (r > 150) & (r - b > 90) & (g - b > 40)

    on = warm(qimage_rgb(view.grab_frame()))
    window.update_overlay("saliency", visible=False)
    off = warm(qimage_rgb(view.grab_frame()))  # the yellow crosshair is warm too
    window.update_overlay("saliency", visible=True)
    assert (on & ~off).sum() > 200, (on.sum(), off.sum())
