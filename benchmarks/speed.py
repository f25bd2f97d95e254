"""Speed of every stage of ``boundaries detect``, in real-time factors measured in one run.

    python benchmarks/speed.py [--minutes 10] [--checkpoint PATH] [--keep DIR]

Makes a 44.1 kHz stereo file (synthetic music, ``--minutes`` long) in mp3, ogg, flac and wav, then
prints for each format: decode, resample (44.1 -> 22.05 kHz), log-mel, model forward, peak picking
and Foote novelty, each as audio seconds per wall second on one thread; then ``boundaries detect``
end to end over the folder of all four files with ``--jobs 1`` and ``--jobs 2`` (a fresh process,
as a user runs it), its ratio to the decode+resample+mel floor, and its peak RSS. Compare ratios
within one run: the machines are shared and noisy.
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
import torch

from boundaries.cli import DEFAULT_MODEL
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
    with torch.inference_mode():
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
    """First calls compile numba kernels (librosa) and fill caches: keep them out of the figures."""
    y = np.random.default_rng(0).standard_normal(cfg.audio.sr * 5).astype(np.float32) * 0.1
    mel = log_mel(y, sr=cfg.audio.sr, **vars(cfg.features))
    inference.activations_for(model, mel, cfg, "cpu")
    novelty.foote_activations(mel, fps=cfg.fps)


def detect_end_to_end(folder: Path, checkpoint, jobs: int) -> tuple:
    """Wall seconds and peak RSS (MB) of ``boundaries detect`` over ``folder`` in a new process."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-c", RSS_WRAPPER, sys.executable, "-m", "boundaries", "detect",
                   str(folder), "-o", out, "--checkpoint", str(checkpoint), "--jobs", str(jobs)]
        start = time.perf_counter()
        result = subprocess.run(command, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    return seconds, int(result.stdout.split()[-1]) / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--checkpoint", default=str(DEFAULT_MODEL))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="write the test files here instead of a temporary folder")
    parser.add_argument("--long-hours", type=float, default=2.0,
                        help="also run detect on one file this long (peak RSS); 0 skips it")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, cfg, _ = load_model(args.checkpoint)
    warm_up(model, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        stereo = synthetic_stereo(args.minutes)
        formats_dir = folder / "formats"
        formats_dir.mkdir(exist_ok=True)
        paths = make_audio(formats_dir, stereo)
        audio_s = args.minutes * 60
        print(f"{args.minutes:g} min of 44.1 kHz stereo per format; x real time = audio s / wall s "
              f"(best of {args.repeats}, one thread)\n")
        header = ["format", "decode", "resample", "load_audio", "log-mel", "forward", "peaks",
                  "foote", "floor", "foote/cnn"]
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        floors = []
        for path in paths:
            t = stage_times(path, model, cfg, args.repeats)
            floor = t["load_audio"] + t["log-mel"]  # decode + downmix + resample + mel
            floors.append(floor)
            cnn = t["forward"] + t["peaks"]
            cells = [f"{audio_s / t[k]:.0f}" for k in header[1:8]] + [
                f"{audio_s / floor:.0f}", f"{t['foote'] / cnn:.2f}"]
            print("| " + " | ".join([path.suffix[1:]] + cells) + " |", flush=True)
        total_audio = audio_s * len(paths)
        floor_total = sum(floors)
        print(f"\ndecode+resample+mel floor over the folder: {total_audio / floor_total:.0f}x "
              "real time")
        tiny = folder / "tiny"
        tiny.mkdir(exist_ok=True)
        sf.write(tiny / "five_seconds.wav", stereo[:5 * SR_IN], SR_IN)
        for jobs in (1, 2):
            startup, _ = detect_end_to_end(tiny, args.checkpoint, jobs)
            seconds, rss = detect_end_to_end(formats_dir, args.checkpoint, jobs)
            steady = max(seconds - startup, 1e-9)
            print(f"boundaries detect --jobs {jobs}: {total_audio / seconds:.0f}x real time "
                  f"({seconds:.1f} s for {total_audio / 60:.0f} min), {seconds / floor_total:.2f}x "
                  f"the floor, peak RSS {rss:.0f} MB; start-up (one 5 s file) {startup:.1f} s, "
                  f"after it {total_audio / steady:.0f}x real time, {steady / floor_total:.2f}x "
                  "the floor", flush=True)
        if args.long_hours > 0:
            long_dir = folder / "long"
            long_dir.mkdir(exist_ok=True)
            make_long_wav(long_dir / "long.wav", stereo, args.long_hours)
            for path in paths:
                path.unlink()  # disk: only the long file is left
            for jobs in (1, 2):
                seconds, rss = detect_end_to_end(long_dir, args.checkpoint, jobs)
                print(f"one {args.long_hours:g} h 44.1 kHz stereo wav, --jobs {jobs}: "
                      f"{args.long_hours * 3600 / seconds:.0f}x real time, peak RSS {rss:.0f} MB "
                      "(largest process)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
