import dataclasses

import numpy as np
import pytest
import torch

from boundaries.config import Config, ModelConfig, PeakConfig
from boundaries.detection import inference
from boundaries.detection.inference import chunk_windows, predict_activations, resolve_device
from boundaries.model.networks import BoundaryCNN


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = BoundaryCNN(ModelConfig(conv_channels=(4,), channels=8, dilations=(1, 2, 4, 8, 16)), 16)
    return m.eval()


@pytest.mark.parametrize("n_frames", [5, 100, 999, 2500])
def test_chunked_equals_whole_file(model, n_frames, rng):
    mel = rng.normal(-40, 10, (16, n_frames)).astype(np.float32)
    whole = torch.sigmoid(model(torch.from_numpy(mel)[None]))[0].detach().numpy()
    chunked = predict_activations(model, mel, chunk_frames=97, context_frames=0, batch_size=3)
    assert chunked.shape == (n_frames,)
    assert np.abs(chunked - whole).max() < 1e-4


def test_windows_cover_every_frame_once():
    for n in (1, 50, 1000, 1001):
        covered = np.zeros(n, int)
        for start, a, b in chunk_windows(n, 100, 30):
            assert 0 <= start and start <= a < b and b <= n
            covered[a:b] += 1
        assert np.all(covered == 1)


def test_device_auto_is_cpu_without_gpu():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"


def test_per_file_norm_ignores_a_recordings_spectral_colour():
    import dataclasses

    from boundaries.config import Config
    from boundaries.detection.inference import activations_for
    from boundaries.model.networks import build_model

    base = Config()
    cfg = base.replace(model=dataclasses.replace(base.model, per_file_norm=True,
                                                 dilations=(1, 2, 4)))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    mel = np.random.default_rng(0).normal(-40, 8, (80, 700)).astype(np.float32)
    colour = np.linspace(-20, 10, 80, dtype=np.float32)[:, None]  # a fixed EQ and gain, in dB
    plain = activations_for(model, mel, cfg, "cpu")
    np.testing.assert_allclose(activations_for(model, mel + colour, cfg, "cpu"), plain, atol=1e-5)
    without = base.replace(model=dataclasses.replace(cfg.model, per_file_norm=False))
    assert not np.allclose(activations_for(model, mel + colour, without, "cpu"), plain, atol=1e-3)


def test_placement_landing_two_detections_on_one_frame_keeps_both():
    from boundaries.detection.inference import placed

    times, strengths = placed(np.array([10.0, 10.0, 30.0]), np.array([8.0, 12.0, 30.0]),
                               np.array([0.9, 0.8, 0.7]), end_s=60.0)
    np.testing.assert_array_equal(times, [10.0, 12.0, 30.0])
    np.testing.assert_array_equal(strengths, [0.9, 0.8, 0.7])


def _hump_and_spike(fps=10.0):
    """A cut-like spike (0.9 for one frame at 20 s) and a long fade's broad low hump (0.3 for
    12 s around 60 s) in 90 s of activations at ``fps``."""
    acts = np.zeros(int(90 * fps))
    acts[int(20 * fps)] = 0.9
    acts[int(54 * fps):int(66 * fps)] = 0.3
    return acts


def test_smoothing_off_is_the_activations_themselves():
    acts = _hump_and_spike()
    assert inference.smoothed(acts, PeakConfig(smooth_s=0.0), 10.0) is acts


def test_smoothing_picks_by_mass_near_a_time_not_by_the_highest_frame():
    fps, acts = 10.0, _hump_and_spike()
    raw = PeakConfig(threshold=0.25, subtract_local_mean=False, max_window_s=6.0)
    times, _ = inference.pick(acts, raw, fps)
    assert times[0] == 20.0 and np.all((times[1:] >= 54.0) & (times[1:] < 66.0))  # spike, hump
    times, strengths = inference.pick(acts, dataclasses.replace(raw, smooth_s=2.0), fps)
    assert len(times) == 1 and 56.0 <= times[0] <= 64.0  # the hump only: the spike's mean is 0.02
    assert np.isclose(strengths[0], 0.3)


def test_best_k_decoding_uses_the_smoothed_curve():
    cfg = Config().replace(peaks=PeakConfig(smooth_s=2.0, subtract_local_mean=False))
    times, _ = inference.decode(_hump_and_spike(cfg.fps), cfg, n_tracks=2)
    assert len(times) == 1 and 54.0 <= times[0] <= 66.0
