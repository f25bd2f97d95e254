"""The ``boundaries`` command: ``train``, ``evaluate`` and ``detect`` subcommands.

``train.py`` and ``evaluate.py`` at the repository root call the same functions. A problem with the
user's input is printed as one line (``error: FILE: what is wrong; what to do``) and exits 2; a
traceback appears only with ``--debug``.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from boundaries.errors import BoundariesError

logger = logging.getLogger("boundaries")

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "default.pt"


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s",
                        stream=sys.stderr, force=True)
    for noisy in ("numba", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _common(parser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    if parser.prog.split()[-1] != "train":
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override the checkpoint's eval/peaks/data settings, e.g. "
                            "--set peaks.max_window_s=3 (repeatable)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")


def add_train_arguments(parser) -> None:
    parser.add_argument("--config", action="append", default=None,
                        help="YAML config (repeatable, later files win); default configs/base.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.lr=3e-4 (repeatable)")
    parser.add_argument("--data", help="training folder (audio + annotations); default: the "
                        "generated synthetic data set")
    parser.add_argument("--val-data", help="validation folder; default: a split of --data")
    parser.add_argument("--run-dir", default="runs/default", help="where checkpoints and logs go")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    _common(parser)


def _base_config_paths() -> list:
    """configs/base.yaml in a repository checkout; the dataclass defaults (equal to it)
    otherwise."""
    base = REPO_CONFIGS / "base.yaml"
    return [base] if base.exists() else []


def config_from_args(args):
    from boundaries.config import load_config

    paths = args.config or _base_config_paths()
    overrides = list(args.set)
    if getattr(args, "data", None):
        overrides.append(f"data.train_dir={os.path.abspath(args.data)}")
    if getattr(args, "val_data", None):
        overrides.append(f"data.val_dir={os.path.abspath(args.val_data)}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    return load_config(paths, overrides)


def run_train(args) -> int:
    from boundaries.train.loop import train

    cfg = config_from_args(args)
    result = train(cfg, args.run_dir, resume=args.resume, progress=sys.stderr.isatty())
    if result:
        print(result["table"])
        where = "best epoch {best_epoch} of {epochs_run}; ".format(**result) \
            if "best_epoch" in result else ""
        checkpoint = result.get("checkpoint", Path(args.run_dir) / "best.pt")
        print(f"{where}checkpoint {checkpoint} (thresholds tuned on validation); metrics "
              f"{Path(args.run_dir) / 'metrics.json'}")
    return 0


def add_evaluate_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a best.pt written by train.py")
    parser.add_argument("--data", required=True, help="folder of held-out audio + annotations")
    parser.add_argument("--out", help="folder for plots (ROC, PR, one activation PNG per file)")
    parser.add_argument("--json", help="write the metrics JSON here")
    parser.add_argument("--threshold", type=float, help="peak threshold (default: the tuned one)")
    parser.add_argument("--no-trim", action="store_true",
                        help="mir_eval's untrimmed convention (score 0 and the end too)")
    _common(parser)


def run_evaluate(args) -> int:
    from boundaries.score.evaluation import evaluate_checkpoint, format_table

    result = evaluate_checkpoint(args.checkpoint, args.data, out_dir=args.out,
                                 json_path=args.json, threshold=args.threshold,
                                 device=args.device or "auto", trim=not args.no_trim,
                                 overrides=args.set, progress=sys.stderr.isatty())
    print(format_table(result))
    for path, message in result.get("skipped_files", {}).items():
        print(f"skipped: {message}", file=sys.stderr)
    return 0


def add_detect_arguments(parser) -> None:
    from boundaries.detection.batch import FORMATS

    parser.add_argument("paths", nargs="+", help="audio files or folders (searched recursively)")
    parser.add_argument("-o", "--out", required=True, help="output folder (mirrors the inputs)")
    parser.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    parser.add_argument("--format", default="txt",
                        help=f"comma-separated output formats from {','.join(FORMATS)}")
    parser.add_argument("--threshold", type=float, help="peak threshold (default: the tuned one)")
    parser.add_argument("--n-tracks", type=int, metavar="K",
                        help="every input holds K tracks: write exactly K-1 crossovers (the best "
                             "set at least peaks.min_distance_s apart, found exactly)")
    parser.add_argument("--jobs", type=int, default=2, help="decoding processes (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="redo files whose outputs exist")
    parser.add_argument("--save-activations", action="store_true", help="also write .npy curves")
    parser.add_argument("--plot", action="store_true", help="also write a PNG per file")
    _common(parser)


def run_detect(args) -> int:
    import torch

    from boundaries.config import apply_overrides
    from boundaries.detection.batch import FORMATS, detect_paths, summary_line
    from boundaries.detection.inference import resolve_device
    from boundaries.model.checkpoints import load_model
    from boundaries.train import distributed

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise BoundariesError(f"--format {args.format}: unknown format(s) {unknown}; choose from "
                              f"{','.join(FORMATS)}")
    checkpoint = args.checkpoint or DEFAULT_MODEL
    if not args.checkpoint and not DEFAULT_MODEL.exists():
        raise BoundariesError(f"{DEFAULT_MODEL}: the shipped model is missing (an incomplete "
                              "install?); reinstall boundaries or pass --checkpoint")
    if args.jobs < 1:
        raise BoundariesError(f"--jobs {args.jobs}: must be at least 1")
    if args.n_tracks is not None and args.n_tracks < 1:
        raise BoundariesError(f"--n-tracks {args.n_tracks}: a file holds at least 1 track")
    torch.set_num_threads(1)
    device = resolve_device(args.device or "auto")
    if device.type == "cuda" and distributed.world_size() > 1:  # torchrun: one GPU per rank
        device = torch.device("cuda", distributed.local_rank())
    model, cfg, _ = load_model(checkpoint, device)
    cfg = apply_overrides(cfg, args.set)
    distributed.init(device)
    try:
        report = detect_paths(args.paths, args.out, model, cfg, device, formats,
                              threshold=args.threshold, n_tracks=args.n_tracks,
                              overwrite=args.overwrite, n_workers=args.jobs,
                              save_activations=args.save_activations, plot=args.plot,
                              progress=sys.stderr.isatty())
    finally:
        distributed.cleanup()
    if distributed.is_main():
        print(summary_line(report, report.seconds))
        for path, message in report.failed.items():
            print(f"failed: {message}", file=sys.stderr)
    return 1 if report.failed else 0


def add_study_arguments(parser) -> None:
    parser.add_argument("--data", help="annotated folder (split by group), or a folder holding "
                        "train/ and val/; default: the generated synthetic data")
    parser.add_argument("--config", default=str(REPO_CONFIGS / "studies" / "default.yaml"),
                        help="study config: the rows and their settings (default %(default)s)")
    parser.add_argument("--strategies", help="comma-separated subset of the config's rows")
    parser.add_argument("--out", default="study", help="folder for the table, curves and runs")
    parser.add_argument("--repeats", type=int, default=1, help="seeds per row (mean and spread)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the training config of every row (repeatable)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run_study_command(args) -> int:
    import torch

    from boundaries.config import config_from_dict, load_config, merge_dicts, parse_override
    from boundaries.study.runner import (
        best_rows_text,
        markdown_table,
        parse_strategies,
        read_study_config,
        run_study,
    )

    if args.repeats < 1:
        raise BoundariesError(f"--repeats {args.repeats}: must be at least 1")
    torch.set_num_threads(1)
    study = read_study_config(args.config)
    only = [s.strip() for s in args.strategies.split(",") if s.strip()] if args.strategies \
        else None
    strategies = parse_strategies(study["strategies"], only)
    overrides = list(args.set)
    if args.data:
        data = Path(args.data)
        if (data / "train").is_dir() and (data / "val").is_dir():
            overrides += [f"data.train_dir={data.resolve() / 'train'}",
                          f"data.val_dir={data.resolve() / 'val'}"]
        else:
            overrides.append(f"data.train_dir={data.resolve()}")
    # base.yaml, then the study's own training settings, then --data and --set
    base = load_config(_base_config_paths())
    cfg = config_from_dict(merge_dicts(base.to_dict(), study.get("config") or {},
                                       *(parse_override(o) for o in overrides)))
    results = run_study(cfg, study, strategies, args.out, args.repeats)
    print(markdown_table(results, args.repeats))
    print(best_rows_text(results))
    print(f"table.md, table.csv, roc.png, pr.png, summary.txt and results.json in {args.out}")
    return 0


def add_tune_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a trained checkpoint")
    parser.add_argument("--data", required=True, help="validation folder (audio + annotations)")
    parser.add_argument("-o", "--out", required=True, help="the re-tuned checkpoint (a new file)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run_tune(args) -> int:
    import torch

    from boundaries.data import corpus
    from boundaries.detection.inference import resolve_device
    from boundaries.model.checkpoints import load_model, save_checkpoint
    from boundaries.score.evaluation import format_table, score, tune

    if Path(args.out).resolve() == Path(args.checkpoint).resolve():
        raise BoundariesError(f"{args.out}: would replace the checkpoint it tunes; pick another")
    torch.set_num_threads(1)
    device = resolve_device(args.device or "auto")
    model, cfg, state = load_model(args.checkpoint, device)
    tracks, problems = corpus.discover(Path(args.data), cfg.audio.extensions)
    data, failed = corpus.load(tracks, cfg, progress=sys.stderr.isatty())
    for message in {**problems, **failed}.values():
        print(f"skipped: {message}", file=sys.stderr)
    if not data:
        raise BoundariesError(f"{args.data}: no annotated audio files to tune on")
    tuned, activations = tune(model, data, cfg, device)
    state = {**{k: v for k, v in state.items() if k != "format"}, "config": tuned.to_dict()}
    if getattr(model, "placement", "absent") is None:  # tuning switched the placement stage off
        state.pop("placement", None)
    save_checkpoint(args.out, state)
    print(format_table(score(data, activations, tuned)))
    p = tuned.peaks
    print(f"wrote {args.out}: novelty weight {p.novelty_weight:g}, peak threshold "
          f"{p.threshold:g}, minimum distance {p.min_distance_s:g} s, frame threshold "
          f"{tuned.eval.frame_threshold:g} (tuned on {args.data})")
    return 0


def add_export_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a trained checkpoint (runs/NAME/best.pt)")
    parser.add_argument("out", help="where the model goes (e.g. boundaries/assets/default.pt)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run_export(args) -> int:
    from boundaries.model.checkpoints import export_model

    if Path(args.out).resolve() == Path(args.checkpoint).resolve():
        raise BoundariesError(f"{args.out}: the export would replace its own source; pick "
                              "another path")
    size = export_model(args.checkpoint, args.out)
    print(f"wrote {args.out} ({size / 1e6:.2f} MB: weights, config and tuned thresholds)")
    return 0


COMMANDS = {
    "train": (add_train_arguments, run_train, "train a boundary detector"),
    "evaluate": (add_evaluate_arguments, run_evaluate, "score a checkpoint on held-out files"),
    "detect": (add_detect_arguments, run_detect, "find boundaries in audio files and folders"),
    "study": (add_study_arguments, run_study_command,
              "compare imbalance strategies on one split: a table and curves"),
    "tune": (add_tune_arguments, run_tune,
             "re-tune the novelty blend and thresholds of a checkpoint on a validation folder"),
    "export": (add_export_arguments, run_export,
               "strip a checkpoint to a model to ship (no optimizer state)"),
}


def build_parser() -> argparse.ArgumentParser:
    from boundaries import __version__

    parser = argparse.ArgumentParser(prog="boundaries", description="Find boundaries in audio.")
    parser.add_argument("--version", action="version", version=f"boundaries {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.debug)
    try:
        return COMMANDS[args.command][1](args)
    except BoundariesError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
