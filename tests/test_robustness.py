"""Messy folders, odd audio and hostile conditions through train.py, evaluate.py and detect.

Each case ends either in a correct result (silence and short clips are valid audio) or in one line
naming the file, the problem and the fix; a batch goes on past bad files and exits non-zero.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import (
    CONFIGS,
    REPO,
    SR,
    SUBPROCESS_ENV,
    make_step_track,
    sets,
    train_tiny,
    write_corpus,
)

import evaluate
import train
from boundaries import cli
from boundaries.data.annotations import read_boundaries
from boundaries.detection import batch
from boundaries.model.checkpoints import load_checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    _, run = train_tiny(tmp_path_factory.mktemp("robust"), n_files=3)
    return run / "best.pt"


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory):
    """Valid but unusual audio, each with an annotation, plus files that must fail."""
    root = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(0)
    step = make_step_track(1)
    valid = {
        "one second.wav": (step[:SR], SR, ""),
        "silence 60 s.flac": (np.zeros(60 * SR, dtype=np.float32), SR, ""),
        "8k mono.wav": (make_step_track(2, sr=8000), 8000, "2.0\n4.5\n6.0\n"),
        "six channels.wav": (np.tile(step[:, None], (1, 6)) * 0.3, SR, "2.0\n4.5\n6.0\n"),
        "clipped.wav": (np.clip(step * 40, -1, 1), SR, "2.0\n4.5\n6.0\n"),
        "ünïcödé name.ogg": (step, SR, "2.0\n4.5\n6.0\n"),
    }
    for name, (y, sr, annotation) in valid.items():
        sf.write(root / name, y, sr)
        (root / name).with_suffix(".txt").write_text(annotation)
    (root / "zero.wav").write_bytes(b"")
    (root / "text.wav").write_text("this is not audio\n")
    noisy = rng.standard_normal(SR).astype(np.float32)
    noisy[100] = np.nan
    sf.write(root / "nan.wav", noisy, SR, subtype="FLOAT")
    return root, sorted(valid), ["nan.wav", "text.wav", "zero.wav"]


def test_detect_handles_odd_audio_and_lists_bad_files(model, odd_folder, tmp_path, capsys):
    root, valid, bad = odd_folder
    code = cli.main(["detect", str(root), "-o", str(tmp_path / "out"), "--checkpoint", str(model),
                     "--format", "txt,json", "--jobs", "1"])
    captured = capsys.readouterr()
    assert code == 1  # some files failed
    assert f"done {len(valid)}, skipped 0" in captured.out and f"failed {len(bad)}" in captured.out
    failed_lines = [line for line in captured.err.splitlines() if line.startswith("failed:")]
    assert sorted(line.split(str(root) + "/")[1].split(":")[0] for line in failed_lines) == bad
    assert "Traceback" not in captured.err
    for name in valid:
        stem = os.path.splitext(name)[0]
        times = read_boundaries(tmp_path / "out" / f"{stem}.boundaries.txt")
        duration = sf.info(str(root / name)).duration
        assert np.all((times > 0) & (times < duration))
    silent = read_boundaries(tmp_path / "out" / "silence 60 s.boundaries.txt")
    assert silent.size == 0  # no music, no boundary


def test_evaluate_scores_odd_audio(model, odd_folder, tmp_path, capsys):
    root, valid, bad = odd_folder
    out_json = tmp_path / "m.json"
    assert evaluate.main(["--checkpoint", str(model), "--data", str(root), "--json",
                          str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    assert result["n_files"] == len(valid)
    assert sorted(os.path.basename(k) for k in result["skipped_files"]) == bad
    assert "Traceback" not in capsys.readouterr().err


def test_train_on_odd_audio_skips_bad_files(odd_folder, tmp_path, capsys):
    root, valid, bad = odd_folder
    run = tmp_path / "run"
    code = train.main([*CONFIGS, *sets(tmp_path, root), "--set", "data.val_fraction=0.4",
                       "--run-dir", str(run)])
    err = capsys.readouterr().err
    assert code == 0 and (run / "best.pt").exists()
    for name in bad:
        assert name in err  # each bad file is named once, with its problem
    assert "Traceback" not in err


def test_read_only_output_folder_is_one_clear_error(model, odd_folder, tmp_path, capsys,
                                                    monkeypatch):
    root, _, _ = odd_folder
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    if os.geteuid() == 0:  # root writes anyway: make the folder act as a read-only mount

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(batch.tempfile, "mkstemp", read_only)
    try:
        code = cli.main(["detect", str(root), "-o", str(out), "--checkpoint", str(model)])
    finally:
        out.chmod(0o700)
    err = capsys.readouterr().err
    assert code == 2 and "cannot write outputs here" in err and "Traceback" not in err


def test_unwritable_output_path_is_one_clear_error(model, odd_folder, tmp_path, capsys):
    root, _, _ = odd_folder
    blocker = tmp_path / "a file"
    blocker.write_text("")
    code = cli.main(["detect", str(root), "-o", str(blocker / "out"), "--checkpoint", str(model)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write outputs here" in err and "Traceback" not in err


def test_disk_full_stops_the_batch_without_torn_outputs(model, odd_folder, tmp_path, capsys,
                                                        monkeypatch):
    root, _, _ = odd_folder
    from boundaries import atomic

    real_write = atomic.write_text
    calls = []

    def fill_disk_after_two(path, *args, **kwargs):
        calls.append(path)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(atomic, "write_text", fill_disk_after_two)  # what Result.save calls
    out = tmp_path / "out"
    code = cli.main(["detect", str(root), "-o", str(out), "--checkpoint", str(model), "--jobs",
                     "1"])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "Stopped after 2 files" in err
    written = sorted(p.name for p in out.iterdir())
    assert not [n for n in written if n.endswith(".tmp")]
    txt = [p for p in out.iterdir() if p.name.endswith(".boundaries.txt")]
    assert len(txt) == 2 and len(written) == 4  # two files: outputs and their run records
    for path in txt:
        read_boundaries(path)  # complete, parseable


def test_debug_shows_the_traceback(model, tmp_path):
    with pytest.raises(Exception, match="checkpoint not found"):
        cli.main(["detect", str(tmp_path), "-o", str(tmp_path / "o"), "--checkpoint",
                  str(tmp_path / "missing.pt"), "--debug"])
    with pytest.raises(Exception, match="unknown config key"):
        train.main(["--set", "train.nope=1", "--debug"])
    with pytest.raises(Exception, match="not found"):
        evaluate.main(["--checkpoint", str(tmp_path / "missing.pt"), "--data", str(tmp_path),
                       "--debug"])


def test_two_detect_processes_over_one_folder(model, tmp_path):
    corpus = write_corpus(tmp_path / "corpus", n=6)
    argv = [sys.executable, "-m", "boundaries", "detect", str(corpus), "--checkpoint", str(model),
            "--format", "txt,jams,csv", "--jobs", "1"]
    procs = [subprocess.Popen(argv + ["-o", str(tmp_path / "shared")], env=SUBPROCESS_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    single = subprocess.run(argv + ["-o", str(tmp_path / "single")], env=SUBPROCESS_ENV,
                            capture_output=True)
    assert single.returncode == 0
    names = sorted(p.name for p in (tmp_path / "single").iterdir())
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == names
    for name in names:
        if name.endswith(".txt"):
            np.testing.assert_array_equal(read_boundaries(tmp_path / "shared" / name),
                                          read_boundaries(tmp_path / "single" / name))
        elif name.endswith(".jams"):
            json.loads((tmp_path / "shared" / name).read_text())  # whole, valid JSON


@pytest.mark.slow
def test_sigint_mid_epoch_leaves_a_resumable_run(tmp_path):
    corpus = write_corpus(tmp_path / "c", n=3)
    run = tmp_path / "run"
    argv = [*CONFIGS, *sets(tmp_path, corpus, **{"train.epochs": 40}), "--run-dir", str(run)]
    # SIGINT back to its default in the child: a test run started in the background by a
    # non-interactive shell inherits it ignored, and Python then raises no KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), *argv],
                            env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "last.pt").exists():
        time.sleep(0.05)
    time.sleep(0.1)  # inside a later epoch
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with the same command plus --resume" in err and "Traceback" not in err
    done = load_checkpoint(run / "last.pt")["epoch"]
    assert 1 <= done < 40
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    assert train.main(argv + ["--resume"]) == 0
    assert load_checkpoint(run / "last.pt")["epoch"] == 40


@pytest.mark.slow
def test_three_hour_file(model, tmp_path, capsys):
    """3 h at 8 kHz (a phone-quality archive recording): detect in bounded chunks."""
    path = tmp_path / "three hours.wav"
    with sf.SoundFile(path, "w", 8000, 1, subtype="PCM_16") as handle:
        block = make_step_track(3, sr=8000)  # 8 s
        for _ in range(3 * 3600 // 8):
            handle.write(block)
    code = cli.main(["detect", str(path), "-o", str(tmp_path / "out"), "--checkpoint", str(model),
                     "--jobs", "1"])
    assert code == 0
    times = read_boundaries(tmp_path / "out" / "three hours.boundaries.txt")
    assert times.size > 0 and times.max() < 3 * 3600


def test_audio_without_annotation_is_named_and_skipped(model, tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", n=3)
    sf.write(corpus / "orphan.wav", make_step_track(5), SR)  # no orphan.txt beside it
    run = tmp_path / "run"
    assert train.main([*CONFIGS, *sets(tmp_path, corpus), "--run-dir", str(run)]) == 0
    err = capsys.readouterr().err
    assert "orphan.wav: no annotation beside it" in err and "Traceback" not in err
    out_json = tmp_path / "m.json"
    assert evaluate.main(["--checkpoint", str(model), "--data", str(corpus), "--json",
                          str(out_json)]) == 0
    skipped = json.loads(out_json.read_text())["skipped_files"]
    assert [os.path.basename(k) for k in skipped] == ["orphan.wav"]


def test_a_folder_without_audio_is_one_clear_error(model, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no music here")
    code = cli.main(["detect", str(tmp_path / "notes"), "-o", str(tmp_path / "out"),
                     "--checkpoint", str(model)])
    err = capsys.readouterr().err
    assert code == 2 and "no audio files" in err and "notes" in err and "Traceback" not in err
