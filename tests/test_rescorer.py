"""The candidate re-scorer of the expected-F decoding (detection/rescorer.py)."""

import numpy as np
import pytest

from boundaries.detection import rescorer
from boundaries.detection.expected_f import ExpectedF
from boundaries.signal import descriptors

FPS = 22050 / 512


def _acts_with_humps(n_frames, humps):
    """Activations with triangular humps ``(centre_s, height, half_width_s)``."""
    t = np.arange(n_frames) / FPS
    acts = np.zeros(n_frames)
    for centre, height, half in humps:
        acts = np.maximum(acts, height * np.clip(1 - np.abs(t - centre) / half, 0, None))
    return acts


def test_features_see_a_stronger_neighbour_the_humps_width_and_the_candidates_row():
    acts = _acts_with_humps(int(60 * FPS), [(20.0, 0.5, 2.0), (30.0, 0.8, 4.0)])
    n_rows = int(60 * FPS) // descriptors.POOL
    rows = np.arange(n_rows * 2, dtype=float).reshape(n_rows, 2)  # row i holds (2i, 2i + 1)
    first = np.linspace(0, 1, n_rows)
    features = rescorer.candidate_features(acts, [20.0, 30.0], [0.5, 0.8], rows, first, FPS)
    assert features.shape == (2, 7 + 2 + 1)
    weak, strong = features
    assert weak[0] == 0.5 and strong[0] == 0.8
    assert weak[1] == 0.0  # nothing within 5 s but its own hump
    assert weak[2] == pytest.approx(0.8 / 0.5, rel=0.02)  # the stronger hump 10 s away
    assert strong[2] == pytest.approx(0.5 / 0.8, rel=0.02)
    # width at half height: 2 s for the narrow hump, 4 s for the broad one (to a frame)
    assert weak[4] == pytest.approx(2.0, abs=2 / FPS)
    assert strong[4] == pytest.approx(4.0, abs=2 / FPS)
    assert list(weak[5:7]) == [1, 2] and list(strong[5:7]) == [0, 2]  # rank, count
    row = int(np.argmin(np.abs(descriptors.row_centres(n_rows) / FPS - 20.0)))
    np.testing.assert_array_equal(weak[7:], [2 * row, 2 * row + 1, first[row]])
    assert rescorer.candidate_features(acts, [], [], rows, first, FPS).shape[0] == 0


def test_the_half_height_width_is_the_run_around_the_peak():
    acts = np.array([0.0, 0.3, 0.6, 1.0, 0.5, 0.49, 0.9])
    assert rescorer._half_height_width(acts, 3) == 2  # frames 2 to 4
    assert rescorer._half_height_width(np.ones(5), 0) == 4  # the whole file
    assert rescorer._half_height_width(acts, 0) == 6  # a zero peak: every frame is "above"


def test_keep_ranks_by_the_rescorers_probabilities_when_given():
    model = ExpectedF({"strengths": [0.0, 1.0], "hit_rates": [0.0, 1.0], "coverage": 1.0})
    strengths = [0.9, 0.5, 0.4]
    np.testing.assert_array_equal(model.keep(strengths), [0, 1, 2])
    # the strongest is a section change: the re-scorer gives it little, the weakest much
    p, fine = np.array([0.05, 0.6, 0.9]), np.array([0.0, 0.3, 0.7])
    # credits 0.025, 0.45, 0.8; N = 1.55: k=1 0.627, k=2 0.704, k=3 0.670
    np.testing.assert_array_equal(model.keep(strengths, (p, fine)), [1, 2])
    assert model.keep([], (np.zeros(0), np.zeros(0))).size == 0


def test_fit_gives_sklearns_probabilities_and_survives_its_state(rng):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = rng.normal(size=(300, 5))
    hits = X[:, 0] + 0.3 * rng.normal(size=300) > 0
    fine = hits & (X[:, 1] > 0)
    fitted = rescorer.fit(X, hits, fine)
    again = rescorer.Rescorer(fitted.state)
    p, p_fine = again.probabilities(X)
    reference = HistGradientBoostingClassifier(**rescorer.CLASSIFIER).fit(X, hits.astype(int))
    np.testing.assert_allclose(p, reference.predict_proba(X)[:, 1], atol=1e-9)
    assert np.mean((p > 0.5) == hits) > 0.85 and np.mean(p_fine <= p + 0.2) > 0.9


def test_the_rescorer_needs_the_fine_map():
    from boundaries.config import load_config
    from boundaries.errors import ConfigError

    with pytest.raises(ConfigError, match="track.rescorer"):
        load_config(overrides=["track.expected_f=true", "track.rescorer=true"])
    assert load_config(overrides=["track.expected_f=true", "track.expected_f_fine=true",
                                  "track.rescorer=true"]).track.rescorer
