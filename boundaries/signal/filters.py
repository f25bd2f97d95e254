"""1-D filters in numpy: a running maximum, a running mean and a zero-padded correlation.

``scipy.ndimage.maximum_filter1d`` and ``correlate1d`` do the same, but importing scipy.ndimage
pulls scipy.stats and costs about half a second of ``boundaries detect``'s start-up (issue 16);
these are all the detect path needs of it. Tests check them against scipy. The running mean
shrinks its window at the ends (scipy's ``uniform_filter1d`` pads instead), as peak picking's
local mean and the rhythm onsets' detrending need.
"""

import numpy as np


def running_max(x: np.ndarray, before: int, after: int, fill: float) -> np.ndarray:
    """``out[i] = max(x[i - before : i + after + 1])``, with ``fill`` beyond the ends.

    Van Herk / Gil-Werman: blocks of the window's length, a running maximum forwards and one
    backwards inside each block; any window spans at most two blocks, so O(n) for any width.
    """
    x = np.asarray(x)
    n, k = len(x), before + after + 1
    if n == 0:
        return x.copy()
    n_blocks = -(-(n + k - 1) // k)
    padded = np.full(n_blocks * k, fill, dtype=np.result_type(x.dtype, np.min_scalar_type(fill)))
    padded[before:before + n] = x
    blocks = padded.reshape(n_blocks, k)
    forward = np.maximum.accumulate(blocks, axis=1).ravel()
    backward = np.maximum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.maximum(backward[:n], forward[k - 1:k - 1 + n])


def running_mean(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[i] = mean(x[i - before : i + after + 1])``, the window cut at the ends (float64)."""
    x = np.asarray(x, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    lo, hi = np.maximum(i - before, 0), np.minimum(i + after + 1, len(x))
    return (csum[hi] - csum[lo]) / (hi - lo)


def correlate_rows(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``out[:, t] = sum_a kernel[a] * x[:, t + a - len(kernel) // 2]``, zeros beyond the ends
    (``scipy.ndimage.correlate1d(x, kernel, axis=1, mode="constant")`` for an odd kernel)."""
    if len(kernel) % 2 != 1:
        raise ValueError(f"kernel length must be odd, got {len(kernel)}")
    flipped, half = np.asarray(kernel, dtype=np.float64)[::-1], len(kernel) // 2
    x = np.asarray(x)
    out = np.stack([np.convolve(row, flipped)[half:half + x.shape[1]] for row in x])
    return out.astype(x.dtype) if x.dtype.kind == "f" else out  # scipy keeps the input's dtype
