import numpy as np
import pytest
import torch

from boundaries.train.sequence import SequenceCNN, train_sequence


@pytest.mark.parametrize("n", [1, 7, 300, 1000])  # shorter and longer than the dilations
def test_numpy_stage_equals_the_torch_network(rng, n):
    from boundaries.model.sequence import SequenceNetwork, network_input

    torch.manual_seed(0)
    model = SequenceCNN().eval()
    with torch.no_grad():  # non-trivial norms and biases
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    probs = rng.random(n)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(network_input(probs)[None])))[0].numpy()
    network = SequenceNetwork({k: v.numpy() for k, v in model.state_dict().items()})
    np.testing.assert_allclose(network.probabilities(probs), expected, rtol=1e-4, atol=1e-6)


def test_training_learns_an_isolated_peak_from_a_cluster(rng, monkeypatch):
    """Rows labelled 1 only at isolated probability peaks, not inside clusters of peaks: a
    pattern of a minute's context that one row cannot tell."""
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
    network = train_sequence(probs, labels, steps=300, log=lambda *_: None)
    test = np.full(256, 0.05)
    test[60] = 0.9
    test[160:221:10] = 0.9
    out = network.probabilities(test)
    assert out[60] > 2 * out[190]
