"""Training the placement locator (:mod:`boundaries.model.locator`) with torch.

Each training crossover is seen ``VIEWS`` times, from a detection up to ``placement.JITTER_S``
off (as the placement trees see it); the target is a Gaussian of ``TARGET_SIGMA_FRAMES`` around
the crossover's frame, the loss the cross-entropy of the softmax over the window's frames.
AdamW with a one-cycle schedule; few steps, since it overfits its ~5,000 crossovers soon (on
validation windows the share placed within 0.5 s peaked after 4-5 passes over three views:
MODEL_CARD.md, session 18).
"""

import os
import shutil
import tempfile
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from boundaries.detection import placement
from boundaries.model import locator
from boundaries.train import workers
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
    times_s = np.asarray(times_s, dtype=float)
    jitters = rng.uniform(-placement.JITTER_S, placement.JITTER_S, (len(times_s), n_views))
    return _views_at(local, times_s, jitters)


def _views_at(local: placement.LocalFrames, times_s, jitters):
    """:func:`training_views` with each view's offset from its crossover given (``jitters``,
    ``[len(times_s), n_views]``)."""
    half = placement.search_frames(local.fps)
    n_in = placement.N_COLUMNS + local.z.shape[0]
    zeros, ones = np.zeros(n_in, np.float32), np.ones(n_in, np.float32)  # kept raw here
    xs, valids, targets = [], [], []
    for t, offsets in zip(times_s, jitters):
        for offset in offsets:
            centre, idx = local.frame_span(t + offset)
            _, rows = local.rows(t + offset)
            x, valid = locator.network_input(rows, local.z, idx, centre, half, zeros, ones)
            xs.append(x.astype(np.float16))
            valids.append(valid)
            targets.append(local.frame_position(t) - centre + half)
    return xs, valids, targets


class Views(NamedTuple):
    """Every training view: ``x`` ``[n, window, n_in]`` float16, unstandardised (a memory map of
    a temporary file in parallel mode), its valid frames and the crossover's position."""

    x: np.ndarray
    valid: np.ndarray
    target: np.ndarray


def gather_views(tracks, fps: float, seed: int, folder=None, n_views: int = VIEWS,
                 jobs: int = 1) -> Views:
    """:func:`training_views` of every ``(log-mel, crossover times)`` in ``tracks`` (a list),
    drawn with ``seed``, written straight into ``folder/views.npy`` when ``folder`` is given: the
    ~2 GB of views of 3,300 mixes then never sit in this process, which goes on with the trees
    while the networks train. There, ``jobs`` > 1 forked processes share the files (the views
    of 3,300 mixes take 7 minutes on one core); every view's offset is drawn here first, in
    one stream, so the views do not depend on ``jobs``. Raises OSError where the file cannot
    be written."""
    rng = np.random.default_rng(seed)
    jitters = [rng.uniform(-placement.JITTER_S, placement.JITTER_S, (len(times), n_views))
               for _, times in tracks]
    starts = np.cumsum([0] + [j.size for j in jitters])
    first = next((i for i, j in enumerate(jitters) if j.size), None)
    if first is None:
        raise ValueError("the locator needs training crossovers; these files have none")
    mel, times = tracks[first]
    x0, valid0, _ = _views_at(placement.LocalFrames(mel, fps), times[:1], jitters[first][:1, :1])
    n = int(starts[-1])
    x = _views_array(folder, (n, *x0[0].shape))
    valid, target = np.empty((n, len(valid0[0])), bool), np.empty(n)
    if folder is not None:
        x.flush()
    for at, part_valid, part_target in _view_parts(tracks, jitters, starts, fps, x, folder, jobs):
        valid[at:at + len(part_target)], target[at:at + len(part_target)] = part_valid, part_target
    return Views(x, valid, target)


_SHARED = None  # what the forked gatherers read (set before the fork: never pickled)


def _view_parts(tracks, jitters, starts, fps, x, folder, jobs):
    """``(first row, valids, targets)`` per group of files, their views written into ``x``
    (in ``jobs`` forked processes where ``folder`` holds ``x``'s file)."""
    global _SHARED
    groups = [g for g in np.array_split(np.arange(len(tracks)), max(jobs, 1)) if len(g)]
    if folder is not None and len(groups) > 1:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        _SHARED = (tracks, jitters, starts, fps, Path(folder) / "views.npy")
        try:  # fork: the children see the log-mel without a copy (only this process's ~10 GB)
            with ProcessPoolExecutor(len(groups), mp_context=get_context("fork")) as pool:
                return list(pool.map(_views_of_shared, groups))
        except BrokenProcessPool:  # a child killed (the OOM killer, say): here, in turn
            pass
        finally:
            _SHARED = None
    return [_views_of(tracks, jitters, starts, fps, x, group) for group in groups]


def _views_of_shared(group):
    tracks, jitters, starts, fps, path = _SHARED
    return _views_of(tracks, jitters, starts, fps, np.load(path, mmap_mode="r+"), group)


def _views_of(tracks, jitters, starts, fps, x, group):
    valids, targets = [], []
    for i in group:
        mel, times = tracks[i]
        if not len(times):
            continue
        xs, v, t = _views_at(placement.LocalFrames(mel, fps), times, jitters[i])
        x[starts[i]:starts[i] + len(xs)] = np.stack(xs)
        valids += v
        targets += t
    if isinstance(x, np.memmap):
        x.flush()
    width = x.shape[1]
    return (int(starts[group[0]]), np.array(valids, bool).reshape(-1, width),
            np.asarray(targets, float))


def _views_array(folder, shape) -> np.ndarray:
    if folder is None:
        return np.empty(shape, np.float16)
    return np.lib.format.open_memmap(Path(folder) / "views.npy", "w+", np.float16, shape)


def views_from_lists(xs, valids, targets, folder=None) -> Views:
    """Views given as lists (:func:`training_views`), into ``folder/views.npy`` when given."""
    x = _views_array(folder, (len(xs), *np.shape(xs[0])))
    x[:] = np.stack(xs)
    return Views(x, np.stack(valids), np.asarray(targets, np.float64))


def train_locator(xs, valids, targets, **settings) -> locator.Locator:
    """The locator trained on views given as lists (:func:`training_views`); ``settings`` as
    :class:`LocatorTraining` takes them."""
    training = LocatorTraining(**settings)
    training.start(lambda folder: views_from_lists(xs, valids, targets, folder))
    return training.result()


class LocatorTraining:
    """The locator networks of one detector (seeds ``seed + i``: initialisation and batches),
    averaged into one :class:`~boundaries.model.locator.Locator` (standardisation included).

    On the CPU with ``jobs`` > 1 they train in up to ``jobs`` worker processes from :meth:`start`
    on, while the caller goes on with its own work (inside :meth:`beside`, where its BLAS/OpenMP
    pools keep to one thread): the box's cores stay busy until the last of them finishes, not
    the caller's work and the networks one after the other. Each network is seeded on its own,
    so the states equal training them in turn, as they do on a GPU, with one job, or when the
    workers fail (in :meth:`result`; tests check both)."""

    def __init__(self, *, steps: int, lr: float = 2e-3, seed: int = 0, networks: int = 1,
                 jobs: int = 1, log_every: int = 200, log=print, device=torch.device("cpu"),
                 amp: bool = False):
        self.settings = {"steps": steps, "lr": lr, "log_every": log_every}
        self.seeds = [seed + i for i in range(networks)]
        self.jobs, self.log, self.device, self.amp = jobs, log, device, amp
        self.folder = self.pool = self.views = None
        self.futures = []

    def start(self, make_views) -> None:
        """Build the views (``make_views(folder)``: into ``folder``, or in memory for None) and,
        in parallel mode, start the workers on them."""
        if self.jobs > 1 and self.device.type == "cpu":
            try:
                remove_orphaned_views()
                self.folder = tempfile.TemporaryDirectory(prefix=VIEWS_PREFIX)
                (Path(self.folder.name) / "owner").write_text(str(os.getpid()))
                self.views = make_views(Path(self.folder.name))
            except OSError as error:  # no room for the views file
                self._fall_back(f"cannot share the views with worker processes ({error})")
                if self.folder is not None:
                    self.folder.cleanup()
                    self.folder = None
        if self.views is None:
            self.views = make_views(None)
        self.mean, self.std = _standardisation(self.views.x, self.views.valid)
        if self.folder is not None:
            self.views.x.flush()
            self.pool = workers.spawn_pool(min(self.jobs, len(self.seeds)))
            views = Path(self.folder.name) / "views.npy"
            self.futures = [self.pool.submit(_train_worker, views, self._arrays(), seed,
                                             torch.get_num_threads(), self.settings)
                            for seed in self.seeds]

    def beside(self):
        """The caller's work while the networks train (:func:`workers.beside`): its BLAS/OpenMP
        pools at one thread; if it fails, :meth:`stop`."""
        return workers.beside(self.pool, self.stop)

    def stop(self) -> None:
        """Start no more networks (those training finish in their workers, which exit with
        this process) and delete the views file."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        if self.folder is not None:
            self.folder.cleanup()

    def result(self) -> locator.Locator:
        """Wait for the networks (training them in turn where no worker did) and average them."""
        states = None
        if self.pool is not None:
            try:
                states = self._gather()
            except (OSError, BrokenProcessPool) as error:  # a worker killed, say
                self._fall_back(f"the worker processes failed ({error})")
        if states is None:
            states = [_train_one(self.views.x, *self._arrays(), seed=seed, log=self.log,
                                 device=self.device, amp=self.amp, **self.settings)
                      for seed in self.seeds]
        if self.folder is not None:
            self.views = None
            self.folder.cleanup()
        return locator.Locator(states if len(states) > 1 else states[0])

    def _gather(self) -> list:
        results = [future.result() for future in self.futures]
        self.pool.shutdown()
        for _, lines in results:  # the workers' logs, in seed order, once all have finished
            for line in lines:
                self.log(line)
        return [state for state, _ in results]

    def _arrays(self) -> tuple:
        return self.views.valid, self.views.target, self.mean, self.std

    def _fall_back(self, why: str) -> None:
        self.log(f"locator: {why}; training the networks in turn")
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        self.pool = None


VIEWS_PREFIX = "boundaries-locator-"


def remove_orphaned_views(root=None) -> None:
    """Delete the views folders (~2 GB each) of trainings whose process is gone: SIGKILL or
    the kernel's OOM killer leave no chance to clean up. A folder without a readable owner, or
    whose owner still runs (or is another user's), is left alone."""
    for folder in Path(root or tempfile.gettempdir()).glob(VIEWS_PREFIX + "*"):
        try:
            owner = int((folder / "owner").read_text())
        except (OSError, ValueError):
            continue
        if not _running(owner):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


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
