"""Foote's checkerboard-kernel novelty: the unsupervised baseline every detector is compared with.

Foote (2000): frames -> self-similarity matrix S -> correlate a Gaussian-tapered checkerboard
kernel K along the diagonal; peaks of the novelty curve are boundaries. Here the frames are MFCCs
of the same log-mel the CNN sees (``librosa.feature.mfcc``), averaged over ``block_s`` and
z-scored per file, and S is their cosine similarity.

Why not ``librosa.segment.recurrence_matrix``: it builds the n x n matrix, which for a 2-hour mix
at 2 frames/s is 200 M entries. The kernel is separable, K[a, b] = v[a] v[b] with
v[a] = sign(a) g(a), and S[i, j] = <f_i, f_j> for unit vectors f, so

    N(t) = sum_ab K[a, b] S[t+a, t+b] = || sum_a v[a] f_{t+a} ||^2,

the same value from one 1-D correlation per feature, in O(n) memory (tests check it against the
explicit matrix). librosa has no checkerboard novelty of its own.
"""

import functools

import numpy as np

from boundaries.signal import timebase
from boundaries.signal.filters import correlate_rows


def checkerboard_taper(half_width: int) -> np.ndarray:
    """v[a] = sign(a) * Gaussian(a), a in [-half_width, half_width] (sigma = half_width / 2)."""
    a = np.arange(-half_width, half_width + 1, dtype=np.float64)
    return np.sign(a) * np.exp(-0.5 * (a / (half_width / 2.0)) ** 2)


def mfcc_from_mel_db(mel_db: np.ndarray, n_mfcc: int = 20) -> np.ndarray:
    """``librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc)``, which is an orthonormal DCT-II over
    bands (a test checks it), here as one matrix product: neither librosa nor scipy.fft is
    imported on the detect path (start-up, issue 16)."""
    return _dct_matrix(mel_db.shape[-2])[:n_mfcc].astype(mel_db.dtype) @ mel_db


@functools.lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II: ``C[k, m] = sqrt(2 / n) cos(pi k (2m + 1) / 2n)``, row 0 scaled by
    ``1 / sqrt(2)`` (scipy's ``norm="ortho"``)."""
    k, m = np.arange(n)[:, None], np.arange(n)[None, :]
    matrix = np.sqrt(2.0 / n) * np.cos(np.pi * k * (2 * m + 1) / (2 * n))
    matrix[0] /= np.sqrt(2.0)
    return matrix


def block_features(mel_db: np.ndarray, block: int, n_mfcc: int = 20) -> np.ndarray:
    """Unit-length, per-file z-scored MFCC vectors (c1..), averaged over ``block`` frames."""
    mfcc = mfcc_from_mel_db(mel_db, n_mfcc)[1:]  # c0 is loudness: leave it out
    n_blocks = max(1, mfcc.shape[1] // block)
    f = mfcc[:, :n_blocks * block].reshape(len(mfcc), n_blocks, block).mean(axis=2) \
        if mfcc.shape[1] >= block else mfcc.mean(axis=1, keepdims=True)
    f = (f - f.mean(axis=1, keepdims=True)) / (f.std(axis=1, keepdims=True) + 1e-8)
    return f / (np.linalg.norm(f, axis=0, keepdims=True) + 1e-8)


def novelty_curve(features: np.ndarray, half_width: int) -> np.ndarray:
    """Foote novelty of unit feature vectors ``[dims, n]`` (zero padding at the edges)."""
    taper = checkerboard_taper(half_width)
    projected = correlate_rows(features, taper)  # sum_a taper[a] f[t + a], zeros outside
    return np.sum(projected ** 2, axis=0)


def foote_activations(mel_db: np.ndarray, *, fps: float, block_s: float = 0.5,
                      kernel_s: float = 16.0) -> np.ndarray:
    """Novelty scaled to [0, 1] per file, one value per mel frame (linear interpolation), so it
    goes through the same peak picking and frame metrics as the CNN's activations."""
    block = timebase.frames_in(block_s, fps, 1)
    features = block_features(mel_db, block)
    half_width = timebase.frames_in(kernel_s / 2, fps / block, 1)
    novelty = novelty_curve(features, half_width)
    novelty = novelty / (novelty.max() + 1e-12)
    centres = (np.arange(len(novelty)) + 0.5) * block
    return np.interp(np.arange(mel_db.shape[1]), centres, novelty).astype(np.float32)
