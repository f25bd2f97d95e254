"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``.

``weights_only`` refuses pickled code, so a crafted checkpoint cannot run anything on load. A
checkpoint holds ``{"format", "config", "model", "epoch", "best_metric", ...}``, so the file alone
rebuilds the model with its feature, label and peak-picking settings.
"""

import pickle
import zipfile
from pathlib import Path

import torch

from boundaries.atomic import atomic_path
from boundaries.config import config_from_dict
from boundaries.errors import BoundariesError, CheckpointError, first_line

FORMAT = "boundaries-checkpoint-v1"


def save_checkpoint(path, state: dict) -> None:
    """Write ``state`` (plus the format tag) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint safely; every failure is one :class:`CheckpointError` line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train one with train.py or check "
                              "the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused to load: it holds objects other than tensors and "
                              f"plain data ({first_line(exc)}); only load "
                              "checkpoints written by boundaries") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or not a PyTorch checkpoint "
                              f"({first_line(exc, 120)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a boundaries checkpoint (format tag missing)")
    return state


def load_model(path, device="cpu"):
    """``(model, cfg, state)`` from a checkpoint, model in eval mode on ``device``."""
    from boundaries.model.networks import build_model

    state = load_checkpoint(path)
    broken = _first_non_finite({k: state[k] for k in WEIGHT_KEYS if k in state})
    if broken:
        raise CheckpointError(f"{path}: weights hold NaN or infinite values ({broken}); the "
                              "training diverged: retrain (a lower train.lr) or use another "
                              "checkpoint")
    try:
        cfg = config_from_dict(state["config"])
        if state.get("kind") == "track_change":
            from boundaries.model.track_detector import from_checkpoint_state

            return from_checkpoint_state(state, cfg), cfg, state
        model = build_model(cfg)
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, BoundariesError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not match this version of boundaries "
                              f"({first_line(exc)})") from None
    return model.to(device).eval(), cfg, state


WEIGHT_KEYS = ("model", "embedding", "trees", "placement", "context_trees")


def _first_non_finite(value, where=""):
    """The path of the first float tensor holding NaN or inf in ``value``, or None."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        bad = torch.is_tensor(value) and value.is_floating_point() and \
            not bool(torch.isfinite(value).all())
        return where.lstrip("/") if bad else None
    for key, item in items:
        found = _first_non_finite(item, f"{where}/{key}")
        if found:
            return found
    return None


SHIPPED_KEYS = ("config", "model", "epoch", "best_metric", "best_epoch", "history",
                "class_weight", "kind", "embedding", "trees", "placement", "context_trees",
                "validation")


def export_model(src, dst) -> int:
    """Copy a trained checkpoint without its optimizer, scheduler and RNG state (a model to ship
    or share: a third of the size, and nothing to resume from). Returns the bytes written."""
    state = load_checkpoint(src)
    save_checkpoint(dst, {k: state[k] for k in SHIPPED_KEYS if k in state})
    return Path(dst).stat().st_size
