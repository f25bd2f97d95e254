"""Training the placement locator (:mod:`boundaries.model.locator`) with torch.

Each training crossover is seen ``VIEWS`` times, from a detection up to ``placement.JITTER_S``
off (as the placement trees see it); the target is a Gaussian of ``TARGET_SIGMA_FRAMES`` around
the crossover's frame, the loss the cross-entropy of the softmax over the window's frames.
AdamW with a one-cycle schedule; few steps, since it overfits its ~5,000 crossovers soon (on
validation windows the share placed within 0.5 s peaked after 4-5 passes over three views:
MODEL_CARD.md, session 18).
"""

import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from torch import nn

from boundaries.detection import placement
from boundaries.model import locator
from boundaries.signal.features import die_with_parent, limit_worker_threads
from boundaries.train.one_cycle import numpy_state, train_steps

VIEWS = 3
TARGET_SIGMA_FRAMES = 1.5
BATCH = 32


class Block(nn.Module):
    """Pre-activation residual block: ReLU, a dilated 3-tap convolution, ReLU, a 1x1 one."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, dilation=dilation, padding=dilation)
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, h):
        return h + self.mix(torch.relu(self.conv(torch.relu(h))))


class LocatorCNN(nn.Module):
    """``[batch, n_in, n]`` standardised input -> logits ``[batch, n]``."""

    def __init__(self, n_in: int, width: int = locator.WIDTH, dilations=locator.DILATIONS):
        super().__init__()
        self.inp = nn.Conv1d(n_in, width, locator.INPUT_KERNEL, padding=locator.INPUT_KERNEL // 2)
        self.blocks = nn.ModuleList(Block(width, d) for d in dilations)
        self.out = nn.Conv1d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h)
        return self.out(torch.relu(h))[:, 0]


def training_views(local: placement.LocalFrames, times_s, rng, n_views: int = VIEWS):
    """``(raw inputs, valids, targets)`` per view of each crossover in ``times_s``: the
    unstandardised window (placement rows and z-scored log-mel, float16), its valid frames and
    the crossover's (fractional) position in it."""
    half = placement.search_frames(local.fps)
    n_in = placement.N_COLUMNS + local.z.shape[0]
    zeros, ones = np.zeros(n_in, np.float32), np.ones(n_in, np.float32)  # kept raw here
    xs, valids, targets = [], [], []
    for t in np.asarray(times_s, dtype=float):
        for _ in range(n_views):
            t0 = t + rng.uniform(-placement.JITTER_S, placement.JITTER_S)
            centre, idx = local.frame_span(t0)
            _, rows = local.rows(t0)
            x, valid = locator.network_input(rows, local.z, idx, centre, half, zeros, ones)
            xs.append(x.astype(np.float16))
            valids.append(valid)
            targets.append(local.frame_position(t) - centre + half)
    return xs, valids, targets


def train_locator(xs, valids, targets, *, steps: int, lr: float = 2e-3, seed: int = 0,
                  networks: int = 1, jobs: int = 1, log_every: int = 200, log=print,
                  device=torch.device("cpu"), amp: bool = False) -> locator.Locator:
    """The locator trained on :func:`training_views` of every training crossover; returns it
    for numpy inference (the input's standardisation included). With ``networks`` > 1, that
    many are trained (seeds ``seed + i``: initialisation and batches) and averaged, in up to
    ``jobs`` processes at once on the CPU, one after another on a GPU (``device``)."""
    x, valid, target = np.stack(xs), np.stack(valids), np.asarray(targets, np.float64)
    mean, std = _standardisation(x, valid)
    seeds = [seed + i for i in range(networks)]
    settings = {"steps": steps, "lr": lr, "log_every": log_every}
    states = None
    if jobs > 1 and networks > 1 and device.type == "cpu":
        try:
            states = _train_in_workers(x, (valid, target, mean, std), seeds, jobs, settings, log)
        except (OSError, BrokenProcessPool) as error:  # no room for the views, a worker killed
            log(f"locator: the worker processes failed ({error}); training the networks in turn")
    if states is None:
        states = [_train_one(x, valid, target, mean, std, seed=s, log=log, device=device,
                             amp=amp, **settings) for s in seeds]
    return locator.Locator(states if networks > 1 else states[0])


def _train_in_workers(x, arrays, seeds, jobs, settings, log) -> list:
    """One network per process, each at this process's torch thread count. Each network is
    seeded on its own, so the states equal training them one after another (a test checks);
    the views reach the workers as a memory-mapped file, not one pickled copy each (~1.5 GB).
    Their logs follow once all have finished."""
    limit_worker_threads()
    with tempfile.TemporaryDirectory(prefix="boundaries-locator-") as tmp:
        views = Path(tmp) / "views.npy"
        np.save(views, x)
        with ProcessPoolExecutor(min(jobs, len(seeds)), mp_context=get_context("spawn"),
                                 initializer=die_with_parent) as pool:
            futures = [pool.submit(_train_worker, views, arrays, s, torch.get_num_threads(),
                                   settings) for s in seeds]
            results = [future.result() for future in futures]
    for _, lines in results:
        for line in lines:
            log(line)
    return [state for state, _ in results]


def _train_worker(views, arrays, seed, threads, settings) -> tuple:
    torch.set_num_threads(threads)
    lines = []
    state = _train_one(np.load(views, mmap_mode="r"), *arrays, seed=seed, log=lines.append,
                       **settings)
    return state, lines


def _train_one(x, valid, target, mean, std, *, steps, lr, seed, log_every, log,
               device=torch.device("cpu"), amp=False) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = LocatorCNN(x.shape[2])
    positions = np.arange(x.shape[1])

    def step_loss():
        pick = np.sort(rng.integers(len(x), size=BATCH))
        v = torch.from_numpy(valid[pick]).to(device)
        xb = torch.from_numpy(((x[pick].astype(np.float32) - mean) / std)).to(device)
        logits = model((xb * v[..., None]).transpose(1, 2)).float()
        logits = logits.masked_fill(~v, locator.MASKED_LOGIT)
        soft = np.exp(-0.5 * ((positions[None] - target[pick, None]) / TARGET_SIGMA_FRAMES) ** 2)
        soft = torch.from_numpy(soft / soft.sum(1, keepdims=True)).float().to(device)
        return -(soft * torch.log_softmax(logits, 1)).sum(1).mean()

    train_steps(model, step_loss, steps=steps, lr=lr, pct_start=0.1, label=f"locator {seed}",
                metric="cross-entropy", log_every=log_every, log=log, device=device, amp=amp)
    return {**numpy_state(model), "mean": mean, "std": std}


def _standardisation(x, valid, chunk: int = 512):
    """Mean and standard deviation of every input column over the valid frames (in chunks:
    the views in float64 at once would take ~6 GB)."""
    total = np.zeros(x.shape[2])
    squares = np.zeros(x.shape[2])
    count = 0
    for start in range(0, len(x), chunk):
        frames = x[start:start + chunk][valid[start:start + chunk]].astype(np.float64)
        total += frames.sum(axis=0)
        squares += (frames ** 2).sum(axis=0)
        count += len(frames)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return mean.astype(np.float32), (std + 1e-3).astype(np.float32)
