"""Accuracy of the shipped model against Foote's novelty baseline on mixes of unseen DEV music.

    python benchmarks/accuracy.py --music data/dev-music

1. Rebuilds the validation and test mixes of the default model's data (the documented
   make_mixes.py command with the same seed, minus the training clips): both come only from the
   held-out packages; validation is what training selected on, test is new mixes of them.
2. Runs the shipped detector as it ships (the CNN blended with Foote novelty, with the blend and
   thresholds stored in it, tuned on validation), and the CNN alone (thresholds tuned on
   validation the same way).
3. Runs the Foote checkerboard novelty alone on the same log-mel; its kernel width and thresholds
   are tuned on the validation mixes exactly as the model's were, then fixed for test.
4. Prints one row per method and split (frame PR-AUC, ROC-AUC, F1; boundary P/R/F at +-0.5 s and
   +-3 s, mir_eval conventions), the naive all-negative row, and the compute time of each method.
"""

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from boundaries import corpus, evaluation, inference, novelty, timebase
from boundaries.checkpoints import load_model

REPO = Path(__file__).resolve().parents[1]
KERNELS_S = (8.0, 16.0, 32.0, 64.0)  # Foote kernel widths tried on validation


def rebuild_mixes(music, out, seed, n_val, n_test, jobs):
    command = [sys.executable, str(REPO / "data_scripts" / "make_mixes.py"), "--tracks", *music,
               "--out", str(out), "--n-clips", "0", "--n-val-clips", str(n_val),
               "--n-test-clips", str(n_test), "--split-by", "group", "--zips",
               "--seed", str(seed), "--jobs", str(jobs)]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def load_split(folder, cfg):
    tracks, problems = corpus.discover(folder, cfg.audio.extensions)
    data, failed = corpus.load(tracks, cfg, progress=False)
    if problems or failed:
        raise SystemExit(f"error: could not load {len({**problems, **failed})} files of {folder}")
    return data


def timed(fn, data):
    start = time.perf_counter()
    activations = [fn(track) for track in data]
    return activations, time.perf_counter() - start


def row(name, split, result, seconds, audio_s):
    b05, b3 = result["boundary"]["0.5"], result["boundary"]["3.0"]
    return {"method": name, "split": split, "files": result["n_files"],
            "pr_auc": result["frame"]["pr_auc"], "roc_auc": result["frame"]["roc_auc"],
            "f1": result["frame"]["f1"],
            "p_0.5": b05["precision"], "r_0.5": b05["recall"], "f_0.5": b05["f"],
            "p_3": b3["precision"], "r_3": b3["recall"], "f_3": b3["f"],
            "x_real_time": audio_s / max(seconds, 1e-9)}


def naive_row(split, result):
    return {"method": "naive all-negative", "split": split, "files": result["n_files"],
            "pr_auc": result["naive"]["pr_auc"], "roc_auc": result["naive"]["roc_auc"],
            "f1": result["naive"]["f1"], **{k: 0.0 for k in ("p_0.5", "r_0.5", "f_0.5", "p_3",
                                                            "r_3", "f_3")},
            "x_real_time": float("nan")}


def recall_by_kind(out_dir: Path, split: str, result: dict) -> dict:
    """Share of crossovers of each transition kind with an estimate within 0.5 s and 3 s (a
    per-reference view; mir_eval's one-to-one matching can differ by a hit or two)."""
    manifest = json.loads((out_dir / "manifest.json").read_text())
    kinds = {str((out_dir / c["file"]).resolve()): [t["kind"] for t in c["transitions"]]
             for c in manifest["clips"] if c["file"].startswith(split + "/")}
    refs = {str((out_dir / c["file"]).resolve()): [t["time_s"] for t in c["transitions"]]
            for c in manifest["clips"] if c["file"].startswith(split + "/")}
    found = {}
    for file_row in result["per_file"]:
        key = str(Path(file_row["file"]).resolve())
        estimates = np.array(file_row["estimates_s"])
        for kind, time_s in zip(kinds[key], refs[key]):
            gap = np.min(np.abs(estimates - time_s)) if estimates.size else np.inf
            found.setdefault(kind, []).append((gap <= 0.5, gap <= 3.0))
    return {k: (len(v), float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v])))
            for k, v in sorted(found.items())}


def markdown(rows) -> str:
    header = ["method", "split", "files", "PR-AUC", "ROC-AUC", "F1", "P@0.5", "R@0.5", "F@0.5",
              "P@3", "R@3", "F@3", "x real time"]
    keys = ["pr_auc", "roc_auc", "f1", "p_0.5", "r_0.5", "f_0.5", "p_3", "r_3", "f_3"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        speed = "" if np.isnan(r["x_real_time"]) else f"{r['x_real_time']:.0f}"
        lines.append("| " + " | ".join([r["method"], r["split"], str(r["files"])] +
                                       [f"{r[k]:.3f}" for k in keys] + [speed]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--music", nargs="+", default=["data/dev-music"],
                        help="the DEV music folder (data_scripts/fetch_dev_music.py)")
    parser.add_argument("--out", default="data/bench-mixes", help="where the mixes are rebuilt")
    parser.add_argument("--checkpoint", default=str(REPO / "boundaries/assets/default.pt"))
    parser.add_argument("--seed", type=int, default=0, help="the seed the model's data used")
    parser.add_argument("--n-val", type=int, default=40)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    rebuild_mixes(args.music, Path(args.out), args.seed, args.n_val, args.n_test, args.jobs)
    model, cfg, _ = load_model(args.checkpoint)
    splits = {s: load_split(Path(args.out) / s, cfg) for s in ("val", "test")}
    fps = timebase.fps(cfg.audio.sr, cfg.features.hop_length)
    device = inference.resolve_device("cpu")
    # the CNN alone, its thresholds tuned on validation the same way (no novelty blend)
    alone = cfg.replace(peaks=dataclasses.replace(cfg.peaks, novelty_weight=0.0))
    alone, _ = evaluation.tune(model, splits["val"], alone, device, novelty_weights=(0.0,))
    rows = []
    for split, data in splits.items():
        audio_s = sum(t.duration_s for t in data)
        for name, row_cfg in ((f"shipped (CNN + {cfg.peaks.novelty_weight:g} novelty)", cfg),
                              ("CNN alone", alone)):
            acts, seconds = timed(
                lambda t, c=row_cfg: inference.activations_for(model, t.mel, c, device), data)
            result = evaluation.score(data, acts, row_cfg)  # thresholds tuned on validation
            rows.append(row(name, split, result, seconds, audio_s))
            if split == "test" and row_cfg is cfg:
                by_kind = recall_by_kind(Path(args.out), split, result)
        rows.append(naive_row(split, result))

    kernel, peak, frame = tune_foote(splits["val"], cfg, fps)
    print(f"Foote: kernel {kernel:g} s, peak threshold {peak}, frame threshold {frame} "
          "(tuned on validation)")
    for split, data in splits.items():
        audio_s = sum(t.duration_s for t in data)
        acts, seconds = timed(lambda t: novelty.foote_activations(t.mel, fps=fps,
                                                                  kernel_s=kernel), data)
        result = evaluation.score(data, acts, cfg, peak_threshold=peak, frame_threshold=frame)
        rows.append(row(f"Foote novelty ({kernel:g} s)", split, result, seconds, audio_s))
    rows.sort(key=lambda r: (r["split"] != "test", r["split"]))
    print(markdown(rows))
    print("x real time: audio seconds per second of compute from the cached log-mel (one thread)")
    print("\nshipped detector on test, by transition kind: crossovers, found within 0.5 s, 3 s")
    for kind, (n, within_05, within_3) in by_kind.items():
        print(f"  {kind:12s} {n:3d}  {within_05:.2f}  {within_3:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def tune_foote(val_data, cfg, fps):
    """Kernel width and thresholds that maximise validation F@tune_window, as for the model."""
    kernel_s, peak, frame, _ = evaluation.best_candidate(val_data, cfg, (
        (k, [novelty.foote_activations(t.mel, fps=fps, kernel_s=k) for t in val_data])
        for k in KERNELS_S))
    return kernel_s, peak, frame


if __name__ == "__main__":
    sys.exit(main())
