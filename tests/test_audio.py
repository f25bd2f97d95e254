import os

import numpy as np
import pytest
import soundfile as sf

from boundaries.errors import AudioError
from boundaries.signal.audio import find_audio_files, load_audio

FORMATS = [("wav", "WAV", "PCM_16"), ("wav", "WAV", "FLOAT"), ("flac", "FLAC", "PCM_24"),
           ("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"), ("mp3", "MP3", "MPEG_LAYER_III"),
           ("aiff", "AIFF", "PCM_16")]


def tone(sr, seconds=2.0, channels=2, hz=440.0):
    t = np.arange(int(sr * seconds)) / sr
    y = 0.3 * np.sin(2 * np.pi * hz * t)
    return np.stack([y * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("ext,fmt,subtype", FORMATS)
def test_every_format_decodes_to_mono_float32_at_22050(tmp_path, ext, fmt, subtype):
    sr = 48000 if ext == "opus" else 44100
    path = tmp_path / f"a.{ext}"
    sf.write(path, tone(sr), sr, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 2.0 * 22050) < 0.05 * 22050  # codecs may pad a little
    assert 0.1 < np.abs(y).max() < 0.5


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000])
def test_any_rate_is_resampled(tmp_path, sr):
    path = tmp_path / "a.wav"
    sf.write(path, tone(sr, channels=1), sr)
    y = load_audio(path)
    assert len(y) == pytest.approx(2.0 * 22050, abs=2)
    spectrum = np.abs(np.fft.rfft(y))
    peak_hz = np.argmax(spectrum) * 22050 / len(y)
    assert peak_hz == pytest.approx(440, abs=2)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channels_are_averaged(tmp_path, channels):
    path = tmp_path / "a.wav"
    data = tone(22050, channels=channels)
    sf.write(path, data, 22050, subtype="FLOAT")
    assert np.allclose(load_audio(path), data.mean(axis=1), atol=1e-6)


def test_digital_silence_is_valid_audio(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((22050 * 3, 2)), 22050)
    y = load_audio(path)
    assert len(y) == 22050 * 3 and not y.any()


def test_long_file_decodes_in_blocks(tmp_path):
    path = tmp_path / "long.flac"
    sf.write(path, tone(44100, seconds=60.0), 44100)  # more than one 2^20-frame block
    assert len(load_audio(path)) == pytest.approx(60 * 22050, abs=2)


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("ext,fmt,subtype", [f for f in FORMATS if f[0] != "aiff"])
def test_truncated_file_is_reported(tmp_path, ext, fmt, subtype):
    sr = 48000 if ext == "opus" else 44100
    path = tmp_path / f"cut.{ext}"
    sf.write(path, tone(sr, seconds=5.0), sr, format=fmt, subtype=subtype)
    truncate(path)
    with pytest.raises(AudioError, match=r"cut\.\w+: truncated"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        load_audio(tmp_path / "missing.wav")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.mp3: empty file \(0 bytes\)"):
        load_audio(path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not audio\n" * 20)
    with pytest.raises(AudioError, match="notes.wav: cannot decode"):
        load_audio(path)


def test_header_only_wav(tmp_path):
    path = tmp_path / "header.wav"
    sf.write(path, np.zeros((0, 1)), 22050)
    with pytest.raises(AudioError, match="header.wav: holds no audio samples"):
        load_audio(path)


def test_too_short_for_one_frame(tmp_path):
    path = tmp_path / "blip.wav"
    sf.write(path, np.zeros(100), 22050)
    with pytest.raises(AudioError, match="blip.wav: too short"):
        load_audio(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_samples(tmp_path, bad):
    path = tmp_path / "nan.wav"
    data = tone(22050, channels=1)[:, 0]
    data[1000] = bad
    sf.write(path, data, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: contains NaN or infinite samples"):
        load_audio(path)


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "locked.wav"
    sf.write(path, tone(22050), 22050)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the permission check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(path)
                            else real_access(p, mode))
    with pytest.raises(AudioError, match="locked.wav: permission denied"):
        load_audio(path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)


def test_clipped_audio_decodes(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.clip(tone(22050) * 10, -1, 1), 22050)
    assert np.abs(load_audio(path)).max() <= 1.0 + 1e-6


def test_unicode_and_spaces_in_names(tmp_path):
    path = tmp_path / "Mix – Café del Mar (live).wav"
    sf.write(path, tone(22050), 22050)
    assert len(load_audio(path)) == 2 * 22050
    assert find_audio_files(tmp_path) == [path]


def test_find_audio_files_recurses_and_skips_hidden(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ["a/one.WAV", "a/b/two.mp3", ".hidden/three.wav", "a/.partial.wav", "a/x.txt"]:
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)]
    assert found == ["a/b/two.mp3", "a/one.WAV"]


def test_find_audio_files_missing_root(tmp_path):
    with pytest.raises(AudioError, match="no such file or folder"):
        find_audio_files(tmp_path / "nope")
