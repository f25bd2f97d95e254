"""The "same track?" embedding at inference, in numpy: its network's forward pass, and what the
detector reads from it (left-vs-right distances, whole-file recurrence).

:mod:`embedding` trains the network with torch; everything here runs without torch, because
importing torch costs ``boundaries detect`` over a second of start-up (issue 16). The network is
small (four 3x3 convolutions), so its forward pass is four matrix products per chunk of frames;
a test checks it against the torch module.

The network is fully convolutional in time and its head is linear after a mean over time, so
one pass over the whole file gives per-position projections whose window means *are* the window
embeddings (a linear map commutes with a mean): every window costs one cumulative sum, not one
network pass.
"""

import numpy as np

TIME_POOL = 2  # mel frames averaged before the network: 21.5 frames/s
CROP_FRAMES = 96  # network frames per training excerpt: 96 x 2 x 512 / 22050 = 4.46 s
STRIDE = 8  # network frames per output position (three 2x poolings): 0.37 s
LEVEL_REF_DB = 20.0
BATCH_NORM_EPS = 1e-5  # torch.nn.BatchNorm2d's default


def network_frames(mel_db: np.ndarray) -> np.ndarray:
    """Log-mel ``[n_mels, n]`` -> network input ``[n_mels, n // TIME_POOL]``: time-pooled, level
    relative to the file's mean (gain-invariant), scaled to about unit range."""
    n = mel_db.shape[1] // TIME_POOL * TIME_POOL
    x = mel_db[:, :n].reshape(mel_db.shape[0], -1, TIME_POOL).mean(axis=2)
    return ((x - x.mean()) / LEVEL_REF_DB).astype(np.float32)


class EmbeddingNetwork:
    """``TrackEmbedding`` (:mod:`embedding`) in inference mode, from its ``state_dict`` as numpy
    arrays: each batch norm folded into the convolution before it.

    The state dict's layout is ``TrackEmbedding``'s: ``encoder.<i>.weight`` of the convolutions
    (4-D) with the batch norm's ``weight, bias, running_mean, running_var`` at ``encoder.<i+1>``,
    then ``head.weight [dim, channels * n_mels / 8, 1]`` and ``head.bias``.
    """

    def __init__(self, state: dict, n_mels: int = 80):
        self.state = {k: np.asarray(v) for k, v in state.items()}  # kept for saving
        convs = sorted((int(k.split(".")[1]), v) for k, v in self.state.items()
                       if k.startswith("encoder.") and k.endswith(".weight") and v.ndim == 4)
        self.layers = []
        for index, weight in convs:
            norm = {p: self.state[f"encoder.{index + 1}.{p}"].astype(np.float64)
                    for p in ("weight", "bias", "running_mean", "running_var")}
            scale = norm["weight"] / np.sqrt(norm["running_var"] + BATCH_NORM_EPS)
            self.layers.append(((weight * scale[:, None, None, None]).astype(np.float32),
                                (norm["bias"] - norm["running_mean"] * scale).astype(np.float32)))
        self.head_weight = self.state["head.weight"][:, :, 0].astype(np.float32)
        self.head_bias = self.state["head.bias"].astype(np.float32)
        self.dim = len(self.head_bias)
        if self.head_weight.shape[1] != len(self.layers[-1][1]) * (n_mels // 8):
            from boundaries.errors import BoundariesError

            raise BoundariesError(f"the embedding's head takes {self.head_weight.shape[1]} "
                                  f"inputs, not {n_mels} mel bands' worth")

    @classmethod
    def from_module(cls, module) -> "EmbeddingNetwork":
        return cls({k: v.detach().cpu().numpy() for k, v in module.state_dict().items()},
                   module.n_mels)

    def positions(self, x: np.ndarray) -> np.ndarray:
        """Network input ``[n_mels, T]`` -> projections ``[dim, T // STRIDE]``."""
        h = np.asarray(x, dtype=np.float32)[None]
        for i, (weight, bias) in enumerate(self.layers):
            h = _conv3x3(h, weight)
            if i < len(self.layers) - 1:  # pooling first: a per-channel bias and ReLU commute
                h = _max_pool2(h)  # with a max, and run on a quarter of the values
            h += bias[:, None, None]
            np.maximum(h, 0.0, out=h)
        return self.head_weight @ h.reshape(-1, h.shape[2]) + self.head_bias[:, None]


def _conv3x3(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` * ``[O, C, 3, 3]`` -> ``[O, H, W]``, zero padding 1 (``nn.Conv2d(..., 3,
    padding=1)``): the nine shifted copies of the input as rows, then one matrix product."""
    c, h, w = x.shape
    padded = np.zeros((c, h + 2, w + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = x
    shifted = np.empty((3, 3, c, h, w), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            shifted[dy, dx] = padded[:, dy:dy + h, dx:dx + w]
    by_shift = weight.transpose(0, 2, 3, 1).reshape(len(weight), 9 * c)
    return (by_shift @ shifted.reshape(9 * c, h * w)).reshape(len(weight), h, w)


def _max_pool2(x: np.ndarray) -> np.ndarray:
    """``nn.MaxPool2d(2)``: odd trailing rows and columns dropped."""
    c, h, w = x.shape
    x = x[:, :h // 2 * 2, :w // 2 * 2]
    rows = np.maximum(x[:, 0::2], x[:, 1::2])
    return np.maximum(rows[:, :, 0::2], rows[:, :, 1::2])


def position_projections(network: "EmbeddingNetwork", mel_db: np.ndarray,
                         chunk: int = 4096) -> np.ndarray:
    """Per-position projections ``[dim, n_positions]`` over a whole file, in chunks of network
    frames (overlapping by 64 frames so chunk edges see real context)."""
    x = network_frames(mel_db)
    n = x.shape[1] // STRIDE * STRIDE
    if n == 0:
        return np.zeros((network.dim, 0), dtype=np.float32)
    pad = 64
    out = []
    for start in range(0, n, chunk):
        lo, hi = max(0, start - pad), min(n, start + chunk + pad)
        proj = network.positions(x[:, lo:hi])
        a = (start - lo) // STRIDE
        out.append(proj[:, a:a + (min(start + chunk, n) - start) // STRIDE])
    return np.concatenate(out, axis=1)


def embedding_distances(proj: np.ndarray, *, n_out: int, out_stride_frames: int,
                        windows_s=(4.0, 8.0, 16.0, 32.0), gap_s: float = 1.0,
                        fps: float = 22050 / 512):
    """Cosine distance between the mean embeddings left and right of every output frame.

    Parameters
    ----------
    proj : np.ndarray [shape=(dim, n_positions)], from :func:`position_projections`
    n_out : int
        Output frames (the descriptor rate), each ``out_stride_frames`` mel frames apart.
    windows_s : window lengths each side, seconds; ``gap_s`` is skipped on each side so a
        crossfade's overlap does not blur both means.

    Returns
    -------
    distances : np.ndarray [shape=(n_out, len(windows_s))], in [0, 2]; 0 where a side is empty.
    """
    pos_s = STRIDE * TIME_POOL / fps
    csum = np.zeros((proj.shape[0], proj.shape[1] + 1))
    np.cumsum(proj, axis=1, out=csum[:, 1:])
    centres_s = (np.arange(n_out) * out_stride_frames + (out_stride_frames - 1) / 2) / fps
    # position p covers [p * pos_s, (p + 1) * pos_s): index of the position holding each time
    t = centres_s / pos_s
    out = np.zeros((n_out, len(windows_s)), dtype=np.float32)
    n_pos = proj.shape[1]
    for j, window_s in enumerate(windows_s):
        w, g = window_s / pos_s, gap_s / pos_s
        l_lo = np.clip(np.round(t - g - w), 0, n_pos).astype(int)
        l_hi = np.clip(np.round(t - g), 0, n_pos).astype(int)
        r_lo = np.clip(np.round(t + g), 0, n_pos).astype(int)
        r_hi = np.clip(np.round(t + g + w), 0, n_pos).astype(int)
        ok = (l_hi > l_lo) & (r_hi > r_lo)
        left = (csum[:, l_hi] - csum[:, l_lo]) / np.maximum(l_hi - l_lo, 1)
        right = (csum[:, r_hi] - csum[:, r_lo]) / np.maximum(r_hi - r_lo, 1)
        cos = np.sum(left * right, axis=0) / (np.linalg.norm(left, axis=0)
                                              * np.linalg.norm(right, axis=0) + 1e-8)
        out[:, j] = np.where(ok, 1.0 - cos, 0.0)
    return out


RECURRENCE_NAMES = ("recur_past", "recur_future", "recur_past_far", "recur_future_far")
NOTHING_TO_COMPARE = -2.0  # below any cosine: a split isolates it (an all-NaN column breaks
# scikit-learn's binning on short training files)


def _unit_means(proj: np.ndarray, csum: np.ndarray, lo_s, hi_s, pos_s: float):
    """Unit-length mean projections over ``[lo_s, hi_s)`` (arrays of bounds): ``[k, dim]``,
    NaN rows where a span holds fewer than 3 positions (the file's edge)."""
    n = proj.shape[1]
    lo = np.clip(np.round(np.asarray(lo_s) / pos_s), 0, n).astype(int)
    hi = np.clip(np.round(np.asarray(hi_s) / pos_s), 0, n).astype(int)
    means = ((csum[:, hi] - csum[:, lo]) / np.maximum(hi - lo, 1)).T
    means /= np.linalg.norm(means, axis=1, keepdims=True) + 1e-8
    means[hi - lo < 3] = np.nan
    return means.astype(np.float32)


def recurrence_features(proj: np.ndarray, *, n_out: int, out_stride_frames: int,
                        fps: float = 22050 / 512, window_s: float = 8.0, hop_s: float = 2.0,
                        gap_s: float = 1.0, far_s: float = 30.0, block: int = 2048):
    """Does the music after each time sound like anything *earlier* in the file, and the music
    before it like anything *later*? A new track in a mix never played before; a section of
    the same track (a chorus, a drop) usually has. Local before/after distances cannot see this
    when the sections around the time differ; a whole-file look can.

    For each output frame ``t``: R = the mean embedding over ``[t + gap, t + gap + window]``, L =
    over ``[t - gap - window, t - gap]``; segments of ``window_s`` every ``hop_s`` over the file.

    Returns
    -------
    features : np.ndarray [shape=(n_out, 4), dtype=float32]
        The highest cosine similarity of R to any segment ending before ``t - gap`` (``past``)
        and of L to any segment starting after ``t + gap`` (``future``); then the same beyond
        ``far_s`` (``_far``: recurrence at a distance, not the neighbouring bars);
        ``NOTHING_TO_COMPARE`` (-2) where there is nothing to compare.
    """
    pos_s = STRIDE * TIME_POOL / fps
    out = np.full((n_out, 4), NOTHING_TO_COMPARE, dtype=np.float32)
    if proj.shape[1] < 3 or n_out == 0:
        return out
    csum = np.zeros((proj.shape[0], proj.shape[1] + 1))
    np.cumsum(proj, axis=1, out=csum[:, 1:])
    duration_s = proj.shape[1] * pos_s
    starts = np.arange(0.0, max(duration_s - window_s, 0.0) + 1e-9, hop_s)
    segments = np.nan_to_num(_unit_means(proj, csum, starts, starts + window_s, pos_s))
    ends = starts + window_s
    t = (np.arange(n_out) * out_stride_frames + (out_stride_frames - 1) / 2) / fps
    for a in range(0, n_out, block):  # bounded memory on a 2-hour mix
        tb = t[a:a + block]
        right = _unit_means(proj, csum, tb + gap_s, tb + gap_s + window_s, pos_s)
        left = _unit_means(proj, csum, tb - gap_s - window_s, tb - gap_s, pos_s)
        sim_right, sim_left = np.nan_to_num(right) @ segments.T, np.nan_to_num(left) @ segments.T
        for j, far in enumerate((0.0, far_s)):
            past = ends[None, :] <= (tb[:, None] - gap_s - far)
            future = starts[None, :] >= (tb[:, None] + gap_s + far)
            out[a:a + block, 2 * j] = _masked_max(sim_right, past, right)
            out[a:a + block, 2 * j + 1] = _masked_max(sim_left, future, left)
    return out


def _masked_max(sim: np.ndarray, mask: np.ndarray, side: np.ndarray) -> np.ndarray:
    best = np.where(mask, sim, -np.inf).max(axis=1)
    best[~np.isfinite(best) | np.isnan(side[:, 0])] = NOTHING_TO_COMPARE
    return best
