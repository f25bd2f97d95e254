"""Training throughput: does the data loader keep up with the training step?

    python benchmarks/training.py [--config FILE ...] [--set key=value ...] [--steps 40]

Builds the run exactly as ``train.py`` does (features from the cache, so no decoding after the
first run), then times, on the same batches: the loader alone (excerpt slicing, targets,
collation), the training step alone on a batch already in memory (forward, loss, backward,
optimizer), and both together as the epoch loop runs them. Prints samples/s and frames/s of each
and the loader's share of an epoch. On a GPU (``--set train.device=cuda``) the step runs with bf16
autocast when ``train.amp`` is true.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from boundaries.config import load_config
from boundaries.train.loop import Trainer

REPO = Path(__file__).resolve().parents[1]


def time_loader(loader, steps):
    start, n = time.perf_counter(), 0
    for i, (x, _, _, _) in enumerate(loader):
        n += x.shape[0]
        if i + 1 >= steps:
            break
    return n, time.perf_counter() - start


def step(trainer, batch):
    x, y, w, mask = (t.to(trainer.device, non_blocking=True) for t in batch)
    amp = trainer.cfg.train.amp and trainer.device.type == "cuda"
    with torch.autocast(trainer.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = trainer.ddp_model(x)
    loss = trainer.criterion(logits, y, w, mask)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
    return x.shape[0]


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(trainer, batch, steps):
    step(trainer, batch)  # warm-up (allocations, cuDNN autotuning)
    synchronize(trainer.device)
    start, n = time.perf_counter(), 0
    for _ in range(steps):
        n += step(trainer, batch)
    synchronize(trainer.device)
    return n, time.perf_counter() - start


def time_epoch_loop(trainer, steps):
    start, n = time.perf_counter(), 0
    for i, batch in enumerate(trainer.loader):
        n += step(trainer, batch)
        if i + 1 >= steps:
            break
    synchronize(trainer.device)
    return n, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=None)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args(argv)
    cfg = load_config(args.config or [REPO / "configs" / "base.yaml"], args.set)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, run_dir, progress=False)
        frames_per_sample = trainer.dataset.excerpt_frames
        batch = next(iter(trainer.loader))
        rows = {"loader alone": time_loader(trainer.loader, args.steps),
                "training step alone": time_steps(trainer, batch, args.steps),
                "epoch loop (both)": time_epoch_loop(trainer, args.steps)}
    print(f"device {trainer.device}, batch {cfg.train.batch_size} x {frames_per_sample} frames, "
          f"{args.steps} batches, {torch.get_num_threads()} torch thread(s)")
    for name, (n, seconds) in rows.items():
        print(f"{name:20s} {n / seconds:9.1f} samples/s  {n * frames_per_sample / seconds:12.0f} "
              "frames/s")
    loader_s = rows["loader alone"][1]
    loop_s = rows["epoch loop (both)"][1]
    print(f"loader share of the epoch loop: {100 * loader_s / loop_s:.1f}% "
          f"({'keeps up' if loader_s < 0.2 * loop_s else 'starves the model'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
