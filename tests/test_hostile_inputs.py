"""Robustness, round 2 (issue 13): each case a hostile but realistic user tried, as a test."""

import json

import numpy as np
import pytest

from boundaries.data.annotations import read_boundaries
from boundaries.errors import AnnotationError


@pytest.mark.parametrize("name, text", [
    ("no_duration.jams", {"annotations": [{"namespace": "segment_open",
                                           "data": [{"time": 0.0, "value": "a"}]}]}),
    ("string_time.jams", {"annotations": [{"namespace": "segment_open",
                                           "data": [{"time": "1.0", "duration": 2.0}]}]}),
    ("dict_annotations.jams", {"annotations": {"namespace": "segment_open"}}),
    ("null_data.jams", {"annotations": [{"namespace": "segment_open", "data": None}]}),
    ("nested.jams", "[" * 100000 + "]" * 100000),
    ("huge_field.csv", "1.0," + "x" * 200_000 + "\n"),
])
def test_a_malformed_annotation_is_one_clear_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    with pytest.raises(AnnotationError, match=name):
        read_boundaries(path)


def test_a_decimal_comma_is_refused_as_ambiguous_in_a_comma_csv(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("3,5\n")
    with pytest.raises(AnnotationError, match="ambiguous"):
        read_boundaries(path)


@pytest.mark.parametrize("text, expected", [("3;x\n", [3.0]), ("3,5;x\n7;y\n", [3.5, 7.0]),
                                            ("2.5\tlabel\n", [2.5]), ("time;label\n4;a\n", [4.0])])
def test_semicolon_and_tab_csv_rows_are_read_not_taken_as_a_header(tmp_path, text, expected):
    path = tmp_path / "a.csv"
    path.write_text(text)
    np.testing.assert_allclose(read_boundaries(path), expected)


# ---------------------------------------------------------------- audio that lies


def test_a_dc_offset_alone_gives_no_boundary(tmp_path):
    import soundfile as sf

    from boundaries.api import Detector

    path = tmp_path / "dc.wav"
    sf.write(path, np.full(22050 * 60, 0.3, np.float32), 22050, subtype="FLOAT")
    assert len(Detector(device="cpu").detect(path).boundaries_s) == 0


def test_absurd_levels_and_rates_are_refused(tmp_path):
    import soundfile as sf

    from boundaries.errors import AudioError
    from boundaries.signal.audio import load_audio

    loud = tmp_path / "loud.wav"
    sf.write(loud, np.full(22050, 1e30, np.float32), 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="loud.wav.*full scale"):
        load_audio(loud)
    slow = tmp_path / "one_hz.wav"
    sf.write(slow, np.zeros(2000, np.float32), 1, subtype="FLOAT")
    with pytest.raises(AudioError, match="one_hz.wav.*1 Hz"):
        load_audio(slow)


# ---------------------------------------------------------------- the feature cache


def test_a_replaced_input_with_the_same_size_and_time_is_decoded_again(tmp_path):
    import os

    import soundfile as sf

    from boundaries.config import FeatureConfig
    from boundaries.signal.features import FeatureCache

    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, np.zeros(22050 * 2, np.float32), 22050, subtype="FLOAT")
    sf.write(b, 0.5 * np.sin(np.arange(22050 * 2, dtype=np.float32)), 22050, subtype="FLOAT")
    cache = FeatureCache(tmp_path / "cache", 22050, FeatureConfig())
    first, _ = cache.load(a)
    stat = os.stat(a)
    b.replace(a)  # cp -p: same size, same mtime, other content
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second, _ = cache.load(a)
    assert not np.array_equal(first, second)


def test_a_torn_cache_entry_is_recomputed(tmp_path):
    import soundfile as sf

    from boundaries.config import FeatureConfig
    from boundaries.signal.features import FeatureCache

    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(22050, np.float32), 22050)
    cache = FeatureCache(tmp_path / "cache", 22050, FeatureConfig())
    mel, _ = cache.load(audio)
    entry = cache.entry_path(audio)
    entry.write_bytes(entry.read_bytes()[:100])  # BadZipFile on read
    np.testing.assert_array_equal(cache.load(audio)[0], mel)


def test_an_unwritable_cache_folder_costs_a_warning_not_the_run(tmp_path, caplog):
    import soundfile as sf

    from boundaries.config import FeatureConfig
    from boundaries.signal.features import FeatureCache

    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(22050, np.float32), 22050)
    home = tmp_path / "home"
    home.write_text("a file, not a folder")  # like HOME=/dev/null
    mel, n = FeatureCache(home / ".cache", 22050, FeatureConfig()).load(audio)
    assert n == 22050 and "cannot write the feature cache" in caplog.text


def test_outputs_follow_the_umask(tmp_path):
    import os

    from boundaries.atomic import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
