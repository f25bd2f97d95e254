import numpy as np
import pytest
import torch
import torch.nn.functional as F

from boundaries.config import LossConfig
from boundaries.model import losses


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=g) * 3
    targets = torch.rand(4, 50, generator=g)  # soft targets
    return logits, targets


def test_focal_gamma_zero_alpha_unset_equals_bce(batch):
    logits, targets = batch
    assert torch.allclose(losses.focal_loss(logits, targets, alpha=None, gamma=0.0),
                          F.binary_cross_entropy_with_logits(logits, targets, reduction="none"),
                          atol=1e-6)


def test_focal_matches_torchvision_formula_on_hard_targets(batch):
    logits, _ = batch
    targets = (torch.rand(4, 50, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    expected = (0.25 * targets + 0.75 * (1 - targets)) * ce * (1 - p_t) ** 2
    assert torch.allclose(losses.focal_loss(logits, targets, alpha=0.25, gamma=2.0), expected,
                          atol=1e-6)


def test_focal_down_weights_easy_frames():
    logits = torch.tensor([4.0, 0.0])  # an easy positive, a hard one
    targets = torch.ones(2)
    ratio = losses.focal_loss(logits, targets, gamma=2.0) / losses.bce(logits, targets)
    assert ratio[0] < 0.001 and ratio[1] == pytest.approx(0.25)


def test_class_weight_one_equals_bce(batch):
    logits, targets = batch
    assert torch.allclose(losses.weighted_bce(logits, targets, (1.0, 1.0)),
                          losses.bce(logits, targets), atol=1e-6)


def test_class_weights_scale_each_term():
    logits = torch.tensor([0.3, -0.2])
    targets = torch.tensor([1.0, 0.0])
    out = losses.weighted_bce(logits, targets, (0.5, 10.0))
    assert torch.allclose(out, torch.tensor([10.0, 0.5]) * losses.bce(logits, targets))


def test_balanced_weights_equal_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    targets = [np.r_[np.zeros(1297), np.ones(3)], np.r_[np.zeros(640), 0.7, 0.2]]
    binary = (np.concatenate(targets) >= 0.5).astype(int)
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=binary)
    assert losses.balanced_class_weight(targets) == pytest.approx(tuple(expected))
    assert losses.balanced_class_weight(targets)[1] > 200  # 4 positives in 1942 frames: ~243


def test_shape_mismatch_is_caught():
    with pytest.raises(AssertionError):
        losses.bce(torch.zeros(2, 5), torch.zeros(2, 5, 1))


def test_criterion_ignores_padding_and_uses_weights():
    crit = losses.Criterion(LossConfig(kind="bce"))
    logits, targets = torch.zeros(1, 4), torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    plain = crit(logits, targets, mask, mask)
    assert plain.item() == pytest.approx(np.log(2))
    weighted = crit(logits, targets, torch.tensor([[2.0, 0.0, 0.0, 0.0]]), mask)
    assert weighted.item() == pytest.approx(np.log(2))  # (2 * log2 + 0) / 2 real frames


def test_criterion_balanced_from_config():
    crit = losses.Criterion(LossConfig(kind="weighted_bce", class_weight="balanced"),
                            [np.r_[np.zeros(98), np.ones(2)]])
    assert crit.class_weight == pytest.approx((100 / 196, 100 / 4))
    hand = losses.Criterion(LossConfig(kind="weighted_bce", class_weight=[1.0, 20.0]))
    assert hand.class_weight == (1.0, 20.0)
