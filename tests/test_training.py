import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import CONFIGS, REPO, SUBPROCESS_ENV, tiny_overrides, write_corpus

import train
from boundaries.errors import BoundariesError, CheckpointError
from boundaries.model.checkpoints import (
    load_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
)


def args(tmp_path, corpus, run, epochs):
    sets = tiny_overrides(tmp_path, corpus, **{"train.epochs": epochs})
    return [*CONFIGS, *[a for o in sets for a in ("--set", o)], "--run-dir", str(run)]


def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    from boundaries.train import loop

    corpus = write_corpus(tmp_path / "c", n=3)
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train.main(args(tmp_path, corpus, straight, 3)) == 0
    real_end_epoch = loop.Trainer._end_epoch

    def interrupt_after_first(self, *a, **k):
        stop = real_end_epoch(self, *a, **k)
        if self.epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C right after epoch 1's checkpoint
        return stop

    monkeypatch.setattr(loop.Trainer, "_end_epoch", interrupt_after_first)
    assert train.main(args(tmp_path, corpus, split, 3)) == 130
    assert load_checkpoint(split / "last.pt")["epoch"] == 1
    monkeypatch.setattr(loop.Trainer, "_end_epoch", real_end_epoch)
    assert train.main(args(tmp_path, corpus, split, 3) + ["--resume"]) == 0
    a = [json.loads(line) for line in open(straight / "metrics.jsonl")]
    b = [json.loads(line) for line in open(split / "metrics.jsonl")]
    for row_a, row_b in zip(a, b, strict=True):
        for key in ("epoch", "train_loss", "loss", "pr_auc"):
            assert row_a[key] == pytest.approx(row_b[key], rel=1e-6), (key, row_a, row_b)


def test_resume_after_kill_mid_epoch(tmp_path):
    """SIGKILL during training, then --resume finishes the run."""
    corpus = write_corpus(tmp_path / "c", n=3)
    run = tmp_path / "run"
    argv = args(tmp_path, corpus, run, 40)
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), *argv],
                            env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "last.pt").exists():
        time.sleep(0.05)
    assert (run / "last.pt").exists(), "no checkpoint before the deadline"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = load_checkpoint(run / "last.pt")["epoch"]
    assert 1 <= done < 40
    assert train.main(argv + ["--resume"]) == 0
    final = load_checkpoint(run / "last.pt")
    assert final["epoch"] == 40
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == list(range(1, 41))


def test_resume_refuses_a_different_model(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c", n=3)
    run = tmp_path / "run"
    assert train.main(args(tmp_path, corpus, run, 1)) == 0
    assert train.main(args(tmp_path, corpus, run, 2) + ["--set", "model.channels=8",
                                                        "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_checkpoint_carries_config_and_rebuilds_model(tmp_path):
    corpus = write_corpus(tmp_path / "c", n=3)
    run = tmp_path / "run"
    assert train.main(args(tmp_path, corpus, run, 1)) == 0
    model, cfg, state = load_model(run / "best.pt")
    assert cfg.features.n_mels == 16 and state["epoch"] == 1
    assert model(torch.zeros(1, 16, 50)).shape == (1, 50)


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


READERS = [load_checkpoint, read_checkpoint]  # with torch, and the torch-free one


@pytest.mark.parametrize("reader", READERS)
def test_crafted_checkpoint_cannot_run_code(tmp_path, monkeypatch, reader):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "boundaries-checkpoint-v1", "model": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        reader(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("content,message", [(b"", "corrupt"), (b"PK\x03\x04junk", "corrupt")])
def test_corrupt_checkpoint(tmp_path, content, message, reader):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        reader(path)


@pytest.mark.parametrize("reader", READERS)
def test_foreign_checkpoint(tmp_path, reader):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a boundaries checkpoint"):
        reader(path)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"epoch": 1})

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    corpus = write_corpus(tmp_path / "c", n=4)
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(REPO, "train.py"), *args(tmp_path, corpus, run, 2),
           "--set", "sampling.strategy=oversample"]
    result = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    model, _, state = load_model(run / "best.pt")  # a checkpoint from 2 processes loads in one
    assert state["epoch"] >= 1
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2]  # only rank 0 logged


def test_extra_training_and_validation_folders_join_their_sets(tmp_path):
    from boundaries.config import load_config
    from boundaries.train.loop import prepare_data

    a = write_corpus(tmp_path / "a", n=3)
    b = write_corpus(tmp_path / "b", n=2)
    val = write_corpus(tmp_path / "val", n=1)
    val2 = write_corpus(tmp_path / "val2", n=2)
    cfg = load_config(overrides=[f"data.train_dir={a}", f"data.extra_train_dirs=[{b}]",
                                 f"data.val_dir={val}", f"data.extra_val_dirs=[{val2}]",
                                 f"data.cache_dir={tmp_path / 'cache'}", "data.jobs=1"])
    train_data, val_data, _ = prepare_data(cfg, progress=False)
    assert len(train_data) == 5 and len(val_data) == 3
    assert {t.audio_path.parent.name for t in train_data} == {"a", "b"}
    assert {t.audio_path.parent.name for t in val_data} == {"val", "val2"}
    with pytest.raises(BoundariesError, match="needs data.val_dir"):
        prepare_data(cfg.replace(data=dataclasses.replace(cfg.data, val_dir="")), progress=False)


def test_read_checkpoint_equals_torch_load(tmp_path):
    """The torch-free reader gives the arrays torch.load gives: every dtype we store, views,
    shared storage, scalars, empty tensors, nested plain data; and the file's sha256."""
    import hashlib

    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    state = {"config": {"a": [1, 2.5, "x", None, True]}, "epoch": 3,
             "model": {"w": torch.randn(3, 4), "t": base.T, "view": base[1:, 2:4],
                       "i32": torch.arange(5, dtype=torch.int32), "i64": torch.arange(3),
                       "b": torch.tensor([True, False]), "half": torch.ones(2, dtype=torch.half),
                       "scalar": torch.tensor(7.0), "empty": torch.zeros(0, 5)}}
    path = tmp_path / "ck.pt"
    save_checkpoint(path, state)
    arrays, sha256 = read_checkpoint(path)
    expected = load_checkpoint(path)
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert arrays["config"] == expected["config"] and arrays["epoch"] == 3
    for key, tensor in expected["model"].items():
        assert arrays["model"][key].dtype == tensor.numpy().dtype, key
        np.testing.assert_array_equal(arrays["model"][key], tensor.numpy(), err_msg=key)
    save_checkpoint(tmp_path / "again.pt", arrays)  # numpy arrays go back as tensors
    for key, tensor in load_checkpoint(tmp_path / "again.pt")["model"].items():
        assert torch.equal(tensor, expected["model"][key]), key


def _torch_zip(path, obj, storages):
    """A file in torch's zip layout holding ``obj``, pickled by hand: ``("storage", key)``
    tuples inside it become persistent ids of ``storages[key]`` (float32 bytes)."""
    import io
    import pickle
    import zipfile

    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            if isinstance(value, tuple) and value[:1] == ("storage",):
                return ("storage", torch.FloatStorage, value[1], "cpu", len(storages[value[1]]))
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ck/data.pkl", buffer.getvalue())
        archive.writestr("ck/byteorder", "little")
        archive.writestr("ck/version", "3\n")
        for key, values in storages.items():
            archive.writestr(f"ck/data/{key}", np.asarray(values, np.float32).tobytes())


class CraftedTensor:  # pickled as torch._utils._rebuild_tensor_v2(*args), any args
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


@pytest.mark.parametrize("size,stride,ok", [((4,), (1,), True), ((100000,), (1,), False),
                                            ((10**9,), (0,), False), ((2, 3), (1, 3), False)])
def test_read_checkpoint_refuses_a_view_outside_its_storage(tmp_path, size, stride, ok):
    """A crafted tensor that would read memory beyond its storage (or blow up into a huge copy)
    is refused before anything is read."""
    from collections import OrderedDict

    tensor = CraftedTensor(("storage", "0"), 0, size, stride, False, OrderedDict())
    path = tmp_path / "ck.pt"
    _torch_zip(path, {"format": "boundaries-checkpoint-v1", "w": tensor}, {"0": [1, 2, 3, 4]})
    if ok:
        np.testing.assert_array_equal(read_checkpoint(path)[0]["w"], [1, 2, 3, 4])
        np.testing.assert_array_equal(load_checkpoint(path)["w"].numpy(), [1, 2, 3, 4])
    else:
        with pytest.raises(CheckpointError, match="outside its storage"):
            read_checkpoint(path)
