"""The one place where seconds and frame indices meet.

Frames come from a centred STFT, so frame ``t`` is centred on sample ``t * hop_length`` and a
signal of ``n`` samples has ``1 + n // hop_length`` frames (the law librosa's tests assert).
Every other module converts through these functions and never restates the law.
"""

import numpy as np


def fps(sr: int, hop_length: int) -> float:
    """Frames per second: ``sr / hop_length`` (22050 / 512 ~= 43.07)."""
    return sr / hop_length


def num_frames(n_samples: int, hop_length: int) -> int:
    """Number of centred STFT frames for ``n_samples`` samples."""
    return 1 + int(n_samples) // int(hop_length)


def frames_to_time(frames, *, sr: int, hop_length: int) -> np.ndarray:
    """Frame indices -> seconds (frame centres)."""
    return np.asarray(frames, dtype=np.float64) * hop_length / sr


def time_to_frames(times_s, *, sr: int, hop_length: int) -> np.ndarray:
    """Seconds -> index of the nearest frame centre (round trip stays within half a hop)."""
    return np.rint(np.asarray(times_s, dtype=np.float64) * sr / hop_length).astype(np.int64)


def seconds_to_frame_count(seconds: float, *, sr: int, hop_length: int) -> int:
    """A duration in seconds -> a whole number of frames (at least 0)."""
    return frames_in(seconds, fps(sr, hop_length))


def frames_in(seconds: float, fps: float, at_least: int = 0) -> int:
    """A duration (or a time) in seconds -> the nearest whole number of frames at ``fps``, at
    least ``at_least``: the one rounding of seconds into frames, also for pooled frame rates."""
    return max(at_least, int(round(seconds * fps)))
