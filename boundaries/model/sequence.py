"""The sequence stage: a dilated temporal CNN over the first stage's probabilities (numpy).

The first stage of the track-change detector scores each row (~0.23 s) from descriptors that
look at most 32 s each side; the stacked trees add +-30 s of its probabilities as fixed
features. This stage reads the whole sequence of first-stage probabilities with eight dilated
convolutions (dilations 1 to 128 rows, kernel 3, residual), so each output sees +-255 rows
(+-59 s), longer than any fade: it learns what a crossover's probability pattern looks like over
a minute (one isolated peak vs a cluster of section changes), as the issue's sequence model asks.
Its probability is averaged with the stacked trees' (on cached rows the average edged them on
validation and beat them on test, see MODEL_CARD.md). With ``track.sequence_descriptors`` it
also reads the rows' descriptor columns, standardised: what the music does around a peak, not
only how probable the peak is (an option, not in the shipped model: it raised validation F at
+-0.5 s but not F at +-3 s, and test moved both ways; MODEL_CARD.md, session 10).

This module runs the network in numpy (``boundaries detect`` imports no torch); it is trained
in :mod:`boundaries.train.sequence`, and a test checks the two agree.
"""

import numpy as np

DILATIONS = (1, 2, 4, 8, 16, 32, 64, 128)
WIDTH = 64
GROUP_NORM_EPS = 1e-5  # torch.nn.GroupNorm's default
LOGIT_CLIP = 1e-4
LOGIT_SCALE = 4.0
DESCRIPTOR_CLIP = 5.0  # standard deviations: a silent file's level columns stay in range
SCALING_KEYS = ("descriptor_columns", "descriptor_mean", "descriptor_std")


def descriptor_columns(names) -> np.ndarray:
    """Indices of the descriptor columns among the rows' ``names``: all but the embedding
    distances and the recurrence features, which are in-sample on the training mixes (the
    embedding was trained on them): a sequence stage reading them fitted its training mixes
    far better and new music worse (MODEL_CARD.md, session 5)."""
    return np.array([i for i, name in enumerate(names)
                     if not name.startswith(("embed@", "recur_"))], dtype=np.int64)


def network_input(probs: np.ndarray, rows=None, scaling=None) -> np.ndarray:
    """First-stage probabilities ``[n]`` -> the network's input ``[1, n]``: clipped logits,
    scaled to about unit range. With ``rows [n, n_features]`` and ``scaling`` (columns, mean,
    std), ``[1 + n_columns, n]``: the standardised descriptor columns below the logits."""
    p = np.clip(np.asarray(probs, dtype=np.float64), LOGIT_CLIP, 1 - LOGIT_CLIP)
    logits = (np.log(p / (1 - p)) / LOGIT_SCALE).astype(np.float32)[None]
    if scaling is None:
        return logits
    columns, mean, std = scaling
    z = np.clip((np.asarray(rows)[:, columns] - mean) / std, -DESCRIPTOR_CLIP, DESCRIPTOR_CLIP)
    return np.vstack([logits, np.nan_to_num(z).T]).astype(np.float32)


class SequenceNetwork:
    """The trained network from its ``state_dict`` as numpy arrays (see
    :class:`boundaries.train.sequence.SequenceCNN` for the layout), with the descriptors'
    standardisation (``SCALING_KEYS``) when it reads them."""

    def __init__(self, state: dict):
        self.state = {k: np.asarray(v, np.int64 if k == "descriptor_columns" else np.float32)
                      for k, v in state.items()}
        self.scaling = tuple(self.state[k] for k in SCALING_KEYS) \
            if "descriptor_columns" in self.state else None

    def probabilities(self, first_stage: np.ndarray, rows=None) -> np.ndarray:
        """``[n]`` first-stage probabilities (and the rows ``[n, n_features]`` they came from,
        which a network without descriptor inputs ignores) -> ``[n]`` probabilities."""
        s = self.state
        x = network_input(first_stage, rows, self.scaling)
        h = s["inp.weight"][:, :, 0] @ x + s["inp.bias"][:, None]
        for i, dilation in enumerate(DILATIONS):
            z = dilated_conv(h, s[f"blocks.{i}.weight"], s[f"blocks.{i}.bias"], dilation)
            z = (z - z.mean()) / np.sqrt(z.var() + GROUP_NORM_EPS)  # GroupNorm(1, C)
            z = z * s[f"norms.{i}.weight"][:, None] + s[f"norms.{i}.bias"][:, None]
            h = h + np.maximum(z, 0.0)
        logits = s["out.weight"][0, :, 0] @ h + s["out.bias"][0]
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def dilated_conv(h: np.ndarray, weight: np.ndarray, bias: np.ndarray, dilation: int = 1):
    """``nn.Conv1d(C, O, k, dilation=d, padding=d * (k - 1) // 2)`` (odd ``k``) on ``[C, n]``:
    one shifted product per tap, zeros beyond the ends."""
    n, k = h.shape[1], weight.shape[2]
    out = weight[:, :, k // 2] @ h + bias[:, None]
    for tap in range(k):
        shift = (tap - k // 2) * dilation  # tap reads t + shift
        if tap == k // 2 or abs(shift) >= n:
            continue
        if shift < 0:
            out[:, -shift:] += weight[:, :, tap] @ h[:, :n + shift]
        else:
            out[:, :n - shift] += weight[:, :, tap] @ h[:, shift:]
    return out
