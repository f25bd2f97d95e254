"""Losses for rare positives: plain, class-weighted and focal binary cross-entropy.

All take ``logits`` and ``targets`` of the same shape (targets may be soft, in [0, 1]) and return
per-frame losses; :class:`Criterion` multiplies in per-frame weights (the smearing mode's, 0 on
padding) and averages over the real frames.
"""

import numpy as np
import torch
import torch.nn.functional as F


def _same_shape(logits, targets):
    # [B, T] against [B, T, 1] would broadcast silently inside BCE.
    assert logits.shape == targets.shape, (logits.shape, targets.shape)


def bce(logits, targets):
    _same_shape(logits, targets)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def weighted_bce(logits, targets, class_weight=(1.0, 1.0)):
    """BCE with ``class_weight = (w_negative, w_positive)`` on its two terms (as in Keras)."""
    _same_shape(logits, targets)
    w_neg, w_pos = class_weight
    return -(w_pos * targets * F.logsigmoid(logits) + w_neg * (1 - targets) * F.logsigmoid(-logits))


def focal_loss(logits, targets, alpha=None, gamma: float = 2.0):
    """Focal loss (Lin et al., ICCV 2017): ``-alpha_t (1 - p_t)^gamma log p_t``.

    ``alpha`` weights the POSITIVE class and ``1 - alpha`` the negative one, as in torchvision's
    ``sigmoid_focal_loss``; its default there, 0.25, weights the rare positive class *down*, so
    with rare boundaries choose alpha >= 0.5 or leave it unset (no class weighting).
    ``gamma = 0`` with ``alpha = None`` is plain BCE.
    """
    ce = bce(logits, targets)
    probs = torch.sigmoid(logits)
    p_t = probs * targets + (1 - probs) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


def balanced_class_weight(targets) -> tuple:
    """scikit-learn's ``compute_class_weight('balanced')`` on binarised targets (>= 0.5)."""
    from sklearn.utils.class_weight import compute_class_weight

    binary = (np.concatenate([np.ravel(t) for t in targets]) >= 0.5).astype(int)
    if binary.min() == binary.max():
        return (1.0, 1.0)  # one class only: nothing to balance
    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=binary)
    return (float(weights[0]), float(weights[1]))


class Criterion:
    """Per-frame loss from config, weighted and averaged over real (unpadded) frames."""

    def __init__(self, loss_cfg, train_targets=()):
        self.kind = loss_cfg.kind
        self.alpha, self.gamma = loss_cfg.alpha, loss_cfg.gamma
        self.class_weight = (1.0, 1.0)
        if self.kind == "weighted_bce":
            cw = loss_cfg.class_weight
            self.class_weight = balanced_class_weight(train_targets) if cw == "balanced" \
                else (float(cw[0]), float(cw[1]))

    def frame_losses(self, logits, targets):
        if self.kind == "focal":
            return focal_loss(logits, targets, self.alpha, self.gamma)
        if self.kind == "weighted_bce":
            return weighted_bce(logits, targets, self.class_weight)
        return bce(logits, targets)

    def __call__(self, logits, targets, weights, mask):
        losses = self.frame_losses(logits.float(), targets)
        return (losses * weights).sum() / mask.sum().clamp_min(1.0)

    def describe(self) -> str:
        if self.kind == "focal":
            return f"focal(alpha={self.alpha}, gamma={self.gamma})"
        if self.kind == "weighted_bce":
            w_neg, w_pos = self.class_weight
            return f"weighted_bce(w_neg={w_neg:.3f}, w_pos={w_pos:.2f})"
        return "bce"
