"""Networks trained in worker processes beside the caller's own work.

On a CPU box the trees fit in one thread while a small network trains: run one after the other,
a core sits idle for minutes. A network seeded on its own trains to the same weights in a spawned
worker as in the caller (one torch thread in both: tests check equality), so the stages that do
not need each other's output can overlap without changing the checkpoint.
"""

import contextlib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from boundaries.signal.features import die_with_parent, limit_worker_threads


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """Spawned workers (a fork would copy the caller's gigabytes of rows) at one BLAS/OpenMP
    thread each, which die with this process."""
    limit_worker_threads()  # before the workers spawn: they read it at start
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                               initializer=die_with_parent)


@contextlib.contextmanager
def beside(pool, stop):
    """The caller's work while ``pool``'s workers train (no limit where ``pool`` is None): its
    BLAS/OpenMP pools at one thread, so the box's cores are shared, not oversubscribed. If the
    work fails, no network is wanted any more: ``stop()``."""
    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(1 if pool is not None else None):
            yield
    except BaseException:
        stop()
        raise
