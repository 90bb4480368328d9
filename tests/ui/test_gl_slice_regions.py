"""Where the GL slice views draw each overlay (gl_slice_passes.overlay_regions and
overlay_screen_box): the plane's box is covered exactly once, each part with exactly the
overlays whose boxes hold it, and an overlay's box holds every pixel where it can show."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vol3d_gui.ui.gl_slice_passes import overlay_regions, overlay_screen_box

coord = st.integers(0, 60).map(float)


@st.composite
def boxes(draw):
    x0, x1 = sorted(draw(st.lists(coord, min_size=2, max_size=2, unique=True)))
    y0, y1 = sorted(draw(st.lists(coord, min_size=2, max_size=2, unique=True)))
    return x0, x1, y0, y1


@settings(max_examples=200, deadline=None)
@given(boxes(), st.lists(st.one_of(st.none(), boxes()), max_size=4))
def test_the_parts_cover_the_plane_once_each_with_the_overlays_over_it(plane, overlays):
    x0, x1, y0, y1 = map(int, plane)
    cover = np.zeros((60, 60), int)
    which = {}
    for subset, parts in overlay_regions(plane, overlays):
        for bx0, bx1, by0, by1 in parts:
            assert plane[0] <= bx0 < bx1 <= plane[1] and plane[2] <= by0 < by1 <= plane[3]
            cover[int(by0):int(by1), int(bx0):int(bx1)] += 1
            for y in range(int(by0), int(by1)):
                for x in range(int(bx0), int(bx1)):
                    which[(x, y)] = subset
    assert (cover[y0:y1, x0:x1] == 1).all() and cover.sum() == (x1 - x0) * (y1 - y0)
    for (x, y), subset in which.items():
        inside = tuple(i for i, b in enumerate(overlays)
                       if b is not None and b[0] <= x < b[1] and b[2] <= y < b[3])
        assert subset == inside


@settings(max_examples=200, deadline=None)
@given(st.floats(0.2, 5.0), st.floats(0.2, 5.0), st.booleans(), st.booleans(),
       st.floats(-40, 40), st.floats(-40, 40), st.floats(0.05, 4.0), st.floats(0.05, 4.0),
       st.floats(-30, 30), st.floats(-30, 30), st.integers(1, 30), st.integers(1, 30), st.booleans())
def test_an_overlays_box_holds_every_pixel_where_it_can_show(pa, pb, flip_a, flip_b, oa, ob, sa, sb, ca, cb,
                                                              nc, nr, swapped):
    """pixel (x, y) -> base voxel (a, b) = round(fa . (x, y, 1)), round(fb . ...); the overlay
    shows where its texel (column, row) from (a, b) rounds into its size: the box must hold
    every such pixel centre (any scale, flip, offset, and which plane axis each texel axis follows)."""
    fa = np.array([(-1 if flip_a else 1) / pa, 0.0, oa])
    fb = np.array([0.0, (-1 if flip_b else 1) / pb, ob])
    col = (sa, 0.0, ca) if not swapped else (0.0, sb, cb)  # texel column along a (or b)
    row = (0.0, sb, cb) if not swapped else (sa, 0.0, ca)
    sampling = (col, row, (float(nc), float(nr)))
    plane = (0.0, 200.0, 0.0, 200.0)
    box = overlay_screen_box(sampling, fa, fb, plane)
    xs, ys = np.meshgrid(np.arange(200) + 0.5, np.arange(200) + 0.5)
    a = np.floor(fa[0] * xs + fa[2] + 0.5)
    b = np.floor(fb[1] * ys + fb[2] + 0.5)
    c = np.floor(col[0] * a + col[1] * b + col[2] + 0.5)
    r = np.floor(row[0] * a + row[1] * b + row[2] + 0.5)
    shows = (c >= 0) & (c < nc) & (r >= 0) & (r < nr)
    if box is None:
        assert not shows.any()
        return
    x0, x1, y0, y1 = box
    inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    assert not (shows & ~inside).any()
