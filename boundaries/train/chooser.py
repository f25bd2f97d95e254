"""Fitting the placement chooser (:mod:`boundaries.detection.chooser`) at the end of training.

The chooser learns from detections on held-out music: on the training mixes the detector's
humps and placements are those of music it learned, sharper than on new music. So its rows come
from the validation folders and ``track.chooser_dirs``: every detection there whose hump gives
it a second candidate, one row per candidate, labelled by whether that candidate was placed
within ``chooser.LABEL_S`` of a crossover. scikit-learn's standardised logistic regression fits
them (the fit is stored as four arrays). It is kept only if, with each folder's detections
placed by a chooser fitted on the other folders, mean F@0.5/F@3 over all files rises. That check
holds out folders, not music: folders mixed from the same tracks let it pass a chooser that
learned those tracks (session 26: it passed on the shipped validation folders and lost on
folders of other packages, MODEL_CARD.md), so give it folders of different packages.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from boundaries.detection import chooser, inference, placement
from boundaries.score import metrics

C = 1.0  # scikit-learn's default regularisation: not tuned (MODEL_CARD.md, session 26)


@dataclass
class FileDetections:
    """One held-out file: its detections, their humps and candidates, and its crossovers."""

    folder: str
    found_s: np.ndarray
    strengths: np.ndarray
    end_s: float
    humps: list
    candidates: list  # per detection: side -> chooser.Candidate
    truth_s: np.ndarray
    duration_s: float


def gather(detector, tracks, cfg) -> list:
    """:class:`FileDetections` of each annotated track, decoded as ``boundaries detect`` does."""
    out = []
    for track in tracks:
        acts = detector.frame_activations(track.mel)
        found, strengths = inference.detections(acts, cfg)
        curve = inference.smoothed(acts, cfg.peaks, cfg.fps)
        local = placement.LocalFrames(track.mel, detector.fps)
        humps = [chooser.hump(curve, t, s, cfg.fps) for t, s in zip(found, strengths)]
        cands = [chooser.candidates(local, h, detector.placement, detector.locator,
                                    detector.placing, curve, cfg.fps) for h in humps]
        out.append(FileDetections(str(Path(track.audio_path).parent), found, strengths,
                                  inference.end_s(acts, cfg), humps, cands,
                                  np.asarray(track.times_s, dtype=float), track.duration_s))
    return out


def rows(files) -> tuple:
    """``(X, y)``: one row per candidate of every detection that has two or more."""
    X, y = [], []
    for f in files:
        for hump, cands in zip(f.humps, f.candidates):
            if len(cands) < 2 or "base" not in cands:
                continue
            for side in cands:
                X.append(chooser.features(hump, cands, side))
                near = np.abs(f.truth_s - cands[side].placed_s) if len(f.truth_s) else [np.inf]
                y.append(np.min(near) <= chooser.LABEL_S)
    return np.array(X).reshape(-1, chooser.N_FEATURES), np.array(y, dtype=int)


def fit(X: np.ndarray, y: np.ndarray) -> "chooser.Chooser | None":
    """The standardised logistic regression of ``y`` on ``X`` as a :class:`chooser.Chooser`;
    None without both labels to learn from."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(set(y.tolist())) < 2:
        return None
    scaler = StandardScaler().fit(X)
    model = LogisticRegression(C=C, max_iter=2000).fit(scaler.transform(X), y)
    return chooser.Chooser({"mean": scaler.mean_, "scale": scaler.scale_,
                            "coef": model.coef_[0], "intercept": model.intercept_})


def estimates(f: FileDetections, picker) -> np.ndarray:
    """The file's boundaries with each detection at the candidate ``picker`` picks (a
    :class:`chooser.Chooser`; None: the first candidate, placement as without a chooser)."""
    if len(f.found_s) == 0:
        return np.zeros(0)
    moved = [chooser.placed_time(t, hump, cands, picker)
             for t, hump, cands in zip(f.found_s, f.humps, f.candidates)]
    return inference.placed(np.array(moved), f.found_s, f.strengths, f.end_s)[0]


def objective(files, picked: list, cfg) -> float:
    """Mean over files of (F@0.5 + F@3) / 2."""
    return float(np.mean([np.mean([
        metrics.boundary_scores(f.truth_s, est, f.duration_s, w, trim=cfg.eval.trim,
                                beta=cfg.eval.beta)["f"] for w in (0.5, 3.0)])
        for f, est in zip(files, picked)]))


def cross_fitted(files, cfg) -> tuple:
    """``(without, with)``: the objective without a chooser and with each folder's detections
    picked by a chooser fitted on the other folders' (one folder: no estimate, ``with`` None)."""
    folders = sorted({f.folder for f in files})
    without = objective(files, [estimates(f, None) for f in files], cfg)
    if len(folders) < 2:
        return without, None
    fitted = {k: fit(*rows([f for f in files if f.folder != k])) for k in folders}
    picked = [estimates(f, fitted[f.folder]) for f in files]
    return without, objective(files, picked, cfg)


def check_folders(cfg) -> None:
    """One clear error for a ``track.chooser_dirs`` folder that is not there."""
    from boundaries.errors import BoundariesError

    if not cfg.track.chooser:
        return
    for folder in cfg.track.chooser_dirs:
        if not Path(folder).expanduser().is_dir():
            raise BoundariesError(f"{folder}: track.chooser_dirs names no folder; build it "
                                  "(MODEL_CARD.md, 'Training data') or leave it out")


def held_out_folders(cfg, log=print):
    """``(folder, tracks)`` for each of ``track.chooser_dirs``, one folder at a time (so no
    more than one folder's log-mel is held at once); a file left out is logged with its
    reason."""
    from boundaries.workflows import load_annotated

    for folder in cfg.track.chooser_dirs:
        data, skipped = load_annotated(folder, cfg, progress=False)
        for reason in skipped.values():
            log(f"chooser: skipped: {reason}")
        yield folder, data


def fit_chooser_stage(detector, val_data, cfg, log=print):
    """Sets ``detector.chooser`` to one fitted on the detections of ``val_data`` and of
    ``track.chooser_dirs``, if it raises the cross-fitted objective (:func:`cross_fitted`)."""
    detector.chooser = None
    if detector.placement is None or cfg.track.placement_centroid_s > 0:
        log("chooser: needs the placement stage at its best frame (placement_centroid_s 0)")
        return
    files = gather(detector, val_data, cfg)
    for folder, data in held_out_folders(cfg, log):
        log(f"chooser: {len(data)} files of {folder}")
        files += gather(detector, data, cfg)
    without, crossed = cross_fitted(files, cfg)
    if crossed is None or crossed <= without:
        log(f"chooser: not kept (objective {without:.4f} without, "
            f"{'no second folder' if crossed is None else f'{crossed:.4f} cross-fitted'})")
        return
    detector.chooser = fit(*rows(files))
    log(f"chooser: kept (objective {without:.4f} without, {crossed:.4f} cross-fitted, "
        f"{len({f.folder for f in files})} folders)")
