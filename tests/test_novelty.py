import numpy as np
import pytest

from boundaries.signal.novelty import (
    block_features,
    checkerboard_taper,
    foote_activations,
    novelty_curve,
)


def explicit_foote(features, half_width):
    """Foote's definition: the checkerboard kernel slid along the diagonal of the full
    cosine self-similarity matrix (zero outside it)."""
    n = features.shape[1]
    ssm = features.T @ features
    taper = checkerboard_taper(half_width)
    kernel = np.outer(taper, taper)
    padded = np.zeros((n + 2 * half_width, n + 2 * half_width))
    padded[half_width:half_width + n, half_width:half_width + n] = ssm
    size = 2 * half_width + 1
    return np.array([np.sum(kernel * padded[t:t + size, t:t + size]) for t in range(n)])


@pytest.mark.parametrize("half_width", [1, 4, 9])
def test_separable_novelty_equals_the_explicit_matrix(half_width):
    rng = np.random.default_rng(half_width)
    features = rng.standard_normal((12, 60))
    features /= np.linalg.norm(features, axis=0)
    np.testing.assert_allclose(novelty_curve(features, half_width),
                               explicit_foote(features, half_width), rtol=1e-10, atol=1e-10)


def test_taper_is_an_antisymmetric_gaussian():
    taper = checkerboard_taper(8)
    assert taper[8] == 0 and np.allclose(taper[:8], -taper[9:][::-1])
    assert taper.sum() == pytest.approx(0)  # a constant similarity gives zero novelty


def test_novelty_peaks_at_a_change_of_timbre():
    rng = np.random.default_rng(0)
    fps = 43.0
    first = rng.normal(-40, 3, (80, 1300)) + np.linspace(0, 20, 80)[:, None]
    second = rng.normal(-40, 3, (80, 1300)) + np.linspace(20, 0, 80)[:, None]
    mel = np.concatenate([first, second], axis=1)
    acts = foote_activations(mel, fps=fps, kernel_s=16.0)
    assert acts.shape == (2600,) and acts.max() == pytest.approx(1.0, abs=1e-6)
    assert abs(int(np.argmax(acts)) - 1300) <= fps  # within 1 s of the change


def test_short_input_does_not_crash():
    mel = np.random.default_rng(1).normal(-40, 3, (80, 5))
    assert block_features(mel, 22).shape[1] == 1
    assert foote_activations(mel, fps=43.0).shape == (5,)


def test_blend_mixes_novelty_in_only_when_asked():
    import dataclasses

    from boundaries.config import Config
    from boundaries.detection.inference import blend_novelty

    cfg = Config()
    mel = np.random.default_rng(2).normal(-40, 3, (80, 900)).astype(np.float32)
    acts = np.full(900, 0.2, dtype=np.float32)
    assert blend_novelty(acts, mel, cfg) is acts  # weight 0: the CNN alone
    half = cfg.replace(peaks=dataclasses.replace(cfg.peaks, novelty_weight=0.5))
    blended = blend_novelty(acts, mel, half)
    novelty = foote_activations(mel, fps=22050 / 512, kernel_s=cfg.peaks.novelty_kernel_s)
    np.testing.assert_allclose(blended, 0.5 * acts + 0.5 * novelty, atol=1e-6)


def test_mfcc_equals_librosa():
    import librosa

    from boundaries.signal.novelty import mfcc_from_mel_db

    mel = np.random.default_rng(3).normal(-40, 10, (80, 300)).astype(np.float32)
    np.testing.assert_allclose(mfcc_from_mel_db(mel), librosa.feature.mfcc(S=mel, n_mfcc=20),
                               rtol=1e-5, atol=1e-3)
