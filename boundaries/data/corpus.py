"""A data set: a folder of audio files, each with its boundary annotation beside it.

Discovery, the train/validation split by group, loading features (through the cache) and targets,
and the imbalance summary every run prints first.
"""

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from boundaries.data import labels
from boundaries.data.annotations import find_annotation, read_boundaries
from boundaries.errors import BoundariesError, file_failure
from boundaries.signal.audio import find_audio_files
from boundaries.signal.features import FeatureCache, load_features

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Track:
    audio_path: Path
    annotation_path: Path
    group: str


@dataclass
class TrackData:
    """One file ready for training or evaluation."""
    audio_path: Path
    mel: np.ndarray  # [n_mels, n_frames]
    times_s: np.ndarray  # interior boundaries, seconds
    duration_s: float

    @property
    def n_frames(self) -> int:
        return self.mel.shape[1]


def discover(root, extensions, group_by: str = "file"):
    """Annotated audio files under ``root``.

    Returns
    -------
    tracks : list of Track
    problems : dict path -> one-line message (audio without an annotation is never silently used
        as "no boundaries")
    """
    tracks, problems = [], {}
    root = Path(root)
    for audio_path in find_audio_files(root, extensions):
        annotation = find_annotation(audio_path)
        if annotation is None:
            problems[audio_path] = (f"{audio_path}: no annotation beside it ({audio_path.stem}.txt,"
                                    " .lab, .jams or .csv); add one or move the file out")
            continue
        group = str(audio_path.parent.relative_to(root)) if group_by == "parent" else \
            str(audio_path.relative_to(root))
        tracks.append(Track(audio_path, annotation, group))
    return tracks, problems


def split(tracks, val_fraction: float, seed: int):
    """Split by group with a seeded shuffle: no group feeds both training and validation."""
    groups = sorted({t.group for t in tracks})
    if len(groups) < 2:
        raise BoundariesError(f"need at least 2 groups to split into training and validation, "
                              f"found {len(groups)}; add files or pass a validation folder")
    order = np.random.default_rng(seed).permutation(len(groups))
    n_val = min(len(groups) - 1, max(1, int(round(val_fraction * len(groups)))))
    val_groups = {groups[i] for i in order[:n_val]}
    return ([t for t in tracks if t.group not in val_groups],
            [t for t in tracks if t.group in val_groups])


def load(tracks, cfg, progress: bool = True):
    """Features and boundary times of ``tracks``; bad files are reported, not fatal.

    Returns
    -------
    data : list of TrackData (in the order of ``tracks``)
    failures : dict path -> one-line message
    """
    cache = FeatureCache(cfg.data.cache_dir, cfg.audio.sr, cfg.features)
    features, failures = load_features([t.audio_path for t in tracks], cache, cfg.data.jobs,
                                       progress)
    data = []
    for track in tracks:
        if track.audio_path not in features:
            continue
        mel, n_samples = features[track.audio_path]
        duration_s = n_samples / cfg.audio.sr
        try:
            times_s = read_boundaries(track.annotation_path, duration_s=duration_s)
        except Exception as exc:  # any failure is this file's: one line, a skip
            failures[track.audio_path] = file_failure(track.annotation_path, exc)
            continue
        data.append(TrackData(track.audio_path, mel, times_s, duration_s))
    return data, failures


def frame_targets(track, cfg):
    """``(targets, weights)`` of one file under the config's smearing mode."""
    return labels.make_targets(track.times_s, track.n_frames, sr=cfg.audio.sr,
                               hop_length=cfg.features.hop_length, mode=cfg.labels.mode,
                               sigma_s=cfg.labels.sigma_s, radius_s=cfg.labels.radius_s)


def summarize(data, cfg) -> dict:
    """Imbalance figures: files, minutes, frames, boundaries, positive shares, naive accuracy."""
    sr, hop = cfg.audio.sr, cfg.features.hop_length
    n_frames = sum(d.n_frames for d in data)
    exact = smeared = 0.0
    for d in data:
        exact += labels.make_labels(d.times_s, d.n_frames, sr=sr, hop_length=hop).sum()
        targets, _ = frame_targets(d, cfg)
        smeared += float((targets >= 0.5).sum())
    frames = max(n_frames, 1)
    return {"files": len(data), "minutes": sum(d.duration_s for d in data) / 60,
            "frames": n_frames, "boundaries": int(sum(len(d.times_s) for d in data)),
            "positive_fraction_exact": exact / frames,
            "positive_fraction_smeared": smeared / frames,
            "naive_accuracy": 1 - exact / frames}


def format_summary(name: str, summary: dict) -> str:
    return (f"{name}: {summary['files']} files, {summary['minutes']:.1f} min, "
            f"{summary['frames']} frames, {summary['boundaries']} boundaries | positive frames "
            f"{100 * summary['positive_fraction_exact']:.2f}% exact, "
            f"{100 * summary['positive_fraction_smeared']:.2f}% smeared (target >= 0.5) | "
            f"naive all-negative accuracy {100 * summary['naive_accuracy']:.2f}%")


def default_data_dir(cfg) -> Path:
    """The generated default data set, made once under the cache folder (atomically)."""
    from boundaries.recipes.synthetic import write_dataset

    syn = cfg.data.synthetic
    params = {"n_clips": syn.n_clips, "clip_s": syn.clip_s, "seed": syn.seed, "sr": cfg.audio.sr,
              "version": 2}
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    target = Path(cfg.data.cache_dir).expanduser() / "default_data" / f"synthetic-{key}"
    if target.is_dir():
        return target
    logger.info("generating the default data set (%d clips of %.0f s) into %s", syn.n_clips,
                syn.clip_s, target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    except OSError as exc:
        raise BoundariesError(f"{target.parent}: cannot write the generated default data here "
                              f"({exc.strerror}); pass --data DIR, or --set "
                              "data.cache_dir=A_WRITABLE_FOLDER") from None
    try:
        write_dataset(staging, n_clips=syn.n_clips, clip_s=syn.clip_s, seed=syn.seed,
                      sr=cfg.audio.sr, jobs=cfg.data.jobs)
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # another process may have won the race; theirs is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target

