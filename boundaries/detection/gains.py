"""Which track is playing around a crossover: the two tracks' fitted gains (numpy only).

In the power domain a mix of two unrelated tracks is close to the sum of their spectra (the cross
terms average out within a mel band), so each frame ``x`` of a handover is fitted as
``a * out_ref + b * in_ref``, the two references being the outgoing and incoming tracks' mean
power spectra where each plays alone. The incoming share ``b / (a + b)`` rises from 0 to 1
through a crossfade and crosses 1/2 at its middle, the instant the labels mark, for linear and
equal-power fades alike; in the bass bands alone it steps at an EQ handover's swap.

One frame's share is noisy (music is not stationary). Two ways to average it: the balance of
its means just before and just after a frame (0 where the share's rise is symmetric about it),
and the residual of a whole ramp, of every length from a cut to 24 s, centred on the frame: a
fit over the overlap's full length, where any single frame would be a coin toss.
"""

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

RAMP_LENGTHS_S = (0.0, 1.0, 2.0, 4.0, 6.0, 9.0, 13.0, 18.0, 24.0)


def incoming_share(power: np.ndarray, out_ref: np.ndarray, in_ref: np.ndarray) -> np.ndarray:
    """``b / (a + b)`` per frame of ``power [n_bands, n]``, from the non-negative least-squares
    fit ``x ~ a * out_ref + b * in_ref`` with every band weighted by ``1 / (out_ref + in_ref)``
    (so the loud bass bands do not decide alone). Shape ``[n]``, values in [0, 1]."""
    weight = 1.0 / (out_ref + in_ref + 1e-10)
    A, B, X = out_ref * weight, in_ref * weight, power * weight[:, None]
    aa, bb, ab = A @ A, B @ B, A @ B
    xa, xb = A @ X, B @ X
    det = aa * bb - ab * ab + 1e-12
    a = (bb * xa - ab * xb) / det
    b = (aa * xb - ab * xa) / det
    # Where the joint fit wants a negative gain, the other reference alone fits the frame.
    only_in, only_out = a < 0, b < 0
    a = np.maximum(np.where(only_in, 0.0, np.where(only_out, xa / aa, a)), 0.0)
    b = np.maximum(np.where(only_out, 0.0, np.where(only_in, xb / bb, b)), 0.0)
    return b / (a + b + 1e-10)


def side_balances(share: np.ndarray, widths) -> list:
    """Per width ``w`` (frames): the share's mean over the ``w`` frames before each frame plus
    its mean over the ``w`` frames from it, minus 1 (truncated at the ends)."""
    csum = np.r_[0.0, np.cumsum(share)]
    n = len(share)
    t = np.arange(n)
    out = []
    for width in widths:
        lo, hi = np.maximum(0, t - width), np.minimum(n, t + width)
        before = (csum[t] - csum[lo]) / np.maximum(1, t - lo)
        after = (csum[hi] - csum[t]) / np.maximum(1, hi - t)
        out.append(before + after - 1.0)
    return out


def ramp_shape(offsets_s: np.ndarray, length_s: float) -> np.ndarray:
    """The incoming share of a crossfade of ``length_s`` centred on 0 (linear gain ramps; the
    equal-power curve differs little), a step for 0."""
    if length_s == 0:
        return (offsets_s >= 0).astype(np.float64)
    r = np.clip(offsets_s / length_s + 0.5, 0.0, 1.0)
    return r * r / (r * r + (1 - r) ** 2)


def ramp_fit(share: np.ndarray, centres: np.ndarray, half: int, fps: float):
    """``(residual, length_s)`` per frame of ``centres`` (indices into ``share``, padded with
    its edge values where a window leaves it): the mean squared residual of the best ramp
    ``c0 + c1 * ramp_shape`` centred there, over +-``half`` frames and every length in
    ``RAMP_LENGTHS_S``, less the lowest residual of all centres; and that ramp's length."""
    padded = np.pad(share, half, mode="edge")
    width = 2 * half + 1
    windows = sliding_window_view(padded, width)[centres]
    # A window's sum of squares about its mean, from running sums; with zero-mean shapes the
    # window's own mean drops out of the projections, so one product covers every length.
    csum = np.r_[0.0, np.cumsum(padded)]
    csum2 = np.r_[0.0, np.cumsum(padded * padded)]
    sums = csum[centres + width] - csum[centres]
    total = csum2[centres + width] - csum2[centres] - sums * sums / width
    shapes = _centred_shapes(half, fps)
    residual = total[:, None] - (windows @ shapes) ** 2 / (shapes * shapes).sum(axis=0)
    best = np.argmin(residual, axis=1)
    fitted = residual[np.arange(len(centres)), best] / width
    return fitted - fitted.min(), np.asarray(RAMP_LENGTHS_S)[best]


@functools.cache
def _centred_shapes(half: int, fps: float) -> np.ndarray:
    """``[2 * half + 1, len(RAMP_LENGTHS_S)]``: every ramp over the window, minus its mean."""
    offsets_s = np.arange(-half, half + 1) / fps
    shapes = np.stack([ramp_shape(offsets_s, length_s) for length_s in RAMP_LENGTHS_S], axis=1)
    return shapes - shapes.mean(axis=0)
