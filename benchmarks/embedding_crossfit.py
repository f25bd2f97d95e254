"""Cross-fitted "same track?" embeddings: do in-sample embedding distances hurt the trees?

The embedding is trained on the training mixes, so on those mixes its left/right distances are
in-sample, sharper than on new music, while the trees learn from them. This ablation (MODEL_CARD.md,
session 11) builds training mixes from two disjoint halves of the training packages (fold A and
fold B), trains one embedding per fold, and fits the trees on rows whose embedding columns come
from the *other* fold's embedding (out-of-fold) or from their own (in-sample); validation and test
probabilities are averaged over the two embeddings' rows.

    python benchmarks/embedding_crossfit.py embed --mixes data/foldA --out runs/embA.npz
    python benchmarks/embedding_crossfit.py rows --embedding runs/embA.npz \\
        --folder data/foldB/train --out data/rows11/A_foldB_train.pkl     # 'shipped' for ours
    python benchmarks/embedding_crossfit.py fit --name oof --train B_foldA.pkl A_foldB.pkl \\
        --val A_m2_val.pkl,A_m5_val.pkl B_m2_val.pkl,B_m5_val.pkl --test ... [--seed 1]

``--val``/``--test`` take one argument per embedding, each a comma-joined list of row files of
the same mixes in the same order. ``fit`` fits the first stage, the stacked trees and the
sequence stage with the package's own functions and prints F@3 and F@0.5 on validation and test
(threshold and minimum track length tuned on validation; no placement), as
``second_stages.py compare`` does.
"""

import argparse
import dataclasses
import pickle
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from second_stages import REPO, annotated_mels, folder_rows, load_row_files, scores
from threadpoolctl import threadpool_limits

from boundaries.atomic import atomic_path
from boundaries.model import embedding_features
from boundaries.model.checkpoints import load_model
from boundaries.model.track_detector import TrackChangeDetector, combined_probabilities, row_targets
from boundaries.train import track_change

SHIPPED = REPO / "boundaries/assets/default.pt"


def train_fold_embedding(mixes: Path, out: Path) -> None:
    """The shipped config's embedding (width, steps, stretch positives), trained afresh on
    ``mixes/train``."""
    _, cfg, _ = load_model(SHIPPED)
    cfg = cfg.replace(track=dataclasses.replace(cfg.track, embedding_from=""))
    data = [SimpleNamespace(mel=mel, duration_s=duration_s, audio_path=track.audio_path,
                            times_s=times_s)
            for track, mel, duration_s, times_s in annotated_mels(mixes / "train", cfg)]
    start = time.perf_counter()
    network = track_change.fit_embedding(data, cfg)
    print(f"embedding trained in {time.perf_counter() - start:.0f} s", flush=True)
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **network.state)


def cache_fold_rows(embedding: str, folder: Path, out: Path) -> None:
    detector, cfg, _ = load_model(SHIPPED)
    network = detector.network
    if embedding != "shipped":
        with np.load(embedding) as state:
            network = embedding_features.EmbeddingNetwork(dict(state), cfg.features.n_mels)
    rows = folder_rows(folder, network, cfg, detector.columns)
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        pickle.dump(rows, handle)
    print(f"{out}: {len(rows)} mixes", flush=True)


def fit_and_score(name: str, seed: int, train_paths, val_sets, test_sets) -> None:
    _, cfg, _ = load_model(SHIPPED)
    cfg = cfg.replace(train=dataclasses.replace(cfg.train, seed=seed))
    train = load_row_files(train_paths)
    X = np.vstack([x for x, _, _ in train])
    y = np.concatenate([row_targets(t, len(x), fps=cfg.fps, radius_s=cfg.track.target_radius_s)
                        for x, t, _ in train])
    counts = [len(x) for x, _, _ in train]
    trees, context_trees, oof = track_change.fit_stacked(X, y, counts, cfg)
    network = track_change.fit_sequence(oof, y, counts, cfg)
    del X, y

    # the fitted stages, scored by the detector's own code; rows come cached, so no embedding
    detector = TrackChangeDetector(None, trees, cfg.fps, context_trees=context_trees,
                                   sequence=network)

    def stages(row_sets):
        """Each stage's probabilities, averaged over the embeddings' row sets."""
        sets = [load_row_files(s.split(",")) for s in row_sets]
        per_mix = [detector.stage_probabilities([s[i][0] for s in sets])
                   for i in range(len(sets[0]))]
        out = {stage: [p[stage] for p in per_mix] for stage in per_mix[0]}
        if network is not None:
            out["stacked+sequence"] = [combined_probabilities(p) for p in per_mix]
        return sets[0], out

    val, on_val = stages(val_sets)
    test, on_test = stages(test_sets)
    for stage, probs in on_val.items():
        v3, v05, tuned = scores(val, probs, cfg)
        t3, t05, _ = scores(test, on_test[stage], cfg, tuned)
        print(f"| {name}, seed {seed} | {stage} | {v3:.3f} | {v05:.3f} | {t3:.3f} | {t05:.3f} |",
              flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed", help="train an embedding on MIXES/train")
    embed.add_argument("--mixes", required=True, type=Path)
    embed.add_argument("--out", required=True, type=Path, help=".npz of its state")
    rows = sub.add_parser("rows", help="one folder's rows with one embedding")
    rows.add_argument("--embedding", required=True, help="an .npz from embed, or 'shipped'")
    rows.add_argument("--folder", required=True, type=Path)
    rows.add_argument("--out", required=True, type=Path)
    fit = sub.add_parser("fit", help="fit stages 1-3 on row files and score them")
    fit.add_argument("--name", required=True)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--train", nargs="+", required=True)
    fit.add_argument("--val", nargs="+", required=True)
    fit.add_argument("--test", nargs="+", required=True)
    args = parser.parse_args(argv)
    threadpool_limits(1)
    if args.command == "embed":
        train_fold_embedding(args.mixes, args.out)
    elif args.command == "rows":
        cache_fold_rows(args.embedding, args.folder, args.out)
    else:
        fit_and_score(args.name, args.seed, args.train, args.val, args.test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
