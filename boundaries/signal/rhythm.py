"""Before/after rhythm: how different the periodicity of the onsets left of a time is from that
right of it, at 4 to 32 s (numpy only).

The sections of one track share a tempo and a groove; two tracks rarely do (the mixes this
project trains on are not beat-matched, and a deck without key lock moves a track's tempo by a
few per cent). The log-mel descriptors (:mod:`descriptors`) compare timbre and level, the
embedding hears 4.5 s of sound; neither compares the autocorrelation of the onsets over many
seconds, the tempogram (Grosche, Müller & Kurth, ICASSP 2010).

Why not ``librosa.feature.tempogram``: it gives one autocorrelation per frame over one fixed
window (an FFT per frame), while this needs it summed over windows of several lengths on both
sides of every pooled row. The lagged products of the onset envelope, pooled to rows once, turn
every window into two cumulative-sum lookups, as the other descriptors do; and detection stays
free of librosa (issue 16).
"""

import numpy as np

from boundaries.signal import descriptors, filters, timebase

WINDOWS_S = (4.0, 8.0, 16.0, 32.0)
MAX_LAG_S = 2.0  # a beat at 30 BPM, or a bar at 120
MIN_LAG_FRAMES = 2  # lag 1 is the envelope's own smoothness, the same in all music
DETREND_S = 1.0  # the running mean taken off the envelope: periodicity, not loudness
SILENT = 1e-9  # no onsets on either side (digital silence): nothing to compare
NAMES = tuple(f"rhythm@{w:g}" for w in WINDOWS_S)


def onset_envelope(mel_db: np.ndarray, fps: float) -> np.ndarray:
    """Mean positive log-mel flux per frame, minus its running mean over ``DETREND_S``."""
    flux = descriptors.positive_flux(mel_db)
    half = max(1, timebase.frames_in(DETREND_S / 2, fps, 1))
    return flux - filters.running_mean(flux, half, half)


def lagged_products(onsets: np.ndarray, fps: float, pool: int) -> np.ndarray:
    """``[n_lags, n_rows]``: per pooled row, the sum of ``o[t] * o[t + lag]`` over its frames t,
    for lags from ``MIN_LAG_FRAMES`` to ``MAX_LAG_S`` (zero beyond the file's end)."""
    n = len(onsets)
    n_rows = -(-n // pool)
    lags = range(MIN_LAG_FRAMES, timebase.frames_in(MAX_LAG_S, fps, MIN_LAG_FRAMES + 1) + 1)
    out = np.zeros((len(lags), n_rows), dtype=np.float64)
    product = np.zeros(n_rows * pool, dtype=np.float64)
    for i, lag in enumerate(lags):  # one lag at a time: a 2-hour file stays a few MB
        if lag >= n:
            break
        product[:n - lag] = onsets[:n - lag] * onsets[lag:]
        product[n - lag:] = 0.0
        out[i] = product.reshape(n_rows, pool).sum(axis=1)
    return out


def rhythm_distances(mel_db: np.ndarray, *, fps: float, pool: int = descriptors.POOL,
                     gap_s: float = 0.0):
    """``(columns [n_rows, 2 * len(WINDOWS_S)], names)``: for each window, the cosine distance
    between the onsets' autocorrelation left and right of each pooled row (0 where one side is
    shorter than the longest lag, or both sides are silent: no periodicity to compare), then
    each divided by its median over the file (as :mod:`descriptors` does).

    ``gap_s`` > 0 adds the same distances between windows that end ``gap_s`` before the row and
    start ``gap_s`` after it (``rhythm_gap{gap_s}@{window}``, twice as many columns): in the
    middle of a long crossfade both adjacent windows hear the two tracks at once, while windows
    past the overlap hear each alone."""
    products = lagged_products(onset_envelope(mel_db, fps), fps, pool)
    sums = descriptors.cumulative(products)
    columns, names = [], []
    gaps = [0] + ([timebase.frames_in(gap_s, fps / pool, 1)] if gap_s > 0 else [])
    for gap in gaps:
        for window_s, name in zip(WINDOWS_S, NAMES):
            width = timebase.frames_in(window_s, fps / pool, 1)
            columns.append(_side_distance(sums, width, gap, fps / pool))
            names.append(name if gap == 0 else name.replace("@", f"_gap{gap_s:g}@"))
    values, names = descriptors.relative_to_median(np.vstack(columns), names)
    return values.T.astype(np.float32), names


def _side_distance(sums: np.ndarray, width: int, gap: int, rows_per_s: float) -> np.ndarray:
    left, right, n_left, n_right = descriptors.side_means_of_sums(sums, width, gap)
    distance = descriptors.cosine_distance(left, right)
    silent = (np.abs(left).max(axis=0) < SILENT) & (np.abs(right).max(axis=0) < SILENT)
    shortest_side = timebase.frames_in(MAX_LAG_S, rows_per_s, 1)
    distance[(n_left < shortest_side) | (n_right < shortest_side) | silent] = 0.0
    return distance
