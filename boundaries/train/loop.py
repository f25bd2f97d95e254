"""The training loop: excerpts from cached features, validation on whole files, checkpoints.

``train(cfg, run_dir)`` builds the parts, then loops ``train_one_epoch`` / ``validate``. It writes
``config.yaml``, ``metrics.jsonl`` (one line per epoch), ``last.pt`` and ``best.pt`` (atomically,
each epoch) and ``metrics.json``; at the end it tunes the peak and frame thresholds on the
validation files and stores them in ``best.pt``. Under torchrun only rank 0 validates, logs and
writes; the others train their shard.
"""

import contextlib
import fcntl
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from boundaries.atomic import write_text
from boundaries.config import config_from_dict, save_config
from boundaries.data import corpus, labels
from boundaries.data.dataset import ExcerptDataset
from boundaries.data.sampling import ImbalanceSampler
from boundaries.detection.inference import resolve_device
from boundaries.errors import BoundariesError
from boundaries.model.checkpoints import load_checkpoint, save_checkpoint, training_environment
from boundaries.model.losses import Criterion
from boundaries.model.networks import build_model
from boundaries.score import evaluation
from boundaries.signal import timebase
from boundaries.signal.features import network_input
from boundaries.train import distributed

logger = logging.getLogger(__name__)

HIGHER_IS_BETTER = {"pr_auc": True, "roc_auc": True, "f_3": True, "f_0.5": True, "loss": False}
STATE_SECTIONS = ("audio", "features", "labels", "model")  # must match to resume


def prepare_data(cfg, progress=True):
    """Load training and validation files; print the imbalance summary. Bad files are skipped
    with one line each; no usable training or validation file is an error."""
    train_dir = Path(cfg.data.train_dir).expanduser() if cfg.data.train_dir else \
        corpus.default_data_dir(cfg)
    tracks, problems = _discover([train_dir, *cfg.data.extra_train_dirs], cfg)
    if cfg.data.val_dir:
        train_tracks = tracks
        val_tracks, val_problems = _discover([cfg.data.val_dir, *cfg.data.extra_val_dirs], cfg)
        problems.update(val_problems)
    elif cfg.data.extra_val_dirs:
        raise BoundariesError("data.extra_val_dirs needs data.val_dir (without it, validation "
                              "is a split of the training folders)")
    else:
        train_tracks, val_tracks = corpus.split(tracks, cfg.data.val_fraction, cfg.data.split_seed)
    train_data, failed = corpus.load(train_tracks, cfg, progress)
    val_data, val_failed = corpus.load(val_tracks, cfg, progress)
    problems.update(failed)
    problems.update(val_failed)
    for message in problems.values():
        logger.warning("skipped: %s", message)
    if not train_data or not val_data:
        which = "training" if not train_data else "validation"
        raise BoundariesError(f"{train_dir}: no usable {which} files ({len(problems)} skipped);"
                              " each audio file needs an annotation beside it (NAME.txt, .lab,"
                              " .jams or .csv)")
    if not any(len(track.times_s) for track in train_data):
        raise BoundariesError(f"{train_dir}: no training file holds a boundary, so there is "
                              "nothing to learn; check the annotations (times in seconds, "
                              "inside each file)")
    shared = {t.audio_path.resolve() for t in train_data} & \
        {t.audio_path.resolve() for t in val_data}
    if shared:
        logger.warning("%d validation files are also training files (e.g. %s): the tuned "
                       "thresholds and validation scores will be optimistic; validate on other "
                       "music", len(shared), next(iter(shared)))
    return train_data, val_data, problems


def _discover(folders, cfg):
    """Tracks and problems of several folders, in order."""
    tracks, problems = [], {}
    for folder in folders:
        more, more_problems = corpus.discover(Path(folder).expanduser(), cfg.audio.extensions,
                                              cfg.data.group_by)
        tracks += more
        problems.update(more_problems)
    return tracks, problems


def make_training_tracks(data, cfg):
    items = []
    for track in data:
        targets, weights = corpus.frame_targets(track, cfg)
        frames = labels.boundary_frames(track.times_s, track.n_frames, sr=cfg.audio.sr,
                                        hop_length=cfg.features.hop_length)
        items.append((network_input(track.mel, cfg.model), targets, weights, frames))
    return items


def mel_statistics(mels):
    """Per-band mean and standard deviation over all training frames (float64 accumulation)."""
    total = sum(m.shape[1] for m in mels)
    s = sum(m.sum(axis=1, dtype=np.float64) for m in mels)
    s2 = sum(np.square(m, dtype=np.float64).sum(axis=1) for m in mels)
    mean = s / total
    return mean, np.sqrt(np.maximum(s2 / total - mean ** 2, 1e-12))


def build_loader(items, cfg, device):
    sr, hop = cfg.audio.sr, cfg.features.hop_length
    excerpt = timebase.seconds_to_frame_count(cfg.data.excerpt_s, sr=sr, hop_length=hop)
    step = max(1, timebase.seconds_to_frame_count(cfg.data.excerpt_hop_s, sr=sr, hop_length=hop))
    dataset = ExcerptDataset(items, excerpt, step, seed=cfg.train.seed)
    sampler = ImbalanceSampler(dataset.has_boundary, cfg.sampling.strategy,
                               cfg.sampling.positive_share, cfg.train.batch_size, cfg.train.seed,
                               distributed.rank(), distributed.world_size())
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler,
                        num_workers=cfg.train.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=cfg.train.num_workers > 0, drop_last=False)
    return dataset, sampler, loader


def train_one_epoch(model, loader, criterion, optimizer, scheduler, device, cfg, progress=True):
    from tqdm import tqdm

    model.train()
    total, batches, frames = 0.0, 0, 0
    amp = cfg.train.amp and device.type == "cuda"
    for x, y, w, mask in tqdm(loader, desc="batches", leave=False, disable=not progress):
        x, y, w, mask = (t.to(device, non_blocking=True) for t in (x, y, w, mask))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = criterion(logits, y, w, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        optimizer.step()
        scheduler.step()
        total += float(loss.detach())
        batches += 1
        frames += int(mask.sum())
    return {"train_loss": total / max(batches, 1), "train_frames": frames}


@torch.no_grad()
def validate(model, val_data, val_targets, criterion, cfg, device):
    """Loss, frame PR-/ROC-AUC (pooled) and mean hit-rate F on whole validation files.

    ``val_targets``: ``(targets, weights)`` per file, made once by the caller."""
    model.eval()
    activations = evaluation.collect_activations(distributed.unwrap(model), val_data, cfg, device)
    losses = []
    for (targets, weights), acts in zip(val_targets, activations):
        p = torch.from_numpy(np.clip(acts, 1e-6, 1 - 1e-6))
        losses.append(float(criterion(torch.logit(p), torch.from_numpy(targets),
                                      torch.from_numpy(weights), torch.ones(len(acts)))))
    result = evaluation.score(val_data, activations, cfg)
    scores = {"loss": float(np.mean(losses)), "pr_auc": result["micro"]["frame"]["pr_auc"],
              "roc_auc": result["micro"]["frame"]["roc_auc"]}
    for w, values in result["boundary"].items():
        scores[f"f_{float(w):g}"] = values["f"]
    return scores, activations


def warmup_cosine(total_steps: int, warmup_share: float = 0.05):
    """LR factor: linear warm-up over the first 5 % of steps, then cosine decay to 1 %."""
    warmup = max(1, int(warmup_share * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _improved(value, best, metric) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(value)
    return value > best if HIGHER_IS_BETTER[metric] else value < best


class Trainer:
    """Holds the parts of one run so the loop, checkpointing and resume stay small."""

    def __init__(self, cfg, run_dir, progress=True, data=None, tune=True):
        """``data``: ``(train_data, val_data, problems)`` already loaded (the study holds them);
        ``tune=False`` leaves the decoding untuned at the end (the study tunes its own)."""
        self.cfg, self.run_dir, self.progress, self.tune = cfg, Path(run_dir), progress, tune
        torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed + distributed.rank())
        self.device = resolve_device(cfg.train.device)
        if self.device.type == "cuda" and distributed.world_size() > 1:
            self.device = torch.device("cuda", distributed.local_rank())
            torch.cuda.set_device(self.device)
        distributed.init(self.device)
        self.train_data, self.val_data, self.problems = data or prepare_data(
            cfg, progress and distributed.is_main())
        items = make_training_tracks(self.train_data, cfg)
        self.val_targets = [corpus.frame_targets(track, cfg) for track in self.val_data]
        self.model = build_model(cfg)
        self.model.set_normalization(*mel_statistics([item[0] for item in items]))
        self.model.to(self.device)
        self.ddp_model = distributed.wrap(self.model, self.device)
        self.criterion = Criterion(cfg.loss, [item[1] for item in items])
        self.dataset, self.sampler, self.loader = build_loader(items, cfg, self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr,
                                           weight_decay=cfg.train.weight_decay)
        steps = cfg.train.epochs * max(1, len(self.loader))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(steps))
        self.epoch, self.best, self.best_epoch, self.stale, self.history = 0, None, -1, 0, []

    def state(self) -> dict:
        return {"config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "best_metric": self.best, "best_epoch": self.best_epoch,
                "stale_epochs": self.stale, "history": self.history,
                "torch_rng": torch.get_rng_state(),
                "class_weight": list(self.criterion.class_weight),
                "environment": training_environment()}

    def restore(self, path) -> None:
        state = load_checkpoint(path)
        saved = config_from_dict(state["config"])
        for section in STATE_SECTIONS:
            if getattr(saved, section) != getattr(self.cfg, section):
                raise BoundariesError(f"{path}: cannot resume: the '{section}' config differs from "
                                      "the checkpoint's; use the same config or a new --run-dir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.best, self.best_epoch = state["epoch"], state["best_metric"], \
            state["best_epoch"]
        self.stale, self.history = state["stale_epochs"], state["history"]
        # A kill between the checkpoint and the log line leaves them out of step: the checkpoint's
        # history is the truth, so the log is rewritten from it.
        from boundaries.atomic import write_text

        write_text(self.run_dir / "metrics.jsonl",
                   "".join(json.dumps(row) + "\n" for row in self.history))
        logger.info("resumed from %s after epoch %d (best %s %.4f at epoch %d)", path, self.epoch,
                    self.cfg.train.select_metric, self.best or float("nan"), self.best_epoch)

    def run(self) -> dict:
        cfg, main = self.cfg, distributed.is_main()
        metric = cfg.train.select_metric
        while self.epoch < cfg.train.epochs:
            started = time.perf_counter()
            self.sampler.set_epoch(self.epoch)
            self.dataset.set_epoch(self.epoch)
            stats = train_one_epoch(self.ddp_model, self.loader, self.criterion, self.optimizer,
                                    self.scheduler, self.device, cfg, self.progress and main)
            stats = distributed.all_reduce_mean(stats)
            stop = False
            if main:
                scores, _ = validate(self.model, self.val_data, self.val_targets, self.criterion,
                                     cfg, self.device)
                stop = self._end_epoch({**stats, **scores}, metric, time.perf_counter() - started)
            else:
                self.epoch += 1
            if distributed.broadcast_object(stop):
                break
        distributed.barrier()
        return self.finish() if main else {}

    def _end_epoch(self, scores, metric, seconds) -> bool:
        self.epoch += 1
        row = {"epoch": self.epoch, "seconds": round(seconds, 2),
               "lr": self.scheduler.get_last_lr()[0], **scores}
        self.history.append(row)
        improved = _improved(scores[metric], self.best, metric)
        if improved:
            self.best, self.best_epoch, self.stale = scores[metric], self.epoch, 0
        else:
            self.stale += 1
        state = self.state()
        save_checkpoint(self.run_dir / "last.pt", state)
        if improved:
            save_checkpoint(self.run_dir / "best.pt", state)
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        logger.info("epoch %d/%d  loss %.4f  val loss %.4f  PR-AUC %.3f  ROC-AUC %.3f  F@3 %.3f  "
                    "F@0.5 %.3f  %.1fs%s", self.epoch, self.cfg.train.epochs, scores["train_loss"],
                    scores["loss"], scores["pr_auc"], scores["roc_auc"], scores.get("f_3", np.nan),
                    scores.get("f_0.5", np.nan), seconds, "  *best" if improved else "")
        patience = self.cfg.train.patience
        if patience and self.stale >= patience:
            logger.info("early stop: no %s improvement for %d epochs", metric, patience)
            return True
        return False

    def finish(self) -> dict:
        """Tune the novelty blend and thresholds on validation with the best weights, store them
        in best.pt, report."""
        best_path = self.run_dir / "best.pt"
        if not best_path.exists():  # no epoch produced a finite metric: keep the last one
            save_checkpoint(best_path, self.state())
        state = load_checkpoint(best_path)
        self.model.load_state_dict(state["model"])
        self.model.eval()
        if self.tune:
            tuned, activations = evaluation.tune(self.model, self.val_data, self.cfg,
                                                 self.device)
        else:
            tuned = self.cfg
            activations = evaluation.collect_activations(self.model, self.val_data, tuned,
                                                         self.device)
        state["config"] = tuned.to_dict()
        save_checkpoint(best_path, state)
        save_config(tuned, self.run_dir / "config.yaml")  # agrees with best.pt, the one source
        result = evaluation.score(self.val_data, activations, tuned)
        final = {"best_epoch": state["best_epoch"], "epochs_run": self.epoch,
                 "checkpoint": str(best_path), "class_weight": list(self.criterion.class_weight),
                 "loss": self.criterion.describe(), **evaluation.flat_metrics(result),
                 "micro": result["micro"], "skipped_files": {str(k): v for k, v in
                                                             self.problems.items()}}
        from boundaries.atomic import write_text

        write_text(self.run_dir / "metrics.json", evaluation.to_json({**final, **result}))
        final["table"] = evaluation.format_table(result)
        return final


def train_track_change(cfg, run_dir: Path, progress: bool = True) -> dict:
    """The track-change detector (boundaries/train/track_change.py): one pass, no epochs; writes
    best.pt (thresholds tuned on validation), config.yaml with the tuned settings, metrics.json."""
    from boundaries.train.track_change import torch_device, train_track_detector

    if distributed.world_size() > 1:
        raise BoundariesError("track.kind=track_change trains in one process (trees and a small "
                              "embedding); run it without torchrun")
    # The embedding and the sequence stage train with torch: their floats (and so every stage
    # after them) depend on the thread count, which is fixed here rather than left to the machine.
    torch.set_num_threads(cfg.train.threads)
    # before the data: --device cuda without a GPU fails in a second, not after the features
    logger.info("its networks train on %s, the trees on the CPU", torch_device(cfg)["device"])
    train_data, val_data, _ = prepare_data(cfg, progress)
    for name, split in (("train", train_data), ("validation", val_data)):
        logger.info("%s", corpus.format_summary(name, corpus.summarize(split, cfg)))
    start = time.perf_counter()
    detector, tuned, result = train_track_detector(cfg, train_data, val_data, log=logger.info)
    save_checkpoint(run_dir / "best.pt", {"config": tuned.to_dict(), **detector.state(),
                                          "validation": evaluation.flat_metrics(result),
                                          "environment": training_environment()})
    save_config(tuned, run_dir / "config.yaml")
    final = {"train_s": time.perf_counter() - start, "peak_threshold": tuned.peaks.threshold,
             "min_distance_s": tuned.peaks.min_distance_s}
    write_text(run_dir / "metrics.json", evaluation.to_json({**final, **result}))
    final["table"] = evaluation.format_table(result)
    return final


def train(cfg, run_dir, resume: bool = False, progress: bool = True, data=None,
          tune: bool = True) -> dict:
    """Train a boundary detector; returns the final validation metrics (rank 0; {} elsewhere).
    ``data`` and ``tune``: see :class:`Trainer`."""
    run_dir = Path(run_dir)
    with contextlib.ExitStack() as stack:
        if distributed.is_main():
            stack.enter_context(run_lock(run_dir))
        return _train(cfg, run_dir, resume, progress, data, tune)


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold ``run_dir/.lock`` for the whole run: a second run into the same folder stops at once
    with one line, instead of both writing one model and interleaving metrics.jsonl."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / ".lock", "a+")
    except OSError as exc:
        raise BoundariesError(f"{run_dir}: cannot write the run folder ({exc.strerror}); choose "
                              "another --run-dir") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BoundariesError(f"{run_dir}: another training run ({holder}) is writing here; "
                                  "wait for it or choose another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield


def _train(cfg, run_dir: Path, resume, progress, data, tune) -> dict:
    if distributed.is_main():
        if not resume and (run_dir / "last.pt").exists():
            raise BoundariesError(f"{run_dir}: holds a previous run (last.pt); pass --resume to "
                                  "continue it or choose another --run-dir")
        if cfg.track.kind == "track_change" and (run_dir / "best.pt").exists():
            raise BoundariesError(f"{run_dir}: holds a previous run (best.pt), which this run "
                                  "would replace; choose another --run-dir")
        save_config(cfg, run_dir / "config.yaml")
    if cfg.track.kind == "track_change":
        return train_track_change(cfg, run_dir, progress)
    trainer = Trainer(cfg, run_dir, progress, data, tune)
    for name, split in (("train", trainer.train_data), ("validation", trainer.val_data)):
        logger.info("%s", corpus.format_summary(name, corpus.summarize(split, cfg)))
    logger.info("loss %s | sampling %s | %d excerpts, %d hold a boundary | device %s | model "
                "%.0fk parameters, context +-%.1f s", trainer.criterion.describe(),
                cfg.sampling.strategy, len(trainer.dataset), trainer.dataset.has_boundary.sum(),
                trainer.device, sum(p.numel() for p in trainer.model.parameters()) / 1e3,
                trainer.model.context_frames / cfg.fps)
    if resume and (run_dir / "last.pt").exists():
        trainer.restore(run_dir / "last.pt")
    elif resume:
        logger.info("%s: nothing to resume (no last.pt); starting fresh", run_dir)
    try:
        return trainer.run()
    except KeyboardInterrupt:  # checkpoints are atomic: last.pt is whole, from the last epoch end
        if distributed.is_main() and trainer.epoch > 0:
            logger.warning("interrupted: %s holds epoch %d of %d (the unfinished epoch is "
                           "redone); continue with the same command plus --resume",
                           run_dir / "last.pt", trainer.epoch, cfg.train.epochs)
        elif distributed.is_main():
            logger.warning("interrupted before the first epoch ended: nothing to resume; "
                           "start again (add --resume or use a new --run-dir)")
        raise
    finally:
        distributed.cleanup()
