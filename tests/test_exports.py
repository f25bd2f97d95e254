"""DJ exports and listening aids through ``boundaries detect``: names that show the format, a
Rekordbox collection for the whole batch, clicks at the boundaries, the known track count."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import soundfile as sf
from conftest import make_step_track

from boundaries import cli


def _mix(path, seconds=40.0):
    y = np.concatenate([make_step_track(seed) for seed in range(int(seconds // 8))])
    sf.write(path, y.astype(np.float32), 22050)
    return path


def test_every_dj_format_is_named_after_its_format(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        _mix(folder / f"{name}.wav")
    out = tmp_path / "out"
    args = ["detect", str(folder), "-o", str(out), "--format",
            "cue,audacity,tracklist,rekordbox,csv", "--n-tracks", "3", "--jobs", "1"]
    assert cli.main(args) == 0
    names = sorted(p.name for p in out.iterdir() if not p.name.endswith(".run.json"))
    assert names == ["a.audacity.txt", "a.cue", "a.tracklist.txt", "b.audacity.txt", "b.cue",
                     "b.tracklist.txt", "boundaries.csv", "rekordbox.xml"]
    collection = ET.parse(out / "rekordbox.xml").getroot().find("COLLECTION")
    assert collection.get("Entries") == "2"
    assert [len(t.findall("POSITION_MARK")) for t in collection.findall("TRACK")] == [2, 2]
    assert cli.main(args) == 0  # a rerun skips both files and rebuilds the batch files whole
    assert "skipped 2" in capsys.readouterr().out
    collection = ET.parse(out / "rekordbox.xml").getroot().find("COLLECTION")
    assert [len(t.findall("POSITION_MARK")) for t in collection.findall("TRACK")] == [2, 2]


def test_sonify_and_the_minimum_track_length(tmp_path, capsys):
    audio = _mix(tmp_path / "mix.wav")
    out = tmp_path / "out"
    assert cli.main(["detect", str(audio), "-o", str(out), "--format", "json", "--sonify",
                     "--n-tracks", "3", "--min-track-s", "9", "--jobs", "1"]) == 0
    doc = json.loads((out / "mix.boundaries.json").read_text())
    assert doc["settings"]["peaks"]["min_distance_s"] == 9.0
    assert np.all(np.diff(doc["boundaries_s"]) >= 9.0 - 3.0)  # placement moves up to 3 s
    clicks, sr = sf.read(out / "mix.clicks.ogg")
    assert sr == 22050 and abs(len(clicks) - 40 * 22050) < 100
    assert cli.main(["detect", str(audio), "-o", str(out), "--min-track-s", "-1"]) == 2


def test_snap_moves_a_crossover_to_a_beat_only_within_the_tolerance():
    from boundaries.detection.beats import snap

    np.testing.assert_allclose(snap([10.2, 20.0, 30.34], [10.0, 10.5, 19.0, 30.0]),
                               [10.0, 20.0, 30.0])
    np.testing.assert_allclose(snap([5.0], []), [5.0])


def test_snap_beats_lands_crossovers_on_the_beats_of_a_click_track(tmp_path):
    from boundaries.api import Detector
    from boundaries.detection.beats import beat_times

    sr, bpm = 22050, 120
    y = np.concatenate([make_step_track(seed) for seed in range(5)]).astype(np.float32)
    t = np.arange(len(y)) / sr
    y += 0.8 * np.sin(2 * np.pi * 1000 * t) * (np.mod(t, 60 / bpm) < 0.02)  # a click each beat
    detector = Detector(device="cpu")
    result = detector.detect(y, sr=sr, n_tracks=3, snap="beats")
    mel, _ = detector.log_mel(y, sr=sr)
    beats = beat_times(mel, sr=sr, hop_length=512)
    assert result.settings["snap"] == "beats" and len(result.boundaries_s) == 2
    assert np.median(np.diff(beats)) < 0.7  # beats every half second: any time is near one
    assert all(np.min(np.abs(beats - b)) < 1e-9 for b in result.boundaries_s)


def test_progress_moves_within_a_long_file(tmp_path):
    from boundaries.config import load_config
    from boundaries.detection.batch import Job, _feature_stream

    jobs = []
    for i in range(2):
        path = tmp_path / f"long{i}.wav"
        sf.write(path, np.zeros(44100 * 60, np.float32), 44100)  # 2.5 decode blocks each
        jobs.append(Job(path, tmp_path / f"out{i}"))
    cfg = load_config()
    for workers in (1, 2):
        reports = []
        done = [job for job, _ in _feature_stream(jobs, cfg, workers,
                                                  lambda *report, to=reports: to.append(report))]
        assert done == jobs
        for job in jobs:
            mine = [s for p, s in reports if p == str(job.audio_path)]
            assert len(mine) >= 3 and mine == sorted(mine) and mine[-1] == 60.0, (workers, mine)
