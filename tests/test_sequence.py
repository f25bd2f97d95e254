import numpy as np
import pytest
import torch

from boundaries.train.sequence import SequenceCNN, train_sequence


@pytest.mark.parametrize("n", [1, 7, 300, 1000])  # shorter and longer than the dilations
@pytest.mark.parametrize("descriptors", [False, True])
def test_numpy_stage_equals_the_torch_network(rng, n, descriptors):
    from boundaries.model.sequence import SequenceNetwork, network_input

    rows = rng.normal(3.0, 2.0, (n, 6))
    rows[0, 1] = np.nan  # a descriptor missing at a file's edge
    scaling = (np.array([0, 1, 4]), np.full(3, 3.0, np.float32), np.full(3, 2.0, np.float32)) \
        if descriptors else None
    torch.manual_seed(0)
    model = SequenceCNN(channels=4 if descriptors else 1).eval()
    with torch.no_grad():  # non-trivial norms and biases
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    probs = rng.random(n)
    x = network_input(probs, rows, scaling)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(x[None])))[0].numpy()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    if descriptors:
        state.update(descriptor_columns=scaling[0], descriptor_mean=scaling[1],
                     descriptor_std=scaling[2])
    network = SequenceNetwork(state)
    np.testing.assert_allclose(network.probabilities(probs, rows), expected, rtol=1e-4,
                               atol=1e-6)


def test_descriptor_input_is_standardised_and_skips_the_embedding_columns():
    from boundaries.model.sequence import descriptor_columns, network_input

    names = ["level@2", "embed@4", "flux@2", "embed@4/median", "recur_past", "level@2/median"]
    columns = descriptor_columns(names)
    assert columns.tolist() == [0, 2, 5]
    rows = np.array([[1.0, 9, 5, 9, 9, 2], [3.0, 9, np.nan, 9, 9, 1e9]])
    x = network_input(np.array([0.5, 0.5]), rows, (columns, np.array([2.0, 5, 0]),
                                                   np.array([1.0, 1, 1])))
    assert x.shape == (4, 2)
    np.testing.assert_allclose(x[1:], [[-1, 1], [0, 0], [2, 5]])  # NaN -> 0, clipped at 5


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_training_learns_an_isolated_peak_from_a_cluster(rng, monkeypatch, device):
    """Rows labelled 1 only at isolated probability peaks, not inside clusters of peaks: a
    pattern of a minute's context that one row cannot tell (on a GPU too, under autocast)."""
    from boundaries.model.sequence import network_input
    from boundaries.train import sequence

    monkeypatch.setattr(sequence, "CROP_ROWS", 256)
    monkeypatch.setattr(sequence, "BATCH", 8)
    probs, labels = [], []
    for _ in range(40):
        p = rng.random(256) * 0.1
        y = np.zeros(256)
        for centre in (60, 190):
            if rng.random() < 0.5:
                p[centre] = 0.9
                y[centre - 2:centre + 3] = 1
            else:  # a cluster: several equal peaks 10 rows apart, none a crossover
                p[centre - 30:centre + 31:10] = 0.9
        probs.append(p)
        labels.append(y)
    network = train_sequence([network_input(p) for p in probs], labels, steps=300,
                             log=lambda *_: None, device=torch.device(device),
                             amp=device == "cuda")
    test = np.full(256, 0.05)
    test[60] = 0.9
    test[160:221:10] = 0.9
    out = network.probabilities(test)
    assert out[60] > 2 * out[190]


def _small_problem(rng):
    """(A spawned worker imports the module afresh: no monkeypatched crop size reaches it.)"""
    from boundaries.model.sequence import network_input

    probs = [rng.random(n) for n in (50, 90, 130)]
    return [network_input(p) for p in probs], [(p > 0.9).astype(float) for p in probs]


def test_a_network_trained_in_a_worker_beside_the_caller_equals_one_trained_here(rng):
    """data.jobs > 1: the worker trains while the caller works at one thread; same weights,
    same log, and the stored arrays kept."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from boundaries.train.sequence import SequenceTraining

    inputs, labels = _small_problem(rng)
    logs = {1: [], 2: []}
    stored = {"descriptor_mean": np.ones(2)}
    here = SequenceTraining(inputs, labels, steps=4, log_every=2, log=logs[1].append)
    assert here.future is None
    beside = SequenceTraining(inputs, labels, jobs=2, steps=4, log_every=2, stored=stored,
                              log=logs[2].append)
    assert beside.future is not None
    with threadpool_limits(2), beside.beside():
        assert threadpool_info() and all(pool["num_threads"] == 1 for pool in threadpool_info())
        beside.future.result(timeout=120)  # the worker finishes while the caller still works
    a, b = here.result().state, beside.result().state
    assert b.keys() == a.keys() | stored.keys()
    for key, value in a.items():
        np.testing.assert_array_equal(b[key], value, err_msg=key)
    assert logs[2] == logs[1] and len(logs[1]) == 2


def test_when_the_worker_fails_the_network_trains_here(rng):
    from concurrent.futures.process import BrokenProcessPool

    from boundaries.train.sequence import SequenceTraining

    inputs, labels = _small_problem(rng)
    expected = SequenceTraining(inputs, labels, steps=3, log=lambda *_: None).result().state
    logs = []
    training = SequenceTraining(inputs, labels, jobs=2, steps=3, log=logs.append)

    class Broken:
        def result(self):
            raise BrokenProcessPool("a worker was killed")

    training.future.result(timeout=120)
    training.future = Broken()
    state = training.result().state
    assert any("a worker was killed" in line and "training it here" in line for line in logs)
    for key, value in expected.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)


def test_ten_steps_train_although_the_warm_up_is_one_step(rng):
    """OneCycleLR divides by (warm-up steps - 1): 10 steps at pct_start 0.1 raised
    ZeroDivisionError before one_cycle nudged the warm-up."""
    inputs, labels = _small_problem(rng)
    network = train_sequence(inputs, labels, steps=10, log=lambda *_: None)
    assert all(np.isfinite(v).all() for v in network.state.values())
