"""Where two tracks play at once: the overlap trees and the columns they give the stacked stage
(``track.overlap_context``).

The first stage is labelled within 1 s of each crossover, and inside a long crossfade every row
looks alike to it, so its hump lands anywhere in the overlap (MODEL_CARD.md, session 31). Trees
labelled over the whole overlap instead ("are two tracks playing here?") give a plateau with
edges. How much of that probability lies left and right of a row says where in the plateau the
row is, and its middle is the crossover: those columns, beside the first stage's context, let
the stacked trees find the middle of a long fade.
"""

import numpy as np

from boundaries.signal import descriptors
from boundaries.signal.filters import running_mean

WINDOWS_S = (2.0, 4.0, 8.0, 16.0)
NAMES = ["inside"] + [f"inside_{side}@{w:g}" for w in WINDOWS_S
                      for side in ("left", "right", "both", "diff")]


def inside_labels(transitions, n_rows: int, *, fps: float) -> np.ndarray:
    """1 for rows whose centre lies inside the overlap of a transition (``overlap_s`` > 0:
    crossfades and EQ handovers, as make_mixes.py's manifest records them), else 0."""
    centres_s = descriptors.row_centres(n_rows) / fps
    labels = np.zeros(n_rows, dtype=np.int8)
    for transition in transitions:
        half_s = transition["overlap_s"] / 2
        if half_s > 0:
            labels[np.abs(centres_s - transition["time_s"]) <= half_s] = 1
    return labels


def overlap_columns(inside: np.ndarray, *, fps: float) -> np.ndarray:
    """``[n_rows, len(NAMES)]``: P(inside an overlap) of each row and, per window, its mean over
    the rows left and right of the row (the row itself excluded; shorter at the file's edges),
    the smaller of the two (high in the middle of a long overlap) and their absolute difference."""
    columns = [inside]
    for window_s in WINDOWS_S:
        width = max(1, int(round(window_s * fps / descriptors.POOL)))
        # the window ending just before each row, and the one starting just after it (0 where
        # it is empty: the first row has nothing left of it, the last nothing right)
        left, right = np.zeros(len(inside)), np.zeros(len(inside))
        left[1:] = running_mean(inside, width - 1, 0)[:-1]
        right[:-1] = running_mean(inside, 0, width - 1)[1:]
        columns += [left, right, np.minimum(left, right), np.abs(left - right)]
    return np.vstack(columns).T.astype(np.float32)
