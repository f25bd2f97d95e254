import numpy as np

from boundaries.signal import descriptors, rhythm

FPS = 22050 / 512


def _clicks(rng, total_s, beats_s, section_change_s=None):
    """A noise log-mel with a 20 dB click at each beat; the lower bands louder after
    ``section_change_s`` (a timbre change that keeps the rhythm)."""
    mel = rng.normal(-40, 1, size=(80, int(total_s * FPS))).astype(np.float32)
    frames = (np.asarray(beats_s) * FPS).astype(int)
    mel[:, frames[frames < mel.shape[1]]] += 20
    if section_change_s is not None:
        mel[:40, int(section_change_s * FPS):] += 10
    return mel


def _row_times(n_rows):
    return descriptors.row_centres(n_rows) / FPS


def test_a_tempo_change_stands_out_and_a_timbre_change_does_not(rng):
    """120 BPM until 60 s, then 95 BPM with an off-beat; the timbre changes at 30 s."""
    beats = np.concatenate([np.arange(0, 60, 0.5), np.arange(60, 120, 60 / 95),
                            np.arange(60.2, 120, 120 / 95)])
    columns, names = rhythm.rhythm_distances(_clicks(rng, 120, beats, 30.0), fps=FPS)
    times = _row_times(len(columns))
    assert names[:4] == list(rhythm.NAMES) and columns.shape[1] == 8
    for j, name in enumerate(rhythm.NAMES):
        value = columns[:, j]
        assert abs(times[np.argmax(value)] - 60) < 1.0, name
        assert value[np.argmin(np.abs(times - 30))] < 0.1 * value.max(), name


def test_lagged_products_sum_each_rows_frames(rng):
    onsets = rng.normal(size=53)
    products = rhythm.lagged_products(onsets, FPS, pool=10)
    lags = np.arange(rhythm.MIN_LAG_FRAMES, round(rhythm.MAX_LAG_S * FPS) + 1)
    assert products.shape == (len(lags), 6)
    for i, lag in enumerate(lags[:5]):
        explicit = np.zeros(60)
        explicit[:53 - lag] = onsets[:53 - lag] * onsets[lag:]
        np.testing.assert_allclose(products[i], explicit.reshape(6, 10).sum(axis=1))
    assert not products[-1].any()  # lags beyond a 53-frame file: nothing to multiply


def test_no_rhythm_evidence_where_a_side_is_shorter_than_the_longest_lag(rng):
    beats = np.arange(0, 40, 0.45)
    columns, _ = rhythm.rhythm_distances(_clicks(rng, 40, beats), fps=FPS)
    times = _row_times(len(columns))
    near_edge = (times < rhythm.MAX_LAG_S - 0.2) | (times > 40 - rhythm.MAX_LAG_S + 0.2)
    assert near_edge.any() and not columns[near_edge, :4].any()
    assert np.isfinite(columns).all()


def test_silence_gives_finite_zeros():
    columns, _ = rhythm.rhythm_distances(np.full((80, 500), -80.0, np.float32), fps=FPS)
    assert np.isfinite(columns).all() and not columns[:, :4].any()


def test_gapped_windows_see_past_a_long_crossfade(rng):
    """120 BPM alone until 40 s, both tempi together for 20 s, then 95 BPM alone: in the middle
    of the overlap the adjacent 8-s windows both hear the mixture, windows 10 s away do not."""
    beats = np.concatenate([np.arange(0, 60, 0.5), np.arange(40.1, 100, 60 / 95)])
    columns, names = rhythm.rhythm_distances(_clicks(rng, 100, beats), fps=FPS, gap_s=10.0)
    assert columns.shape[1] == 16 and names[4:8] == ["rhythm_gap10@4", "rhythm_gap10@8",
                                                     "rhythm_gap10@16", "rhythm_gap10@32"]
    middle = np.argmin(np.abs(_row_times(len(columns)) - 50))
    adjacent, gapped = columns[middle, names.index("rhythm@8")], columns[
        middle, names.index("rhythm_gap10@8")]
    assert gapped > 3 * adjacent
    # the adjacent columns are the ones without a gap
    plain, _ = rhythm.rhythm_distances(_clicks(np.random.default_rng(1), 30, beats), fps=FPS)
    again, _ = rhythm.rhythm_distances(_clicks(np.random.default_rng(1), 30, beats), fps=FPS,
                                       gap_s=2.0)
    np.testing.assert_array_equal(plain[:, :4], again[:, :4])
