"""Speed of ``boundaries detect`` against issue 16's targets, in figures measured in one run.

    python benchmarks/speed.py [--minutes 10] [--mixes 6] [--checkpoint PATH] [--keep DIR]

1. Stages, per format: a 44.1 kHz stereo file (synthetic music, ``--minutes`` long) in mp3, ogg,
   flac and wav; decode, resample (44.1 -> 22.05 kHz), log-mel, model, peak picking and Foote
   novelty, each as audio seconds per wall second on one thread.
2. A folder of ``--mixes`` mp3 mixes of ``--minutes`` each (an hour by default): the floor (decode
   + resample + log-mel of every file, one thread), the model's share of it, and ``boundaries
   detect DIR --jobs 2`` end to end in a new process, as a user runs it.
3. Start-up: ``boundaries detect`` on one 5-s file, and ``boundaries --help``.
4. Peak RSS of ``boundaries detect`` on one ``--long-hours`` wav.

It ends with each target, met or missed. Compare ratios within one run: the machines are shared
and noisy.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from threadpoolctl import threadpool_limits

from boundaries.api import DEFAULT_MODEL
from boundaries.detection import inference
from boundaries.model.checkpoints import load_model
from boundaries.recipes.synthetic import make_clip
from boundaries.signal import novelty
from boundaries.signal.audio import load_audio, write_audio
from boundaries.signal.features import log_mel

FORMATS = {"mp3": ("MP3", "MPEG_LAYER_III"), "ogg": ("OGG", "VORBIS"), "flac": ("FLAC", "PCM_16"),
           "wav": ("WAV", "PCM_16")}
SR_IN = 44100


def synthetic_stereo(minutes: float) -> np.ndarray:
    """Stereo 44.1 kHz music-like audio built from 60 s synthetic clips with boundaries."""
    pieces = [make_clip(np.random.default_rng([7, i]), 60.0, SR_IN)[0]
              for i in range(int(np.ceil(minutes)))]
    y = np.concatenate(pieces)[:int(minutes * 60 * SR_IN)]
    return np.stack([y, np.roll(y, 441) * 0.8], axis=1)


def make_long_wav(path: Path, stereo: np.ndarray, hours: float) -> Path:
    """``hours`` of audio by repeating ``stereo``, written in blocks (never all in memory)."""
    n = int(hours * 3600 * SR_IN)
    with sf.SoundFile(path, "w", SR_IN, 2, subtype="PCM_16") as handle:
        while n > 0:
            block = stereo[:n]
            handle.write(block)
            n -= len(block)
    return path


def make_audio(folder: Path, stereo: np.ndarray) -> list:
    """The same audio in each format."""
    paths = []
    for ext, (fmt, subtype) in FORMATS.items():
        path = folder / f"mix.{ext}"
        if ext == "ogg":
            write_audio(path, stereo, SR_IN, "ogg")  # block writes (libvorbis)
        else:
            sf.write(path, stereo, SR_IN, format=fmt, subtype=subtype)
        paths.append(path)
    return paths


def best_of(fn, repeats=3):
    """Smallest wall time of ``repeats`` calls (the least disturbed by other jobs)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def stage_times(path: Path, model, cfg, repeats) -> dict:
    fps = cfg.fps
    decode_s, native = best_of(lambda: sf.read(path, dtype="float32")[0], repeats)
    mono = native.mean(axis=1)
    resample_s, y = best_of(lambda: soxr.resample(mono, SR_IN, cfg.audio.sr, quality="HQ"),
                            repeats)
    load_s, _ = best_of(lambda: load_audio(path, cfg.audio.sr), repeats)
    mel_s, mel = best_of(lambda: log_mel(y, sr=cfg.audio.sr, **vars(cfg.features)), repeats)
    forward_s, acts = best_of(lambda: inference.activations_for(model, mel, cfg, "cpu"),
                              repeats)
    peaks_s, _ = best_of(lambda: inference.pick(acts, cfg.peaks, cfg.fps), repeats)
    foote_s, _ = best_of(lambda: novelty.foote_activations(mel, fps=fps), repeats)
    return {"decode": decode_s, "resample": resample_s, "load_audio": load_s, "log-mel": mel_s,
            "forward": forward_s, "peaks": peaks_s, "foote": foote_s}


# Runs a command and prints the peak RSS (kB) of the largest process it started.
RSS_WRAPPER = ("import resource, subprocess, sys; "
               "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def warm_up(model, cfg) -> None:
    """First calls load numba's cached kernels and fill caches: keep them out of the figures."""
    y = np.random.default_rng(0).standard_normal(cfg.audio.sr * 600).astype(np.float32) * 0.1
    mel = log_mel(y, sr=cfg.audio.sr, **vars(cfg.features))
    inference.boundaries_for(model, mel, cfg, "cpu")
    novelty.foote_activations(mel, fps=cfg.fps)


def model_seconds(path: Path, model, cfg) -> tuple:
    """``(floor_s, model_s)`` of one file, one thread: decode + resample + log-mel, then every
    step from log-mel to boundaries (descriptors, embedding, trees, peaks, placement)."""
    start = time.perf_counter()
    y = load_audio(path, cfg.audio.sr)
    mel = log_mel(y, sr=cfg.audio.sr, **vars(cfg.features))
    middle = time.perf_counter()
    inference.boundaries_for(model, mel, cfg, "cpu")
    return middle - start, time.perf_counter() - middle


def run_detect(folder: Path, checkpoint, jobs: int) -> tuple:
    """Wall seconds and peak RSS (MB) of ``boundaries detect`` over ``folder`` in a new process."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-c", RSS_WRAPPER, sys.executable, "-m", "boundaries", "detect",
                   str(folder), "-o", out, "--checkpoint", str(checkpoint), "--jobs", str(jobs)]
        start = time.perf_counter()
        result = subprocess.run(command, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    return seconds, int(result.stdout.split()[-1]) / 1024


def best_wall(command, repeats=3) -> float:
    return best_of(lambda: subprocess.run(command, check=True, capture_output=True), repeats)[0]


def stage_table(folder: Path, stereo, model, cfg, minutes, repeats) -> None:
    paths = make_audio(folder, stereo)
    audio_s = minutes * 60
    print(f"## Stages: {minutes:g} min of 44.1 kHz stereo per format; x real time = audio s / "
          f"wall s (best of {repeats}, one thread)\n")
    header = ["format", "decode", "resample", "load_audio", "log-mel", "forward", "peaks",
              "foote", "floor"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for path in paths:
        t = stage_times(path, model, cfg, repeats)
        floor = t["load_audio"] + t["log-mel"]  # decode + downmix + resample + mel
        cells = [f"{audio_s / t[k]:.0f}" for k in header[1:8]] + [f"{audio_s / floor:.0f}"]
        print("| " + " | ".join([path.suffix[1:]] + cells) + " |", flush=True)
        path.unlink()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each file")
    parser.add_argument("--mixes", type=int, default=6, help="mp3 mixes in the folder")
    parser.add_argument("--checkpoint", default=str(DEFAULT_MODEL))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="write the test files here instead of a temporary folder")
    parser.add_argument("--long-hours", type=float, default=2.0,
                        help="also run detect on one file this long (peak RSS); 0 skips it")
    args = parser.parse_args(argv)
    threadpool_limits(1)
    model, cfg, _ = load_model(args.checkpoint)
    warm_up(model, cfg)
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        stereo = synthetic_stereo(args.minutes)
        (folder / "formats").mkdir(exist_ok=True)
        stage_table(folder / "formats", stereo, model, cfg, args.minutes, args.repeats)

        mixes = folder / "mixes"
        mixes.mkdir(exist_ok=True)
        for i in range(args.mixes):  # other audio in each: shifted by a prime number of seconds
            sf.write(mixes / f"mix_{i}.mp3", np.roll(stereo, i * 37 * SR_IN, axis=0), SR_IN,
                     format="MP3", subtype="MPEG_LAYER_III")
        total_s = args.mixes * args.minutes * 60
        floor_s = model_s = 0.0
        for path in sorted(mixes.iterdir()):
            f, m = model_seconds(path, model, cfg)
            floor_s, model_s = floor_s + f, model_s + m
        e2e_s, rss = run_detect(mixes, args.checkpoint, 2)
        print(f"\n## A folder of {args.mixes} mp3 mixes, {total_s / 60:.0f} min\n")
        print(f"- floor (decode + resample + log-mel, one thread): {floor_s:.1f} s, "
              f"{total_s / floor_s:.0f}x real time")
        print(f"- model (log-mel -> boundaries, one thread): {model_s:.1f} s, "
              f"{model_s / floor_s:.2f}x the floor")
        print(f"- `boundaries detect DIR --jobs 2`: {e2e_s:.1f} s, {total_s / e2e_s:.0f}x real "
              f"time, {e2e_s / floor_s:.2f}x the floor, peak RSS {rss:.0f} MB (largest process)")
        targets += [("end to end >= 400x real time", total_s / e2e_s >= 400,
                     f"{total_s / e2e_s:.0f}x"),
                    ("end to end <= 1.3x the floor", e2e_s <= 1.3 * floor_s,
                     f"{e2e_s / floor_s:.2f}x"),
                    ("model <= 0.25x the floor", model_s <= 0.25 * floor_s,
                     f"{model_s / floor_s:.2f}x")]

        tiny = folder / "tiny"
        tiny.mkdir(exist_ok=True)
        sf.write(tiny / "five_seconds.wav", stereo[:5 * SR_IN], SR_IN)
        with tempfile.TemporaryDirectory() as out:
            detect = [sys.executable, "-m", "boundaries", "detect", str(tiny), "-o", out,
                      "--overwrite", "--checkpoint", str(args.checkpoint)]
            startup_s = best_wall(detect, args.repeats)
        help_s = best_wall([sys.executable, "-m", "boundaries", "--help"], args.repeats)
        print(f"\n## Start-up (best of {args.repeats}, a new process)\n")
        print(f"- `boundaries detect` on one 5-s file: {startup_s:.2f} s")
        print(f"- `boundaries --help`: {help_s:.2f} s")
        targets += [("start-up <= 1 s", startup_s <= 1.0, f"{startup_s:.2f} s"),
                    ("--help <= 0.5 s", help_s <= 0.5, f"{help_s:.2f} s")]

        if args.long_hours > 0:
            for path in mixes.iterdir():
                path.unlink()  # disk: only the long file is left
            long_dir = folder / "long"
            long_dir.mkdir(exist_ok=True)
            make_long_wav(long_dir / "long.wav", stereo, args.long_hours)
            print(f"\n## One {args.long_hours:g} h 44.1 kHz stereo wav\n")
            for jobs in (1, 2):
                seconds, rss = run_detect(long_dir, args.checkpoint, jobs)
                print(f"- `--jobs {jobs}`: {args.long_hours * 3600 / seconds:.0f}x real time, "
                      f"peak RSS {rss:.0f} MB (largest process)", flush=True)
                if jobs == 1:
                    targets.append((f"{args.long_hours:g} h file in <= 1.2 GB", rss <= 1228,
                                    f"{rss:.0f} MB"))
    print("\n## Targets (issue 16)\n")
    for name, met, value in targets:
        print(f"- {'met' if met else 'MISSED'}: {name} ({value})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
