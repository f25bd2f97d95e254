import os
import time

import numpy as np
import pytest
import soundfile as sf

from boundaries.config import FeatureConfig
from boundaries.errors import AudioError
from boundaries.signal import features, timebase


@pytest.mark.parametrize("hop_length,n_fft", [(256, 1024), (512, 2048), (512, 1024), (1024, 2048)])
def test_frame_count_law_against_librosa(step_track, hop_length, n_fft):
    import librosa

    mel = features.log_mel(step_track[:30001], hop_length=hop_length, n_fft=n_fft, n_mels=40)
    ref = librosa.feature.melspectrogram(y=step_track[:30001], sr=22050, n_fft=n_fft,
                                         hop_length=hop_length, n_mels=40)
    assert mel.shape == (40, timebase.num_frames(30001, hop_length)) == ref.shape


def test_log_mel_equals_librosa_whole_signal(rng):
    import librosa

    y = (rng.standard_normal(22050 * 100) * 0.1).astype(np.float32)  # > one block of frames
    mel = features.log_mel(y)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(
        y=y, sr=22050, n_fft=2048, hop_length=512, n_mels=80, fmin=27.5, fmax=11025.0,
        pad_mode="constant"), ref=1.0, amin=1e-10, top_db=None)
    assert mel.dtype == np.float32
    assert np.abs(mel - ref).max() < 1e-3


def test_digital_silence_gives_finite_floor():
    mel = features.log_mel(np.zeros(22050, np.float32))
    assert np.all(np.isfinite(mel)) and mel.max() == pytest.approx(-100.0)


def _cache(tmp_path, **kw):
    return features.FeatureCache(tmp_path / "cache", 22050, FeatureConfig(n_mels=16, **kw))


def _wav(tmp_path, y, name="a.wav"):
    path = tmp_path / name
    sf.write(path, y, 22050)
    return path


def test_cache_hit_decodes_nothing(tmp_path, step_track, monkeypatch):
    path = _wav(tmp_path, step_track)
    cache = _cache(tmp_path)
    mel, n = cache.load(path)
    monkeypatch.setattr(features, "load_audio", lambda *a, **k: pytest.fail("decoded again"))
    mel2, n2 = cache.load(path)
    assert np.array_equal(mel, mel2) and n == n2 == len(step_track)


def test_cache_parameter_change_uses_a_new_entry(tmp_path, step_track):
    path = _wav(tmp_path, step_track)
    a, b = _cache(tmp_path), _cache(tmp_path, hop_length=256)
    assert a.dir != b.dir
    assert b.load(path)[0].shape[1] == timebase.num_frames(len(step_track), 256)


def test_cache_edited_file_is_decoded_again(tmp_path, step_track):
    path = _wav(tmp_path, step_track)
    cache = _cache(tmp_path)
    cache.load(path)
    time.sleep(0.01)
    sf.write(path, step_track[:22050], 22050)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert cache.load(path)[1] == 22050


def test_cache_write_is_atomic_when_killed(tmp_path, step_track, monkeypatch):
    path = _wav(tmp_path, step_track)
    cache = _cache(tmp_path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.load(path)
    assert not cache.entry_path(path).exists()
    assert list(cache.dir.iterdir()) == []  # no temporary left behind either


def test_corrupt_cache_entry_is_recomputed(tmp_path, step_track):
    path = _wav(tmp_path, step_track)
    cache = _cache(tmp_path)
    mel, _ = cache.load(path)
    cache.entry_path(path).write_bytes(b"garbage")
    assert np.array_equal(cache.load(path)[0], mel)


def test_load_features_in_two_processes_reports_bad_files(tmp_path, step_track):
    good = [_wav(tmp_path, step_track, f"g{i}.wav") for i in range(3)]
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    found, failed = features.load_features(good + [bad], _cache(tmp_path), jobs=2,
                                           progress=False)
    assert set(found) == set(good)
    assert list(failed) == [bad] and "bad.wav" in failed[bad]


def test_load_audio_error_type_is_boundaries_error(tmp_path):
    with pytest.raises(AudioError):
        _cache(tmp_path).load(tmp_path / "missing.wav")


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(22050, 2048, 80, 27.5, 11025.0),
                                                       (44100, 4096, 128, 30.0, 16000.0),
                                                       (16000, 512, 40, 0.0, 8000.0)])
def test_mel_filterbank_equals_librosa(sr, n_fft, n_mels, fmin, fmax):
    import librosa

    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    np.testing.assert_allclose(features.mel_filterbank(sr, n_fft, n_mels, fmin, fmax), ref,
                               rtol=1e-5, atol=1e-8)
