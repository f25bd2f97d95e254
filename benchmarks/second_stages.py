"""The track-change detector's second stages compared on cached rows (an ablation of MODEL_CARD.md).

    python benchmarks/second_stages.py rows --mixes data/mixes2 data/mixes3 data/mixes4 \\
        data/mixes5 --out data/rows
    python benchmarks/second_stages.py compare --rows data/rows [--sequence-steps 2000] \\
        [--max-iter 300] [--seed 0] [--drop rhythm@]

``rows`` computes every mix's descriptor rows once, with the embedding of ``--checkpoint`` (the
shipped model by default; of a cross-fitted one, its first fold's embedding), into one pickle
per folder and split. ``compare`` then fits, from the
training rows, the first stage (out-of-fold on two folds of files, as training does), the
stacked trees and the sequence stage, with the package's own functions, and prints boundary F at
+-3 s and +-0.5 s on the validation and test rows (peak threshold and minimum track length tuned
on validation; no placement stage) for: the first stage alone, the stacked trees, the sequence
stage alone, and the two second stages averaged (what ``track.sequence_steps`` ships).

``rows --rhythm`` adds the rhythm columns (``track.rhythm``) after the descriptors, as training
does, ``rows --rhythm-gap 8`` the gapped ones too (``track.rhythm_gap_s``; pass the same to
``compare``); ``compare --drop rhythm@`` fits without the columns whose names start so, for an
ablation on the same cached rows; ``--seed`` is ``train.seed`` (held-out rows, the sequence stage's
initialisation); ``compare --kinds data/mixes2 data/mixes5 ...`` (the folders the rows were
cached from) adds recall within 3 s per transition kind, from their ``manifest.json``, on
validation and test.
"""

import argparse
import dataclasses
import pickle
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from threadpoolctl import threadpool_limits

from boundaries.data import annotations, corpus
from boundaries.data.annotations import read_boundaries
from boundaries.detection import inference
from boundaries.model import boosted
from boundaries.model.checkpoints import load_model
from boundaries.model.track_detector import (
    RowColumns,
    row_features,
    row_targets,
    rows_to_frames,
    stacked_rows,
)
from boundaries.score import evaluation, metrics
from boundaries.signal.features import FeatureCache
from boundaries.train import track_change

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("train", "val", "test")


def cache_rows(mixes, out: Path, checkpoint, rhythm: bool = False,
               rhythm_gap_s: float = 0.0) -> None:
    detector, cfg, _ = load_model(checkpoint)
    own = detector.columns
    columns = RowColumns(own.recurrence, rhythm or rhythm_gap_s > 0 or own.rhythm,
                         rhythm_gap_s or own.rhythm_gap_s)
    out.mkdir(parents=True, exist_ok=True)
    for folder in map(Path, mixes):
        for split in SPLITS:
            if not (folder / split).is_dir():
                continue
            rows = folder_rows(folder / split, detector.network, cfg, columns)
            with open(out / f"{folder.name}_{split}.pkl", "wb") as handle:
                pickle.dump(rows, handle)
            print(f"{folder / split}: {len(rows)} mixes", flush=True)


def annotated_mels(folder: Path, cfg):
    """``(track, log-mel, duration_s, crossover times)`` of every annotated mix in ``folder``, in
    ``corpus.discover``'s order (log-mel from the feature cache)."""
    cache = FeatureCache(cfg.data.cache_dir, cfg.audio.sr, cfg.features)
    tracks, _ = corpus.discover(folder, cfg.audio.extensions)
    for track in tracks:
        mel, n = cache.load(track.audio_path)
        duration_s = n / cfg.audio.sr
        yield track, mel, duration_s, read_boundaries(track.annotation_path, duration_s=duration_s)


def folder_rows(folder: Path, network, cfg, columns: RowColumns) -> list:
    """``[(rows, crossover times, duration_s)]`` of every annotated mix in ``folder``, with the
    embedding ``network``."""
    return [(row_features(mel, network, fps=cfg.fps, columns=columns)[0], times_s, duration_s)
            for _, mel, duration_s, times_s in annotated_mels(folder, cfg)]


def column_names(detector, cfg, n_columns: int, rhythm_gap_s: float = 0.0) -> list:
    """The names of cached rows' ``n_columns`` columns (without the rhythm ones, with them, or
    with the gapped ones too, named by ``rhythm_gap_s`` or the checkpoint's)."""
    mel = np.zeros((cfg.features.n_mels, 2000), np.float32)
    gap_s = rhythm_gap_s or detector.columns.rhythm_gap_s or 1.0
    recurrence = detector.columns.recurrence
    for rhythm, gap in ((False, 0.0), (True, 0.0), (True, gap_s)):
        names = row_features(mel, detector.network, fps=cfg.fps,
                             columns=RowColumns(recurrence, rhythm, gap))[1]
        if len(names) == n_columns:
            return names
    raise ValueError(f"cached rows have {n_columns} columns; this checkpoint's have {len(names)}")


def without_columns(rows: list, keep: np.ndarray) -> list:
    return [(x[:, keep], t, d) for x, t, d in rows]


def load_rows(folder: Path, split: str) -> list:
    return load_row_files(sorted(folder.glob(f"*_{split}.pkl")))


def load_row_files(paths) -> list:
    """The rows of several pickles from :func:`cache_rows` or :func:`folder_rows`, in order."""
    rows = []
    for path in paths:
        with open(path, "rb") as handle:
            rows += pickle.load(handle)
    return rows


def scores(rows, row_probs, cfg, tuned=None):
    """``(F@3, F@0.5, tuned_cfg, estimates)``: threshold and minimum track length tuned on
    these rows unless ``tuned`` is given; edges as ``boundaries detect`` treats them."""
    tracks = [SimpleNamespace(times_s=t, duration_s=d) for _, t, d in rows]
    acts = [rows_to_frames(p, int(round(d * cfg.fps)) + 1) for p, (_, _, d) in zip(row_probs,
                                                                                   rows)]
    tuned = tuned or track_change.tune_decoding(tracks, acts, cfg)
    f3, f05, estimates = [], [], []
    for track, a in zip(tracks, acts):
        est, _ = inference.decode(a, tuned)
        est = est[(est >= inference.EDGE_S) & (est <= track.duration_s - inference.EDGE_S)]
        estimates.append(est)
        f3.append(metrics.boundary_scores(track.times_s, est, track.duration_s, 3.0,
                                          trim=cfg.eval.trim)["f"])
        f05.append(metrics.boundary_scores(track.times_s, est, track.duration_s, 0.5,
                                           trim=cfg.eval.trim)["f"])
    return float(np.mean(f3)), float(np.mean(f05)), tuned, estimates


def mix_paths(rows_dir: Path, split: str, mixes, extensions) -> "list | None":
    """The audio path of each cached mix of ``split`` (in :func:`load_rows`' order), found in the
    ``mixes`` folder each pickle was cached from (matched by folder name; None when a pickle's
    folder is not among ``mixes``): what recall per transition kind reads the manifests by."""
    folders = {Path(m).name: Path(m) for m in mixes}
    paths = []
    for path in sorted(rows_dir.glob(f"*_{split}.pkl")):
        folder = folders.get(path.name[:-len(f"_{split}.pkl")])
        if folder is None:
            return None
        paths += [t.audio_path for t in corpus.discover(folder / split, extensions)[0]]
    return paths


def check_rows_match(rows, mixes) -> None:
    """Refuse cached rows whose crossovers are not those of the manifests they will be scored
    by (a mix folder rebuilt after its rows were cached)."""
    records = annotations.mix_records(m.audio_path for m in mixes)
    for (_, times_s, _), record, mix in zip(rows, records, mixes):
        listed = sorted(t["time_s"] for t in (record or {}).get("transitions", []))
        if len(listed) != len(times_s) or not np.allclose(listed, times_s, atol=0.01):
            raise SystemExit(f"error: {mix.audio_path}: its cached rows and its manifest list "
                             "different crossovers; cache the rows again (second_stages.py rows)")


def compare(rows_dir: Path, checkpoint, sequence_steps: int, max_iter: int, seed: int = 0,
            drop: tuple = (), mixes=(), rhythm_gap_s: float = 0.0,
            target_radius_s: "float | None" = None) -> None:
    detector, cfg, _ = load_model(checkpoint)
    cfg = cfg.replace(track=dataclasses.replace(cfg.track, max_iter=max_iter,
                                                sequence_steps=sequence_steps,
                                                target_radius_s=target_radius_s
                                                or cfg.track.target_radius_s),
                      train=dataclasses.replace(cfg.train, seed=seed))
    train, val, test = (load_rows(rows_dir, s) for s in SPLITS)
    paths = [mix_paths(rows_dir, s, mixes, cfg.audio.extensions) for s in ("val", "test")]
    paths = None if None in paths else [[SimpleNamespace(audio_path=p) for p in split_paths]
                                        for split_paths in paths]
    if paths is not None:
        for rows, mixes_of_split in zip((val, test), paths):
            check_rows_match(rows, mixes_of_split)
    names = column_names(detector, cfg, train[0][0].shape[1], rhythm_gap_s)
    keep = np.array([i for i, name in enumerate(names) if not name.startswith(tuple(drop))])
    if len(keep) < len(names):
        print(f"dropped {len(names) - len(keep)} columns starting with {', '.join(drop)}")
        train, val, test = (without_columns(rows, keep) for rows in (train, val, test))
        names = [names[i] for i in keep]
    X = np.vstack([x for x, _, _ in train])
    y = np.concatenate([row_targets(t, len(x), fps=cfg.fps, radius_s=cfg.track.target_radius_s)
                        for x, t, _ in train])
    counts = [len(x) for x, _, _ in train]
    print(f"{len(train)} training mixes ({len(X)} rows), {len(val)} validation, {len(test)} test",
          flush=True)
    trees, context_trees, oof = track_change.fit_stacked(X, y, counts, cfg)
    network = track_change.fit_sequence(oof, y, counts, cfg, X=X, names=names)

    def stages(rows):
        first = [boosted.predict_proba(trees, x) for x, _, _ in rows]
        stacked = [boosted.predict_proba(context_trees, stacked_rows(x, p))
                   for (x, _, _), p in zip(rows, first)]
        out = {"first stage alone": first, "stacked trees": stacked}
        if network is not None:
            sequence = [network.probabilities(p, x) for (x, _, _), p in zip(rows, first)]
            out["sequence stage alone"] = sequence
            out["stacked trees + sequence (mean)"] = [(a + b) / 2 for a, b in zip(stacked,
                                                                                  sequence)]
        return out

    print("\n| second stage | val F@3 | val F@0.5 | test F@3 | test F@0.5 |\n|---|---|---|---|---|")
    on_test = stages(test)
    by_kind = {}
    for name, probs in stages(val).items():
        v3, v05, tuned, val_est = scores(val, probs, cfg)
        t3, t05, _, test_est = scores(test, on_test[name], cfg, tuned)
        print(f"| {name} | {v3:.3f} | {v05:.3f} | {t3:.3f} | {t05:.3f} |", flush=True)
        if paths is not None:
            by_kind[name] = (evaluation.recall_by_kind(paths[0], val_est),
                             evaluation.recall_by_kind(paths[1], test_est))
    if by_kind:
        print_recall_by_kind(by_kind)


def print_recall_by_kind(by_kind: dict) -> None:
    """Per stage, recall within 3 s per transition kind on validation and test."""
    names = list(next(iter(by_kind.values()))[0])
    print("\nrecall within 3 s by transition kind, validation / test\n"
          "| second stage | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for stage, (on_val, on_test) in by_kind.items():
        print(f"| {stage} | " + " | ".join(f"{on_val[k]['3.0']:.2f} / {on_test[k]['3.0']:.2f}"
                                           for k in names) + " |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rows = sub.add_parser("rows", help="cache every mix's descriptor rows")
    rows.add_argument("--mixes", nargs="+", required=True, help="make_mixes.py output folders")
    rows.add_argument("--out", required=True)
    rows.add_argument("--rhythm", action="store_true", help="add the rhythm columns")
    cmp = sub.add_parser("compare", help="fit and score the second stages on cached rows")
    cmp.add_argument("--rows", required=True)
    cmp.add_argument("--sequence-steps", type=int, default=2000)
    cmp.add_argument("--max-iter", type=int, default=300, help="boosting iterations")
    cmp.add_argument("--seed", type=int, default=0, help="train.seed")
    cmp.add_argument("--drop", nargs="*", default=[],
                     help="fit without the columns whose names start with these")
    cmp.add_argument("--target-radius", type=float, metavar="S",
                     help="label rows within S seconds of a crossover (track.target_radius_s; "
                          "the checkpoint's by default)")
    cmp.add_argument("--kinds", nargs="*", default=[], metavar="MIXES",
                     help="the make_mixes.py folders the rows came from: adds recall per "
                          "transition kind (from their manifest.json)")
    for p in (rows, cmp):
        p.add_argument("--checkpoint", default=str(REPO / "boundaries/assets/default.pt"))
        p.add_argument("--rhythm-gap", type=float, default=0.0, metavar="S",
                       help="rows: add the gapped rhythm columns (track.rhythm_gap_s); compare: "
                            "the gap the rows were cached with (names their columns)")
    args = parser.parse_args(argv)
    threadpool_limits(1)
    if args.command == "rows":
        cache_rows(args.mixes, Path(args.out), args.checkpoint, args.rhythm, args.rhythm_gap)
    else:
        compare(Path(args.rows), args.checkpoint, args.sequence_steps, args.max_iter, args.seed,
                tuple(args.drop), args.kinds, args.rhythm_gap, args.target_radius)
    return 0


if __name__ == "__main__":
    sys.exit(main())
