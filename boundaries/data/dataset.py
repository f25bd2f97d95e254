"""Training excerpts drawn from whole-file features and targets.

Items are ``(mel [n_mels, excerpt_frames], targets [excerpt_frames], weights, mask)``; a file
shorter than one excerpt is padded with its own per-band minimum (silence) and the padded frames
get weight and mask 0. Starts are jittered by up to half a hop each epoch (seeded by epoch and
index), so every epoch sees slightly different windows.
"""

import numpy as np
import torch
from torch.utils.data import Dataset


class ExcerptDataset(Dataset):
    def __init__(self, tracks, excerpt_frames: int, hop_frames: int, seed: int = 0):
        """``tracks``: list of ``(mel, targets, weights, boundary_frames)`` per file."""
        self.tracks = tracks
        self.excerpt_frames = int(excerpt_frames)
        self.jitter = int(hop_frames) // 2
        self.seed, self.epoch = seed, 0
        self.index = [(t, s) for t, track in enumerate(tracks)
                      for s in _starts(track[0].shape[1], self.excerpt_frames, int(hop_frames))]
        self.has_boundary = np.array([self._holds_boundary(t, s) for t, s in self.index])

    def _holds_boundary(self, track: int, start: int) -> bool:
        # Counted inside the window every jitter keeps, so the flag holds whatever the epoch.
        frames = self.tracks[track][3]
        lo, hi = start + self.jitter, start + self.excerpt_frames - self.jitter
        return bool(np.any((frames >= lo) & (frames < max(hi, lo + 1))))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        t, start = self.index[i]
        mel, targets, weights, _ = self.tracks[t]
        n = mel.shape[1]
        if self.jitter and n > self.excerpt_frames:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            start = int(np.clip(start + rng.integers(-self.jitter, self.jitter + 1), 0,
                                n - self.excerpt_frames))
        stop = min(n, start + self.excerpt_frames)
        pad = self.excerpt_frames - (stop - start)
        x = mel[:, start:stop]
        mask = np.ones(stop - start, dtype=np.float32)
        if pad:
            x = np.concatenate([x, np.repeat(mel.min(axis=1, keepdims=True), pad, axis=1)], 1)
            mask = np.concatenate([mask, np.zeros(pad, np.float32)])
        y = np.pad(targets[start:stop], (0, pad))
        w = np.pad(weights[start:stop], (0, pad)) * mask
        return (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y),
                torch.from_numpy(w), torch.from_numpy(mask))


def _starts(n_frames: int, excerpt_frames: int, hop_frames: int) -> list:
    if n_frames <= excerpt_frames:
        return [0]
    starts = list(range(0, n_frames - excerpt_frames + 1, hop_frames))
    if starts[-1] != n_frames - excerpt_frames:
        starts.append(n_frames - excerpt_frames)  # cover the end of the file too
    return starts
