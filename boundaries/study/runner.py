"""The imbalance study: every imbalance technique on one split, one metric code path, one table.

Rows come from ``configs/studies/default.yaml`` (or ``--config``): the naive all-negative model;
CNN rows, each a set of config overrides (losses, class weights, focal grid, excerpt samplers, label
smearing modes) or a balanced-bagging ensemble (K models on undersampled excerpts, activations
averaged); and classic rows, an imbalanced-learn sampler with a scikit-learn (or
imbalanced-learn ensemble) classifier on frame features (:mod:`boundaries.study.classic`).

Every row is scored by :func:`boundaries.score.evaluation.score` on the same validation files: frame
metrics at probability 0.5 (resampling moves calibration, and this shows it), ROC-AUC and PR-AUC
(threshold-free), and boundary F at each window with the peak threshold tuned per row on these
files, as training does for the CNN. "train s" is a row's resampling, training and prediction;
the classic rows share one set of frame features per seed, computed outside that timing. With
``repeats`` > 1 every row is rerun with seeds 0..N-1 (the split stays fixed) and the table shows
mean and standard deviation.
"""

import csv
import dataclasses
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
import yaml

from boundaries.api import Detector
from boundaries.atomic import write_text
from boundaries.config import from_dict, load_config, safe_yaml
from boundaries.errors import ConfigError
from boundaries.score import evaluation
from boundaries.study import classic
from boundaries.train import loop

logger = logging.getLogger(__name__)

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "f_0.5", "f_3",
           "train_s")
FRAME_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class Strategy:
    name: str
    track: str  # naive | cnn | classic
    overrides: dict = dataclasses.field(default_factory=dict)  # cnn: "section.key" -> value
    ensemble: int = 1  # cnn: K models averaged
    sampler: str = "none"  # classic
    classifier: str = "logreg"  # classic


@dataclasses.dataclass(frozen=True)
class ClassicOptions:
    """The classic track's frame features (``classic:`` in a study config)."""
    stride: int = 4  # every n-th training frame
    max_train_frames: int = 60000  # uniform cap, class ratio kept (bounds the kNN samplers)
    windows_s: tuple[float, ...] = (1.0, 4.0)  # before/after windows of the frame features


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """A study config, typed: ``strategies`` (name -> row mapping), ``config`` (a layer over the
    training config of every row), ``train_overrides`` (dotted keys for CNN rows only) and
    ``classic`` (:class:`ClassicOptions`)."""
    strategies: dict
    config: dict = dataclasses.field(default_factory=dict)
    train_overrides: dict = dataclasses.field(default_factory=dict)
    classic: ClassicOptions = dataclasses.field(default_factory=ClassicOptions)


def read_study_config(path) -> StudyConfig:
    try:
        data = safe_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: study config not found; check --config") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    unknown = set(data) - {"train_overrides", "classic", "strategies", "config"}
    if unknown or not isinstance(data.get("strategies"), dict):
        raise ConfigError(f"{path}: a study config holds 'strategies' (a mapping of rows) and "
                          f"optionally 'config', 'train_overrides', 'classic'; found "
                          f"{sorted(data)}")
    for key in ("config", "train_overrides", "classic"):
        if not isinstance(data.get(key) or {}, dict):
            raise ConfigError(f"{path}: '{key}' must be a mapping")
    classic_options = from_dict(ClassicOptions, data.get("classic") or {}, prefix="classic.")
    return StudyConfig(data["strategies"], data.get("config") or {},
                       data.get("train_overrides") or {}, classic_options)


def parse_strategies(spec: dict, only=None) -> list:
    """:class:`Strategy` rows from the config mapping, in its order (``only``: a subset)."""
    rows = []
    for name, body in spec.items():
        body = dict(body or {})
        track = body.pop("track", None)
        if track == "cnn":
            rows.append(Strategy(name, "cnn", overrides=body.get("overrides", {}) or {},
                                 ensemble=int(body.get("ensemble", 1))))
        elif track == "classic":
            sampler, classifier = body.get("sampler", "none"), body.get("classifier", "logreg")
            if sampler not in classic.SAMPLER_NAMES or classifier not in classic.CLASSIFIER_NAMES:
                raise ConfigError(f"strategy {name}: unknown sampler {sampler!r} or classifier "
                                  f"{classifier!r}; samplers: {', '.join(classic.SAMPLER_NAMES)}"
                                  f"; classifiers: {', '.join(classic.CLASSIFIER_NAMES)}")
            rows.append(Strategy(name, "classic", sampler=sampler, classifier=classifier))
        elif track == "naive":
            rows.append(Strategy(name, "naive"))
        else:
            raise ConfigError(f"strategy {name}: 'track' must be naive, cnn or classic")
    if only:
        known = {r.name: r for r in rows}
        missing = [n for n in only if n not in known]
        if missing:
            raise ConfigError(f"--strategies: unknown {missing}; the study config defines "
                              f"{', '.join(known)}")
        rows = [known[n] for n in only]
    return rows


def row_config(cfg, *overrides: dict, seed: int):
    return load_config(base=cfg, layers=[*overrides, {"train.seed": seed}])


# ---------------------------------------------------------------- one row


def run_cnn(strategy, cfg, study, data, run_root: Path, seed: int):
    """The CNN row: each ensemble member trained on the features the study holds, untuned (the
    study tunes every row's threshold the same way), scored alone (no Foote blend)."""
    activations = []
    for k in range(strategy.ensemble):
        member_cfg = row_config(cfg, study.train_overrides, strategy.overrides,
                                {"peaks.novelty_weight": 0.0}, seed=seed * 1000 + k)
        run_dir = run_root / strategy.name / f"seed{seed}" / f"member{k}"
        loop.train(member_cfg, run_dir, resume=(run_dir / "last.pt").exists(),
                   progress=False, data=data, tune=False)
        member = Detector.from_checkpoint(run_dir / "best.pt", device=cfg.train.device)
        activations.append([member.activations(track.mel) for track in data[1]])
    return [np.mean(members, axis=0) for members in zip(*activations)], {}


def classic_frames(cfg, study, train_data, val_data, seed: int):
    """``(x, y, val_features)`` shared by every classic row of one seed."""
    options = study.classic
    x, y = classic.training_frames(train_data, cfg, stride=options.stride,
                                   max_frames=options.max_train_frames, seed=seed,
                                   windows_s=options.windows_s)
    return x, y, classic.validation_features(val_data, cfg, options.windows_s)


def run_classic(strategy, frames, seed: int):
    x, y, val_features = frames
    model, resampled = classic.fit(x, y, strategy.sampler, strategy.classifier, seed)
    extra = {"train_positive_share_before": float(y.mean()),
             "train_positive_share_after": float(np.mean(resampled)),
             "train_frames_after": int(len(resampled))}
    return classic.predict(model, val_features), extra


def score_row(val_data, activations, cfg) -> dict:
    peak, _ = evaluation.tune_thresholds(val_data, activations, cfg)
    result = evaluation.score(val_data, activations, cfg, peak_threshold=peak,
                              frame_threshold=FRAME_THRESHOLD)
    micro = result["micro"]["frame"]
    scores = {name: micro[name] for name in ("accuracy", "precision", "recall", "f1", "roc_auc",
                                             "pr_auc")}
    for window, values in result["boundary"].items():
        scores[f"f_{float(window):g}"] = values["f"]
    scores["peak_threshold"] = peak
    return scores


# ---------------------------------------------------------------- the study


def run_study(cfg, study: StudyConfig, strategies, out_dir, repeats: int = 1) -> list:
    """Run every strategy ``repeats`` times; write the table, curves and summary into
    ``out_dir``; return one dict per strategy (means, stds, per-seed rows)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = loop.prepare_data(cfg, progress=False)
    train_data, val_data, _ = data
    truth = np.concatenate([evaluation.frame_labels(t, cfg) for t in val_data])
    results, curves, frames = [], {}, {}
    started = time.perf_counter()
    for k, strategy in enumerate(strategies, start=1):
        elapsed = time.perf_counter() - started
        left = f", about {elapsed / (k - 1) * (len(strategies) - k + 1) / 60:.1f} min left" \
            if k > 1 else ""
        logger.info("row %d/%d: %s%s", k, len(strategies), strategy.name, left)
        runs = []
        for seed in range(repeats):
            if strategy.track == "classic" and seed not in frames:  # once per seed, untimed
                frames[seed] = classic_frames(cfg, study, train_data, val_data, seed)
            started = time.perf_counter()
            if strategy.track == "naive":
                acts, extra = [np.zeros(t.n_frames, dtype=np.float32) for t in val_data], {}
            elif strategy.track == "cnn":
                acts, extra = run_cnn(strategy, cfg, study, data, out_dir / "runs", seed)
            else:
                acts, extra = run_classic(strategy, frames[seed], seed)
            seconds = time.perf_counter() - started
            runs.append({**score_row(val_data, acts, cfg), "train_s": seconds, **extra})
            if seed == 0:
                curves[strategy.name] = (np.concatenate(acts), truth)
            logger.info("%-28s seed %d  PR-AUC %.3f  F@3 %.3f  %.1fs", strategy.name, seed,
                        runs[-1]["pr_auc"], runs[-1].get("f_3", np.nan), seconds)
        results.append(summarize_runs(strategy, runs))
    write_report(out_dir, results, curves, cfg, repeats, len(val_data), truth)
    return results


def summarize_runs(strategy, runs) -> dict:
    values = {m: np.array([r.get(m, np.nan) for r in runs], dtype=float) for m in METRICS}
    return {"strategy": strategy.name, "track": strategy.track,
            "detail": describe(strategy),
            "mean": {m: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                     for m, v in values.items()},
            "std": {m: float(np.nanstd(v)) if np.isfinite(v).any() else float("nan")
                    for m, v in values.items()},
            "runs": runs}


def describe(strategy) -> str:
    if strategy.track == "cnn":
        text = ", ".join(f"{k}={v}" for k, v in strategy.overrides.items()) or "defaults"
        return text + (f", ensemble of {strategy.ensemble}" if strategy.ensemble > 1 else "")
    if strategy.track == "classic":
        return f"{strategy.sampler} + {strategy.classifier}"
    return "predicts 0 everywhere"


# ---------------------------------------------------------------- reporting


def _cell(result, metric, repeats) -> str:
    mean, std = result["mean"][metric], result["std"][metric]
    if np.isnan(mean):
        return "n/a"
    digits = 1 if metric == "train_s" else 3
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if repeats > 1 else "")


def markdown_table(results, repeats) -> str:
    header = ["strategy", "track", "what", "accuracy", "precision", "recall", "F1", "ROC-AUC",
              "PR-AUC", "F@0.5 s", "F@3 s", "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [r["strategy"], r["track"], r["detail"]] + [_cell(r, m, repeats) for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_table(results) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["strategy", "track", "detail"] + [f"{m}_{s}" for m in METRICS
                                                       for s in ("mean", "std")])
    for r in results:
        writer.writerow([r["strategy"], r["track"], r["detail"]] +
                        [f"{r[s][m]:.6g}" for m in METRICS for s in ("mean", "std")])
    return buffer.getvalue()


def best_rows_text(results) -> str:
    lines = []
    for metric in METRICS[:-1]:
        scored = [r for r in results if not np.isnan(r["mean"][metric])]
        if not scored:
            continue
        best = max(scored, key=lambda r: r["mean"][metric])
        lines.append(f"best {metric}: {best['strategy']} ({best['mean'][metric]:.3f})")
    fastest = min(results, key=lambda r: r["mean"]["train_s"])
    lines.append(f"fastest: {fastest['strategy']} ({fastest['mean']['train_s']:.1f} s)")
    return "\n".join(lines)


def write_report(out_dir: Path, results, curves, cfg, repeats, n_files, truth) -> None:
    from boundaries.score.plots import plot_curves

    naive_accuracy = 1 - float(np.mean(truth))
    intro = (f"Imbalance study: {len(results)} strategies, {repeats} seed(s), validation "
             f"{n_files} files, {len(truth)} frames, positive share {100 * np.mean(truth):.2f}% "
             f"(frames within {cfg.eval.frame_tolerance_s:g} s of a boundary); the naive model "
             f"is {100 * naive_accuracy:.2f}% accurate and finds nothing. Frame metrics at "
             f"probability {FRAME_THRESHOLD}; boundary F with the peak threshold tuned per row.")
    table = markdown_table(results, repeats)
    write_text(out_dir / "table.md", intro + "\n\n" + table + "\n")
    write_text(out_dir / "table.csv", csv_table(results))
    write_text(out_dir / "summary.txt", intro + "\n" + best_rows_text(results) + "\n")
    write_text(out_dir / "results.json", json.dumps(evaluation.json_safe(results), indent=1))
    plot_curves(out_dir / "roc.png", out_dir / "pr.png", curves)
