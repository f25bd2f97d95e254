"""``--snap beats``: move each crossover to the nearest beat (librosa's beat tracker).

DJs cut and swap on the beat, so in beat-matched sets the nearest beat is a better instant than a
frame a few hundred milliseconds off. A crossover moves only when a beat lies within
``tolerance_s``; the mixes of the benchmark are not beat-matched, so MODEL_CARD.md reports what
snapping does there rather than assuming it helps.
"""

import numpy as np

SNAP_TOLERANCE_S = 0.35


def beat_times(mel_db: np.ndarray, *, sr: int, hop_length: int) -> np.ndarray:
    """Beat times (seconds) from a log-mel: librosa's onset strength and dynamic-programming
    beat tracker (Ellis 2007)."""
    import librosa

    envelope = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop_length)
    _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=hop_length)
    return librosa.frames_to_time(frames, sr=sr, hop_length=hop_length)


def snap(times_s, beats_s, tolerance_s: float = SNAP_TOLERANCE_S) -> np.ndarray:
    """Each time moved to its nearest beat when one lies within ``tolerance_s``."""
    times = np.asarray(times_s, dtype=np.float64)
    beats = np.asarray(beats_s, dtype=np.float64)
    if len(beats) == 0 or len(times) == 0:
        return times
    right = np.clip(np.searchsorted(beats, times), 1, len(beats) - 1) if len(beats) > 1 else \
        np.zeros(len(times), dtype=int)
    candidates = np.stack([beats[np.maximum(right - 1, 0)], beats[right]])
    nearest = candidates[np.argmin(np.abs(candidates - times), axis=0), np.arange(len(times))]
    return np.where(np.abs(nearest - times) <= tolerance_s, nearest, times)
