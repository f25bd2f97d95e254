"""The jobs the ``boundaries`` command (and ``train.py`` / ``evaluate.py``) runs: train, evaluate,
tune, detect over folders, the imbalance study and export. ``cli.py`` only parses arguments and
prints; every model load and every audio -> boundaries step happens here through
:class:`boundaries.api.Detector`.
"""

import logging
import os
from pathlib import Path

from boundaries.errors import BoundariesError, printable

logger = logging.getLogger("boundaries")

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def base_config_paths() -> list:
    """configs/base.yaml in a repository checkout; the dataclass defaults (equal to it)
    otherwise."""
    base = REPO_CONFIGS / "base.yaml"
    return [base] if base.exists() else []


def training_config(config_paths=None, overrides=(), *, data=None, val_data=None, device=None,
                    layers=()):
    """The training config: YAML files (default configs/base.yaml), ``layers`` (mappings, e.g. a
    study's settings), then ``--data``/``--val-data``/``--device`` and ``--set`` overrides."""
    from boundaries.config import load_config

    overrides = list(overrides)
    if data:
        overrides.append(f"data.train_dir={os.path.abspath(data)}")
    if val_data:
        overrides.append(f"data.val_dir={os.path.abspath(val_data)}")
    if device:
        overrides.append(f"train.device={device}")
    return load_config(config_paths or base_config_paths(), overrides, layers=layers)


def train(cfg, run_dir, *, resume=False, progress=True) -> dict:
    """Train and tune a detector into ``run_dir`` (best.pt, config.yaml, metrics.json)."""
    from boundaries.train.loop import train as run_training

    return run_training(cfg, run_dir, resume=resume, progress=progress)


def load_annotated(data_dir, cfg, progress=True) -> tuple:
    """``(tracks, skipped)``: the annotated audio under ``data_dir`` as log-mel + boundaries, and
    ``{path: one-line reason}`` for each file left out."""
    from boundaries.data import corpus

    tracks, problems = corpus.discover(Path(data_dir).expanduser(), cfg.audio.extensions)
    data, failed = corpus.load(tracks, cfg, progress)
    problems.update(failed)
    return data, {str(k): v for k, v in problems.items()}


def evaluate(checkpoint, data_dir, *, out_dir=None, json_path=None, threshold=None,
             device="auto", trim=True, overrides=(), progress=True) -> dict:
    """Score a checkpoint on every annotated file under ``data_dir`` (held-out clips).

    Returns :func:`boundaries.score.evaluation.score`'s dict plus ``checkpoint``, ``config`` and
    ``skipped_files``; writes it as JSON to ``json_path`` and, with ``out_dir``, ROC/PR curves
    and one activation PNG per file.
    """
    from boundaries.api import Detector, check_decoding
    from boundaries.atomic import write_text
    from boundaries.score import evaluation

    check_decoding(threshold, None)
    detector = Detector(checkpoint, device, [*overrides, f"eval.trim={trim}"])
    data, skipped = load_annotated(data_dir, detector.cfg, progress)
    if not data:
        raise BoundariesError(f"{data_dir}: no annotated audio files could be evaluated "
                              f"({len(skipped)} skipped)")
    result, results = score_as_detected(detector, data, threshold)
    result.update(checkpoint=str(checkpoint), model_id=detector.model_id,
                  config=detector.cfg.to_dict(), skipped_files=skipped)
    if out_dir:
        evaluation.write_plots(Path(out_dir), data, [r.activations for r in results], result,
                               detector.cfg)
    if json_path:
        write_text(json_path, evaluation.to_json(result))
    return result


def score_as_detected(detector, data, threshold=None) -> tuple:
    """Score ``detector`` on annotated ``data`` exactly as ``boundaries detect`` decodes (placement,
    expected-F or ``threshold``); returns ``(metrics dict, one detection result per file)``."""
    from boundaries.score import evaluation

    results = [detector.detect_mel(t.mel, t.duration_s, source=str(t.audio_path),
                                   threshold=threshold) for t in data]
    result = evaluation.score(data, [r.activations for r in results], detector.cfg,
                              peak_threshold=threshold,
                              estimates=[(r.boundaries_s, r.strengths) for r in results])
    result["decoder"] = results[0].settings["decoder"]  # threshold, or expected_f
    by_kind = evaluation.recall_by_kind(data, [r.boundaries_s for r in results])
    if by_kind:
        result["recall_by_kind"] = by_kind
    return result, results


def new_output_file(path, what: str, overwrite: bool = False, source=None) -> Path:
    """``path`` as a file to write: never a folder, never its own ``source``, an existing file
    only with ``overwrite`` (nothing the user has is replaced silently), and its folder
    writable; else one clear line."""
    path = Path(path)
    if path.is_dir():
        raise BoundariesError(f"{path}: is a folder; give the {what} a file name, e.g. "
                              f"{path / 'model.pt'}")
    if source is not None and path.resolve() == Path(source).resolve():
        raise BoundariesError(f"{path}: would replace the {what}'s own source; pick another")
    if path.exists() and not overwrite:
        raise BoundariesError(f"{path}: exists; the {what} never replaces a file (a resume "
                              "checkpoint, a model): pick a new name, or pass --overwrite")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise BoundariesError(f"{folder}: {'missing' if not folder.is_dir() else 'not writable'}"
                              f"; cannot write the {what} there")
    return path


def tune(checkpoint, data_dirs, out, *, device="auto", overwrite=False, progress=True,
         expected_f=False, fine=False, rescorer=False) -> tuple:
    """Re-tune a checkpoint's decoding on the validation folders ``data_dirs`` (a list), tuned on
    together, into a new checkpoint ``out``; returns ``(tuned_cfg, validation_result, skipped)``,
    the result scored as ``boundaries detect`` runs ``out``. ``expected_f``: fit a track-change
    detector's expected-F decoding there too (one that has it already is refitted); ``fine``:
    with its second map (``track.expected_f_fine``; else as the checkpoint's config says);
    ``rescorer``: and the candidate re-scorer (``track.rescorer``; implies both)."""
    from boundaries.api import Detector
    from boundaries.model.checkpoints import save_checkpoint
    from boundaries.score import evaluation

    new_output_file(out, "re-tuned checkpoint", overwrite, source=checkpoint)
    fine = fine or rescorer
    expected_f = expected_f or fine
    overrides = ["track.expected_f=true"] if expected_f else []
    if fine:
        overrides.append("track.expected_f_fine=true")
    if rescorer:
        overrides.append("track.rescorer=true")
    detector = Detector(checkpoint, device, overrides)
    if expected_f and not hasattr(detector.model, "frame_activations"):
        raise BoundariesError(f"{printable(checkpoint)}: --expected-f needs a track-change "
                              "detector (configs/track_change.yaml); this checkpoint is a CNN")
    data, skipped = [], {}
    for data_dir in data_dirs:
        found, problems = load_annotated(data_dir, detector.cfg, progress)
        data += found
        skipped.update(problems)
    if not data:
        raise BoundariesError(f"{' '.join(map(str, data_dirs))}: no annotated audio files to tune "
                              "on")
    tuned, _ = evaluation.tune(detector.model, data, detector.cfg, detector.device)
    state = {**{k: v for k, v in detector.state.items() if k != "format"},
             "config": tuned.to_dict()}
    for stage in ("placement", "locator"):  # stages the tuning switched off are not stored
        if getattr(detector.model, stage, "absent") is None:
            state.pop(stage, None)
    for stage in ("expected_f", "rescorer"):  # refitted by the tuning, or left out there
        state.pop(stage, None)
        if getattr(detector.model, stage, None) is not None:
            state[stage] = getattr(detector.model, stage).state
    save_checkpoint(out, state)
    # scored as detect will run the new checkpoint (placement, expected-F), not as tuned
    return tuned, score_as_detected(Detector(out, device), data)[0], skipped


def detect_folder(paths, out_dir, *, checkpoint=None, formats=("txt",), threshold=None,
                  n_tracks=None, jobs=2, overwrite=False, save_activations=False, plot=False,
                  sonify=False, min_track_s=None, snap=None, device="auto", overrides=(),
                  progress=True):
    """``boundaries detect``: every audio file under ``paths`` -> outputs under ``out_dir``
    (torchrun shards the files over ranks); returns the batch's
    :class:`boundaries.detection.batch.Report`."""
    from threadpoolctl import threadpool_limits

    from boundaries.api import Detector, check_decoding
    from boundaries.detection import OUTPUT_FORMATS
    from boundaries.detection.batch import Outputs, detect_paths
    from boundaries.train import distributed

    unknown = sorted(set(formats) - set(OUTPUT_FORMATS))
    if unknown or not formats:
        raise BoundariesError(f"--format {','.join(formats)}: unknown format(s) {unknown}; "
                              f"choose from {','.join(OUTPUT_FORMATS)}")
    if jobs < 1:
        raise BoundariesError(f"--jobs {jobs}: must be at least 1")
    check_decoding(threshold, n_tracks)
    jobs = min(jobs, os.cpu_count() or 1)  # more decoders than cores only adds memory
    threadpool_limits(1)  # the model runs beside the decoding workers: one BLAS thread each
    if distributed.world_size() > 1 and device in ("auto", "cuda"):
        device = distributed.rank_device(device)  # torchrun: one GPU per rank
    if min_track_s is not None:
        if not 0 < min_track_s <= 3600:
            raise BoundariesError(f"--min-track-s {min_track_s}: give seconds in (0, 3600]")
        overrides = [*overrides, f"peaks.min_distance_s={min_track_s}"]
    detector = Detector(checkpoint, device, overrides)
    if not isinstance(detector.device, str):  # a CNN on a torch device (torch is loaded)
        import torch

        torch.set_num_threads(1)
    distributed.init(detector.device)
    try:
        outputs = Outputs(tuple(formats), save_activations, plot, sonify, overwrite)
        return detect_paths(paths, out_dir, detector, outputs, threshold=threshold,
                            n_tracks=n_tracks, snap=snap, n_workers=jobs, progress=progress)
    finally:
        distributed.cleanup()


def study(config_path, out_dir, *, data=None, strategies=None, repeats=1, overrides=()):
    """Compare imbalance strategies on one split; returns one result dict per row."""
    import torch

    from boundaries.study.runner import parse_strategies, read_study_config, run_study

    if repeats < 1:
        raise BoundariesError(f"--repeats {repeats}: must be at least 1")
    torch.set_num_threads(1)
    spec = read_study_config(config_path)
    rows = parse_strategies(spec.strategies, strategies)
    overrides = list(overrides)
    if data:
        data = Path(data)
        if (data / "train").is_dir() and (data / "val").is_dir():
            overrides += [f"data.train_dir={data.resolve() / 'train'}",
                          f"data.val_dir={data.resolve() / 'val'}"]
        else:
            overrides.append(f"data.train_dir={data.resolve()}")
    # base.yaml, then the study's own training settings, then --data and --set
    cfg = training_config(None, overrides, layers=[spec.config])
    return run_study(cfg, spec, rows, out_dir, repeats)


def export(checkpoint, out, overwrite=False) -> int:
    """Strip a checkpoint to a model to ship; returns the bytes written."""
    from boundaries.model.checkpoints import export_model

    new_output_file(out, "exported model", overwrite, source=checkpoint)
    return export_model(checkpoint, out)
