import numpy as np
import pytest

from boundaries.data import labels

SR, HOP = 22050, 512
FPS = SR / HOP


def targets(times, n=1300, **kw):
    return labels.make_targets(times, n, sr=SR, hop_length=HOP, **kw)


@pytest.mark.parametrize("mode", ["soft", "window", "binary"])
def test_peak_is_one_at_boundary_frame(mode):
    t, w = targets([10.0], mode=mode)
    frame = int(round(10.0 * FPS))
    assert t[frame] == 1.0 and w[frame] > 0
    assert t.shape == w.shape == (1300,) and t.dtype == np.float32


def test_soft_targets_in_unit_range_and_symmetric():
    t, w = targets([frame_time := 400 * HOP / SR], sigma_s=1.5, radius_s=6.0)
    assert t.min() >= 0 and t.max() <= 1 and np.all(w == 1)
    left, right = t[400 - 100:400][::-1], t[401:401 + 100]
    assert np.allclose(left, right)
    assert frame_time > 0


def test_soft_target_is_gaussian_of_distance():
    t, _ = targets([400 * HOP / SR], sigma_s=1.0, radius_s=10.0)
    d = 43 * HOP / SR  # 43 frames ~ 1 s away
    assert t[443] == pytest.approx(np.exp(-0.5 * d ** 2), rel=1e-5)


def test_radius_zeroes_targets_beyond_it():
    t, _ = targets([400 * HOP / SR], sigma_s=5.0, radius_s=2.0)
    dist = np.abs(np.arange(1300) - 400) * HOP / SR
    assert np.all(t[dist > 2.0 + 1e-9] == 0) and np.all(t[dist <= 2.0] > 0)


def test_window_mode_positive_within_radius_weight_gaussian():
    t, w = targets([400 * HOP / SR], mode="window", sigma_s=1.0, radius_s=3.0)
    dist = np.abs(np.arange(1300) - 400) * HOP / SR
    assert np.all(t[dist <= 3.0] == 1) and np.all(t[dist > 3.0] == 0)
    assert np.allclose(w[dist <= 3.0], np.exp(-0.5 * dist[dist <= 3.0] ** 2), rtol=1e-5)
    assert np.all(w[dist > 3.0] == 1)


def test_overlapping_windows_take_the_maximum():
    t, _ = targets([10.0, 11.0], sigma_s=1.0, radius_s=5.0)
    single, _ = targets([10.0], sigma_s=1.0, radius_s=5.0)
    other, _ = targets([11.0], sigma_s=1.0, radius_s=5.0)
    assert np.allclose(t, np.maximum(single, other))


def test_boundaries_near_edges_and_outside():
    t, _ = targets([0.05, 29.99], n=1292, sigma_s=1.0, radius_s=3.0)
    assert t[0] > 0.99 and t[-1] > 0.99
    t2, _ = targets([31.0], n=1292, sigma_s=1.0, radius_s=3.0)  # beyond the end still smears in
    assert 0 < t2[-1] < 1


def test_no_boundaries_gives_all_negative():
    t, w = targets([], mode="soft")
    assert not t.any() and np.all(w == 1)


def test_labels_with_tolerance():
    lab = labels.make_labels([10.0], 1300, sr=SR, hop_length=HOP, tolerance_s=0.5)
    assert lab.sum() == 2 * int(0.5 * FPS) + 1
    exact = labels.make_labels([10.0], 1300, sr=SR, hop_length=HOP)
    assert exact.sum() == 1 and exact[int(round(10 * FPS))] == 1
