import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from boundaries.data.annotations import read_boundaries
from boundaries.errors import BoundariesError
from boundaries.recipes.mixes import (
    MixSettings,
    _envelopes,
    _segment_spans,
    find_sources,
    inner_edit,
    make_mix,
    plan_layout,
    read_excerpt,
    split_sources,
    write_mixes,
)
from boundaries.recipes.synthetic import random_style, render_track

SR = 22050


def _track(seed, seconds, sr=SR):
    rng = np.random.default_rng(seed)
    return render_track(random_style(rng), seconds, sr, rng)


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """Two 'packages' of short tracks in the material's odd shapes."""
    root = tmp_path_factory.mktemp("music")
    a, b = root / "pkg_a", root / "pkg_b" / "album"
    a.mkdir()
    b.mkdir(parents=True)
    for i in range(4):
        sf.write(a / f"t{i}.flac", _track(i, 50), SR)
    y = _track(10, 50, 44100)
    sf.write(b / "stereo 44k é.wav", np.stack([y, 0.5 * y], axis=1), 44100)
    sf.write(b / "quiet.ogg", np.zeros(40 * 8000, dtype=np.float32), 8000)  # digital silence
    sf.write(b / "stinger.wav", _track(11, 5), SR)  # shorter than any segment
    song = root / "pkg_b" / "song_with_stems"
    song.mkdir()
    sf.write(song / "song.ogg", _track(12, 45), SR)
    sf.write(song / "guitar.ogg", _track(13, 46), SR)
    inner = root / "tmp_src.wav"
    sf.write(inner, _track(14, 50), SR)
    with zipfile.ZipFile(root / "pkg_b" / "music.pk3", "w") as archive:
        archive.write(inner, "music/zipped.wav")
        archive.writestr("../evil.wav", b"x")  # must never be extracted outside
    inner.unlink()
    (root / "pkg_b" / "notes.txt").write_text("not audio")
    return root


def test_find_sources_handles_stems_zips_and_odd_files(music, tmp_path):
    sources, problems = find_sources([music], zips=True, extract_dir=tmp_path)
    names = {s.name for s in sources}
    assert "pkg_b/song_with_stems" in names  # one source for the two stems
    stems = next(s for s in sources if s.name == "pkg_b/song_with_stems")
    assert len(stems.paths) == 2 and stems.duration_s == pytest.approx(45, abs=0.01)
    assert "pkg_b/music.pk3/music/zipped.wav" in names
    assert not (tmp_path.parent / "evil.wav").exists() and not list(tmp_path.rglob("evil.wav"))
    assert {s.group for s in sources} == {"pkg_a", "pkg_b"}
    assert not problems
    without_zips, _ = find_sources([music], zips=False)
    assert not any("pk3" in s.name for s in without_zips)


def test_a_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(BoundariesError, match="not a folder"):
        find_sources([tmp_path / "nope"])


def test_split_by_group_keeps_packages_whole(music, tmp_path):
    sources, _ = find_sources([music], zips=True, extract_dir=tmp_path)
    for seed in range(5):
        train, val = split_sources(sources, by="group", val_fraction=0.3, seed=seed)
        assert {s.group for s in train}.isdisjoint({s.group for s in val})
        assert val and train and len(train) + len(val) == len(sources)
    train, val = split_sources(sources, by="track", val_fraction=0.3, seed=0)
    assert {s.name for s in train}.isdisjoint({s.name for s in val})


def test_read_excerpt_speed_changes_duration_not_length(music):
    sources, _ = find_sources([music])
    source = next(s for s in sources if "stereo" in s.name)  # 44.1 kHz stereo
    normal = read_excerpt(source, 10.0, 8.0, SR, speed=1.0)
    fast = read_excerpt(source, 10.0, 8.0, SR, speed=1.04)
    assert len(normal) == len(fast) == 8 * SR
    reference = sf.read(source.paths[0], dtype="float32")[0].mean(axis=1)
    start = int(10.0 * 44100)
    import soxr

    expected = soxr.resample(reference[start:start + 9 * 44100], 44100, SR)[:8 * SR]
    np.testing.assert_allclose(normal[100:-100], expected[100:-100], atol=2e-3)
    assert not np.allclose(normal[SR:], fast[SR:], atol=1e-2)


def test_spans_overlap_around_each_crossover():
    transitions = [{"time_s": 20.0, "kind": "linear", "overlap_s": 10.0},
                   {"time_s": 50.0, "kind": "gap", "overlap_s": -1.0, "fade_s": 1.0}]
    spans = _segment_spans(80.0, transitions)
    assert spans == [(0.0, 25.0), (15.0, 49.5), (50.5, 80.0)]


@pytest.mark.parametrize("kind", ["linear", "equal_power", "eq", "eq_high"])
def test_crossfade_envelopes_hand_over(kind):
    transition = {"time_s": 5.0, "kind": kind, "overlap_s": 4.0}
    n = 10 * 100
    low_in, high_in = _envelopes(n, 100, transition, None)
    low_out, high_out = _envelopes(n, 100, None, transition)
    assert low_in[0] == high_in[0] == 0 and low_in[-1] == high_in[-1] == 1
    assert low_out[0] == high_out[0] == 1 and low_out[-1] == high_out[-1] == 0
    if kind == "eq":  # the bass is swapped at the middle of the overlap, highs ramp
        assert low_in[199] == 0 and low_in[200] == 1
        assert 0 < high_in[100] < 1
    if kind == "eq_high":  # the highs are swapped at the middle, the bass crossfades
        assert high_in[199] == 0 and high_in[200] == 1
        assert high_out[-201] == 1 and high_out[-200] == 0
        assert 0 < low_in[100] < low_in[300] < 1


def test_make_mix_labels_are_the_planned_crossovers(music):
    sources, _ = find_sources([music])
    settings = MixSettings(clip_s=(60.0, 90.0), segment_s=(15.0, 30.0), overlap_s=(2.0, 10.0))
    y, times, record = make_mix(np.random.default_rng(3), sources, settings)
    assert len(y) == pytest.approx(record["duration_s"] * SR, abs=0.0005 * SR)  # ms rounding
    np.testing.assert_allclose(times, [t["time_s"] for t in record["transitions"]], atol=1e-3)
    assert len(times) >= 1 and np.all(np.diff(times) > 0)
    names = [s["source"] for s in record["segments"]]
    assert len(names) == len(set(names)) == len(times) + 1  # different tracks, one per span
    assert "pkg_b/album/quiet.ogg" not in names and "pkg_b/album/stinger.wav" not in names
    assert np.abs(y).max() <= 0.98 + 1e-6


def test_layout_respects_segment_range():
    settings = MixSettings(clip_s=(30.0, 240.0), segment_s=(15.0, 75.0))
    for seed in range(50):
        clip_s, transitions = plan_layout(np.random.default_rng(seed), settings)
        times = np.array([t["time_s"] for t in transitions])
        assert 30.0 <= clip_s <= 240.0 and len(times) >= 1
        assert np.all((times > 0) & (times < clip_s))
        if len(times) > 1:
            assert np.diff(times).min() >= 15.0
        for t, gap in zip(transitions, np.diff(np.r_[0, times, clip_s])):
            assert abs(t["overlap_s"]) <= gap


def test_write_mixes_is_deterministic_and_complete(music, tmp_path):
    sources, _ = find_sources([music])
    train, val = split_sources(sources, by="track", val_fraction=0.5, seed=0)
    settings = MixSettings(clip_s=(30.0, 45.0), segment_s=(12.0, 20.0), format="ogg")
    for out in ("a", "b"):
        write_mixes(tmp_path / out, {"train": (train, 2), "val": (val, 1)}, settings, seed=4)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert [c["file"] for c in manifest["clips"]] == ["train/mix_0000.ogg", "train/mix_0001.ogg",
                                                      "val/mix_0000.ogg"]
    for clip in manifest["clips"]:
        audio = tmp_path / "a" / clip["file"]
        info = sf.info(str(audio))
        assert info.samplerate == SR and info.channels == 1
        assert info.duration == pytest.approx(clip["duration_s"], abs=0.01)
        times = read_boundaries(audio.with_suffix(".txt"))
        np.testing.assert_allclose(times, [t["time_s"] for t in clip["transitions"]], atol=1e-3)
        used = {s["source"] for s in clip["segments"]}
        pool = {s.name for s in (train if clip["file"].startswith("train") else val)}
        assert used <= pool  # no validation track in a training clip, and back
    second = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert second["clips"] == manifest["clips"]


def _make_three_clips(music, out, *options) -> int:
    """make_mixes.py: 2 training clips and 1 validation clip of ``music`` into ``out``."""
    from data_scripts.make_mixes import main

    return main(["--tracks", str(music), "--out", str(out), "--n-clips", "2", "--n-val-clips",
                 "1", "--zips", "--jobs", "1", *options])


def test_make_mixes_script_end_to_end(music, tmp_path, capsys):
    from data_scripts.make_mixes import main

    out = tmp_path / "mixes"
    assert _make_three_clips(music, out, "--split-by", "group", "--clip-s", "30,40",
                             "--segment-s", "12,20", "--format", "flac") == 0
    assert len(list((out / "train").glob("*.flac"))) == 2
    assert "wrote 3 clips" in capsys.readouterr().out
    assert main(["--tracks", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_too_little_music_is_one_clear_error(music):
    sources, _ = find_sources([music])
    with pytest.raises(BoundariesError, match="add tracks or lower --segment-s"):
        make_mix(np.random.default_rng(0), sources[:1], MixSettings())


def test_unwritable_output_is_one_clear_error(music, tmp_path, capsys):
    from data_scripts.make_mixes import main

    blocker = tmp_path / "a file"
    blocker.write_text("")
    code = main(["--tracks", str(music), "--out", str(blocker / "mixes"), "--n-clips", "1",
                 "--n-val-clips", "1", "--jobs", "1", "--clip-s", "30,40", "--segment-s", "12,20"])
    err = capsys.readouterr().err
    assert code == 2 and "a file" in err and "Traceback" not in err


def test_given_packages_split_and_inner_edits_stay_unlabelled(music, tmp_path, capsys):
    from data_scripts.make_mixes import main

    out = tmp_path / "mixes"
    assert _make_three_clips(music, out, "--val-groups", "pkg_b", "--clip-s", "60,70",
                             "--segment-s", "30,35", "--inner-edits", "1.0") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    for clip in manifest["clips"]:
        groups = {s["source"].split("/")[0] for s in clip["segments"]}
        assert groups == ({"pkg_b"} if clip["file"].startswith("val/") else {"pkg_a"})
        labelled = read_boundaries(out / Path(clip["file"]).with_suffix(".txt"))
        np.testing.assert_allclose(labelled, [t["time_s"] for t in clip["transitions"]],
                                   atol=1e-3)
    edits = [s["edit"] for c in manifest["clips"] for s in c["segments"] if "edit" in s]
    assert edits and all(e["kind"] in ("jump", "loop", "bass_cut") for e in edits)
    other = tmp_path / "tempo"
    assert _make_three_clips(music, other, "--val-groups", "pkg_b", "--clip-s", "60,70",
                             "--segment-s", "30,35", "--inner-edits", "1.0",
                             "--edit-kinds", "tempo,high_cut") == 0
    manifest = json.loads((other / "manifest.json").read_text())
    edits = [s["edit"] for c in manifest["clips"] for s in c["segments"] if "edit" in s]
    assert edits and {e["kind"] for e in edits} <= {"tempo", "high_cut"}
    assert main(["--tracks", str(music), "--out", str(out), "--val-groups", "nope"]) == 2
    assert "--val-groups/--test-groups name nope" in capsys.readouterr().err


def test_track_ends_put_intros_and_endings_at_crossovers(music):
    sources, _ = find_sources([music])
    duration = {s.name: s.duration_s for s in sources}
    settings = MixSettings(clip_s=(60.0, 90.0), segment_s=(15.0, 30.0), track_ends=1.0)
    at_start = at_end = 0
    for seed in range(6):
        _, _, record = make_mix(np.random.default_rng(seed), sources, settings)
        for segment in record["segments"]:
            played = (segment["stop_s"] - segment["start_s"]) * segment["speed"]
            at_start += segment["offset_s"] == 0.0
            at_end += abs(segment["offset_s"] + played - duration[segment["source"]]) < 0.2
    assert at_start > 0 and at_end > 0
    assert at_start + at_end == sum(len(make_mix(np.random.default_rng(seed), sources, settings)
                                        [2]["segments"]) for seed in range(6))


def test_default_settings_draw_the_clips_of_older_seeds(music):
    """The new options off draw nothing extra: a seed keeps its clip byte for byte."""
    sources, _ = find_sources([music])
    settings = MixSettings(clip_s=(60.0, 90.0), segment_s=(15.0, 30.0))
    y, _, record = make_mix(np.random.default_rng(5), sources, settings)
    y_off, _, record_off = make_mix(np.random.default_rng(5), sources,
                                    MixSettings(clip_s=(60.0, 90.0), segment_s=(15.0, 30.0),
                                                track_ends=0.0))
    np.testing.assert_array_equal(y, y_off)
    ends = MixSettings(clip_s=(60.0, 90.0), segment_s=(15.0, 30.0), track_ends=1.0)
    _, _, record_ends = make_mix(np.random.default_rng(5), sources, ends)
    assert record_ends["segments"] != record["segments"]


def test_make_mixes_kinds_option_chooses_the_transitions(music, tmp_path, capsys):
    from data_scripts.make_mixes import main

    out = tmp_path / "mixes"
    assert _make_three_clips(music, out, "--split-by", "group", "--clip-s", "30,40",
                             "--segment-s", "12,20", "--kinds", "eq_high=1", "--gain-db",
                             "8") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    kinds = {t["kind"] for clip in manifest["clips"] for t in clip["transitions"]}
    assert kinds == {"eq_high"} and manifest["settings"]["gain_db"] == 8.0
    for option, bad in (("--kinds", "eq_high"), ("--kinds", "bogus=1"), ("--kinds", "cut=0"),
                        ("--track-ends", "1.5"), ("--inner-edits", "-0.1"), ("--gain-db", "-3")):
        with pytest.raises(SystemExit):
            main(["--tracks", str(music), "--out", str(out), option, bad])
        assert option in capsys.readouterr().err


def _band_rms(y, lo_hz, hi_hz, sr=SR):
    spectrum = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    return np.sqrt(spectrum[(freqs >= lo_hz) & (freqs < hi_hz)].sum())


def test_tempo_and_high_cut_edits_change_the_track_not_its_identity(music):
    """``tempo``: from the edit on, the same stretch of the source plays 3-8 % faster or
    slower; ``high_cut``: above 200 Hz goes for 4-16 s while the bass stays."""
    source = next(s for s in find_sources([music])[0] if s.name == "pkg_a/t0.flac")
    segment = {"source": source.name, "offset_s": 2.0, "speed": 1.0}
    piece = read_excerpt(source, 2.0, 40.0, SR)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        edited, record = inner_edit(rng, piece, [source], segment, SR, ("tempo",))
        at = int(record["time_s"] * SR)
        assert record["kind"] == "tempo" and 0.03 <= abs(record["speed"] - 1) <= 0.08
        np.testing.assert_array_equal(edited[:at], piece[:at])
        after = read_excerpt(source, 2.0 + at / SR, 5.0, SR, record["speed"])
        fade = 2 * SR  # the join's crossfade is at most 2 s
        gain = np.sqrt(np.mean(piece ** 2) / np.mean(
            read_excerpt(source, 2.0 + at / SR, 40.0 - at / SR, SR, record["speed"]) ** 2))
        np.testing.assert_allclose(edited[at + fade:at + 5 * SR], gain * after[fade:], atol=1e-4)

        edited, record = inner_edit(rng, piece, [source], segment, SR, ("high_cut",))
        at, n = int(record["time_s"] * SR), int(record["length_s"] * SR)
        assert record["kind"] == "high_cut" and 4 * SR <= n <= 16 * SR
        cut, kept = edited[at:at + n], piece[at:at + n]
        assert _band_rms(cut, 400, 8000) < 0.05 * _band_rms(kept, 400, 8000)
        assert _band_rms(cut, 20, 150) > 0.7 * _band_rms(kept, 20, 150)
        after = at + n + SR // 100  # the manifest gives the length to the millisecond
        np.testing.assert_array_equal(edited[after:], piece[after:])
