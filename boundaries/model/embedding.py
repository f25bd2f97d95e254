"""A learned "same track?" embedding, and the left-vs-right distances it gives every time.

A small 2-D CNN maps ~4.5 s of log-mel to a 64-d unit vector, trained contrastively (InfoNCE,
Oord et al. 2018; SimCLR's NT-Xent form): two excerpts of the same track, from *any* of its
sections, are a positive pair; excerpts of other tracks in the batch, several of them from the same
package (same composer, same instruments: hard negatives), are negatives. What it learns is track
identity (key, timbre, instrumentation, production), the signal that tells "another track" from
"another section of this one" (McCallum, ICASSP 2019; Salamon et al., ISMIR 2021 use the same idea
for structure).

The network is fully convolutional in time and its head is linear after a mean over time, so at
inference one pass over the whole file gives per-position projections whose window means *are*
the window embeddings (a linear map commutes with a mean): every window costs one cumulative
sum, not one network pass.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

TIME_POOL = 2  # mel frames averaged before the network: 21.5 frames/s
CROP_FRAMES = 96  # network frames per training excerpt: 96 x 2 x 512 / 22050 = 4.46 s
STRIDE = 8  # network frames per output position (three 2x poolings): 0.37 s
LEVEL_REF_DB = 20.0


def network_frames(mel_db: np.ndarray) -> np.ndarray:
    """Log-mel ``[n_mels, n]`` -> network input ``[n_mels, n // TIME_POOL]``: time-pooled, level
    relative to the file's mean (gain-invariant), scaled to about unit range."""
    n = mel_db.shape[1] // TIME_POOL * TIME_POOL
    x = mel_db[:, :n].reshape(mel_db.shape[0], -1, TIME_POOL).mean(axis=2)
    return ((x - x.mean()) / LEVEL_REF_DB).astype(np.float32)


class TrackEmbedding(nn.Module):
    """``[batch, 1, n_mels, T]`` -> per-position projections ``[batch, dim, T // 8]``.

    Frequency is kept (not pooled away) to the head: key and register live there.
    """

    def __init__(self, n_mels: int = 80, dim: int = 64, width: int = 16):
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 8 * width]
        layers = []
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Conv1d(chans[-1] * (n_mels // 8), dim, 1)
        self.n_mels, self.dim = n_mels, dim

    def positions(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)  # [B, C, n_mels/8, T/8]
        return self.head(h.flatten(1, 2))  # [B, dim, T/8]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unit embeddings ``[batch, dim]`` of whole excerpts."""
        return F.normalize(self.positions(x).mean(dim=2), dim=1)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent over ``2B`` unit vectors: each excerpt must pick its partner among all others."""
    z = torch.cat([z1, z2])
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


@torch.no_grad()
def position_projections(model: TrackEmbedding, mel_db: np.ndarray,
                         chunk: int = 4096) -> np.ndarray:
    """Per-position projections ``[dim, n_positions]`` over a whole file, in chunks of network
    frames (overlapping by 64 frames so chunk edges see real context)."""
    x = network_frames(mel_db)
    n = x.shape[1] // STRIDE * STRIDE
    if n == 0:
        return np.zeros((model.dim, 0), dtype=np.float32)
    pad = 64
    out = []
    for start in range(0, n, chunk):
        lo, hi = max(0, start - pad), min(n, start + chunk + pad)
        part = torch.from_numpy(np.ascontiguousarray(x[None, None, :, lo:hi]))
        proj = model.positions(part)[0].numpy()
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


# ---------------------------------------------------------------- training


def solo_spans(record: dict, fps: float):
    """``(source, group, lo_frame, hi_frame)`` per segment of a mix's manifest record: where its
    track plays alone (after the incoming fade, before the outgoing one)."""
    transitions = record["transitions"]
    spans = []
    for i, segment in enumerate(record["segments"]):
        lo = segment["start_s"] + (abs(transitions[i - 1]["overlap_s"]) if i else 0.0)
        hi = segment["stop_s"] - (abs(transitions[i]["overlap_s"]) if i < len(transitions)
                                  else 0.0)
        group = segment["source"].split("/")[0]
        spans.append((segment["source"], group, int(lo * fps), int(hi * fps)))
    return spans


class PairSampler:
    """Positive pairs of excerpts of one track, batches that hold several tracks of one package.

    ``clips`` is a list of network inputs ``[n_mels, T]`` (:func:`network_frames`), ``spans`` per
    clip the solo spans in *network* frames. A track that appears in several clips (other
    offsets, other speeds) gives its two excerpts from two of them: other sections of it.
    """

    def __init__(self, clips, spans, crop: int = CROP_FRAMES, seed: int = 0):
        self.clips, self.crop = clips, crop
        self.rng = np.random.default_rng(seed)
        self.by_source, self.by_group = {}, {}
        for c, clip_spans in enumerate(spans):
            for source, group, lo, hi in clip_spans:
                if hi - lo >= crop:
                    self.by_source.setdefault(source, []).append((c, lo, hi))
                    self.by_group.setdefault(group, set()).add(source)
        self.groups = sorted(self.by_group)
        if len(self.by_source) < 2:
            from boundaries.errors import BoundariesError

            raise BoundariesError(f"{len(self.by_source)} stretches of one track at least "
                                  f"{crop} network frames long: the embedding needs several; "
                                  "use longer training files")
        self.group_weight = np.array([len(self.by_group[g]) for g in self.groups], float) ** 0.5
        self.group_weight /= self.group_weight.sum()

    def _excerpt(self, occurrence) -> np.ndarray:
        c, lo, hi = occurrence
        start = int(self.rng.integers(lo, hi - self.crop + 1))
        return self.clips[c][:, start:start + self.crop]

    def batch(self, n_tracks: int = 48, per_group: int = 6):
        """Two stacks ``[n, 1, n_mels, crop]`` of augmented excerpts; row i of each is a pair."""
        sources, n_tracks = [], min(n_tracks, len(self.by_source))
        while len(sources) < n_tracks:
            group = self.groups[self.rng.choice(len(self.groups), p=self.group_weight)]
            pool = sorted(self.by_group[group] - set(sources))
            take = self.rng.permutation(pool)[:per_group]
            sources += list(take[:n_tracks - len(sources)])
        a, b = [], []
        for source in sources:
            occurrences = self.by_source[source]
            i, j = self.rng.integers(len(occurrences), size=2)
            a.append(self._augment(self._excerpt(occurrences[i])))
            b.append(self._augment(self._excerpt(occurrences[j])))
        return torch.from_numpy(np.stack(a)[:, None]), torch.from_numpy(np.stack(b)[:, None])

    def _augment(self, x: np.ndarray) -> np.ndarray:
        """Gain (+-6 dB) and a spectral tilt (+-6 dB across the bands): a DJ's gain and EQ."""
        tilt = np.linspace(-1, 1, x.shape[0])[:, None] * self.rng.uniform(-6, 6)
        return (x + (self.rng.uniform(-6, 6) + tilt) / LEVEL_REF_DB).astype(np.float32)


def train_embedding(sampler: PairSampler, *, steps: int, n_mels: int = 80, lr: float = 2e-3,
                    seed: int = 0, log_every: int = 50, log=print) -> TrackEmbedding:
    """InfoNCE training with AdamW and a one-cycle schedule; returns the model in eval mode."""
    torch.manual_seed(seed)
    model = TrackEmbedding(n_mels=n_mels)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.05)
    model.train()
    running = []
    for step in range(1, steps + 1):
        x1, x2 = sampler.batch()
        loss = info_nce(model(x1), model(x2))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % log_every == 0 or step == steps:
            log(f"embedding step {step}/{steps}: InfoNCE {np.mean(running):.3f}")
            running = []
    return model.eval()


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
