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


def test_a_fine_map_drops_a_candidate_that_is_rarely_placed_within_half_a_second():
    state = {"strengths": [0.0, 1.0], "hit_rates": [0.0, 1.0], "coverage": 1.0}
    strengths = [0.5, 0.9, 0.8]
    # F@3 alone, N = 2.2: k=2 0.810, k=3 0.846
    np.testing.assert_array_equal(ExpectedF(state).keep(strengths), [0, 1, 2])
    fine = ExpectedF({**state, "fine_strengths": [0.5, 0.8, 0.9],
                      "fine_hit_rates": [0.0, 0.7, 0.8]})
    # the mean with F@0.5 (0.714 at k=2, 0.577 at k=3): k=2 0.762, k=3 0.712
    np.testing.assert_array_equal(fine.keep(strengths), [1, 2])
    assert fine.keep([]).size == 0


def test_the_fine_map_is_fitted_beside_the_first_and_survives_its_state(rng):
    strengths = rng.uniform(0.02, 0.9, 300)
    hits = rng.uniform(size=300) < strengths
    fine_hits = hits & (rng.uniform(size=300) < 0.5)
    plain = expected_f.fit(strengths, hits, 0.9)
    model = expected_f.fit(strengths, hits, 0.9, fine_hits)
    assert plain.fine is None and "fine_strengths" not in plain.state
    grid = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(model.hit_probabilities(grid), plain.hit_probabilities(grid))
    fine_rates = np.interp(grid, *model.fine)
    assert np.all(fine_rates <= model.hit_probabilities(grid) + 0.2) and fine_rates.max() > 0
    again = ExpectedF(model.state)
    for a, b in zip(again.fine, model.fine):
        np.testing.assert_array_equal(a, b)
    cands = rng.uniform(0, 1, 9)
    np.testing.assert_array_equal(again.keep(cands), model.keep(cands))


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
    with pytest.raises(ValueError, match="2 fine_breakpoints, 1 rates"):
        ExpectedF({"strengths": [0.1], "hit_rates": [0.5], "coverage": 0.9,
                   "fine_strengths": [0.1, 0.2], "fine_hit_rates": [0.5]})
