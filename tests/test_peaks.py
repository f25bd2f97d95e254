import dataclasses

import numpy as np
import pytest

from boundaries.detection import peaks
from boundaries.detection.peaks import best_k_peaks, pick_peaks

FPS = 10.0  # 10 frames per second keeps the hand-built curves readable


def bumps(n, centres, height=1.0, width=3):
    x = np.zeros(n)
    for c in centres:
        x[c - width:c + width + 1] = np.maximum(x[c - width:c + width + 1],
                                                height * np.hanning(2 * width + 3)[1:-1])
    return x


def test_exact_times_of_isolated_peaks():
    x = bumps(600, [100, 300, 450])
    times, strengths = pick_peaks(x, fps=FPS, threshold=0.1, max_window_s=6, avg_before_s=12,
                                  avg_after_s=6)
    assert times.tolist() == [10.0, 30.0, 45.0]
    assert np.all(strengths > 0.5)


def test_smaller_peak_within_window_is_suppressed():
    x = bumps(600, [100]) + bumps(600, [140], height=0.5)
    times, _ = pick_peaks(x, fps=FPS, threshold=0.05, max_window_s=6)
    assert times.tolist() == [10.0]


def test_threshold_is_relative_to_local_mean():
    x = np.full(600, 0.6) + bumps(600, [300], height=0.2)
    assert pick_peaks(x, fps=FPS, threshold=0.1)[0].tolist() == [30.0]
    assert pick_peaks(x, fps=FPS, threshold=0.3)[0].size == 0


def test_flat_and_empty_activations_give_nothing():
    assert pick_peaks(np.zeros(500), fps=FPS, threshold=0.0)[0].size == 0
    assert pick_peaks(np.full(500, 0.7), fps=FPS, threshold=0.0)[0].size == 0
    assert pick_peaks(np.zeros(0), fps=FPS, threshold=0.1)[0].size == 0


def test_plateau_gives_one_peak():
    x = np.zeros(400)
    x[200:205] = 1.0
    assert len(pick_peaks(x, fps=FPS, threshold=0.1)[0]) == 1


def test_peaks_at_the_edges():
    x = bumps(300, [4, 295])
    times, _ = pick_peaks(x, fps=FPS, threshold=0.1)
    assert times.tolist() == [0.4, 29.5]


def test_min_distance():
    x = bumps(600, [100, 180], height=1.0)
    assert len(pick_peaks(x, fps=FPS, threshold=0.1, max_window_s=2)[0]) == 2
    assert len(pick_peaks(x, fps=FPS, threshold=0.1, max_window_s=2, min_distance_s=10)[0]) == 1


def test_rejects_2d_input():
    with pytest.raises(ValueError):
        pick_peaks(np.zeros((2, 5)), fps=FPS, threshold=0.1)


def test_absolute_threshold_when_not_subtracting_the_local_mean():
    x = np.array([0, 0.2, 0.9, 0.3, 0, 0, 0.5, 0.4, 0.0, 0.1])
    times, strengths = pick_peaks(x, fps=1, threshold=0.45, max_window_s=2,
                                  subtract_local_mean=False)
    np.testing.assert_allclose(times, [2.0, 6.0])
    np.testing.assert_allclose(strengths, [0.9, 0.5])


def test_best_k_is_exact_against_brute_force(rng):
    import itertools

    from boundaries.detection.peaks import best_k_peaks

    for _ in range(100):
        n, k, gap = int(rng.integers(5, 13)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        x = rng.random(n)
        times, strengths = best_k_peaks(x, fps=1, k=k, min_distance_s=gap)
        feasible = [c for m in range(k, 0, -1) for c in itertools.combinations(range(n), m)
                    if all(b - a >= gap for a, b in zip(c, c[1:]))]
        size = max(len(c) for c in feasible)
        best = max(x[list(c)].sum() for c in feasible if len(c) == size)
        assert len(times) == size
        assert abs(strengths.sum() - best) < 1e-9
        assert np.all(np.diff(times) >= gap)


def test_best_k_keeps_away_from_the_edges():
    from boundaries.detection.peaks import best_k_peaks

    x = np.zeros(100)
    x[1], x[50], x[98] = 1.0, 0.5, 1.0
    times, _ = best_k_peaks(x, fps=10, k=1, min_distance_s=1.0, edge_s=0.5)
    np.testing.assert_allclose(times, [5.0])


@pytest.mark.parametrize("subtract_local_mean", [True, False])
def test_same_peaks_as_librosa_peak_pick(rng, subtract_local_mean):
    """The numpy rule equals ``librosa.util.peak_pick`` (what it replaced) on noise, plateaus
    and smooth bumps."""
    import librosa

    from boundaries.signal.filters import running_mean

    fps, threshold, w, before, after, wait = 10.0, 0.05, 5, 40, 20, 30
    signals = [rng.random(700), np.round(rng.random(700) * 4) / 4,
               np.convolve(rng.random(700) ** 8, np.hanning(31), "same"), np.ones(50)]
    for x in signals:
        times, strengths = pick_peaks(x, fps=fps, threshold=threshold, max_window_s=w / fps,
                                      avg_before_s=before / fps, avg_after_s=after / fps,
                                      min_distance_s=wait / fps,
                                      subtract_local_mean=subtract_local_mean)
        kw = dict(pre_max=w, post_max=w + 1, wait=wait)
        idx = (librosa.util.peak_pick(x, pre_avg=before, post_avg=after + 1, delta=threshold, **kw)
               if subtract_local_mean else
               librosa.util.peak_pick(x, pre_avg=0, post_avg=1, delta=0.0, **kw))
        expected = x[idx] - (running_mean(x, before, after)[idx] if subtract_local_mean else 0)
        np.testing.assert_array_equal(np.round(times * fps).astype(int), idx[expected > threshold])


def test_best_k_never_picks_inside_the_edge_margin():
    """Strong frames just inside the margin: the picks keep at least edge_s from both ends even
    when edge_s * fps is not a whole number of frames (rounding had let 0.9985 s through)."""
    fps = 43.066
    x = np.full(2000, 0.01)
    x[:44] = x[-44:] = 1.0
    times, _ = best_k_peaks(x, fps=fps, k=2, min_distance_s=4.0, edge_s=1.0)
    end_s = (len(x) - 1) / fps
    assert len(times) == 2 and times.min() >= 1.0 and times.max() <= end_s - 1.0


def test_plateau_centres_move_a_peak_to_the_middle_of_its_hump():
    fps = 10.0
    x = np.zeros(400)
    x[100:161] = 0.6  # a broad hump from frame 100 to 160 ...
    x[105] = 0.9  # ... whose highest frame is near its start
    x[300] = 0.8  # a lone spike stays where it is
    centres = peaks.plateau_centres(x, np.array([10.5, 30.0]), fps=fps, level=0.5)
    assert abs(centres[0] - 13.0) < 0.2 and centres[1] == 30.0


def test_plateau_centres_keep_peaks_apart_and_in_order():
    fps = 10.0
    x = np.full(300, 0.7)  # one long plateau holding two peaks
    x[[50, 60]] = 1.0
    centres = peaks.plateau_centres(x, np.array([5.0, 6.0]), fps=fps, level=0.5, reach_s=100)
    assert centres[0] < 5.55 <= centres[1]


def test_plateau_level_off_leaves_the_picked_peaks_alone():
    from boundaries.config import PeakConfig
    from boundaries.detection import inference

    x = np.zeros(500)
    x[200:300] = 0.6  # a 10-s hump (frames 200-299) with its highest frame near the start
    x[210] = 0.9
    p = PeakConfig(threshold=0.1, max_window_s=10.0, subtract_local_mean=False)
    off, _ = inference.pick(x, p, 10.0)
    on, _ = inference.pick(x, dataclasses.replace(p, plateau_level=0.5), 10.0)
    assert off.tolist() == [21.0] and on.shape == (1,) and 23.5 < on[0] < 25.0


def test_run_around_is_the_unbroken_run_reaching_a_frame_from_either_side():
    above = np.array([True, False, True, True, True, False, True])
    assert peaks.run_around(above, 3) == (2, 4)
    assert peaks.run_around(above, 0) == (0, 0)
    assert peaks.run_around(np.ones(4, bool), 2) == (0, 3)
    assert peaks.run_around(above, 1) == (0, 4)  # a frame below joins the runs beside it
