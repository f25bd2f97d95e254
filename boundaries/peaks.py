"""Frame activations -> boundary times in seconds (no torch).

The rule of Ullrich, Schlüter & Grill (ISMIR 2014), after Böck et al. (2012): a frame is a boundary
if it is the maximum within +-``max_window_s``, and its activation exceeds the mean over
``[t - avg_before_s, t + avg_after_s]`` by more than ``threshold``. ``librosa.util.peak_pick``
implements exactly that rule in frames; this wrapper works in seconds.
"""

import numpy as np

from boundaries import timebase


def _frames(seconds: float, fps: float) -> int:
    return max(0, int(round(seconds * fps)))


def pick_peaks(activations, *, fps: float, threshold: float, max_window_s: float = 6.0,
               avg_before_s: float = 12.0, avg_after_s: float = 6.0,
               min_distance_s: float = 0.0):
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

    Returns
    -------
    times_s : np.ndarray [shape=(n_peaks,)], seconds (frame centres)
    strengths : np.ndarray [shape=(n_peaks,)], activation minus local mean

    References
    ----------
    Böck, Krebs & Schedl, "Evaluating the online capabilities of onset detection methods",
    ISMIR 2012. Ullrich, Schlüter & Grill, ISMIR 2014.
    """
    import librosa

    x = np.asarray(activations, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"activations must be 1-D, got shape {x.shape}")
    if x.size == 0:
        return np.zeros(0), np.zeros(0)
    w = max(1, _frames(max_window_s, fps))
    before, after = _frames(avg_before_s, fps), max(1, _frames(avg_after_s, fps))
    wait = max(w, _frames(min_distance_s, fps))
    # librosa's windows are half-open [n - pre, n + post): +1 makes them symmetric and inclusive.
    # librosa's kernel takes delta as float32 and keeps x >= mean + delta; "strictly above" is
    # applied here, so a flat stretch (x == mean) never yields a boundary at threshold 0.
    idx = librosa.util.peak_pick(x, pre_max=w, post_max=w + 1, pre_avg=before,
                                 post_avg=after + 1, delta=float(threshold), wait=wait)
    strengths = x[idx] - _local_mean(x, idx, before, after)
    keep = strengths > threshold
    return timebase.frames_to_time(idx[keep], sr=fps, hop_length=1), strengths[keep]


def _local_mean(x, idx, before, after):
    csum = np.concatenate([[0.0], np.cumsum(x)])
    lo = np.maximum(idx - before, 0)
    hi = np.minimum(idx + after + 1, len(x))
    return (csum[hi] - csum[lo]) / (hi - lo)
