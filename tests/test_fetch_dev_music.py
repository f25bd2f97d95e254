"""The duplicate pass of data_scripts/fetch_dev_music.py: the same track in two packages would
straddle the package split, so the later copy goes."""
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

SCRIPT = Path(__file__).resolve().parents[1] / "data_scripts" / "fetch_dev_music.py"


def _script():
    spec = importlib.util.spec_from_file_location("fetch_dev_music", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tone_track(path: Path, seconds: float, seed: int, sr: int = 22050) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pitches = rng.uniform(110, 880, size=int(seconds) + 1)[t.astype(int)]  # a note per second
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(pitches) / sr) + 0.01 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x.astype(np.float32), sr)


def test_later_copy_of_a_track_is_dropped_and_other_tracks_kept(tmp_path):
    fetch = _script()
    _tone_track(tmp_path / "first" / "theme.wav", 45, seed=1)
    _tone_track(tmp_path / "first" / "other.wav", 45, seed=2)
    _tone_track(tmp_path / "second" / "same_theme.wav", 45, seed=1)
    _tone_track(tmp_path / "second" / "own.wav", 45, seed=3)
    dropped = fetch.drop_duplicates(tmp_path, ["first", "second"])
    assert dropped == ["second/same_theme.wav = first/theme.wav"]
    assert sorted(p.name for p in tmp_path.rglob("*.wav")) == ["other.wav", "own.wav", "theme.wav"]


def test_files_too_short_for_a_print_are_kept_without_warnings(tmp_path):
    fetch = _script()
    _tone_track(tmp_path / "first" / "sting.wav", 5, seed=1)
    _tone_track(tmp_path / "second" / "sting.wav", 5, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's empty-slice warnings fail the test
        duration, print_ = fetch.fingerprint(tmp_path / "first" / "sting.wav")
        assert fetch._correlation(print_, print_) == 0.0
    assert duration == 5.0
    assert fetch.drop_duplicates(tmp_path, ["first", "second"]) == []
    assert len(list(tmp_path.rglob("*.wav"))) == 2


def _fake_openmpt123(folder: Path, random_playback: bool) -> Path:
    """A stand-in openmpt123 that records its arguments and writes a short wav beside the
    module: the same samples on every call, or (``random_playback``) new ones each time."""
    import stat
    import sys

    fake = folder / "openmpt123"
    fake.parent.mkdir(parents=True)
    samples = "np.random.default_rng().integers(-99, 99, (4410, 2))" if random_playback \
        else "np.zeros((4410, 2))"
    fake.write_text(f"#!{sys.executable}\n"
                    "import sys, numpy as np, soundfile as sf\n"
                    "open(sys.argv[0] + '.args', 'w').write(' '.join(sys.argv[1:]))\n"
                    f"sf.write(sys.argv[-1] + '.wav', {samples}.astype(np.int16), 44100)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_a_module_is_rendered_without_dither_so_every_fetch_gives_the_same_audio(tmp_path,
                                                                                  monkeypatch):
    import os

    fake = _fake_openmpt123(tmp_path / "bin", random_playback=False)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    module = tmp_path / "song.xm"
    module.write_bytes(b"not read by the stand-in")
    ogg = _script()._render_module(module)
    args = (fake.parent / "openmpt123.args").read_text().split()
    assert args[args.index("--dither") + 1] == "0" and "--no-float" in args
    assert ogg == tmp_path / "song.xm.ogg" and sf.info(str(ogg)).samplerate == 44100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "song.xm", "song.xm.ogg"]


def test_a_module_whose_two_renders_differ_is_left_out_with_a_line(tmp_path, monkeypatch,
                                                                   capsys):
    import os

    fake = _fake_openmpt123(tmp_path / "bin", random_playback=True)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    module = tmp_path / "random.it"
    module.write_bytes(b"not read by the stand-in")
    assert _script()._render_module(module) is None
    assert "random.it: left out: two renders differ" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "random.it"]
