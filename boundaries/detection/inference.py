"""Model -> per-frame activations over whole files, in chunks that equal whole-file inference.

A file is cut into windows of ``chunk + 2 * context`` frames that never reach past the file's
ends (the first starts at frame 0, the last ends at the last frame), so edge frames see exactly the
zero padding a whole-file pass would give them; every other frame keeps at least ``context``
frames of real input on both sides. With ``context`` >= the model's half receptive field the
result equals one pass over the whole file, in bounded memory.
"""

import numpy as np

from boundaries.detection import expected_f as expected_f_decoding
from boundaries.detection import peaks
from boundaries.signal import timebase
from boundaries.signal.filters import running_mean


def resolve_device(name: str = "auto"):
    """``auto`` -> CUDA when available, else CPU (pyannote's Device.AUTO): a ``torch.device``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from boundaries.errors import BoundariesError

        raise BoundariesError("--device cuda was asked for but no CUDA GPU is visible; use "
                              "--device cpu or auto")
    return device


def chunk_windows(n_frames: int, chunk_frames: int, context_frames: int):
    """``(window_start, core_start, core_stop)`` triples covering ``[0, n_frames)``."""
    length = chunk_frames + 2 * context_frames
    if n_frames <= length:
        return [(0, 0, n_frames)]
    windows = []
    for core in range(0, n_frames, chunk_frames):
        start = min(max(core - context_frames, 0), n_frames - length)
        windows.append((start, core, min(core + chunk_frames, n_frames)))
    return windows


def predict_activations(model, mel: np.ndarray, *, chunk_frames: int = 5168,
                        context_frames: int = 646, batch_size: int = 4,
                        device="cpu", amp: bool = False) -> np.ndarray:
    """Boundary probabilities for every frame of ``mel``.

    Parameters
    ----------
    model : BoundaryCNN (eval mode)
    mel : np.ndarray [shape=(n_mels, n_frames)]
    chunk_frames, context_frames : int
        Core length of each chunk, and context each side (raised to the model's own need).

    Returns
    -------
    activations : np.ndarray [shape=(n_frames,), dtype=float32], in [0, 1]
    """
    import torch

    with torch.no_grad():
        return _predict(model, mel, chunk_frames, context_frames, batch_size,
                        torch.device(device), amp)


def _predict(model, mel, chunk_frames, context_frames, batch_size, device, amp):
    import torch

    context_frames = max(context_frames, getattr(model, "context_frames", 0))
    n_frames = mel.shape[1]
    windows = chunk_windows(n_frames, chunk_frames, context_frames)
    length = min(n_frames, chunk_frames + 2 * context_frames)
    out = np.empty(n_frames, dtype=np.float32)
    for i in range(0, len(windows), batch_size):
        group = windows[i:i + batch_size]
        batch = np.stack([mel[:, s:s + length] for s, _, _ in group])
        x = torch.from_numpy(batch).to(device, non_blocking=True)
        use_amp = amp and device.type == "cuda"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            probs = torch.sigmoid(model(x).float()).cpu().numpy()
        for row, (start, core, stop) in zip(probs, group):
            out[core:stop] = row[core - start:stop - start]
    return out


def inference_frames(cfg) -> tuple:
    """``(chunk_frames, context_frames)`` from the config's seconds."""
    sr, hop = cfg.audio.sr, cfg.features.hop_length
    return (max(1, timebase.seconds_to_frame_count(cfg.eval.chunk_s, sr=sr, hop_length=hop)),
            timebase.seconds_to_frame_count(cfg.eval.context_s, sr=sr, hop_length=hop))


def activations_for(model, mel, cfg, device) -> np.ndarray:
    """The detector's activation: the CNN's probabilities, blended with Foote novelty when
    ``peaks.novelty_weight`` > 0."""
    from boundaries.signal.features import network_input

    if hasattr(model, "frame_activations"):  # the track-change detector brings its own features
        return model.frame_activations(mel)
    chunk, context = inference_frames(cfg)
    acts = predict_activations(model, network_input(mel, cfg.model), chunk_frames=chunk,
                               context_frames=context, device=device, amp=cfg.train.amp)
    return blend_novelty(acts, mel, cfg)


def blend_novelty(acts, mel, cfg, weight=None) -> np.ndarray:
    weight = cfg.peaks.novelty_weight if weight is None else weight
    if weight == 0:
        return acts
    from boundaries.signal.novelty import foote_activations

    novelty = foote_activations(mel, fps=cfg.fps,
                                kernel_s=cfg.peaks.novelty_kernel_s)
    return ((1 - weight) * acts + weight * novelty).astype(np.float32)


def smoothed(activations, p, fps: float) -> np.ndarray:
    """The curve peaks are picked on: ``activations`` averaged over +-``p.smooth_s`` (the
    window cut at the file's ends), or ``activations`` themselves when it is 0."""
    half = timebase.frames_in(p.smooth_s, fps)
    if half == 0:
        return activations
    return running_mean(activations, half, half)


def pick(activations, p, fps: float, threshold=None):
    """``(times_s, strengths)`` from activations at ``fps`` with the peak settings ``p`` (a
    :class:`boundaries.config.PeakConfig`; ``threshold`` replaces its own); with
    ``p.smooth_s`` the peaks, their humps and strengths are those of :func:`smoothed`."""
    activations = smoothed(activations, p, fps)
    times, strengths = peaks.pick_peaks(
        activations, fps=fps, threshold=p.threshold if threshold is None else threshold,
        max_window_s=p.max_window_s, avg_before_s=p.avg_before_s, avg_after_s=p.avg_after_s,
        min_distance_s=p.min_distance_s, subtract_local_mean=p.subtract_local_mean)
    return _centred(activations, times, p, fps), strengths


def _centred(activations, times_s, p, fps: float) -> np.ndarray:
    """Peaks at the middle of their humps when ``p.plateau_level`` is set, never moved to
    within ``EDGE_S`` of an end they were not already within."""
    if not p.plateau_level or len(times_s) == 0:
        return times_s
    centres = peaks.plateau_centres(activations, times_s, fps=fps, level=p.plateau_level)
    end_s = (len(activations) - 1) / fps
    return np.clip(centres, np.minimum(times_s, EDGE_S), np.maximum(times_s, end_s - EDGE_S))


# No boundary within this of either end of a file: a segment that short is no track (and one at
# 0 or at the end is a zero-length segment, which mir_eval and every DJ export reject).
EDGE_S = 1.0


def decode(activations, cfg, threshold=None, n_tracks=None):
    """``(times_s, strengths)`` from activations: peak picking at the threshold, or, with
    ``n_tracks`` known, exactly ``n_tracks - 1`` crossovers (:func:`peaks.best_k_peaks`)."""
    if n_tracks is None:
        return pick(activations, cfg.peaks, cfg.fps, threshold)
    activations = smoothed(activations, cfg.peaks, cfg.fps)
    times, strengths = peaks.best_k_peaks(
        activations, fps=cfg.fps, k=n_tracks - 1,
        min_distance_s=max(cfg.peaks.min_distance_s, cfg.peaks.max_window_s),
        edge_s=EDGE_S)
    return _centred(activations, times, cfg.peaks, cfg.fps), strengths


def boundaries_for(model, mel, cfg, device, threshold=None, n_tracks=None, acts=None):
    """``(activations, times_s, strengths)``: the one path from log-mel to boundaries. With
    ``n_tracks`` known, exactly ``n_tracks - 1`` crossovers (:func:`peaks.best_k_peaks`) instead
    of a threshold; with neither, a model's expected-F decoding where it has one
    (:func:`detections`). A model with a placement stage (the track-change detector) then moves
    each to its instant. ``acts``: :func:`activations_for` of this ``mel``, where already at
    hand."""
    acts = activations_for(model, mel, cfg, device) if acts is None else acts
    times, strengths = detections(acts, cfg, threshold, n_tracks,
                                  getattr(model, "expected_f", None), rescore_for(model, mel))
    if getattr(model, "placement", None) is not None and len(times):
        moved = model.refine(mel, times, smoothed(acts, cfg.peaks, cfg.fps), strengths)
        times, strengths = placed(moved, times, strengths, end_s(acts, cfg))
    return acts, times, strengths


def rescore_for(model, mel):
    """``(acts, times_s, strengths) -> (P(hit), P(fine hit))`` of a detector with a candidate
    re-scorer (:mod:`rescorer`) for this ``mel``, else None."""
    if getattr(model, "rescorer", None) is None:
        return None
    return lambda acts, times, strengths: model.candidate_probabilities(mel, acts, times,
                                                                       strengths)


def detections(acts, cfg, threshold=None, n_tracks=None, expected_f=None, rescore=None):
    """``(times_s, strengths)``: :func:`decode`, without any within ``EDGE_S`` of an end. With
    ``expected_f`` (:class:`expected_f.ExpectedF`) and neither a threshold nor a track count
    given, the peaks above its candidate threshold that it keeps for this file, by their
    strengths or, given ``rescore`` (:func:`rescore_for`), by the re-scorer's probabilities."""
    per_file = expected_f_decoding.in_use(expected_f, threshold, n_tracks)
    if per_file:
        threshold = expected_f_decoding.CANDIDATE_THRESHOLD
    times, strengths = decode(acts, cfg, threshold, n_tracks)
    end = end_s(acts, cfg)
    inside = (times >= EDGE_S) & (times <= end - EDGE_S)  # best-K keeps to this already
    times, strengths = np.asarray(times)[inside], np.asarray(strengths)[inside]
    if per_file:
        keep = expected_f.keep(strengths, None if rescore is None or not len(times)
                               else rescore(acts, times, strengths))
        times, strengths = times[keep], strengths[keep]
    return times, strengths


def end_s(acts, cfg) -> float:
    """The time of the last frame of ``acts``."""
    return (len(acts) - 1) / cfg.fps


def placed(moved, found, strengths, end_s):
    """Detections at their placed times, sorted and distinct. Each moves by at most
    placement.SEARCH_S, so with a small minimum distance two can land on one frame: the later
    one then stays where it was found, so a best-K decoding keeps its K - 1 crossovers."""
    moved = np.clip(moved, EDGE_S, max(EDGE_S, end_s - EDGE_S))
    order = np.argsort(moved, kind="stable")
    moved, found, strengths = moved[order], np.asarray(found)[order], np.asarray(strengths)[order]
    clash = np.r_[False, np.diff(moved) <= 0]
    moved[clash] = found[clash]
    order = np.argsort(moved, kind="stable")
    moved, strengths = moved[order], strengths[order]
    keep = np.r_[True, np.diff(moved) > 0]
    return moved[keep], strengths[keep]
