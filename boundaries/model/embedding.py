"""A learned "same track?" embedding: its network and its contrastive training.

A small 2-D CNN maps ~4.5 s of log-mel to a 64-d unit vector, trained contrastively (InfoNCE,
Oord et al. 2018; SimCLR's NT-Xent form): two excerpts of the same track, from *any* of its
sections, are a positive pair; excerpts of other tracks in the batch, several of them from the same
package (same composer, same instruments: hard negatives), are negatives. What it learns is track
identity (key, timbre, instrumentation, production), the signal that tells "another track" from
"another section of this one" (McCallum, ICASSP 2019; Salamon et al., ISMIR 2021 use the same idea
for structure).

This module trains it (torch); :mod:`embedding_features` runs it at inference (numpy).
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from boundaries.model.embedding_features import CROP_FRAMES, LEVEL_REF_DB
from boundaries.train.one_cycle import train_steps


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
                    width: int = 16, seed: int = 0, log_every: int = 50, log=print,
                    device=torch.device("cpu"), amp: bool = False) -> TrackEmbedding:
    """InfoNCE training with AdamW and a one-cycle schedule, on ``device``; returns the model
    in eval mode."""
    torch.manual_seed(seed)

    def step_loss():
        x1, x2 = (x.to(device, non_blocking=True) for x in sampler.batch())
        return info_nce(model(x1), model(x2))

    model = TrackEmbedding(n_mels=n_mels, width=width)
    return train_steps(model, step_loss, steps=steps, lr=lr, pct_start=0.05,
                       label="embedding", metric="InfoNCE", log_every=log_every, log=log,
                       device=device, amp=amp)


