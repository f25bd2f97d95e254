"""The placement locator: where, within +-7 s of a detection, the crossover lies (numpy).

The placement trees (:mod:`boundaries.detection.placement`) score each fine frame (46 ms) on its
own, from its row of descriptors and fitted gains. The locator reads all the frames around a
detection at once: those rows and the frames' log-mel (z-scored over the file), through a
dilated temporal CNN whose outputs each see the whole +-7 s, and gives a softmax over the frames:
the shape of a whole fade (where the incoming track first sounds, where the outgoing one is
gone) places its middle better than any one frame's row. Its probability multiplies the trees'
score (raised to ``track.locator_weight``; candidates ``track.locator_weights``). The shipped
detector averages three, weight 1, prior 1 s: validation F@0.5 0.568 -> 0.613 on the 300 mixes,
test 0.569 -> 0.575 (MODEL_CARD.md, sessions 18-19).

It is trained in :mod:`boundaries.train.locator` (torch); this module runs it in numpy
(``boundaries detect`` imports no torch), and a test checks that the two agree.
"""

import numpy as np

from boundaries.model.sequence import dilated_conv

DILATIONS = (1, 2, 4, 8, 16, 32, 64)  # +-255 frames of receptive field: the whole window
WIDTH = 64
INPUT_KERNEL = 5
MASKED_LOGIT = -1e4  # frames beyond the file's ends


def network_input(rows: np.ndarray, z_mel: np.ndarray, idx: np.ndarray, centre: int, half: int,
                  mean: np.ndarray, std: np.ndarray):
    """``(x [2 half + 1, n_in], valid [2 half + 1])``: the placement rows ``[len(idx), n_cols]``
    of frames ``idx`` beside those frames' z-scored log-mel ``z_mel[:, idx]``, standardised,
    placed in a window centred on frame ``centre``; frames beyond the file stay 0 (invalid)."""
    width = 2 * half + 1
    k = np.asarray(idx) - centre + half
    x = np.zeros((width, len(mean)), np.float32)
    x[k] = (np.hstack([rows, z_mel[:, idx].T]) - mean) / std
    valid = np.zeros(width, bool)
    valid[k] = True
    return x, valid


class Locator:
    """The trained network(s) from ``state_dict`` arrays (the layout of
    :class:`boundaries.train.locator.LocatorCNN`) with the input's ``mean`` and ``std``; a list
    of them is an ensemble whose probabilities are averaged (``track.locator_seeds``)."""

    def __init__(self, state):
        states = state if isinstance(state, (list, tuple)) else [state]
        self.networks = [{k: np.asarray(v, np.float32) for k, v in s.items()} for s in states]

    @property
    def state(self):
        """What the checkpoint stores: one network's arrays, or a list of them."""
        return self.networks[0] if len(self.networks) == 1 else list(self.networks)

    def probabilities(self, rows, z_mel, idx, centre: int, half: int) -> np.ndarray:
        """Softmax over the frames ``idx`` (the placement rows' frames, in order), averaged
        over the networks."""
        return np.mean([_probabilities(s, rows, z_mel, idx, centre, half)
                        for s in self.networks], axis=0)


def _probabilities(s, rows, z_mel, idx, centre, half) -> np.ndarray:
    x, valid = network_input(rows, z_mel, idx, centre, half, s["mean"], s["std"])
    logits = logits_of(s, x.T)
    logits[~valid] = MASKED_LOGIT
    p = np.exp(logits - logits.max())
    return (p / p.sum())[valid]


def logits_of(s: dict, x: np.ndarray) -> np.ndarray:
    """One network's ``[n]`` logits from its standardised ``[n_in, n]`` input."""
    h = dilated_conv(x, s["inp.weight"], s["inp.bias"])
    for i, dilation in enumerate(DILATIONS):
        z = dilated_conv(np.maximum(h, 0.0), s[f"blocks.{i}.conv.weight"],
                         s[f"blocks.{i}.conv.bias"], dilation)
        h = h + dilated_conv(np.maximum(z, 0.0), s[f"blocks.{i}.mix.weight"],
                             s[f"blocks.{i}.mix.bias"])
    return (s["out.weight"][0, :, 0] @ np.maximum(h, 0.0) + s["out.bias"][0]).astype(np.float64)
