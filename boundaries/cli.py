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

from boundaries.detection import OUTPUT_FORMATS
from boundaries.errors import BoundariesError

logger = logging.getLogger("boundaries")

# what the parser needs, without importing workflows (and, through it, numpy and torch)
REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


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


def run_train(args) -> int:
    from boundaries import workflows

    cfg = workflows.training_config(args.config, args.set, data=args.data,
                                    val_data=args.val_data, device=args.device)
    result = workflows.train(cfg, args.run_dir, resume=args.resume,
                             progress=sys.stderr.isatty())
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
    from boundaries import workflows
    from boundaries.score.evaluation import format_table

    result = workflows.evaluate(args.checkpoint, args.data, out_dir=args.out,
                                json_path=args.json, threshold=args.threshold,
                                device=args.device or "auto", trim=not args.no_trim,
                                overrides=args.set, progress=sys.stderr.isatty())
    print(format_table(result))
    _print_skipped(result["skipped_files"])
    return 0


def _print_skipped(skipped: dict) -> None:
    for message in skipped.values():
        print(f"skipped: {message}", file=sys.stderr)


def add_detect_arguments(parser) -> None:
    parser.add_argument("paths", nargs="+", help="audio files or folders (searched recursively)")
    parser.add_argument("-o", "--out", required=True, help="output folder (mirrors the inputs)")
    parser.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    parser.add_argument("--format", default="txt",
                        help=f"comma-separated output formats from {','.join(OUTPUT_FORMATS)}")
    parser.add_argument("--threshold", type=float,
                        help="peak threshold (default: the tuned one, or the model's per-file "
                             "expected-F decoding where it has one)")
    parser.add_argument("--n-tracks", type=int, metavar="K",
                        help="every input holds K tracks: write exactly K-1 crossovers (the best "
                             "set at least peaks.min_distance_s apart, found exactly)")
    parser.add_argument("--jobs", type=int, default=2, help="decoding processes (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="redo files whose outputs exist")
    parser.add_argument("--save-activations", action="store_true", help="also write .npy curves")
    parser.add_argument("--plot", action="store_true", help="also write a PNG per file")
    parser.add_argument("--sonify", action="store_true",
                        help="also write <stem>.clicks.ogg: the audio with a click at each "
                             "boundary")
    parser.add_argument("--snap", choices=["beats"],
                        help="move each crossover to the nearest beat within 0.35 s")
    parser.add_argument("--min-track-s", type=float, metavar="S",
                        help="the shortest track (seconds) between crossovers (default: the "
                             "model's, tuned on validation; 4 s for the shipped model)")
    _common(parser)


def run_detect(args) -> int:
    from boundaries import workflows
    from boundaries.detection.batch import summary_line
    from boundaries.train import distributed

    report = workflows.detect_folder(
        args.paths, args.out, checkpoint=args.checkpoint,
        formats=[f.strip() for f in args.format.split(",") if f.strip()],
        threshold=args.threshold, n_tracks=args.n_tracks, jobs=args.jobs,
        overwrite=args.overwrite, save_activations=args.save_activations, plot=args.plot,
        sonify=args.sonify, min_track_s=args.min_track_s, snap=args.snap,
        device=args.device or "auto", overrides=args.set, progress=sys.stderr.isatty())
    if distributed.is_main():
        print(summary_line(report, report.seconds))
        for message in report.failed.values():
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
    from boundaries import workflows
    from boundaries.study.runner import best_rows_text, markdown_table

    only = [s.strip() for s in args.strategies.split(",") if s.strip()] if args.strategies \
        else None
    results = workflows.study(args.config, args.out, data=args.data, strategies=only,
                              repeats=args.repeats, overrides=args.set)
    print(markdown_table(results, args.repeats))
    print(best_rows_text(results))
    print(f"table.md, table.csv, roc.png, pr.png, summary.txt and results.json in {args.out}")
    return 0


def add_tune_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a trained checkpoint")
    parser.add_argument("--data", required=True, nargs="+",
                        help="validation folder(s) (audio + annotations), tuned on together")
    parser.add_argument("-o", "--out", required=True, help="the re-tuned checkpoint (a new file)")
    parser.add_argument("--expected-f", action="store_true",
                        help="track-change detector: fit the per-file expected-F decoding (how "
                             "many peaks each file keeps) on these folders too")
    parser.add_argument("--expected-f-fine", action="store_true",
                        help="as --expected-f, with a second map (placed within 0.5 s): each file "
                             "keeps the peaks that maximise the mean of its expected F@3 and F@0.5 "
                             "(track.expected_f_fine; without this flag a checkpoint keeps its "
                             "own setting)")
    parser.add_argument("--rescorer", action="store_true",
                        help="as --expected-f-fine, with the candidate re-scorer: two small "
                             "classifiers that read each candidate's neighbourhood and row give "
                             "both probabilities instead of its strength (track.rescorer)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run_tune(args) -> int:
    from boundaries import workflows
    from boundaries.score.evaluation import format_table

    tuned, result, skipped = workflows.tune(args.checkpoint, args.data, args.out,
                                            device=args.device or "auto",
                                            overwrite=args.overwrite,
                                            progress=sys.stderr.isatty(),
                                            expected_f=args.expected_f,
                                            fine=args.expected_f_fine,
                                            rescorer=args.rescorer)
    _print_skipped(skipped)
    print(format_table(result))
    p = tuned.peaks
    print(f"wrote {args.out}: novelty weight {p.novelty_weight:g}, peak threshold "
          f"{p.threshold:g}, minimum distance {p.min_distance_s:g} s, smoothing "
          f"{p.smooth_s:g} s, plateau level {p.plateau_level:g}, frame threshold "
          f"{tuned.eval.frame_threshold:g} (tuned on {' '.join(args.data)})")
    if tuned.track.expected_f:
        which = "the mean of its expected F@3 and F@0.5" if tuned.track.expected_f_fine else \
            "its expected F"
        by = " (candidates scored by the re-scorer)" if tuned.track.rescorer else ""
        print("  and the expected-F decoding fitted there: each file keeps the peaks that "
              f"maximise {which}{by} (a --threshold given to detect replaces it)")
    return 0


def add_export_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a trained checkpoint (runs/NAME/best.pt)")
    parser.add_argument("out", help="where the model goes (e.g. boundaries/assets/default.pt)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run_export(args) -> int:
    from boundaries import workflows

    size = workflows.export(args.checkpoint, args.out, args.overwrite)
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
    debug_before = os.environ.get("BOUNDARIES_DEBUG")
    if args.debug:  # per-file failures raise instead of becoming one line (workers inherit it)
        os.environ["BOUNDARIES_DEBUG"] = "1"
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
    finally:
        if debug_before is None:
            os.environ.pop("BOUNDARIES_DEBUG", None)


if __name__ == "__main__":
    sys.exit(main())
