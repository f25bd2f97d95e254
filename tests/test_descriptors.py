import numpy as np

from boundaries.signal import descriptors

FPS = 22050 / 512


def test_side_means_equal_explicit_means(rng):
    x = rng.normal(size=(3, 40))
    left, right, n_left, n_right = descriptors.side_means(x, 5)
    for t in (0, 3, 20, 39):
        lo, hi = max(0, t - 5), min(40, t + 5)
        assert n_left[t] == t - lo and n_right[t] == hi - t
        if t > 0:
            np.testing.assert_allclose(left[:, t], x[:, lo:t].mean(axis=1))
        np.testing.assert_allclose(right[:, t], x[:, t:hi].mean(axis=1))


def test_pool_frames_keeps_a_short_last_group():
    x = np.arange(7, dtype=np.float32)[None]
    np.testing.assert_allclose(descriptors.pool_frames(x, 3), [[1.0, 4.0, 6.0]])


def _two_sounds(rng, change_s=40.0, total_s=80.0):
    """A log-mel whose spectral shape changes for good at ``change_s``."""
    n = int(total_s * FPS)
    mel = rng.normal(size=(80, n)).astype(np.float32) - 60
    cut = int(change_s * FPS)
    mel[:40, :cut] += 20
    mel[40:, cut:] += 20
    return mel, cut


def test_distances_peak_at_a_change_and_vanish_at_the_edges(rng):
    mel, cut = _two_sounds(rng)
    X, names = descriptors.compute_descriptors(mel, fps=FPS)
    assert X.shape == (-(-mel.shape[1] // descriptors.POOL), len(names))
    assert np.isfinite(X).all()
    for name in ("mel@8", "mel_t@16", "mfcc@4"):
        column = X[:, names.index(name)]
        assert abs(int(np.argmax(column)) - cut / descriptors.POOL) <= 2, name
        assert column[0] == 0 and column[-1] < column.max() / 4, name
    assert names[-1] == "edge_s" and X[0, -1] == 0 and X[-1, -1] == 0


def test_gapped_side_means_skip_frames_next_to_each_time():
    x = np.arange(20, dtype=float)[None]
    left, right, n_left, n_right = descriptors.side_means_of_sums(descriptors.cumulative(x), 3,
                                                                  gap=2)
    assert left[0, 10] == np.mean([5, 6, 7]) and right[0, 10] == np.mean([12, 13, 14])
    assert n_left[1] == 0 and n_right[18] == 0  # nothing left of t - 2 or right of t + 2
    assert n_left[3] == 1 and n_right[17] == 1
