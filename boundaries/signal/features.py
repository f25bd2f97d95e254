"""Log-mel features and their on-disk cache.

Features are ``[n_mels, n_frames]`` float32 in dB (``power_to_db`` with ``ref=1``, so levels are
absolute and comparable across files). Frames follow the centred-STFT law of :mod:`timebase`.
Long signals are processed in blocks of frames whose results equal one whole-signal STFT, so an
hour-long mix never needs a 2 GB spectrogram.
"""

import functools
import hashlib
import json
import logging
import os
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from boundaries.atomic import atomic_path
from boundaries.errors import AudioError, file_failure
from boundaries.signal import timebase
from boundaries.signal.audio import check_readable, load_audio

logger = logging.getLogger(__name__)

FEATURE_VERSION = 2  # bump when the feature code changes (2: DC removed), so old caches are unused
BLOCK_FRAMES = 4096  # frames per STFT block (~95 s): bounds memory on long files
FFT_FRAMES = 256  # frames per FFT call inside a block


@functools.lru_cache(maxsize=8)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``[n_mels, 1 + n_fft // 2]`` float32: ``librosa.filters.mel`` (Slaney's mel scale and area
    normalisation, its defaults), computed here because importing librosa costs ``boundaries
    detect`` over a second of start-up (issue 16); a test checks the two are equal."""
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fft_f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    widths = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


_MEL_STEP_HZ, _LOG_FROM_HZ, _LOG_STEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0  # Slaney's scale


def _hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _LOG_FROM_HZ / _MEL_STEP_HZ + np.log(np.maximum(hz, 1e-10) / _LOG_FROM_HZ) \
        / _LOG_STEP
    return np.where(hz >= _LOG_FROM_HZ, log_part, hz / _MEL_STEP_HZ)


def _mel_to_hz(mel):
    log_from = _LOG_FROM_HZ / _MEL_STEP_HZ
    return np.where(mel >= log_from, _LOG_FROM_HZ * np.exp(_LOG_STEP * (mel - log_from)),
                    mel * _MEL_STEP_HZ)


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window ``librosa.stft`` uses (``scipy.signal.get_window("hann")``), in
    float32: the FFT then runs in single precision (librosa's runs in double and rounds the
    result to complex64; the log-mel differs by < 1e-5 dB)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def log_mel(y: np.ndarray, *, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512,
            n_mels: int = 80, fmin: float = 27.5, fmax: float = 11025.0) -> np.ndarray:
    """Log-mel spectrogram of a mono signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
    sr, n_fft, hop_length, n_mels, fmin, fmax
        As in ``librosa.feature.melspectrogram``; ``n_fft`` must be even.

    Returns
    -------
    mel : np.ndarray [shape=(n_mels, n_frames), dtype=float32], dB
        ``n_frames == timebase.num_frames(len(y), hop_length)``; equal to
        ``power_to_db(melspectrogram(y, center=True, pad_mode='constant'))`` (a test checks it):
        the same Hann-windowed numpy FFT librosa runs, without importing librosa.
    """
    if n_fft % 2:
        raise ValueError(f"n_fft must be even for the centred frame law, got {n_fft}")
    basis = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    window = _hann(n_fft)
    # Frames block by block over the signal zero-padded like a centred STFT; each block is padded
    # on its own, so the whole signal is never copied (2 h = 635 MB).
    y = np.asarray(y, dtype=np.float32)
    total = timebase.num_frames(len(y), hop_length)
    mel = np.empty((n_mels, total), dtype=np.float32)
    for start in range(0, total, BLOCK_FRAMES):
        stop = min(total, start + BLOCK_FRAMES)
        segment = _padded_slice(y, start * hop_length, (stop - 1) * hop_length + n_fft, n_fft // 2)
        frames = np.lib.stride_tricks.sliding_window_view(segment, n_fft)[::hop_length]
        for a in range(0, stop - start, FFT_FRAMES):  # a few MB at a time: stays in cache
            spec = np.fft.rfft(frames[a:a + FFT_FRAMES] * window, axis=1)
            power = spec.real ** 2 + spec.imag ** 2
            mel[:, start + a:start + a + len(power)] = basis @ power.T
    return 10.0 * np.log10(np.maximum(mel, np.float32(1e-10)), out=mel)


def _padded_slice(y: np.ndarray, lo: int, hi: int, pad: int) -> np.ndarray:
    """Samples ``[lo, hi)`` of ``y`` with ``pad`` zeros prepended and appended."""
    out = np.zeros(hi - lo, dtype=np.float32)
    a, b = max(lo - pad, 0), min(hi - pad, len(y))
    if b > a:
        out[a - (lo - pad):b - (lo - pad)] = y[a:b]
    return out


def standardize_per_file(mel: np.ndarray) -> np.ndarray:
    """Each band z-scored over the whole file (float32); a constant band becomes 0."""
    mean = mel.mean(axis=1, keepdims=True, dtype=np.float64)
    std = mel.std(axis=1, keepdims=True, dtype=np.float64)
    return ((mel - mean) / np.maximum(std, 1e-3)).astype(np.float32)


def network_input(mel: np.ndarray, model_cfg) -> np.ndarray:
    """The log-mel as the network sees it (see ``model.per_file_norm``)."""
    return standardize_per_file(mel) if model_cfg.per_file_norm else mel


def feature_cache_key(sr: int, feature_cfg) -> str:
    """A short hash of every parameter that shapes the frames (and the code version)."""
    params = {"sr": sr, "version": FEATURE_VERSION, **vars(feature_cfg)}
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


class FeatureCache:
    """Log-mel features on disk under ``root/features/<feature_cache_key>/``.

    An entry is keyed by the audio file's resolved path and a hash of its bytes, so an edited or
    replaced file (even by ``cp -p``: same size and time) is decoded again, and a changed feature
    parameter never reuses stale frames. Entries are written to a temporary name and renamed, so
    a killed run leaves no half entry; a torn or foreign entry is recomputed, and a cache folder
    that cannot be written (a read-only HOME) costs one warning, not the run.
    """

    def __init__(self, root, sr: int, feature_cfg):
        self.sr = sr
        self.feature_cfg = feature_cfg
        self.dir = Path(root).expanduser() / "features" / feature_cache_key(sr, feature_cfg)

    def entry_path(self, audio_path) -> Path:
        path = Path(audio_path).resolve()
        check_readable(path)
        ident = os.fsencode(path) + f"|{content_hash(path)}".encode()
        return self.dir / f"{hashlib.sha1(ident).hexdigest()}.npz"

    def load(self, audio_path):
        """Return ``(mel, n_samples)``, decoding and caching on a miss."""
        entry = self.entry_path(audio_path)
        if entry.exists():
            try:
                with np.load(entry) as data:
                    return data["mel"], int(data["n_samples"])
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                logger.warning("%s: unreadable cache entry, recomputing", entry)
        return self._compute(audio_path, entry)

    def _compute(self, audio_path, entry: Path):
        mel, n_samples = audio_log_mel(audio_path, self.sr, vars(self.feature_cfg))
        try:
            with atomic_path(entry) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, mel=mel, n_samples=np.int64(n_samples))
        except OSError as exc:
            _warn_cache_unwritable(str(self.dir), exc.strerror or str(exc))
        return mel, n_samples


@functools.lru_cache(maxsize=None)
def _warn_cache_unwritable(folder: str, reason: str) -> None:  # once per folder and reason
    logger.warning("%s: cannot write the feature cache (%s); going on without it (set "
                   "data.cache_dir to a writable folder to cache)", folder, reason)


def sampled_fingerprint(path, block: int = 1 << 20) -> str:
    """blake2b of a file's size and of its first, middle and last MiB: what tells a batch that
    an input changed since its outputs were written, without reading whole files to skip them."""
    size = os.path.getsize(path)
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as handle:
        for offset in sorted({0, max(0, size // 2 - block // 2), max(0, size - block)}):
            handle.seek(offset)
            digest.update(handle.read(block))
    return digest.hexdigest()


def content_hash(path, block: int = 1 << 20) -> str:
    """blake2b of a file's bytes (~1 GB/s): what identifies audio in the cache."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _load_one(cache: FeatureCache, path):
    try:
        return path, cache.load(path), None
    except Exception as exc:  # any failure is this file's, reported as one line
        return path, None, file_failure(path, exc)


def audio_log_mel(path, sr: int, feature_kwargs: dict, progress=None) -> tuple:
    """``(log-mel, n_samples)`` of one audio file; the decoded signal is freed on return.
    ``progress``: see :func:`boundaries.signal.audio.load_audio`."""
    y = load_audio(path, sr=sr, progress=progress)
    mel = log_mel(y, sr=sr, **feature_kwargs)
    if not np.isfinite(mel).all():  # the last guard: no NaN reaches a model as "no boundary"
        raise AudioError(f"{path}: its features hold NaN or infinite values; re-export the audio")
    return mel, len(y)


def file_features(path, sr, feature_kwargs, progress=None):
    """``(mel, duration_s, error)`` of one file for a detect worker. It lives here, not in
    ``batch``, so a spawned worker imports no torch (2.6 s of start-up per worker).
    ``progress``: a callable of the seconds decoded; in a detect worker, the queue of
    :func:`init_worker` gets ``(path, seconds)`` instead."""
    if _progress_queue is not None:
        progress = lambda seconds: _progress_queue.put((str(path), seconds))  # noqa: E731
    try:
        mel, n_samples = audio_log_mel(path, sr, feature_kwargs, progress)
        return mel, n_samples / sr, None
    except Exception as exc:  # any failure is this file's, reported as one line
        return None, 0.0, file_failure(path, exc)


_progress_queue = None  # in a detect worker: where decoding progress goes (init_worker)


def init_worker(progress_queue=None) -> None:
    """A detect worker's initializer: die with the parent, report decoding progress to
    ``progress_queue`` (a multiprocessing queue, inherited when the worker starts)."""
    global _progress_queue
    die_with_parent()
    _progress_queue = progress_queue


def die_with_parent() -> None:
    """A worker's initializer: on Linux the kernel sends it SIGTERM when the process that
    started it dies, even by ``kill -9``, so no ~100 MB decoder outlives an interrupted batch."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still applies
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)


def limit_worker_threads() -> None:
    """One BLAS/OpenMP thread per worker process: two threads on a 2-core box ran 2.6x slower."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def load_features(paths, cache: FeatureCache, jobs: int = 2, progress: bool = True):
    """Features of many files, decoding misses in ``jobs`` processes with a progress bar.

    Returns
    -------
    features : dict path -> (mel, n_samples)
    failures : dict path -> one-line error message
    """
    from tqdm import tqdm

    paths = list(paths)
    features, failures = {}, {}
    bar = tqdm(total=len(paths), desc="features", unit="file", disable=not progress)
    if jobs <= 1 or len(paths) <= 1:
        results = (_load_one(cache, p) for p in paths)
        for path, value, error in results:
            _collect(features, failures, path, value, error)
            bar.update()
    else:
        limit_worker_threads()
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                                 initializer=die_with_parent) as pool:
            futures = [pool.submit(_load_one, cache, p) for p in paths]
            for future in as_completed(futures):
                _collect(features, failures, *future.result())
                bar.update()
    bar.close()
    return features, failures


def _collect(features, failures, path, value, error):
    if error is None:
        features[path] = value
    else:
        failures[path] = error
