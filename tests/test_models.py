import torch

from boundaries.config import ModelConfig
from boundaries.model.networks import BoundaryCNN

SMALL = ModelConfig(conv_channels=(4, 8), channels=16, dilations=(1, 2, 4, 8), dropout=0.0)


def test_one_logit_per_frame():
    model = BoundaryCNN(SMALL, 32).eval()
    for n_frames in (1, 7, 300):
        assert model(torch.randn(2, 32, n_frames)).shape == (2, n_frames)


def test_default_context_is_at_least_eight_seconds_each_side():
    model = BoundaryCNN(ModelConfig(), 80)
    assert model.context_frames * 512 / 22050 >= 8.0


def test_fully_convolutional_equals_patchwise():
    """One pass over an excerpt equals classifying patches centred on single frames."""
    torch.manual_seed(0)
    model = BoundaryCNN(SMALL, 32).eval()
    with torch.no_grad():
        for module in model.modules():  # non-trivial batch-norm statistics
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        mel = torch.randn(1, 32, 400)
        full = model(mel)[0]
        c = model.context_frames
        for t in (c, 150, 250, 399 - c):
            patch = mel[:, :, t - c:t + c + 1]
            assert torch.allclose(model(patch)[0, c], full[t], atol=1e-5), t


def test_normalisation_buffers_are_saved():
    model = BoundaryCNN(SMALL, 32)
    model.set_normalization(torch.full((32,), -40.0), torch.full((32,), 10.0))
    state = model.state_dict()
    assert state["mel_mean"][0] == -40 and state["mel_std"][0] == 10


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = BoundaryCNN(SMALL, 16)
    x = torch.randn(4, 16, 200)
    y = torch.zeros(4, 200)
    y[:, 100] = 1.0
    x[:, :, 100:] += 1.5  # a change at the boundary frame
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(x), y, pos_weight=torch.tensor(50.0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
