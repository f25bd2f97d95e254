"""Training the sequence stage (:mod:`boundaries.model.sequence`) with torch.

It learns from the first stage's *out-of-fold* probabilities of the training mixes (as the
stacked trees do), so it sees probabilities as noisy as those of music the first stage never
met. Crops of ``CROP_ROWS`` rows (~3 minutes) from random files, binary cross-entropy against
the rows' labels, AdamW with a one-cycle schedule. On a CPU with several jobs it trains in a
worker process (:class:`SequenceTraining`) while the caller fits the last trees.
"""

from concurrent.futures.process import BrokenProcessPool

import numpy as np
import torch
from torch import nn

from boundaries.model import sequence
from boundaries.train import workers
from boundaries.train.one_cycle import numpy_state, train_steps

CROP_ROWS = 768
BATCH = 24


class SequenceCNN(nn.Module):
    """``[batch, channels, n]`` -> logits ``[batch, n]``: a 1x1 input layer, residual blocks of a
    dilated 3-tap convolution, GroupNorm(1) and ReLU, a 1x1 output layer."""

    def __init__(self, width: int = sequence.WIDTH, dilations=sequence.DILATIONS,
                 channels: int = 1):
        super().__init__()
        self.inp = nn.Conv1d(channels, width, 1)
        self.blocks = nn.ModuleList([nn.Conv1d(width, width, 3, dilation=d, padding=d)
                                     for d in dilations])
        self.norms = nn.ModuleList([nn.GroupNorm(1, width) for _ in dilations])
        self.out = nn.Conv1d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for conv, norm in zip(self.blocks, self.norms):
            h = h + torch.relu(norm(conv(h)))
        return self.out(h)[:, 0]


def train_sequence(inputs, labels, *, steps: int, lr: float = 2e-3, seed: int = 0,
                   log_every: int = 200, log=print, device=torch.device("cpu"),
                   amp: bool = False) -> sequence.SequenceNetwork:
    """``inputs``, ``labels``: per training file, :func:`sequence.network_input` of its
    first-stage (out-of-fold) probabilities ``[channels, n]`` and its row labels ``[n]``.
    Trains on ``device``; returns the network for numpy inference."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    files = [(x, np.asarray(y, dtype=np.float32)) for x, y in zip(inputs, labels) if len(y)]
    model = SequenceCNN(channels=files[0][0].shape[0])

    def step_loss():
        x, y, mask = (torch.from_numpy(a).to(device, non_blocking=True)
                      for a in _batch(files, rng))
        losses = nn.functional.binary_cross_entropy_with_logits(model(x).float(), y,
                                                                reduction="none")
        return (losses * mask).sum() / mask.sum()

    train_steps(model, step_loss, steps=steps, lr=lr, pct_start=0.1, label="sequence",
                metric="BCE", log_every=log_every, log=log, device=device, amp=amp)
    return sequence.SequenceNetwork(numpy_state(model))


class SequenceTraining:
    """:func:`train_sequence` on ``inputs`` and ``labels``, started at construction: in a worker
    process where ``jobs`` > 1 on the CPU (the caller goes on inside :meth:`beside`), otherwise
    at :meth:`result`. Seeded, so both give the same network; so does the fallback when the
    worker fails. ``stored``: arrays kept with the network (the descriptors' standardisation)."""

    def __init__(self, inputs, labels, *, stored=None, jobs: int = 1, log=print,
                 device=torch.device("cpu"), amp: bool = False, **settings):
        self.inputs, self.labels, self.settings = inputs, labels, settings
        self.stored = stored or {}
        self.log, self.device, self.amp = log, device, amp
        self.pool = self.future = None
        if jobs > 1 and device.type == "cpu":
            self.pool = workers.spawn_pool(1)
            self.future = self.pool.submit(_train_worker, inputs, labels,
                                           torch.get_num_threads(), settings)

    def beside(self):
        """The caller's work while the network trains (:func:`workers.beside`)."""
        return workers.beside(self.pool, self.stop)

    def stop(self) -> None:
        """The worker is not waited for; it exits with this process."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def result(self) -> sequence.SequenceNetwork:
        """The trained network (waiting for the worker, or training it here)."""
        state = self._from_worker() if self.future is not None else None
        if state is None:
            state = train_sequence(self.inputs, self.labels, log=self.log, device=self.device,
                                   amp=self.amp, **self.settings).state
        return sequence.SequenceNetwork({**state, **self.stored})

    def _from_worker(self):
        try:
            state, lines = self.future.result()
        except (OSError, BrokenProcessPool) as error:  # a worker killed, say
            self.log(f"sequence: the worker process failed ({error}); training it here")
            self.pool.shutdown(cancel_futures=True)
            return None
        self.pool.shutdown()
        for line in lines:
            self.log(line)
        return state


def _train_worker(inputs, labels, threads, settings) -> tuple:
    torch.set_num_threads(threads)
    lines = []
    network = train_sequence(inputs, labels, log=lines.append, **settings)
    return network.state, lines


def _batch(files, rng):
    """``BATCH`` random crops, zero-padded to ``CROP_ROWS``; the mask marks real rows."""
    x = np.zeros((BATCH, files[0][0].shape[0], CROP_ROWS), np.float32)
    y = np.zeros((BATCH, CROP_ROWS), np.float32)
    mask = np.zeros((BATCH, CROP_ROWS), np.float32)
    for i, k in enumerate(rng.integers(len(files), size=BATCH)):
        inputs, targets = files[k]
        start = int(rng.integers(0, max(len(targets) - CROP_ROWS, 0) + 1))
        m = min(CROP_ROWS, len(targets) - start)
        x[i, :, :m], y[i, :m] = inputs[:, start:start + m], targets[start:start + m]
        mask[i, :m] = 1
    return x, y, mask
