"""Scoring a model on annotated files: one code path for validation, tuning and evaluate.py.

Per file: frame scores (probabilities against frames within ``eval.frame_tolerance_s`` of a
reference boundary) beside the naive all-negative model, and boundary hit rates at each window.
The top-level figures are means over files (the field's convention); ``micro`` holds pooled
frame scores and hit totals over all files.
"""

import json
import logging
from pathlib import Path

import numpy as np

from boundaries.data import annotations, labels
from boundaries.detection import inference
from boundaries.errors import printable
from boundaries.score import metrics

logger = logging.getLogger(__name__)

PEAK_THRESHOLDS = np.round(np.arange(0.01, 0.61, 0.01), 2)
FRAME_THRESHOLDS = np.round(np.r_[np.arange(0.05, 0.96, 0.05), 0.97, 0.98, 0.99], 2)


def frame_labels(track, cfg) -> np.ndarray:
    return labels.make_labels(track.times_s, track.n_frames, sr=cfg.audio.sr,
                              hop_length=cfg.features.hop_length,
                              tolerance_s=cfg.eval.frame_tolerance_s)


def collect_activations(model, data, cfg, device) -> list:
    return [inference.activations_for(model, track.mel, cfg, device) for track in data]


def score(data, activations, cfg, peak_threshold=None, frame_threshold=None,
          estimates=None) -> dict:
    """Scores of ``activations`` (one array per track of ``data``) against the annotations;
    ``estimates`` (one ``(times_s, strengths)`` per track) replaces peak picking when given, e.g.
    boundaries refined by the detector's placement stage."""
    peak_threshold = cfg.peaks.threshold if peak_threshold is None else peak_threshold
    frame_threshold = cfg.eval.frame_threshold if frame_threshold is None else frame_threshold
    per_file, pooled_probs, pooled_labels = [], [], []
    hits = {w: np.zeros(3, dtype=np.int64) for w in cfg.eval.windows}
    for i, (track, acts) in enumerate(zip(data, activations)):
        truth = frame_labels(track, cfg)
        est_s, strengths = inference.pick(acts, cfg.peaks, cfg.fps, peak_threshold) \
            if estimates is None else estimates[i]
        row = {"file": str(track.audio_path), "duration_s": track.duration_s,
               "n_ref": int(len(track.times_s)), "n_est": int(len(est_s)),
               "frame": metrics.frame_scores(acts, truth, frame_threshold, cfg.eval.beta),
               "naive": metrics.naive_scores(truth, cfg.eval.beta), "boundary": {}}
        for w in cfg.eval.windows:
            row["boundary"][_key(w)] = metrics.boundary_scores(
                track.times_s, est_s, track.duration_s, w, trim=cfg.eval.trim, beta=cfg.eval.beta)
            hits[w] += metrics.hit_counts(track.times_s, est_s, w)
        row["estimates_s"] = [round(float(t), 3) for t in est_s]
        per_file.append(row)
        pooled_probs.append(acts)
        pooled_labels.append(truth)
    return _summarize(per_file, pooled_probs, pooled_labels, hits, cfg,
                      peak_threshold, frame_threshold)


def _key(window: float) -> str:
    return f"{float(window):g}" if float(window) != int(window) else f"{float(window):.1f}"


def _mean(rows, section, name) -> float:
    values = [row[section][name] for row in rows]
    return float(np.nanmean(values)) if values and not np.all(np.isnan(values)) else float("nan")


def _summarize(per_file, pooled_probs, pooled_labels, hits, cfg, peak_threshold, frame_threshold):
    frame_names = ["precision", "recall", "f1", "accuracy", "roc_auc", "pr_auc"]
    result = {"n_files": len(per_file), "peak_threshold": float(peak_threshold),
              "frame_threshold": float(frame_threshold),
              "frame_tolerance_s": cfg.eval.frame_tolerance_s, "trim": cfg.eval.trim,
              "frame": {n: _mean(per_file, "frame", n) for n in frame_names},
              "naive": {n: _mean(per_file, "naive", n) for n in frame_names},
              "boundary": {}, "micro": {"boundary": {}}, "per_file": per_file}
    for w in cfg.eval.windows:
        rows = [r["boundary"][_key(w)] for r in per_file]
        result["boundary"][_key(w)] = {n: float(np.nanmean([r[n] for r in rows])) if rows else
                                       float("nan") for n in ("precision", "recall", "f")}
        n_hit, n_ref, n_est = (int(v) for v in hits[w])
        p, r = n_hit / max(n_est, 1), n_hit / max(n_ref, 1)
        result["micro"]["boundary"][_key(w)] = {"hits": n_hit, "n_ref": n_ref, "n_est": n_est,
                                               "precision": p, "recall": r,
                                               "f": metrics.f_measure(p, r, cfg.eval.beta)}
    if pooled_probs:
        probs, truth = np.concatenate(pooled_probs), np.concatenate(pooled_labels)
        result["micro"]["frame"] = metrics.frame_scores(probs, truth, frame_threshold,
                                                        cfg.eval.beta)
        result["micro"]["naive"] = metrics.naive_scores(truth, cfg.eval.beta)
    return result


NOVELTY_WEIGHTS = (0.0, 0.25, 0.5, 0.75)


def tune(model, data, cfg, device, novelty_weights=NOVELTY_WEIGHTS):
    """``cfg`` with the novelty weight, peak threshold and frame threshold that maximise
    validation F at ``eval.tune_window`` on ``data``; returns ``(cfg, activations)``. For the
    track-change detector: its threshold, minimum track length and placement prior."""
    import dataclasses

    if hasattr(model, "frame_activations"):
        from boundaries.train.track_change import tune_track_detector

        return tune_track_detector(model, data, cfg)

    cnn = [inference.activations_for(model, t.mel, cfg.replace(
        peaks=dataclasses.replace(cfg.peaks, novelty_weight=0.0)), device) for t in data]
    weight, peak, frame, acts = best_candidate(
        data, cfg, ((w, [inference.blend_novelty(a, t.mel, cfg, w) for a, t in zip(cnn, data)])
                    for w in novelty_weights))
    tuned = cfg.replace(peaks=dataclasses.replace(cfg.peaks, threshold=peak,
                                                  novelty_weight=weight),
                        eval=dataclasses.replace(cfg.eval, frame_threshold=frame))
    return tuned, acts


def best_candidate(data, cfg, candidates):
    """``(key, peak_threshold, frame_threshold, activations)`` of the candidate whose
    validation F at ``eval.tune_window`` is highest, each with its own tuned thresholds.

    ``candidates`` yields ``(key, activations)`` pairs (lazily: one set in memory at a time)."""
    best = None
    for key, acts in candidates:
        peak, frame = tune_thresholds(data, acts, cfg)
        f = score(data, acts, cfg, peak, frame)["boundary"][_key(cfg.eval.tune_window)]["f"]
        if best is None or f > best[0] + 1e-12:
            best = (f, key, peak, frame, acts)
    return best[1:]


def tune_thresholds(data, activations, cfg) -> tuple:
    """Peak threshold maximising mean F at ``eval.tune_window`` and frame threshold maximising
    pooled frame F1, both on these (validation) files. Never tune on the test set."""
    window = cfg.eval.tune_window
    best_peak, best_f = cfg.peaks.threshold, -1.0
    for threshold in PEAK_THRESHOLDS:
        f = np.mean([metrics.boundary_scores(
            t.times_s, inference.pick(a, cfg.peaks, cfg.fps, threshold)[0], t.duration_s,
            window, trim=cfg.eval.trim)["f"] for t, a in zip(data, activations)])
        if f > best_f + 1e-12:
            best_peak, best_f = float(threshold), float(f)
    return best_peak, tune_frame_threshold(data, activations, cfg)


def tune_frame_threshold(data, activations, cfg) -> float:
    """The probability threshold maximising pooled frame F1 on these (validation) files."""
    probs = np.concatenate(activations)
    truth = np.concatenate([frame_labels(t, cfg) for t in data])
    f1s = [metrics.frame_scores(probs, truth, th, cfg.eval.beta)["f1"] for th in FRAME_THRESHOLDS]
    return float(FRAME_THRESHOLDS[int(np.argmax(f1s))])


def recall_by_kind(data, estimates) -> dict:
    """Kind -> ``{"n", "0.5", "3.0"}``: how many crossovers of each transition kind the files'
    make_mixes.py manifests list, and the share with an estimate (one array of times per file)
    within 0.5 s and 3 s; files no manifest lists are left out ({} when none is listed)."""
    found = {}
    for record, est in zip(annotations.mix_records(t.audio_path for t in data), estimates):
        for transition in (record or {}).get("transitions", []):
            gap = np.min(np.abs(np.asarray(est) - transition["time_s"])) if len(est) else np.inf
            found.setdefault(transition["kind"], []).append((gap <= 0.5, gap <= 3.0))
    return {kind: {"n": len(hits), "0.5": float(np.mean([a for a, _ in hits])),
                   "3.0": float(np.mean([b for _, b in hits]))}
            for kind, hits in sorted(found.items())}


def format_recall_by_kind(by_kind: dict) -> str:
    return "recall within 0.5 s / 3 s by transition kind (crossovers): " + ", ".join(
        f"{kind} {r['0.5']:.2f} / {r['3.0']:.2f} ({r['n']})" for kind, r in by_kind.items())


def format_table(result: dict) -> str:
    """A plain-text table: one row per file, then the mean, the micro totals and the naive model."""
    windows = list(result["boundary"])
    head = f"{'file':<40} {'n_ref':>5} {'n_est':>5} {'PR-AUC':>7} {'ROC-AUC':>7} {'F1':>6}" + \
        "".join(f" {'F@' + w:>7}" for w in windows)
    lines = [head, "-" * len(head)]
    for row in result["per_file"]:
        name = printable(Path(row["file"]).name)[-40:]
        lines.append(f"{name:<40} {row['n_ref']:>5} {row['n_est']:>5} "
                     f"{row['frame']['pr_auc']:>7.3f} {row['frame']['roc_auc']:>7.3f} "
                     f"{row['frame']['f1']:>6.3f}" +
                     "".join(f" {row['boundary'][w]['f']:>7.3f}" for w in windows))
    lines.append("-" * len(head))
    for label, frame in (("mean over files", result["frame"]), ("naive all-negative",
                                                                  result["naive"])):
        bounds = "".join(f" {result['boundary'][w]['f'] if frame is result['frame'] else 0.0:>7.3f}"
                         for w in windows)
        lines.append(f"{label:<40} {'':>5} {'':>5} {frame['pr_auc']:>7.3f} {frame['roc_auc']:>7.3f}"
                     f" {frame['f1']:>6.3f}{bounds}")
    lines.append(f"frame accuracy {result['frame']['accuracy']:.4f} vs naive "
                 f"{result['naive']['accuracy']:.4f} (frames within +-"
                 f"{result['frame_tolerance_s']} s of a boundary are positive); "
                 + ("peaks kept per file by the expected-F decoding"
                    if result.get("decoder") == "expected_f"
                    else f"peak threshold {result['peak_threshold']:.2f}")
                 + f", frame threshold {result['frame_threshold']:.2f}")
    for w in windows:
        m = result["micro"]["boundary"][w]
        lines.append(f"+-{w} s: mean P {result['boundary'][w]['precision']:.3f} R "
                     f"{result['boundary'][w]['recall']:.3f} F {result['boundary'][w]['f']:.3f} | "
                     f"micro {m['hits']} hits of {m['n_ref']} boundaries, {m['n_est']} detections")
    if result.get("recall_by_kind"):
        lines.append(format_recall_by_kind(result["recall_by_kind"]))
    return "\n".join(lines)


def flat_metrics(result: dict) -> dict:
    """Dotted keys (``frame.pr_auc``, ``boundary.3.0.f1``...) for the JSON top level."""
    flat = {"n_files": result["n_files"]}
    for section in ("frame", "naive"):
        for name, value in result[section].items():
            flat[f"{section}.{name}"] = value
    for w, scores in result["boundary"].items():
        for name, value in scores.items():
            flat[f"boundary.{w}.{'f1' if name == 'f' else name}"] = value
    return flat


def json_safe(value):
    """NaN -> None recursively: strict JSON has no NaN (an undefined AUC is reported as null)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def to_json(result: dict) -> str:
    return json.dumps(json_safe({**flat_metrics(result), **result}), indent=1)


def write_plots(out_dir, data, activations, result, cfg) -> None:
    from boundaries.score import plots

    truth = [frame_labels(t, cfg) for t in data]
    probs, labels_all = np.concatenate(activations), np.concatenate(truth)
    plots.plot_curves(out_dir / "roc.png", out_dir / "pr.png",
                      {"model": (probs, labels_all), "naive": (np.zeros_like(probs), labels_all)})
    fps = cfg.fps
    for track, acts, row in zip(data, activations, result["per_file"]):
        plots.plot_activation(out_dir / f"{track.audio_path.stem}.activation.png", track.mel, acts,
                              fps=fps, est_s=row["estimates_s"], ref_s=track.times_s,
                              title=track.audio_path.name)
