"""The Python API: ``boundaries.detect``, ``Detector`` and ``Result``."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, make_step_track

import boundaries
from boundaries.api import DEFAULT_MODEL, Detector


@pytest.fixture(scope="module")
def detector():
    return Detector(device="cpu")


def stereo_music(sr, seconds=40.0):
    """Five 8-s step tracks in a row, stereo (the right channel quieter), at ``sr``."""
    y = np.concatenate([make_step_track(seed, sr=sr) for seed in range(int(seconds // 8))])
    return np.stack([y, 0.5 * y], axis=1).astype(np.float32)


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_an_array_gives_the_times_of_the_same_audio_in_a_file(detector, tmp_path, sr):
    y = stereo_music(sr)
    path = tmp_path / f"mix_{sr}.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    from_file = detector.detect(path)
    for audio in (y, y.T, torch.from_numpy(y)):  # (n, channels), (channels, n), a tensor
        from_array = detector.detect(audio, sr=sr)
        np.testing.assert_array_equal(from_array.activations, from_file.activations)
        np.testing.assert_array_equal(from_array.boundaries_s, from_file.boundaries_s)
    assert from_file.duration_s == pytest.approx(len(y) / sr, abs=1e-3)
    assert len(from_file.activations) == pytest.approx(from_file.duration_s * from_file.fps,
                                                       abs=2)


def test_integer_pcm_is_scaled_like_a_pcm_file(detector, tmp_path):
    y = (stereo_music(22050, 16.0) * 20000).astype(np.int16)
    path = tmp_path / "pcm.wav"
    sf.write(path, y, 22050, subtype="PCM_16")
    np.testing.assert_array_equal(detector.detect(y, sr=22050).activations,
                                  detector.detect(path).activations)


@pytest.mark.parametrize("audio, sr, message", [
    (np.zeros(44100, np.float32), None, "needs its sample rate"),
    (np.zeros(44100, np.float32), 0, "positive integer"),
    (np.zeros(44100, np.float32), 44100.5, "positive integer"),
    (np.zeros((100, 100), np.float32), 22050, "shape"),
    (np.zeros((2, 2, 44100), np.float32), 22050, "shape"),
    (np.full(44100, np.nan, np.float32), 22050, "NaN"),
    (np.zeros(10, np.float32), 22050, "too short"),
])
def test_a_wrong_rate_or_shape_is_one_clear_value_error(detector, audio, sr, message):
    with pytest.raises(ValueError, match=message):
        detector.detect(audio, sr=sr)


def test_a_file_takes_no_sr(detector, tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, stereo_music(22050, 8.0), 22050)
    with pytest.raises(ValueError, match="sr= is for arrays"):
        detector.detect(path, sr=22050)


def test_result_describes_itself_and_saves_every_format(detector, tmp_path):
    import mir_eval

    from boundaries.data.annotations import read_boundaries

    settings = detector.detect(stereo_music(22050, 16.0), sr=22050, threshold=0.05).settings
    assert settings["threshold"] == settings["peaks"]["threshold"] == 0.05  # what was used
    result = detector.detect(stereo_music(22050), sr=22050, n_tracks=3)
    doc = result.to_dict()
    assert doc["model_id"] == hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    assert doc["fps"] == pytest.approx(22050 / 512) and doc["source"] is None
    json.dumps(doc)  # plain data
    for fmt in ("txt", "lab", "jams", "json"):
        result.save(tmp_path / f"out.{fmt}")
    np.testing.assert_allclose(np.loadtxt(tmp_path / "out.txt", ndmin=1),
                               result.boundaries_s, atol=5e-4)
    intervals, _ = mir_eval.io.load_labeled_intervals(str(tmp_path / "out.lab"))
    assert intervals[-1, 1] == pytest.approx(result.duration_s, abs=1e-3)
    np.testing.assert_allclose(read_boundaries(tmp_path / "out.jams"), result.boundaries_s,
                               atol=5e-4)
    assert json.loads((tmp_path / "out.json").read_text())["model_id"] == doc["model_id"]
    with pytest.raises(ValueError, match="format"):
        result.save(tmp_path / "out.xyz")
    assert result.plot(tmp_path / "a.png").stat().st_size > 0


def test_n_tracks_gives_exactly_k_minus_one_crossovers(detector):
    result = detector.detect(stereo_music(22050), sr=22050, n_tracks=3)
    assert len(result.boundaries_s) == 2 and result.settings["n_tracks"] == 3
    with pytest.raises(ValueError, match="n_tracks"):
        detector.detect(stereo_music(22050, 8.0), sr=22050, n_tracks=0)


def test_detect_many_loads_once_and_can_skip_a_bad_file(detector, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, stereo_music(22050, 16.0), 22050)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    results = list(detector.detect_many([good, bad, good], on_error="skip"))
    assert [r.source for r in results] == [str(good), str(good)]
    with pytest.raises(boundaries.errors.AudioError, match="bad.wav"):
        list(detector.detect_many([bad]))


def test_module_level_detect_reuses_one_detector(tmp_path):
    y = stereo_music(22050, 16.0)
    first = boundaries.detect(y, sr=22050, device="cpu")
    second = boundaries.detect(y, sr=22050, device="cpu")
    np.testing.assert_array_equal(first.activations, second.activations)
    from boundaries import api

    assert len(api._DEFAULT) == 1


def test_import_boundaries_is_light():
    check = ("import boundaries, sys; "
             "print(sorted({'torch', 'numpy', 'librosa'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stderr
