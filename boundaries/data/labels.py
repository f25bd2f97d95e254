"""Boundary times -> per-frame training targets and loss weights.

Two smearing modes (plus plain binary frames):

- ``soft`` (Ullrich, Schlüter & Grill, ISMIR 2014): the target is a Gaussian of the distance to
  the nearest boundary, ``exp(-d^2 / (2 sigma^2))``, zero beyond ``radius_s``; every weight is 1.
- ``window``: every frame within ``radius_s`` of a boundary is positive (target 1) and carries a
  loss weight that falls along the same Gaussian from the boundary; negatives weigh 1.
- ``binary``: 1 on the boundary frame only.

Overlapping windows take the maximum, i.e. the nearest boundary wins. The exact binary boundary
frames stay available for metrics through :func:`make_labels`.
"""

import numpy as np

from boundaries.signal import timebase


def boundary_frames(times_s, n_frames: int, *, sr: int, hop_length: int) -> np.ndarray:
    """Sorted unique frame indices of boundaries inside ``[0, n_frames)``."""
    frames = timebase.time_to_frames(times_s, sr=sr, hop_length=hop_length)
    return np.unique(frames[(frames >= 0) & (frames < n_frames)])


def make_labels(times_s, n_frames: int, *, sr: int, hop_length: int,
                tolerance_s: float = 0.0) -> np.ndarray:
    """Binary frames: 1 within ``tolerance_s`` of a boundary (0: the boundary frame only).

    Returns
    -------
    labels : np.ndarray [shape=(n_frames,), dtype=float32]
    """
    labels = np.zeros(n_frames, dtype=np.float32)
    if tolerance_s > 0:
        labels[distance_to_boundary(times_s, n_frames, sr=sr, hop_length=hop_length)
               <= tolerance_s + 1e-9] = 1.0
    labels[boundary_frames(times_s, n_frames, sr=sr, hop_length=hop_length)] = 1.0
    return labels


def distance_to_boundary(times_s, n_frames: int, *, sr: int, hop_length: int) -> np.ndarray:
    """Seconds from each frame centre to the nearest boundary (inf when there is none)."""
    times = np.sort(np.asarray(times_s, dtype=np.float64))
    centres = timebase.frames_to_time(np.arange(n_frames), sr=sr, hop_length=hop_length)
    if times.size == 0:
        return np.full(n_frames, np.inf)
    right = np.clip(np.searchsorted(times, centres), 0, times.size - 1)
    left = np.clip(right - 1, 0, times.size - 1)
    return np.minimum(np.abs(centres - times[left]), np.abs(centres - times[right]))


def make_targets(times_s, n_frames: int, *, sr: int, hop_length: int, mode: str = "soft",
                 sigma_s: float = 1.0, radius_s: float = 3.0):
    """Smeared targets and per-frame loss weights.

    Parameters
    ----------
    times_s : array-like, seconds
        Boundary times; any outside the signal still smear into it (edges are handled).
    n_frames : int >= 0
    mode : {'soft', 'window', 'binary'}
    sigma_s : float > 0, seconds
        Gaussian width.
    radius_s : float >= 0, seconds
        Frames further than this from every boundary are negatives.

    Returns
    -------
    targets : np.ndarray [shape=(n_frames,), dtype=float32], in [0, 1]
    weights : np.ndarray [shape=(n_frames,), dtype=float32], > 0

    References
    ----------
    Ullrich, Schlüter & Grill, "Boundary detection in music structure analysis using
    convolutional neural networks", ISMIR 2014.
    """
    if mode == "binary":
        labels = make_labels(times_s, n_frames, sr=sr, hop_length=hop_length)
        return labels, np.ones(n_frames, dtype=np.float32)
    distance = distance_to_boundary(times_s, n_frames, sr=sr, hop_length=hop_length)
    inside = distance <= radius_s + 1e-9
    gaussian = np.where(inside, np.exp(-0.5 * (np.minimum(distance, 1e6) / sigma_s) ** 2), 0.0)
    # The boundary frame itself is always a full positive, even if it sits off the frame centre.
    gaussian[boundary_frames(times_s, n_frames, sr=sr, hop_length=hop_length)] = 1.0
    if mode == "soft":
        return gaussian.astype(np.float32), np.ones(n_frames, dtype=np.float32)
    if mode == "window":
        targets = inside.astype(np.float32)
        targets[gaussian == 1.0] = 1.0
        weights = np.where(targets > 0, gaussian, 1.0)
        return targets, weights.astype(np.float32)
    raise ValueError(f"unknown smearing mode {mode!r}; use soft, window or binary")
