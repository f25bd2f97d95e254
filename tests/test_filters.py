import numpy as np
import pytest
from scipy.ndimage import correlate1d, maximum_filter1d

from boundaries.signal.filters import correlate_rows, running_max, running_mean


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
@pytest.mark.parametrize("width", [0, 1, 3, 50])
def test_running_max_equals_scipy(rng, n, width):
    x = rng.random(n)
    np.testing.assert_array_equal(running_max(x, width, width, fill=0.0),
                                  maximum_filter1d(x, 2 * width + 1, mode="constant"))


def test_running_max_asymmetric_window_truncated_at_the_ends(rng):
    x = rng.standard_normal(200)
    expected = [x[max(0, i - 3):i + 8].max() for i in range(len(x))]
    np.testing.assert_array_equal(running_max(x, 3, 7, fill=-np.inf), expected)


@pytest.mark.parametrize("n", [1, 2, 7, 100])
@pytest.mark.parametrize("before, after", [(0, 0), (3, 7), (50, 1)])
def test_running_mean_cuts_the_window_at_the_ends(rng, n, before, after):
    x = rng.standard_normal(n).astype(np.float32)
    expected = [x[max(0, i - before):i + after + 1].astype(np.float64).mean() for i in range(n)]
    np.testing.assert_allclose(running_mean(x, before, after), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 10, 33, 300])
@pytest.mark.parametrize("taps", [1, 3, 33])
def test_correlate_rows_equals_scipy(rng, n, taps):
    x, kernel = rng.random((5, n)).astype(np.float32), rng.standard_normal(taps)
    out = correlate_rows(x, kernel)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, correlate1d(x, kernel, axis=1, mode="constant"), rtol=1e-5,
                               atol=1e-5)


def test_correlate_rows_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        correlate_rows(np.zeros((1, 5)), np.ones(2))
