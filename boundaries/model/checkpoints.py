"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``, or read into
numpy arrays without torch for inference.

``weights_only`` refuses pickled code, so a crafted checkpoint cannot run anything on load. A
checkpoint holds ``{"format", "config", "model", "epoch", "best_metric", ...}``, so the file alone
rebuilds the model with its feature, label and peak-picking settings.

:func:`read_checkpoint` reads the same file with no torch at all: the track-change detector runs
on numpy, and importing torch would be most of ``boundaries detect``'s start-up (issue 16). It
reads torch's zip format (``<name>/data.pkl``, whose persistent ids name raw storages at
``<name>/data/<key>``; the format of ``torch.save`` since 1.6) with an unpickler that, like
``weights_only``, knows only tensors, ordered dicts and plain data, and refuses any other global.
"""

import collections
import contextlib
import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from boundaries.atomic import atomic_path
from boundaries.config import config_from_dict
from boundaries.errors import BoundariesError, CheckpointError, first_line

FORMAT = "boundaries-checkpoint-v1"


def save_checkpoint(path, state: dict) -> None:
    """Write ``state`` (plus the format tag) to ``path`` atomically; numpy arrays in it (a state
    from :func:`read_checkpoint`) are stored as tensors."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(_as_tensors({"format": FORMAT, **state}), tmp)


def _as_tensors(value):
    if isinstance(value, np.ndarray):
        import torch

        return torch.from_numpy(value if value.flags.c_contiguous else value.copy())  # 0-d too
    if isinstance(value, dict):
        return type(value)((k, _as_tensors(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_as_tensors(v) for v in value)
    return value


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint with torch (tensors); every failure is one :class:`CheckpointError`."""
    import torch

    path = _existing(path)
    with _read_errors(path):
        state = torch.load(path, map_location=map_location, weights_only=True)
    return _checked_format(state, path)


def read_checkpoint(path) -> tuple:
    """``(state, sha256)``: a checkpoint read without torch, its tensors as numpy arrays, and
    the hash of its bytes (the model id), from one read of the file."""
    path = _existing(path)
    with _read_errors(path):
        data = path.read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            state = _ArrayUnpickler(archive).load()
    return _checked_format(state, path), hashlib.sha256(data).hexdigest()


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train one with train.py or check "
                              "the path")
    return path


@contextlib.contextmanager
def _read_errors(path: Path):
    try:
        yield
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused to load: it holds objects other than tensors and "
                              f"plain data ({first_line(exc)}); only load "
                              "checkpoints written by boundaries") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: corrupt or not a PyTorch checkpoint "
                              f"({first_line(exc, 120)})") from None


def _checked_format(state, path: Path) -> dict:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a boundaries checkpoint (format tag missing)")
    return state


_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                   "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
                   "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
                   "BoolStorage": np.bool_}


class _ArrayUnpickler(pickle.Unpickler):
    """torch's ``data.pkl`` -> the same objects, every tensor a numpy array (see the module
    docstring); any global other than tensors' and ``OrderedDict`` is refused."""

    def __init__(self, archive: zipfile.ZipFile):
        pickled = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
        if pickled is None:
            raise ValueError("no data.pkl in the archive")
        self.prefix = pickled[:-len("data.pkl")]
        names = set(archive.namelist())
        order = archive.read(self.prefix + "byteorder") if self.prefix + "byteorder" in names \
            else b"little"
        self.byte_order = "<" if order.strip() == b"little" else ">"
        self.archive, self.storages = archive, {}
        super().__init__(io.BytesIO(archive.read(pickled)))

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name]).newbyteorder(self.byte_order)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], np.dtype)):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        _, dtype, key, _, _ = pid
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            self.storages[key] = np.frombuffer(raw, dtype=dtype)
        return self.storages[key]


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None,
                    metadata=None):
    """``torch._utils._rebuild_tensor_v2`` for numpy: a strided view of the storage, copied
    (native byte order, writable). A view reaching outside its storage, or holding more
    elements than it (what a crafted file would ask for), is refused before any memory is read."""
    size, stride = tuple(size), tuple(stride)
    if not (isinstance(storage, np.ndarray) and isinstance(offset, int) and offset >= 0
            and len(size) == len(stride) and all(isinstance(v, int) and v >= 0
                                                 for v in size + stride)):
        raise pickle.UnpicklingError("malformed tensor")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= len(storage) or int(np.prod(size)) > len(storage):
        raise ValueError(f"a tensor of shape {size} reaches outside its storage")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride])
    return view.astype(storage.dtype.newbyteorder("="))


def load_model(path, device="cpu"):
    """``(model, cfg, state)`` from a checkpoint (see :func:`model_from_state`)."""
    state, _ = read_checkpoint(path)
    model, cfg = model_from_state(state, path, device)
    return model, cfg, state


def model_from_state(state: dict, path, device="cpu"):
    """``(model, cfg)``: the model of a checkpoint's state in eval mode. The track-change
    detector runs on numpy (no torch is imported, ``device`` is not used); a CNN goes to
    ``device`` (``auto``: CUDA when available)."""
    broken = _first_non_finite({k: state[k] for k in WEIGHT_KEYS if k in state})
    if broken:
        raise CheckpointError(f"{path}: weights hold NaN or infinite values ({broken}); the "
                              "training diverged: retrain (a lower train.lr) or use another "
                              "checkpoint")
    try:
        cfg = config_from_dict(state["config"])
        if state.get("kind") == "track_change":
            from boundaries.model.track_detector import from_checkpoint_state

            return from_checkpoint_state(state, cfg), cfg
        from boundaries.detection.inference import resolve_device
        from boundaries.model.networks import build_model

        model = build_model(cfg)
        model.load_state_dict(_as_tensors(state["model"]))
    except (KeyError, RuntimeError, BoundariesError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not match this version of boundaries "
                              f"({first_line(exc)})") from None
    return model.to(resolve_device(device)).eval(), cfg


WEIGHT_KEYS = ("model", "embedding", "fold_embeddings", "trees", "placement", "context_trees",
               "overlap_trees", "sequence", "locator", "placement_draws", "chooser", "expected_f",
               "rescorer")


def _first_non_finite(value, where=""):
    """The path of the first float array holding NaN or inf in ``value``, or None."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        bad = isinstance(value, np.ndarray) and value.dtype.kind == "f" and \
            not bool(np.isfinite(value).all())
        return where.lstrip("/") if bad else None
    for key, item in items:
        found = _first_non_finite(item, f"{where}/{key}")
        if found:
            return found
    return None


# every stage's arrays (a stage left out here would be dropped from the shipped file unseen)
SHIPPED_KEYS = ("config", "epoch", "best_metric", "best_epoch", "history", "class_weight", "kind",
                "validation", "environment", *WEIGHT_KEYS)

# The libraries whose floats a trained model depends on. The same command on the same data gives
# the same arrays on one machine; on a fresh one it gave other trees (MODEL_CARD.md, session 27),
# and without this record a later run could not tell a library's change from the data's.
RECORDED_PACKAGES = ("numpy", "scikit-learn", "scipy", "torch", "librosa", "soundfile", "numba")


def training_environment() -> dict:
    """``{"python": version, "machine": architecture, package: version}`` of this process
    (``"absent"`` for a package it lacks), stored in a checkpoint as ``"environment"`` by
    training."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version(), "machine": platform.machine()}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def export_model(src, dst) -> int:
    """Copy a trained checkpoint without its optimizer, scheduler and RNG state (a model to ship
    or share: a third of the size, and nothing to resume from). Returns the bytes written."""
    state = load_checkpoint(src)
    save_checkpoint(dst, {k: state[k] for k in SHIPPED_KEYS if k in state})
    return Path(dst).stat().st_size
