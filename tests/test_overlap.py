"""The overlap trees' labels and the columns they give the stacked stage (model/overlap.py)."""

import numpy as np

from boundaries.model import overlap
from boundaries.signal import descriptors

FPS = 22050 / 512
ROW_S = descriptors.POOL / FPS


def test_rows_inside_a_crossfade_overlap_are_labelled_and_cuts_and_gaps_are_not():
    transitions = [{"time_s": 20.0, "kind": "linear", "overlap_s": 8.0},
                   {"time_s": 40.0, "kind": "cut", "overlap_s": 0.0},
                   {"time_s": 60.0, "kind": "gap", "overlap_s": -2.0}]
    n = int(80 / ROW_S)
    labels = overlap.inside_labels(transitions, n, fps=FPS)
    centres = descriptors.row_centres(n) / FPS
    np.testing.assert_array_equal(labels == 1, np.abs(centres - 20.0) <= 4.0)


def test_the_middle_of_a_long_plateau_has_mass_on_both_sides_and_its_edges_on_one():
    n = 400
    inside = np.zeros(n)
    inside[100:200] = 1.0  # a plateau of 100 rows, about 23 s
    columns = overlap.overlap_columns(inside, fps=FPS)
    assert columns.shape == (n, len(overlap.NAMES))
    named = dict(zip(overlap.NAMES, columns.T))
    both, diff = named["inside_both@8"], named["inside_diff@8"]
    assert both[150] == 1.0 and diff[150] == 0.0  # the middle: the plateau on both sides
    assert both[101] < 0.1 and diff[101] > 0.9  # just inside its start: mass to the right only
    np.testing.assert_array_equal(named["inside"], inside.astype(np.float32))
    # left and right exclude the row itself: one lone row has no mass beside it
    lone = np.zeros(50)
    lone[25] = 1.0
    assert overlap.overlap_columns(lone, fps=FPS)[25, 1:].max() == 0.0


def test_windows_shrink_at_the_file_edges_instead_of_reading_past_them():
    columns = dict(zip(overlap.NAMES, overlap.overlap_columns(np.ones(30), fps=FPS).T))
    for name in ("inside_left@16", "inside_right@16"):
        np.testing.assert_allclose(columns[name][1:-1], 1.0)
    assert columns["inside_left@16"][0] == 0.0 and columns["inside_right@16"][-1] == 0.0
