"""Shared fixtures: tiny generated audio with known answers; nothing is downloaded or committed."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR = 22050
# environment for train.py / boundaries run as a subprocess from the repository
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
# train.py / evaluate.py arguments for the tiny debug configuration
CONFIGS = ["--config", os.path.join(REPO, "configs", "base.yaml"),
           "--config", os.path.join(REPO, "configs", "debug.yaml")]
STEP_BOUNDARIES = [2.0, 4.5, 6.0]


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def sr():
    return SR


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def make_step_track(seed=0, sr=SR):
    """~8 s: a 220 Hz sine, pink-ish noise, an 880 Hz sine with harmonics, then a chord; changes at
    2.0, 4.5 and 6.0 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(8.0 * sr)) / sr
    y = np.zeros_like(t)
    edges = [0.0, *STEP_BOUNDARIES, 8.0]
    noise = np.cumsum(rng.standard_normal(len(t)))
    noise = np.diff(noise, prepend=0) * 0.3 + 0.02 * (noise - noise.mean()) / (noise.std() + 1e-9)
    parts = [np.sin(2 * np.pi * 220 * t), noise,
             np.sin(2 * np.pi * 880 * t) + 0.5 * np.sin(2 * np.pi * 1760 * t),
             sum(np.sin(2 * np.pi * f * t) for f in (330, 415, 494))]
    for (a, b), part in zip(zip(edges[:-1], edges[1:]), parts):
        seg = slice(int(a * sr), int(b * sr))
        y[seg] = part[seg] * 0.2 / (np.sqrt(np.mean(part[seg] ** 2)) + 1e-9)
    return y.astype(np.float32)


@pytest.fixture
def step_track():
    return make_step_track()


@pytest.fixture
def click_track(sr):
    """Impulses at 120 BPM for 4 s (after librosa's ``ysr``)."""
    y = np.zeros(4 * sr, dtype=np.float32)
    y[:: sr // 2] = 1.0
    return y


def write_corpus(root, n=4, seed=0):
    """``n`` step tracks with ``.txt`` annotations in ``root``."""
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        y = make_step_track(seed + i)
        sf.write(os.path.join(root, f"track_{i}.wav"), y, SR, subtype="PCM_16")
        with open(os.path.join(root, f"track_{i}.txt"), "w") as handle:
            handle.write("".join(f"{t}\n" for t in STEP_BOUNDARIES))
    return root


@pytest.fixture
def tiny_corpus(tmp_path):
    return write_corpus(tmp_path / "corpus")


def tiny_overrides(tmp_path, data_dir=None, **extra):
    """Overrides that shrink configs/debug.yaml further and keep every file in ``tmp_path``."""
    overrides = [f"data.cache_dir={tmp_path / 'cache'}", "data.jobs=1", "train.epochs=1",
                 "features.n_mels=16", "train.num_workers=0"]
    if data_dir is not None:
        overrides.append(f"data.train_dir={data_dir}")
    overrides += [f"{k}={v}" for k, v in extra.items()]
    return overrides


def sets(tmp_path, data_dir=None, **extra):
    """:func:`tiny_overrides` as ``--set`` command-line arguments."""
    return [a for o in tiny_overrides(tmp_path, data_dir, **extra) for a in ("--set", o)]


def train_tiny(tmp, n_files):
    """Train the tiny debug model on ``n_files`` step tracks under ``tmp``; ``(corpus, run)``."""
    import train

    corpus = write_corpus(tmp / "corpus", n=n_files)
    run = tmp / "run"
    assert train.main([*CONFIGS, *sets(tmp, corpus), "--run-dir", str(run)]) == 0
    return corpus, run


@pytest.fixture
def tiny_cfg(tmp_path, tiny_corpus):
    from boundaries.config import load_config

    return load_config([os.path.join(REPO, "configs", "base.yaml"),
                        os.path.join(REPO, "configs", "debug.yaml")],
                       tiny_overrides(tmp_path, tiny_corpus))
