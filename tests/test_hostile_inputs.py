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


# ---------------------------------------------------------------- detect batches


def _music(path, seconds=20.0, seed=0):
    import soundfile as sf

    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(22050 * seconds))).astype(np.float32), 22050)
    return path


def _detect(*args):
    from boundaries import cli

    return cli.main(["detect", *map(str, args), "--jobs", "1"])


def test_the_same_name_under_two_inputs_keeps_both_results(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _music(tmp_path / folder / "song.wav", seed=len(folder))
    assert _detect(tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out", "--format",
                   "json") == 0
    written = sorted(p.relative_to(tmp_path / "out").as_posix()
                     for p in (tmp_path / "out").rglob("*.boundaries.json"))
    assert written == ["a/song.wav.boundaries.json", "b/song.wav.boundaries.json"]
    sources = {json.loads(p.read_text())["source"]
               for p in (tmp_path / "out").rglob("*.boundaries.json")}
    assert len(sources) == 2


def test_csv_reruns_keep_rows_and_strengths_and_csv_alone_writes_rows(tmp_path, capsys):
    _music(tmp_path / "in.wav", 60.0)
    out = tmp_path / "out"
    options = ["--format", "json,csv", "--n-tracks", "3"]
    assert _detect(tmp_path / "in.wav", "-o", out, *options) == 0
    first = (out / "boundaries.csv").read_text()
    assert _detect(tmp_path / "in.wav", "-o", out, *options) == 0  # skipped: rows from the json
    assert "skipped 1" in capsys.readouterr().out
    assert (out / "boundaries.csv").read_text() == first and first.count("\n") == 3
    alone = tmp_path / "alone"
    assert _detect(tmp_path / "in.wav", "-o", alone, "--format", "csv", "--n-tracks", "3") == 0
    assert (alone / "boundaries.csv").read_text() == first
    assert _detect(tmp_path / "in.wav", "-o", out, "--format", "txt,csv", "--n-tracks", "3") == 0
    assert (out / "boundaries.csv").read_text() == first  # strengths kept, not blanked


def test_a_rerun_redoes_a_changed_input_or_other_settings_and_skips_the_rest(tmp_path, capsys):
    import os
    import shutil

    audio, other = _music(tmp_path / "in.wav"), _music(tmp_path / "other.wav", seed=5)
    out = tmp_path / "out"
    assert _detect(audio, "-o", out) == 0
    assert _detect(audio, "-o", out) == 0
    assert "done 0, skipped 1" in capsys.readouterr().out
    stat = os.stat(audio)
    shutil.copyfile(other, audio)  # cp -p: same size and time, other music
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _detect(audio, "-o", out) == 0
    assert "done 1, skipped 0" in capsys.readouterr().out
    assert _detect(audio, "-o", out, "--threshold", "0.5") == 0  # other decoding: redone
    assert "done 1, skipped 0" in capsys.readouterr().out


def test_a_file_name_that_is_not_utf8_is_processed(tmp_path, capsys):
    import os
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    _music(folder / "ok.wav")
    latin1 = os.fsdecode(os.fsencode(folder) + b"/caf\xe9.wav")
    shutil.copy(folder / "ok.wav", latin1)
    (folder / "ok.txt").write_text("5.0\n")
    shutil.copy(folder / "ok.txt", latin1[:-4] + ".txt")
    out = tmp_path / "out"
    assert _detect(folder, "-o", out, "--format", "json,csv", "--n-tracks", "2") == 0
    assert "done 2" in capsys.readouterr().out
    assert "caf\\xe9.wav" in (out / "boundaries.csv").read_text(encoding="utf-8")
    from boundaries import cli

    assert cli.main(["evaluate", "--checkpoint", str(cli_default_model()), "--data",
                     str(folder), "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["n_files"] == 2


def cli_default_model():
    from boundaries.api import DEFAULT_MODEL

    return DEFAULT_MODEL


@pytest.mark.parametrize("option", [["--threshold", "-1"], ["--threshold", "nan"],
                                    ["--set", "peaks.max_window_s=1e12"],
                                    ["--set", "peaks.threshold=.inf"],
                                    ["--set", "peaks.min_distance_s=&a [*a, *a]"],
                                    ["--n-tracks", "0"]])
def test_out_of_range_settings_are_one_line(tmp_path, capsys, option):
    audio = _music(tmp_path / "in.wav", 5.0)
    assert _detect(audio, "-o", tmp_path / "out", *option) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_a_billion_laughs_override_is_refused_at_once():
    from boundaries.config import parse_override
    from boundaries.errors import ConfigError

    bomb = "&l0 [lol, lol]" + "".join(f", &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]"
                                      for i in range(1, 9))
    with pytest.raises(ConfigError, match="aliases"):
        parse_override(f"peaks.threshold=[{bomb}]")


def test_train_lr_beyond_reason_is_a_config_error():
    from boundaries.config import load_config
    from boundaries.errors import ConfigError

    with pytest.raises(ConfigError, match="train.lr"):
        load_config(overrides=["train.lr=1e30"])


# ---------------------------------------------------------------- models and runs


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path):
    import torch

    from boundaries.api import DEFAULT_MODEL
    from boundaries.errors import CheckpointError
    from boundaries.model.checkpoints import load_checkpoint, load_model, save_checkpoint

    state = load_checkpoint(DEFAULT_MODEL)
    name = next(iter(state["embedding"]))
    state["embedding"][name] = torch.full_like(state["embedding"][name], float("nan"))
    save_checkpoint(tmp_path / "nan.pt", {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(CheckpointError, match="NaN"):
        load_model(tmp_path / "nan.pt")


def test_training_where_no_file_holds_a_boundary_fails(tmp_path, capsys):
    from conftest import CONFIGS

    import train

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        _music(corpus / f"t{i}.wav", 8.0, seed=i)
        (corpus / f"t{i}.txt").write_text("")
    code = train.main([*CONFIGS, "--data", str(corpus), "--run-dir", str(tmp_path / "run"),
                       "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "data.jobs=1"])
    assert code == 2 and "no training file holds a boundary" in capsys.readouterr().err


def test_tune_and_export_never_replace_a_file_or_write_into_a_folder(tmp_path, capsys):
    from boundaries import cli
    from boundaries.api import DEFAULT_MODEL

    resume = tmp_path / "last.pt"
    resume.write_bytes(b"the user's resume checkpoint")
    assert cli.main(["tune", str(DEFAULT_MODEL), "--data", str(tmp_path), "-o",
                     str(resume)]) == 2
    assert resume.read_bytes() == b"the user's resume checkpoint"
    assert cli.main(["export", str(DEFAULT_MODEL), str(tmp_path)]) == 2
    assert cli.main(["export", str(DEFAULT_MODEL), str(tmp_path / "no" / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error: ") == 3
    assert cli.main(["export", str(DEFAULT_MODEL), str(resume), "--overwrite"]) == 0


def test_a_second_run_into_a_busy_run_dir_stops_with_one_line(tmp_path):
    from boundaries.errors import BoundariesError
    from boundaries.train.loop import run_lock

    with run_lock(tmp_path / "run"):
        with pytest.raises(BoundariesError, match="another training run"):
            with run_lock(tmp_path / "run"):
                pass
    with run_lock(tmp_path / "run"):  # released when the first run ends
        pass


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_detect_workers_die_with_their_parent(tmp_path, sig):
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO, SUBPROCESS_ENV

    for i in range(8):
        _music(tmp_path / f"m{i}.wav", 120.0, seed=i)
    proc = subprocess.Popen([sys.executable, "-m", "boundaries", "detect", str(tmp_path), "-o",
                             str(tmp_path / "out"), "--jobs", "2"], cwd=REPO, env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers, deadline = [], time.time() + 60
    while len(workers) < 2 and time.time() < deadline:
        time.sleep(0.2)
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True,
                             text=True).stdout
        workers = [int(p) for p in out.split()]
    assert len(workers) >= 2, "the workers never started"
    proc.send_signal(getattr(signal, sig))
    proc.wait(timeout=30)
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers)


def _alive(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_evaluate_skips_a_malformed_annotation_with_one_line(tmp_path, capsys):
    from boundaries import cli

    for name in ("good", "bad"):
        _music(tmp_path / f"{name}.wav")
    (tmp_path / "good.txt").write_text("5.0\n")
    (tmp_path / "bad.jams").write_text(json.dumps({"annotations": {"namespace": "segment_open"}}))
    assert cli.main(["evaluate", "--checkpoint", str(cli_default_model()), "--data",
                     str(tmp_path), "--json", str(tmp_path / "m.json")]) == 0
    err = capsys.readouterr().err
    assert "bad.jams" in err and "Traceback" not in err
    assert json.loads((tmp_path / "m.json").read_text())["n_files"] == 1


def test_validating_on_the_training_files_warns(tmp_path, capsys):
    from conftest import CONFIGS, write_corpus

    import train

    corpus = write_corpus(tmp_path / "corpus", n=3)
    train.main([*CONFIGS, "--data", str(corpus), "--val-data", str(corpus), "--run-dir",
                str(tmp_path / "run"), "--set", f"data.cache_dir={tmp_path / 'cache'}",
                "--set", "data.jobs=1", "--set", "train.epochs=1"])
    assert "3 validation files are also training files" in capsys.readouterr().err


def test_a_thousand_jobs_start_no_more_workers_than_cores(tmp_path, capsys):
    for i in range(2):
        _music(tmp_path / f"m{i}.wav", 5.0, seed=i)
    from boundaries import cli

    assert cli.main(["detect", str(tmp_path), "-o", str(tmp_path / "out"), "--jobs",
                     "1000"]) == 0
    assert "done 2" in capsys.readouterr().out


def test_an_unexpected_failure_in_one_file_is_one_line_and_the_batch_goes_on(tmp_path, capsys,
                                                                          monkeypatch):
    from boundaries import api

    for name in ("a", "b", "c"):
        _music(tmp_path / f"{name}.wav", 5.0)
    real = api.Detector.detect_mel

    def flaky(self, mel, duration_s, **kwargs):
        if kwargs["source"].endswith("b.wav"):
            raise ZeroDivisionError("a bug")
        return real(self, mel, duration_s, **kwargs)

    monkeypatch.setattr(api.Detector, "detect_mel", flaky)
    assert _detect(tmp_path, "-o", tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert "done 2" in captured.out and "failed 1" in captured.out
    assert "b.wav: unexpected ZeroDivisionError (a bug)" in captured.err
    assert "Traceback" not in captured.err
    with pytest.raises(ZeroDivisionError):
        _detect(tmp_path, "-o", tmp_path / "out2", "--debug")
