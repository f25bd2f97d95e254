"""Multi-scale before/after descriptors: how different the music left of a time is from the
music right of it, at 2 to 32 s (numpy only).

A crossover changes *track identity* (key, timbre, tempo, level) for good; a section change
inside a track changes some of it for a while. Comparing the two sides of every time over several
window lengths lets a classifier tell the two apart where a single local novelty cannot (Foote's
checkerboard kernel is one such comparison at one scale). Everything runs on pooled frames
(``POOL`` mel frames, ~4.3 per second) with cumulative sums, so a window of any length costs the
same: O(n_frames) per descriptor.

Each descriptor comes twice: as is, and divided by its median over the file, which makes the
scale travel across recordings (a quiet ambient mix and a loud rock mix differ in every raw
distance).
"""

import numpy as np

from boundaries.signal import timebase
from boundaries.signal.novelty import mfcc_from_mel_db, novelty_curve

POOL = 10  # mel frames per descriptor frame: 10 x 512 / 22050 = 0.232 s
WINDOWS_S = (2.0, 4.0, 8.0, 16.0, 32.0)
FOOTE_KERNELS_S = (8.0, 16.0, 32.0)
# The 12 lowest of 80 Slaney mel bands from 27.5 Hz: up to ~500 Hz (41 Hz apart below 1 kHz),
# bass and low mids. (The comment here said ~200 Hz until session 8; the trained detectors
# use 12, so it stays; the placement stage adds the sub-200-Hz bass, placement.EQ_BASS_BANDS.)
LOW_BANDS = 12
EDGE_CAP_S = 32.0


def row_centres(n_rows: int, pool: int = POOL) -> np.ndarray:
    """Mel-frame position of the centre of each pooled row (row i covers frames
    ``[i * pool, (i + 1) * pool)``)."""
    return np.arange(n_rows) * pool + (pool - 1) / 2


def pool_frames(x: np.ndarray, pool: int) -> np.ndarray:
    """Means over non-overlapping groups of ``pool`` frames; ``[d, n]`` -> ``[d, ceil(n/pool)]``
    (the last group may be shorter)."""
    n = x.shape[1]
    n_out = -(-n // pool)
    padded = np.zeros((x.shape[0], n_out * pool), dtype=np.float64)
    padded[:, :n] = x
    counts = np.full(n_out, pool, dtype=np.float64)
    counts[-1] = n - (n_out - 1) * pool
    return (padded.reshape(x.shape[0], n_out, pool).sum(axis=2) / counts).astype(np.float32)


def side_means(x: np.ndarray, width: int):
    """Means of ``x [d, n]`` over ``[t - width, t)`` (left) and ``[t, t + width)`` (right) for
    every t, truncated at the file edges; returns ``(left, right, n_left, n_right)``."""
    return side_means_of_sums(cumulative(x), width)


def cumulative(x: np.ndarray) -> np.ndarray:
    """``[d, n + 1]`` float64 running sums of ``x [d, n]`` along time, from 0."""
    csum = np.zeros((x.shape[0], x.shape[1] + 1), dtype=np.float64)
    np.cumsum(x, axis=1, out=csum[:, 1:])
    return csum


def side_means_of_sums(csum: np.ndarray, width: int, gap: int = 0):
    """:func:`side_means` from :func:`cumulative`'s sums (taken once for every width); with a
    ``gap``, the left window ends ``gap`` frames before t and the right one starts ``gap`` after
    it (empty, with counts 0, where that lies beyond the file)."""
    if gap > 0:
        return _gapped(*side_means_of_sums(csum, width), gap)
    n = csum.shape[1] - 1
    t = np.arange(n)
    n_left, n_right = t - np.maximum(t - width, 0), np.minimum(t + width, n) - t
    w = min(width, n)
    # csum[t] - csum[max(t - w, 0)] and csum[min(t + w, n)] - csum[t], by slices (no gathers)
    left = csum[:, :n].copy()
    left[:, w:] -= csum[:, :n - w]
    right = np.empty_like(left)
    right[:, :n - w] = csum[:, w:n] - csum[:, :n - w]
    right[:, n - w:] = csum[:, n:] - csum[:, n - w:n]
    return left / np.maximum(n_left, 1), right / np.maximum(n_right, 1), n_left, n_right


def _gapped(left, right, n_left, n_right, gap: int):
    """Side means moved ``gap`` frames away from t: the left ones later, the right ones earlier."""
    n = left.shape[1]
    g = min(gap, n)
    moved = [np.zeros_like(left), np.zeros_like(right), np.zeros(n, dtype=n_left.dtype),
             np.zeros(n, dtype=n_right.dtype)]
    moved[0][:, g:], moved[2][g:] = left[:, :n - g], n_left[:n - g]
    moved[1][:, :n - g], moved[3][:n - g] = right[:, g:], n_right[g:]
    return tuple(moved)


class SideSums:
    """Cumulative sums of the pooled views (:func:`pooled_views`), taken once and shared by every
    window width: each width then costs two lookups per side, not a pass over the file."""

    def __init__(self, z_mel, mfcc, level, flux):
        scalars = np.vstack([level, flux, z_mel[:LOW_BANDS].mean(axis=0),
                             z_mel[-40:].mean(axis=0)])
        self.mel, self.mel_sq, self.mfcc, self.scalars = (
            cumulative(x) for x in (z_mel, z_mel ** 2, mfcc, scalars))


def cosine_distance(a, b):
    num = np.sum(a * b, axis=0)
    den = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0) + 1e-8
    return 1.0 - num / den


def window_descriptors(sums: SideSums, width: int) -> dict:
    """The before/after distances at one window width (pooled frames)."""
    left, right, n_left, n_right = side_means_of_sums(sums.mel, width)
    sq_left, sq_right, _, _ = side_means_of_sums(sums.mel_sq, width)
    var = np.maximum(sq_left - left ** 2, 0) + np.maximum(sq_right - right ** 2, 0)
    mfcc_left, mfcc_right, _, _ = side_means_of_sums(sums.mfcc, width)
    s_left, s_right, _, _ = side_means_of_sums(sums.scalars, width)
    diff = left - right
    out = {
        "mel": np.sqrt(np.mean(diff ** 2, axis=0)),
        "mel_t": np.mean(diff ** 2 / (var + 0.1), axis=0),  # a t-statistic-like distance
        "mfcc": cosine_distance(mfcc_left, mfcc_right),
        "level": s_left[0] - s_right[0],
        "flux": s_left[1] - s_right[1],
        "bass": s_left[2] - s_right[2],
        "treble": s_left[3] - s_right[3],
    }
    # Where one side is empty (the file's edges) there is no evidence of change.
    empty = (n_left == 0) | (n_right == 0)
    for value in out.values():
        value[empty] = 0.0
    return out


def pooled_views(mel_db: np.ndarray, pool: int):
    """What the before/after comparisons look at, at ``pool`` mel frames a row: ``(z_mel
    [n_mels, n], mfcc [n_mfcc - 1, n], level [n], flux [n])``: bands and MFCCs z-scored over
    the file, mean level (dB) and mean positive spectral flux of each row."""
    pooled = pool_frames(mel_db, pool)
    z_mel = (pooled - pooled.mean(axis=1, keepdims=True)) / (
        pooled.std(axis=1, keepdims=True) + 1e-3)
    mfcc = mfcc_from_mel_db(pooled)[1:]
    mfcc = (mfcc - mfcc.mean(axis=1, keepdims=True)) / (mfcc.std(axis=1, keepdims=True) + 1e-6)
    flux = pool_frames(positive_flux(mel_db)[None], pool)[0]
    return z_mel, mfcc, pooled.mean(axis=0), flux


def positive_flux(mel_db: np.ndarray) -> np.ndarray:
    """``[n_frames]``: the mean over bands of each frame's rise in dB (0 for the first)."""
    return np.maximum(np.diff(mel_db, axis=1, prepend=mel_db[:, :1]), 0).mean(axis=0)


def compute_descriptors(mel_db: np.ndarray, *, fps: float, pool: int = POOL):
    """Descriptor matrix of one file at the pooled rate.

    Parameters
    ----------
    mel_db : np.ndarray [shape=(n_mels, n_frames)], dB
    fps : float
        Frames per second of ``mel_db``.

    Returns
    -------
    features : np.ndarray [shape=(n_pooled, n_features), dtype=float32]
        ``n_pooled = ceil(n_frames / pool)``; row i describes pooled frame i, centred at mel
        frame ``i * pool + (pool - 1) / 2``.
    names : list of str, one per column
    """
    pooled_fps = fps / pool
    z_mel, mfcc, level, flux = pooled_views(mel_db, pool)
    sums = SideSums(z_mel, mfcc, level, flux)
    columns, names = [], []
    for window_s in WINDOWS_S:
        width = timebase.frames_in(window_s, pooled_fps, 1)
        for key, value in window_descriptors(sums, width).items():
            columns.append(value)
            names.append(f"{key}@{window_s:g}")
    unit = mfcc / (np.linalg.norm(mfcc, axis=0, keepdims=True) + 1e-8)
    for kernel_s in FOOTE_KERNELS_S:
        columns.append(novelty_curve(unit, timebase.frames_in(kernel_s / 2, pooled_fps, 1)))
        names.append(f"foote@{kernel_s:g}")
    values, names = relative_to_median(np.vstack(columns), names)
    edge_s = np.minimum(np.arange(len(level)), np.arange(len(level))[::-1]) / pooled_fps
    values = np.vstack([values, np.minimum(edge_s, EDGE_CAP_S)])
    return values.T.astype(np.float32), names + ["edge_s"]


def relative_to_median(columns: np.ndarray, names):
    """Every row as is, then every row divided by its median absolute value over the file."""
    scale = np.median(np.abs(columns), axis=1, keepdims=True) + 1e-6
    return np.vstack([columns, columns / scale]), names + [f"{n}/median" for n in names]
