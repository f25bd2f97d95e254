"""Imbalance by resampling training excerpts (training split only, seeded per epoch).

Strategies over excerpts flagged as holding a boundary ("positive"):

- ``none``: every excerpt once per epoch, shuffled.
- ``oversample``: every negative once, positives drawn with replacement until they make up
  ``positive_share`` of the epoch.
- ``undersample``: every positive once, negatives drawn without replacement until positives make up
  ``positive_share``.
- ``batch_share``: every batch holds exactly ``round(positive_share * batch_size)`` positives.

imbalanced-learn has no PyTorch sampler (its issue #424), so this is a torch ``Sampler``; under DDP
each rank takes its own slice of the same seeded epoch plan (whole batches for ``batch_share``).
"""

import logging
import math

import numpy as np
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)


def epoch_plan(has_boundary, strategy: str, positive_share: float, batch_size: int,
               rng: np.random.Generator) -> np.ndarray:
    """Excerpt indices for one epoch, in order (consecutive ``batch_size`` runs are batches)."""
    flags = np.asarray(has_boundary, dtype=bool)
    pos, neg = np.flatnonzero(flags), np.flatnonzero(~flags)
    if strategy == "none" or len(pos) == 0 or len(neg) == 0:
        return rng.permutation(len(flags))
    odds = positive_share / (1 - positive_share)
    if strategy == "oversample":
        n_pos = max(len(pos), int(round(odds * len(neg))))
        chosen = np.concatenate([neg, rng.choice(pos, n_pos, replace=True)])
        return rng.permutation(chosen)
    if strategy == "undersample":
        n_neg = min(len(neg), max(1, int(round(len(pos) / odds))))
        chosen = np.concatenate([pos, rng.choice(neg, n_neg, replace=False)])
        return rng.permutation(chosen)
    if strategy == "batch_share":
        k = min(batch_size, max(1, int(round(positive_share * batch_size))))
        n_batches = math.ceil(len(flags) / batch_size)
        batches = [rng.permutation(np.concatenate([rng.choice(pos, k, replace=True),
                                                   rng.choice(neg, batch_size - k, replace=True)]))
                   for _ in range(n_batches)]
        return np.concatenate(batches)
    raise ValueError(f"unknown sampling strategy {strategy!r}")


class ImbalanceSampler(Sampler):
    """Seeded, epoch-aware sampler implementing :func:`epoch_plan`, sharded across DDP ranks."""

    def __init__(self, has_boundary, strategy="none", positive_share=0.5, batch_size=1, seed=0,
                 rank=0, world_size=1):
        self.has_boundary = np.asarray(has_boundary, dtype=bool)
        self.strategy, self.positive_share = strategy, positive_share
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        if strategy != "none" and (self.has_boundary.all() or not self.has_boundary.any()):
            logger.warning("sampling '%s' has nothing to balance: %d of %d excerpts hold a "
                           "boundary; every excerpt is used once", strategy,
                           self.has_boundary.sum(), len(self.has_boundary))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _plan(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])  # identical on every rank
        plan = epoch_plan(self.has_boundary, self.strategy, self.positive_share, self.batch_size,
                          rng)
        if self.world_size == 1:
            return plan
        # Shard by whole batches so a batch_share batch keeps its composition on its rank.
        batches = [plan[i:i + self.batch_size] for i in range(0, len(plan), self.batch_size)]
        per_rank = math.ceil(len(batches) / self.world_size)
        batches += batches[:per_rank * self.world_size - len(batches)]  # equal steps per rank
        mine = batches[self.rank::self.world_size]
        return np.concatenate(mine) if mine else np.zeros(0, dtype=int)

    def __iter__(self):
        return iter(self._plan().tolist())

    def __len__(self):
        return len(self._plan())
