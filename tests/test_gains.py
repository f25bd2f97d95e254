import numpy as np
import pytest

from boundaries.detection import gains

FPS = 21.5


def test_incoming_share_recovers_the_gains_of_a_two_track_sum(rng):
    out_ref, in_ref = rng.random(80) + 0.1, rng.random(80) + 0.1
    a, b = rng.random(50), rng.random(50)
    a[:5], b[-5:] = 0.0, 0.0  # one track alone: the joint fit would go negative without NNLS
    power = np.outer(out_ref, a) + np.outer(in_ref, b)
    share = gains.incoming_share(power, out_ref, in_ref)
    np.testing.assert_allclose(share, b / (a + b), atol=1e-6)


def test_incoming_share_stays_in_zero_one_on_noise(rng):
    share = gains.incoming_share(rng.random((80, 300)), rng.random(80), rng.random(80))
    assert share.min() >= 0.0 and share.max() <= 1.0


def test_side_balances_cross_zero_at_the_middle_of_a_symmetric_rise():
    offsets = (np.arange(400) - 200) / FPS
    share = gains.ramp_shape(offsets, 6.0)
    for balance in gains.side_balances(share, [10, 40, 170]):
        assert balance[190] < 0 < balance[210]
        assert abs(balance[200]) < 0.03


@pytest.mark.parametrize("length_s", [0.0, 4.0, 13.0])
def test_ramp_fit_finds_the_middle_and_length_of_a_noisy_crossfade(rng, length_s):
    middle = 300
    offsets = (np.arange(600) - middle) / FPS
    share = 0.2 + 0.6 * gains.ramp_shape(offsets, length_s) + 0.15 * rng.standard_normal(600)
    centres = np.arange(middle - 60, middle + 61)
    residual, fitted_length = gains.ramp_fit(share, centres, int(12 * FPS), FPS)
    best = int(np.argmin(residual))
    assert residual.min() == 0.0
    assert abs(centres[best] - middle) <= 0.5 * FPS  # within the +-0.5 s a hit needs
    assert abs(fitted_length[best] - length_s) <= 0.35 * length_s + 1.0


def test_ramp_shape_is_a_symmetric_zero_to_one_rise():
    offsets = np.linspace(-10, 10, 201)
    shape = gains.ramp_shape(offsets, 8.0)
    assert shape[0] == 0.0 and shape[-1] == 1.0 and shape[100] == pytest.approx(0.5)
    np.testing.assert_allclose(shape + shape[::-1], 1.0, atol=1e-12)
