import numpy as np
import pytest

from boundaries.signal import timebase


def test_fps_of_defaults():
    assert timebase.fps(22050, 512) == pytest.approx(43.066, abs=1e-3)


@pytest.mark.parametrize("hop_length", [256, 512, 1024])
@pytest.mark.parametrize("n_samples", [0, 1, 511, 512, 513, 22050 * 30])
def test_num_frames_is_the_centred_law(n_samples, hop_length):
    assert timebase.num_frames(n_samples, hop_length) == 1 + n_samples // hop_length


def test_thirty_seconds_is_about_1300_frames():
    assert timebase.num_frames(30 * 22050, 512) == 1292


def test_time_frame_round_trip_within_half_a_hop(rng):
    times = rng.uniform(0, 600, 1000)
    frames = timebase.time_to_frames(times, sr=22050, hop_length=512)
    back = timebase.frames_to_time(frames, sr=22050, hop_length=512)
    assert np.all(np.abs(back - times) <= 0.5 * 512 / 22050 + 1e-12)


def test_frames_to_time_matches_librosa():
    import librosa

    frames = np.arange(100)
    assert np.allclose(timebase.frames_to_time(frames, sr=22050, hop_length=512),
                       librosa.frames_to_time(frames, sr=22050, hop_length=512))
