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
    assert doc["fps"] == pytest.approx(22050 / 512) and doc["sr"] == 22050 and doc["source"] is None
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
    from boundaries import api

    first = boundaries.detect(y, sr=22050, device="cpu")
    loaded = api._DEFAULT[("None", "cpu")]
    second = boundaries.detect(y, sr=22050, device="cpu")
    np.testing.assert_array_equal(first.activations, second.activations)
    assert api._DEFAULT[("None", "cpu")] is loaded  # not loaded again


def test_import_boundaries_is_light():
    check = ("import boundaries, sys; "
             "print(sorted({'torch', 'numpy', 'librosa'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stderr


def test_dj_exports_parse_back(detector, tmp_path):
    import xml.etree.ElementTree as ET

    from boundaries.api import Result
    from boundaries.detection import exports

    result = Result(np.array([65.5, 3725.25]), np.array([0.9, 0.4]), np.zeros(10), 43.07,
                    4000.0, "f" * 64, source=str(tmp_path / "set one.mp3"),
                    settings=detector.settings())
    cue = result.save(tmp_path / "set.cue").read_text()
    assert 'FILE "set one.mp3" MP3' in cue and "TRACK 03 AUDIO" in cue
    assert "INDEX 01 01:05:38" in cue and "INDEX 01 62:05:19" in cue  # 75 frames a second
    assert exports.cue_time(59.999) == "01:00:00"
    labels = result.save(tmp_path / "set.audacity.txt").read_text().splitlines()
    assert [line.split("\t") for line in labels][0] == ["65.500000", "65.500000", "crossover 1"]
    tracklist = result.save(tmp_path / "set.tracklist.txt").read_text()
    assert tracklist.splitlines() == ["0:00:00  Track 1", "0:01:06  Track 2", "1:02:05  Track 3"]
    root = ET.parse(result.save(tmp_path / "set.xml")).getroot()
    track = root.find("COLLECTION/TRACK")
    marks = track.findall("POSITION_MARK")
    assert root.tag == "DJ_PLAYLISTS" and track.get("TotalTime") == "4000"
    assert track.get("Location").startswith("file://localhost/") and "set%20one.mp3" in \
        track.get("Location")
    assert [float(m.get("Start")) for m in marks] == [65.5, 3725.25]
    assert {m.get("Num") for m in marks} == {"-1"} and {m.get("Type") for m in marks} == {"0"}


def test_jams_carries_confidence_and_the_model(detector, tmp_path):
    import jams

    result = detector.detect(stereo_music(22050), sr=22050, n_tracks=3)
    path = result.save(tmp_path / "a.jams")
    jam = jams.load(str(path), validate=True)  # the schema of the jams package itself
    assert len(jam.annotations[0].data) == 3
    doc = json.loads(path.read_text())
    annotation = doc["annotations"][0]
    confidences = [o["confidence"] for o in annotation["data"]]
    assert confidences[0] is None and confidences[1:] == pytest.approx(list(result.strengths))
    assert annotation["annotation_metadata"]["annotator"]["model_id"] == result.model_id


def test_no_boundary_at_the_edges_of_music_that_runs_to_both_ends(detector):
    y = stereo_music(22050, 40.0)
    for n_tracks in (None, 4):
        result = detector.detect(y, sr=22050, n_tracks=n_tracks, threshold=None)
        assert np.all(result.boundaries_s >= 1.0)
        assert np.all(result.boundaries_s <= result.duration_s - 1.0)


def test_sonify_writes_the_audio_with_clicks(detector, tmp_path):
    import soundfile as sf

    path = tmp_path / "in.wav"
    sf.write(path, stereo_music(22050, 40.0), 22050)
    result = detector.detect(path, n_tracks=3)
    out = result.sonify(tmp_path / "in.clicks.ogg")
    clicked, sr = sf.read(out)
    assert sr == 22050 and abs(len(clicked) - 40 * 22050) < 100
    with pytest.raises(ValueError, match="array"):
        detector.detect(stereo_music(22050, 16.0), sr=22050).sonify(tmp_path / "x.wav")


def test_detect_with_the_shipped_model_loads_neither_torch_nor_librosa(tmp_path):
    """Start-up (issue 16): the track-change detector runs on numpy, its checkpoint is read
    without torch, and the log-mel, peaks and filters need neither librosa nor scipy."""
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.random.default_rng(0).standard_normal(22050 * 20) * 0.1, 22050)
    check = ("import sys; from boundaries.cli import main; "
             f"code = main(['detect', {str(tmp_path / 'a.wav')!r}, '-o', "
             f"{str(tmp_path / 'out')!r}, '--jobs', '1']); "
             "print(code, sorted({'torch', 'librosa', 'scipy', 'sklearn'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr


def test_asking_the_numpy_detector_for_cuda_says_it_runs_on_the_cpu(caplog):
    with caplog.at_level("WARNING"):
        det = Detector(device="cuda")
    assert det.device == "cpu" and "runs on the CPU" in caplog.text
