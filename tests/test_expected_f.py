"""Expected-F decoding: the strength -> hit map, and how many peaks a file keeps."""

import numpy as np
import pytest

from boundaries.detection import expected_f
from boundaries.detection.expected_f import ExpectedF


def _brute_force_k(p_sorted, expected_n):
    return max(range(len(p_sorted) + 1),
               key=lambda k: 2 * sum(p_sorted[:k]) / (k + expected_n + 1e-9))


def test_keep_takes_the_k_strongest_that_maximise_the_expected_f(rng):
    model = ExpectedF({"strengths": [0.0, 0.2, 0.6, 1.0], "hit_rates": [0.0, 0.3, 0.8, 0.95],
                       "coverage": 0.9})
    for _ in range(50):
        strengths = rng.uniform(0, 1, rng.integers(1, 12))
        kept = model.keep(strengths)
        p = model.hit_probabilities(strengths)
        order = np.argsort(-strengths, kind="stable")
        k = _brute_force_k(p[order], p.sum() / 0.9)
        np.testing.assert_array_equal(kept, np.sort(order[:k]))


def test_a_lone_clear_peak_is_kept_and_its_weak_tail_dropped():
    model = ExpectedF({"strengths": [0.05, 0.3, 0.9], "hit_rates": [0.05, 0.4, 0.95],
                       "coverage": 0.95})
    np.testing.assert_array_equal(model.keep([0.06, 0.9, 0.07, 0.08]), [1])
    np.testing.assert_array_equal(model.keep([0.85, 0.9, 0.8]), [0, 1, 2])  # all strong: all kept
    assert model.keep([]).size == 0


def test_fit_is_sklearns_isotonic_regression_clipped_at_the_ends(rng):
    from sklearn.isotonic import IsotonicRegression

    strengths = rng.uniform(0.02, 0.9, 400)
    hits = rng.uniform(size=400) < strengths
    model = expected_f.fit(strengths, hits, 0.9)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(strengths, hits)
    grid = np.linspace(0, 1, 501)
    np.testing.assert_allclose(model.hit_probabilities(grid), iso.predict(grid), atol=1e-12)
    again = ExpectedF(model.state)
    np.testing.assert_array_equal(again.hit_probabilities(grid), model.hit_probabilities(grid))
    assert again.coverage == 0.9


def test_hits_and_coverage_count_each_side_within_the_window():
    hits, covered = expected_f.hits_and_coverage([10.0, 50.0, 90.0], [11.0, 12.9, 13.1, 70.0])
    np.testing.assert_array_equal(hits, [True, True, False, False])
    assert covered == 1
    hits, covered = expected_f.hits_and_coverage([], [5.0])
    assert list(hits) == [False] and covered == 0


def test_a_broken_state_is_refused_with_its_sizes():
    with pytest.raises(ValueError, match="2 breakpoints, 1 rates"):
        ExpectedF({"strengths": [0.1, 0.2], "hit_rates": [0.5], "coverage": 0.9})
    with pytest.raises(ValueError, match="coverage 0.0"):
        ExpectedF({"strengths": [0.1], "hit_rates": [0.5], "coverage": 0.0})
