"""Frame activations -> boundary times in seconds (no torch).

The rule of Ullrich, Schlüter & Grill (ISMIR 2014), after Böck et al. (2012): a frame is a boundary
if it is the maximum within +-``max_window_s``, and its activation exceeds the mean over
``[t - avg_before_s, t + avg_after_s]`` by more than ``threshold``; peaks closer than the minimum
distance are dropped greedily, left to right. This is ``librosa.util.peak_pick``'s rule (a test
checks the two agree) in numpy, in seconds: librosa costs ``boundaries detect`` over a second of
start-up (issue 16).
"""

import numpy as np

from boundaries.signal import timebase
from boundaries.signal.filters import running_max, running_mean

ROUNDING = 1e-9  # far below any meaningful activation difference, far above float64 error


def pick_peaks(activations, *, fps: float, threshold: float, max_window_s: float = 6.0,
               avg_before_s: float = 12.0, avg_after_s: float = 6.0,
               min_distance_s: float = 0.0, subtract_local_mean: bool = True):
    """Boundary times and strengths from per-frame probabilities.

    Parameters
    ----------
    activations : np.ndarray [shape=(n_frames,)], in [0, 1]
    fps : float > 0
        Frames per second of ``activations``.
    threshold : float >= 0
        A peak must exceed its local mean by strictly more than this.
    max_window_s, avg_before_s, avg_after_s, min_distance_s : float, seconds
        Peaks are at least ``max(max_window_s, min_distance_s)`` apart, so a plateau gives one.
    subtract_local_mean : bool
        False: a peak's strength is its activation (for calibrated probabilities), and it must
        exceed ``threshold`` itself.

    Returns
    -------
    times_s : np.ndarray [shape=(n_peaks,)], seconds (frame centres)
    strengths : np.ndarray [shape=(n_peaks,)], activation minus local mean

    References
    ----------
    Böck, Krebs & Schedl, "Evaluating the online capabilities of onset detection methods",
    ISMIR 2012. Ullrich, Schlüter & Grill, ISMIR 2014.
    """
    x = np.asarray(activations, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"activations must be 1-D, got shape {x.shape}")
    if x.size == 0:
        return np.zeros(0), np.zeros(0)
    w = timebase.frames_in(max_window_s, fps, 1)
    before, after = timebase.frames_in(avg_before_s, fps), timebase.frames_in(avg_after_s, fps, 1)
    wait = max(w, timebase.frames_in(min_distance_s, fps))
    candidates = x == running_max(x, w, w, fill=-np.inf)
    means = running_mean(x, before, after) if subtract_local_mean else 0.0
    if subtract_local_mean:  # librosa's kernel takes delta as float32 and keeps x >= mean + delta
        candidates &= x >= means + np.float32(threshold)
    idx = _greedy_apart(np.flatnonzero(candidates), wait)
    # "strictly above" is applied here, beyond the cumulative sum's rounding, so a flat stretch
    # (x == mean) never yields a boundary at threshold 0.
    strengths = x[idx] - (means[idx] if subtract_local_mean else 0.0)
    keep = strengths > threshold + ROUNDING
    return timebase.frames_to_time(idx[keep], sr=fps, hop_length=1), strengths[keep]


def _greedy_apart(candidates: np.ndarray, wait: int) -> np.ndarray:
    """Candidates kept left to right, each more than ``wait`` frames after the last kept one."""
    kept, last = [], -np.inf
    for i in candidates.tolist():
        if i > last + wait:
            kept.append(i)
            last = i
    return np.array(kept, dtype=np.intp)


def best_k_peaks(activations, *, fps: float, k: int, min_distance_s: float,
                 edge_s: float = 0.0):
    """The ``k`` frames of highest total activation at least ``min_distance_s`` apart (and
    ``edge_s`` from either end): the crossovers of a mix known to hold ``k + 1`` tracks.

    Exact, by dynamic programming over frames (O(n_frames * k)), not greedy top-k: a greedy
    pick can take a strong frame that blocks two slightly weaker ones.

    Returns
    -------
    times_s : np.ndarray [shape=(m,)], m <= k (fewer when the file is too short for k)
    strengths : np.ndarray [shape=(m,)], the activations there
    """
    x = np.asarray(activations, dtype=np.float64)
    gap = timebase.frames_in(min_distance_s, fps, 1)
    # frames whose time is at least edge_s from either end (ceil: the filter that follows in
    # inference.boundaries_for compares times, and a rounded frame could fall inside the margin)
    margin = int(np.ceil(edge_s * fps - 1e-9))
    lo, hi = margin, len(x) - margin
    if k <= 0 or hi <= lo:
        return np.zeros(0), np.zeros(0)
    score = np.full(len(x), -np.inf)
    score[lo:hi] = x[lo:hi]
    # best[j][i]: best total of j + 1 picks whose last pick is at frame <= i; arg: that frame
    best = np.maximum.accumulate(score)
    arg = [_running_argmax(score)]
    bests = [best]
    for _ in range(1, k):
        prev = np.full(len(x), -np.inf)
        prev[gap:] = bests[-1][:-gap]  # the previous pick lies at least `gap` frames earlier
        total = score + prev
        bests.append(np.maximum.accumulate(total))
        arg.append(_running_argmax(total))
        if not np.isfinite(bests[-1][-1]):  # no room for another pick
            bests.pop()
            arg.pop()
            break
    picks, i = [], len(x) - 1
    for j in range(len(bests) - 1, -1, -1):
        i = int(arg[j][i])
        picks.append(i)
        i -= gap
    idx = np.array(sorted(picks))
    return timebase.frames_to_time(idx, sr=fps, hop_length=1), x[idx]


def _running_argmax(values: np.ndarray) -> np.ndarray:
    """Index of the maximum of ``values[:i + 1]`` for every i (first one on ties)."""
    best = np.maximum.accumulate(values)
    is_new = np.r_[True, values[1:] > best[:-1]]
    return np.maximum.accumulate(np.where(is_new, np.arange(len(values)), 0))


def run_around(above: np.ndarray, i: int) -> tuple:
    """``(first, last)``: the frames of the unbroken run of ``above`` (booleans) that reaches
    frame ``i`` from either side, ``i`` included."""
    before, after = above[:i][::-1], above[i + 1:]
    first = i - (len(before) if before.all() else int(np.argmin(before)))
    last = i + (len(after) if after.all() else int(np.argmin(after)))
    return first, last


def plateau_centres(activations, times_s, *, fps: float, level: float,
                    reach_s: float = 15.0) -> np.ndarray:
    """Each peak moved to the middle of its hump: the activation-weighted mean frame of the
    contiguous frames around it at or above ``level`` times its height (weights: the height above
    that level), within ``reach_s`` and short of the midpoint to either neighbouring peak, so
    peaks keep their order and never meet.

    A long crossfade gives a broad hump whose highest frame sits anywhere along it, often near
    an end where the incoming track first shows; its middle is where the label is (a 0.4 level
    raised validation F@3 from 0.853 to 0.873 before placement, MODEL_CARD.md).

    Returns
    -------
    times_s : np.ndarray [shape=(n_peaks,)], seconds (not on the frame grid)
    """
    x = np.asarray(activations, dtype=np.float64)
    peaks = np.rint(np.asarray(times_s, dtype=np.float64) * fps).astype(np.int64)
    reach = timebase.frames_in(reach_s, fps)
    midpoints = (peaks[1:] + peaks[:-1] + 1) // 2  # first frame of the right-hand peak's side
    lows = np.maximum(np.r_[0, midpoints], peaks - reach)
    highs = np.minimum(np.r_[midpoints - 1, len(x) - 1], peaks + reach)
    centres = np.empty(len(peaks))
    for i, (peak, lo, hi) in enumerate(zip(peaks, lows, highs)):
        floor = level * x[peak]
        below = np.flatnonzero(x[lo:hi + 1] < floor) + lo
        start = below[below < peak].max(initial=lo - 1) + 1
        stop = below[below > peak].min(initial=hi + 1) - 1
        weights = x[start:stop + 1] - floor
        total = weights.sum()
        centres[i] = peak if total <= 0 else (np.arange(start, stop + 1) @ weights) / total
    return timebase.frames_to_time(centres, sr=fps, hop_length=1)
