"""The boundary CNN, fully convolutional over time: T frames in, T logits out.

In the spirit of Ullrich, Schlüter & Grill (ISMIR 2014): log-mel input, convolution and max-pooling
over frequency and time, one boundary logit per frame. Evaluating per-frame patches one by one was
measured 40x slower on a 2-core CPU than one pass over an excerpt, so the network is written as a
sequence model: a small 2-D front end (convolutions over frequency and time; pooling shrinks
frequency and keeps the frame rate with stride-1 pooling over time), then a stack of dilated 1-D
residual blocks that widens the context to ~24 s without striding, so every frame gets its own
output and shifting the input shifts the output (chunked inference equals whole-file inference).
"""

import torch
from torch import nn

from boundaries.config import ModelConfig


class ResidualBlock(nn.Module):
    """Pre-activation dilated temporal conv followed by a 1x1 conv, with a skip connection."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                      padding=dilation * (kernel_size - 1) // 2),
            nn.BatchNorm1d(channels), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv1d(channels, channels, 1))

    def forward(self, x):
        return x + self.body(x)


class BoundaryCNN(nn.Module):
    """Log-mel excerpt ``[batch, n_mels, n_frames]`` -> boundary logits ``[batch, n_frames]``.

    The per-band input mean and standard deviation are buffers set from the training data, so a
    checkpoint carries its own normalisation.
    """

    def __init__(self, cfg: ModelConfig, n_mels: int):
        super().__init__()
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))
        layers, in_ch, n_freq = [], 1, n_mels
        for out_ch in cfg.conv_channels:
            layers += [nn.Conv2d(in_ch, out_ch, (5, 3), padding=(2, 1)), nn.BatchNorm2d(out_ch),
                       nn.ReLU(),
                       nn.MaxPool2d((cfg.freq_pool, 3), stride=(cfg.freq_pool, 1), padding=(0, 1))]
            in_ch, n_freq = out_ch, n_freq // cfg.freq_pool
        if n_freq < 1:
            raise ValueError(f"{n_mels} mel bands are too few for {len(cfg.conv_channels)} "
                             f"pooling stages of {cfg.freq_pool}")
        self.front = nn.Sequential(*layers)
        self.project = nn.Conv1d(in_ch * n_freq, cfg.channels, 1)
        self.blocks = nn.Sequential(*(ResidualBlock(cfg.channels, cfg.kernel_size, d, cfg.dropout)
                                      for d in cfg.dilations))
        self.head = nn.Sequential(nn.BatchNorm1d(cfg.channels), nn.ReLU(),
                                  nn.Conv1d(cfg.channels, 1, 1))
        # Frames of context each side: 2 per front stage (conv 3 + pool 3), d*(k-1)/2 per block.
        self.context_frames = 2 * len(cfg.conv_channels) + sum(
            d * (cfg.kernel_size - 1) // 2 for d in cfg.dilations)

    def set_normalization(self, mean, std) -> None:
        self.mel_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.mel_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        assert mel.dim() == 3 and mel.shape[1] == self.mel_mean.numel(), mel.shape
        x = (mel - self.mel_mean[:, None]) / self.mel_std[:, None]
        x = self.front(x.unsqueeze(1))  # [batch, channels, n_freq, n_frames]
        x = self.project(x.flatten(1, 2))
        return self.head(self.blocks(x)).squeeze(1)


def build_model(cfg, n_mels=None) -> BoundaryCNN:
    """The model of a full :class:`Config` (``n_mels`` defaults to ``cfg.features.n_mels``)."""
    return BoundaryCNN(cfg.model, n_mels or cfg.features.n_mels)
