"""Robustness sweep (issue 13): parsers fuzzed with hypothesis, odd headers, odd file systems,
odd arguments. Each case ends in a right answer or one line naming the file and the fix."""

import json
import os
import string

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from boundaries import cli
from boundaries.config import load_config
from boundaries.data.annotations import read_boundaries
from boundaries.errors import AnnotationError, AudioError, ConfigError
from boundaries.signal.audio import audio_from_array, load_audio

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = st.text(alphabet=string.printable + "éß€\u00a0\ufeff", max_size=300)


def _check_times(times):
    assert times.dtype == np.float64 and np.all(np.isfinite(times)) and np.all(times > 0)
    assert np.all(np.diff(times) > 0)


# ---------------------------------------------------------------- fuzzed parsers (5 cases)


@pytest.mark.parametrize("suffix", [".txt", ".lab", ".csv", ".jams"])
@FUZZ
@given(text=TEXT)
def test_any_annotation_text_is_times_or_one_annotation_error(tmp_path, suffix, text):
    path = tmp_path / f"fuzz{suffix}"
    path.write_text(text, encoding="utf-8")
    try:
        _check_times(read_boundaries(path, duration_s=1000.0))
    except AnnotationError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
                           lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.sampled_from(["time", "duration", "value",
                                                            "namespace", "data",
                                                            "annotations"]), inner, max_size=4),
                           max_leaves=30)


@FUZZ
@given(doc=JSON_VALUES)
@example(doc=["\n"])  # an item that is a newline once reached the message verbatim
def test_any_json_structure_in_a_jams_is_times_or_one_error(tmp_path, doc):
    path = tmp_path / "fuzz.jams"
    path.write_text(json.dumps({"annotations": [{"namespace": "segment_open", "data": doc}]}))
    try:
        _check_times(read_boundaries(path))
    except AnnotationError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(key=st.sampled_from(["peaks.threshold", "train.lr", "peaks.max_window_s", "eval.windows",
                            "train.epochs", "labels.sigma_s", "data.excerpt_s", "nope.x",
                            "train", ""]),
       value=TEXT)
def test_any_override_is_a_config_or_one_config_error(key, value):
    try:
        cfg = load_config(overrides=[f"{key}={value}"])
    except ConfigError as exc:
        assert "\n" not in str(exc).strip()
    else:
        assert cfg.peaks.max_window_s <= 86400 and 0 < cfg.train.lr <= 10


@FUZZ
@given(text=TEXT)
def test_any_yaml_config_file_is_a_config_or_one_config_error(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config([path])
    except ConfigError as exc:
        assert str(path) in str(exc) or "config key" in str(exc) or "invalid config" in str(exc)


@FUZZ
@given(n=st.integers(0, 5000), channels=st.integers(1, 10), sr=st.integers(-5, 200_000),
       dtype=st.sampled_from(["float32", "float64", "int16", "int32", "uint8", "complex64"]),
       transpose=st.booleans())
def test_any_array_is_mono_audio_or_one_value_error(n, channels, sr, dtype, transpose):
    y = np.ones((n, channels), dtype=dtype) if dtype != "complex64" else np.ones(n, dtype)
    y = y.T if transpose else y
    valid = (dtype != "complex64" and sr >= 1000 and n * 22050 >= 512 * sr
             and (channels <= 8 and n != channels or channels == 1))
    try:
        out = audio_from_array(y, sr, 22050)
    except ValueError as exc:
        assert "\n" not in str(exc) and not valid, exc
    else:
        assert out.ndim == 1 and out.dtype == np.float32 and np.isfinite(out).all()


# ---------------------------------------------------------------- odd audio headers (12 cases)


def _tone(seconds=2.0, sr=22050, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.tile(y[:, None], (1, channels)) if channels > 1 else y


@pytest.mark.parametrize("subtype, sr, channels", [
    ("PCM_U8", 8000, 1), ("PCM_16", 11025, 2), ("PCM_24", 96000, 1), ("PCM_32", 192000, 2),
    ("FLOAT", 44100, 8), ("DOUBLE", 48000, 6), ("ULAW", 8000, 1), ("ALAW", 8000, 1)])
def test_odd_but_valid_wav_headers_decode(tmp_path, subtype, sr, channels):
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, _tone(2.0, sr, channels), sr, subtype=subtype)
    y = load_audio(path)
    assert abs(len(y) - 2 * 22050) <= 2 and np.isfinite(y).all()


@pytest.mark.parametrize("name, data, message", [
    ("text.wav", b"this is not audio at all\n" * 10, "cannot decode"),
    ("riff_only.wav", b"RIFF\x24\x00\x00\x00WAVEfmt ", "cannot decode"),
    ("empty.mp3", b"", "empty file"),
    ("noise.flac", os.urandom(4096), "cannot decode"),
])
def test_broken_headers_are_one_audio_error(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AudioError, match=message):
        load_audio(path)


def test_corrupt_mp3s_are_one_line_each_with_nothing_from_the_c_decoder(tmp_path, capfd):
    """libmpg123 prints resync notes to descriptor 2 itself: they must not surround our line."""
    rng = np.random.default_rng(0)
    good = tmp_path / "good.mp3"
    sf.write(good, 0.1 * rng.standard_normal(22050 * 5).astype(np.float32), 22050)
    data = good.read_bytes()
    (tmp_path / "scrambled.mp3").write_bytes(data[:3000] + rng.bytes(3000) + data[6000:])
    (tmp_path / "noise.mp3").write_bytes(rng.bytes(20000))
    for name in ["scrambled.mp3", "noise.mp3"]:
        # resyncing past the damage may give a short file (truncated) or fail outright
        with pytest.raises(AudioError, match=f"{name}: .*(cannot decode|corrupt|truncated)") \
                as caught:
            load_audio(tmp_path / name)
        assert "does not exist" not in str(caught.value)  # libsndfile's words for "no decoder"
    assert len(load_audio(good)) > 4 * 22050
    captured = capfd.readouterr()
    assert "Note:" not in captured.err and "mpg123" not in captured.err


# ---------------------------------------------------------------- odd file systems (8 cases)


def test_a_pipe_named_like_audio_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path / "pipe.wav")


def test_a_broken_symlink_is_one_line_and_a_symlink_loop_does_not_hang(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "ok.wav", _tone(5.0), 22050)
    (folder / "gone.wav").symlink_to(tmp_path / "missing.wav")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    code = cli.main(["detect", str(folder), "-o", str(tmp_path / "out"), "--jobs", "1"])
    captured = capsys.readouterr()
    assert code == 1 and "done 1" in captured.out and "gone.wav" in captured.err


def test_a_folder_named_like_audio_and_hidden_files_are_passed_over(tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "album.wav").mkdir(parents=True)
    sf.write(folder / "ok.wav", _tone(5.0), 22050)
    (folder / ".partial.wav").write_bytes(b"half a download")
    assert cli.main(["detect", str(folder), "-o", str(tmp_path / "out"), "--jobs", "1"]) == 0
    assert "done 1, skipped 0" in capsys.readouterr().out


def test_names_with_spaces_quotes_and_unicode_round_trip(tmp_path, capsys):
    folder = tmp_path / "my mixes ✓"
    folder.mkdir()
    name = "DJ 'set' #1 — café (live).wav"
    sf.write(folder / name, _tone(5.0), 22050)
    out = tmp_path / "out dir"
    assert cli.main(["detect", str(folder), "-o", str(out), "--format", "json", "--jobs",
                     "1"]) == 0
    doc = json.loads((out / (name[:-4] + ".boundaries.json")).read_text(encoding="utf-8"))
    assert doc["source"].endswith(name)


def test_output_folder_inside_the_input_folder_touches_no_input(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _tone(5.0), 22050)
    before = (tmp_path / "a.wav").read_bytes()
    assert cli.main(["detect", str(tmp_path), "-o", str(tmp_path / "out"), "--jobs", "1"]) == 0
    assert cli.main(["detect", str(tmp_path), "-o", str(tmp_path / "out"), "--jobs", "1"]) == 0
    assert (tmp_path / "a.wav").read_bytes() == before


def test_an_output_path_that_is_a_file_is_one_line(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _tone(5.0), 22050)
    (tmp_path / "out").write_text("a file")
    assert cli.main(["detect", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


# ---------------------------------------------------------------- odd annotations (9 cases)


@pytest.mark.parametrize("name, content, expected", [
    ("bom.txt", "\ufeff1.5\n3.0\n".encode(), [1.5, 3.0]),
    ("crlf.lab", b"0 1.5 a\r\n1.5 3 b\r\n3 5 c\r\n", [1.5, 3.0]),
    ("comments.txt", b"# mix\n1.0 # intro\n\n2.0\tlabel\n", [1.0, 2.0]),
    ("empty.txt", b"", []),
    ("many.txt", "".join(f"{i / 10:.1f}\n" for i in range(1, 10001)).encode(),
     [i / 10 for i in range(1, 10001)]),
])
def test_odd_but_valid_annotations_read(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    np.testing.assert_allclose(read_boundaries(path), expected)


@pytest.mark.parametrize("name, content, message", [
    ("latin1.txt", "1.0 café\n".encode("latin-1"), "cannot read"),
    ("nan.txt", b"nan\n", "not a finite time"),
    ("unsorted.txt", b"3.0\n1.0\n", "sort the times"),
    ("late.txt", b"5000\n", "beyond the audio"),
])
def test_bad_annotations_are_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AnnotationError, match=message):
        read_boundaries(path, duration_s=60.0)


# ---------------------------------------------------------------- odd arguments (8 cases)


@pytest.mark.parametrize("args", [
    ["detect", "IN", "-o", "OUT", "--jobs", "0"],
    ["detect", "IN", "-o", "OUT", "--format", "mp3"],
    ["detect", "IN", "-o", "OUT", "--set", "peaks.threshold"],
    ["detect", "IN", "-o", "OUT", "--set", "audio.sr=44100"],
    ["detect", "IN", "-o", "OUT", "--checkpoint", "CKPT_TEXT"],
    ["evaluate", "--checkpoint", "CKPT_TEXT", "--data", "IN"],
    ["train", "--config", "IN"],
    ["train", "--config", "LIST_YAML"],
])
def test_odd_arguments_are_one_line_and_exit_2(tmp_path, capsys, args):
    sf.write(tmp_path / "a.wav", _tone(5.0), 22050)
    (tmp_path / "ckpt.pt").write_text("not a checkpoint")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    subs = {"IN": str(tmp_path), "OUT": str(tmp_path / "out"),
            "CKPT_TEXT": str(tmp_path / "ckpt.pt"), "LIST_YAML": str(tmp_path / "list.yaml")}
    assert cli.main([subs.get(a, a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
