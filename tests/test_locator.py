"""The placement locator: numpy inference equals torch, its window, its training, its weight."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from boundaries.detection import placement
from boundaries.model.locator import Locator, network_input
from boundaries.train.locator import (
    LocatorCNN,
    LocatorTraining,
    gather_views,
    train_locator,
    training_views,
    views_from_lists,
)

HALF = 20


def _random_network(n_in, seed=0):
    torch.manual_seed(seed)
    model = LocatorCNN(n_in).eval()
    with torch.no_grad():  # non-trivial biases
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("first", [0, 15])  # a detection at the file's start, one inside it
def test_numpy_locator_equals_the_torch_network(rng, first):
    n_cols, n_mels = 5, 4
    centre = first + HALF if first else 3  # near the start: the window runs off the file
    idx = np.arange(max(0, centre - HALF), centre + HALF + 1)
    rows = rng.normal(2.0, 3.0, (len(idx), n_cols)).astype(np.float32)
    z_mel = rng.standard_normal((n_mels, 100)).astype(np.float32)
    mean, std = np.full(n_cols + n_mels, 1.0, np.float32), np.full(n_cols + n_mels, 2.0, np.float32)
    model = _random_network(n_cols + n_mels)
    x, valid = network_input(rows, z_mel, idx, centre, HALF, mean, std)
    assert valid.sum() == len(idx) and valid[-1] and valid[0] == bool(first)
    with torch.no_grad():
        logits = model(torch.from_numpy(x.T[None]))[0].masked_fill(
            ~torch.from_numpy(valid), -1e4)
        expected = torch.softmax(logits, 0).numpy()[valid]
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    got = Locator({**state, "mean": mean, "std": std}).probabilities(rows, z_mel, idx, centre,
                                                                     HALF)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    assert got.shape == (len(idx),) and abs(got.sum() - 1) < 1e-6


def test_the_window_standardises_and_leaves_frames_beyond_the_file_at_zero():
    rows = np.array([[3.0], [5.0]], np.float32)
    z_mel = np.array([[1.0, 2.0, 3.0]], np.float32)
    x, valid = network_input(rows, z_mel, np.array([0, 1]), 1, 2, np.array([1.0, 0.0]),
                             np.array([2.0, 1.0]))
    assert valid.tolist() == [False, True, True, False, False]
    np.testing.assert_allclose(x, [[0, 0], [1, 1], [2, 2], [0, 0], [0, 0]])


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_training_learns_where_a_column_steps(rng, device):
    """Views whose one informative column steps from -1 to +1 at the crossover, another
    column pure noise: the trained locator puts its highest probability at the step (on a
    GPU too, under bf16 autocast, where ``train.device`` picks one)."""
    def views(n):
        xs, valids, targets = [], [], []
        for _ in range(n):
            t = int(rng.integers(5, 2 * HALF - 4))
            x = np.stack([np.where(np.arange(2 * HALF + 1) < t, -1.0, 1.0),
                          rng.standard_normal(2 * HALF + 1)], axis=1)
            xs.append((x + 0.3 * rng.standard_normal(x.shape)).astype(np.float16))
            valids.append(np.ones(2 * HALF + 1, bool))
            targets.append(t - 0.5)  # between the last -1 and the first +1
        return xs, valids, targets

    network = train_locator(*views(64), steps=150, log=lambda *_: None,
                            device=torch.device(device), amp=device == "cuda")
    xs, _, targets = views(20)
    found = [np.argmax(network.probabilities(x[:, :1], x[:, 1:].T, np.arange(len(x)), HALF,
                                             HALF)) for x in np.array(xs, np.float32)]
    assert np.mean(np.abs(np.array(found) - np.array(targets)) <= 1.5) >= 0.8


def test_placement_weighs_the_locator_by_its_exponent():
    frame_times = np.linspace(7.0, 13.0, 61)
    trees = np.full(61, 0.1)
    trees[20:25] = 0.5  # the trees prefer ~9.2 s
    located = np.full(61, 0.001)
    located[38:43] = 0.2  # the locator ~11 s
    trees[38:43] = 0.3
    scored = [(10.0, frame_times, trees, located)]
    weighed = placement.Placing(locator_weight=1.0)
    assert placement.choose(scored)[0] == pytest.approx(9.2)  # weight 0: the trees alone
    assert placement.choose(scored, weighed)[0] == pytest.approx(11.0)
    assert placement.choose([(10.0, frame_times, trees, None)], weighed)[0] == \
        pytest.approx(9.2)  # no locator stored: the trees alone


def test_an_ensemble_averages_its_networks_and_stores_them_as_a_list(rng):
    n_cols, n_mels = 3, 2
    idx = np.arange(0, 2 * HALF + 1)
    rows = rng.standard_normal((len(idx), n_cols)).astype(np.float32)
    z_mel = rng.standard_normal((n_mels, len(idx))).astype(np.float32)
    scale = {"mean": np.zeros(n_cols + n_mels), "std": np.ones(n_cols + n_mels)}
    states = [{**{k: v.numpy() for k, v in _random_network(n_cols + n_mels, s).state_dict()
                  .items()}, **scale} for s in (1, 2)]
    singles = [Locator(s).probabilities(rows, z_mel, idx, HALF, HALF) for s in states]
    assert not np.allclose(singles[0], singles[1])
    both = Locator(states)
    np.testing.assert_allclose(both.probabilities(rows, z_mel, idx, HALF, HALF),
                               (singles[0] + singles[1]) / 2, rtol=1e-6)
    assert isinstance(both.state, list) and len(both.state) == 2
    assert isinstance(Locator(states[0]).state, dict)


def test_training_several_networks_gives_an_ensemble(rng):
    xs, valids = eight_views(rng)
    network = train_locator(xs, valids, [HALF] * 8, steps=2, networks=2, log=lambda *_: None)
    assert isinstance(network.state, list) and len(network.state) == 2
    assert not np.allclose(network.state[0]["inp.weight"], network.state[1]["inp.weight"])


def test_networks_trained_in_worker_processes_equal_those_trained_in_turn(rng):
    xs, valids = eight_views(rng)
    logs = {1: [], 2: []}
    trained = {jobs: train_locator(xs, valids, [HALF] * 8, steps=4, networks=2, jobs=jobs,
                                   log_every=2, log=logs[jobs].append) for jobs in (1, 2)}
    for in_turn, in_workers in zip(trained[1].state, trained[2].state):
        assert in_turn.keys() == in_workers.keys()
        for key, value in in_turn.items():
            np.testing.assert_array_equal(in_workers[key], value)
    assert logs[2] == logs[1] and len(logs[1]) == 4  # each network's log, in order


def test_without_room_for_the_shared_views_the_networks_train_in_turn(rng, monkeypatch):
    from boundaries.train import locator as training

    xs, valids = eight_views(rng)
    in_turn = train_locator(xs, valids, [HALF] * 8, steps=2, networks=2, log=lambda *_: None)

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training.np.lib.format, "open_memmap", no_space)
    logs = []
    fallback = train_locator(xs, valids, [HALF] * 8, steps=2, networks=2, jobs=2,
                             log=logs.append)
    assert any("No space left on device" in line and "in turn" in line for line in logs)
    for a, b in zip(in_turn.state, fallback.state):
        np.testing.assert_array_equal(a["inp.weight"], b["inp.weight"])


def test_networks_trained_beside_the_callers_work_equal_those_trained_in_turn(rng):
    """In parallel mode the workers train while the caller is still busy (its thread pools at
    one thread meanwhile), and give what training in turn gives."""
    from threadpoolctl import threadpool_info, threadpool_limits

    xs, valids = eight_views(rng)
    in_turn = train_locator(xs, valids, [HALF] * 8, steps=3, networks=3, log=lambda *_: None)
    training = LocatorTraining(steps=3, networks=3, jobs=2, log=lambda *_: None)
    training.start(lambda folder: gather_from_lists(xs, valids, folder))
    assert training.pool is not None
    with threadpool_limits(2), training.beside():
        assert threadpool_info() and all(pool["num_threads"] == 1 for pool in threadpool_info())
        for _ in range(600):  # all three finish while the caller still works
            if all(f.done() for f in training.futures):
                break
            time.sleep(0.1)
        assert len(training.futures) == 3 and all(f.done() for f in training.futures)
    trained = training.result()
    for a, b in zip(in_turn.state, trained.state, strict=True):
        for key, value in a.items():
            np.testing.assert_array_equal(b[key], value)


def eight_views(rng):
    """Eight random two-column windows, every frame valid (targets: the middle)."""
    return ([rng.standard_normal((2 * HALF + 1, 2)).astype(np.float16) for _ in range(8)],
            [np.ones(2 * HALF + 1, bool)] * 8)


def gather_from_lists(xs, valids, folder):
    return views_from_lists(xs, valids, [HALF] * len(xs), folder)


def test_views_gathered_into_a_file_equal_the_views_of_each_file(rng, tmp_path):
    """In memory, into a file, and into a file by two forked processes (a file without
    crossovers among them): the same views, in the order of the files."""
    fps = 22050 / 512
    mels = [rng.normal(-30, 10, (16, int(fps * 40))).astype(np.float32) for _ in range(3)]
    times = [np.array([12.0, 25.0]), np.array([]), np.array([20.0])]
    tracks = list(zip(mels, times))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    on_disk = gather_views(tracks, fps, seed=3, folder=tmp_path / "a")
    forked = gather_views(tracks, fps, seed=3, folder=tmp_path / "b", jobs=2)
    in_memory = gather_views(tracks, fps, seed=3)
    assert isinstance(on_disk.x, np.memmap) and not isinstance(in_memory.x, np.memmap)
    view_rng = np.random.default_rng(3)
    each = [training_views(placement.LocalFrames(m, fps), t, view_rng) for m, t in tracks]
    expected = [np.stack([v for views in each for v in views[i]]) for i in range(3)]
    assert len(on_disk.x) == 3 * 3
    for got in (on_disk, forked, in_memory):
        np.testing.assert_array_equal(got.x, expected[0])
        np.testing.assert_array_equal(got.valid, expected[1])
        np.testing.assert_array_equal(got.target, expected[2])
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "views.npy"), expected[0])


def test_a_failure_beside_the_networks_stops_them_and_deletes_the_views(rng):
    xs, valids = eight_views(rng)
    training = LocatorTraining(steps=3, networks=5, jobs=2, log=lambda *_: None)
    training.start(lambda folder: gather_from_lists(xs, valids, folder))
    folder = Path(training.folder.name)
    assert (folder / "views.npy").is_file()
    with pytest.raises(KeyError), training.beside():
        raise KeyError("the trees failed")
    for _ in range(600):  # the pool cancels what has not started in its own thread
        if all(f.done() for f in training.futures):
            break
        time.sleep(0.1)
    assert training.futures[-1].cancelled()  # two workers: the last never started
    assert not folder.exists()


def test_views_left_by_a_killed_training_are_deleted_by_the_next(tmp_path):
    import subprocess
    import sys

    from boundaries.train.locator import VIEWS_PREFIX, remove_orphaned_views

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan, running, unknown, other = (tmp_path / f"{VIEWS_PREFIX}{name}"
                                       for name in ("a", "b", "c", "d"))
    for folder, owner in ((orphan, gone), (running, str(os.getpid())), (unknown, None),
                          (other, "1")):  # pid 1 is another user's or ours: running either way
        folder.mkdir()
        (folder / "views.npy").write_bytes(b"0" * 10)
        if owner is not None:
            (folder / "owner").write_text(owner)
    (tmp_path / "not-ours").mkdir()
    remove_orphaned_views(tmp_path)
    assert not orphan.exists()
    assert running.exists() and unknown.exists() and other.exists()
    assert (tmp_path / "not-ours").exists()


def test_parallel_training_names_its_views_folder_after_its_process(rng):
    xs, valids = eight_views(rng)
    training = LocatorTraining(steps=2, networks=1, jobs=2, log=lambda *_: None)
    training.start(lambda folder: gather_from_lists(xs, valids, folder))
    folder = Path(training.folder.name)
    assert (folder / "owner").read_text() == str(os.getpid())
    training.result()
    assert not folder.exists()


def test_when_a_view_gatherer_dies_the_views_are_gathered_here(rng, tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    from boundaries.train import locator as training

    fps = 22050 / 512
    tracks = [(rng.normal(-30, 10, (16, int(fps * 40))).astype(np.float32), np.array([20.0]))
              for _ in range(2)]
    expected = gather_views(tracks, fps, seed=1)

    class DyingPool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, *args):
            raise BrokenProcessPool("a child was killed")

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", DyingPool)
    got = training.gather_views(tracks, fps, seed=1, folder=tmp_path, jobs=2)
    np.testing.assert_array_equal(got.x, expected.x)
    np.testing.assert_array_equal(got.target, expected.target)
