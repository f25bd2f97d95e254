"""Deterministic music-like clips with known boundaries: the embedded default data set.

Each clip joins excerpts of 2-5 synthetic "tracks", each with its own tempo, key, scale, timbre
and drum pattern, by hard cuts or by linear or equal-power crossfades of 1-10 s. The crossover
point (the cut, or the middle of the fade) is the boundary. Each incoming track is gain-matched to
the outgoing one over the 2 s either side of the crossover, and each track carries slow gain
swells and breakdowns of its own, so no boundary shows up as a loudness jump: a detector has to
hear the change of timbre, harmony and rhythm.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from boundaries.atomic import atomic_path
from boundaries.data.annotations import write_boundaries
from boundaries.signal.features import die_with_parent

SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10],
          "dorian": [0, 2, 3, 5, 7, 9, 10], "pentatonic": [0, 2, 4, 7, 9]}
TARGET_RMS = 0.08


@dataclass
class TrackStyle:
    """Everything that makes one synthetic track sound like itself."""
    bpm: float
    root_midi: int
    scale: list
    lead_partials: np.ndarray  # relative amplitudes of the lead's harmonics
    pad_partials: np.ndarray
    lead_octave: int
    drums: bool
    kick_pattern: np.ndarray  # 16 steps
    hat_pattern: np.ndarray
    noise_colour: float  # hat brightness
    swell_hz: float
    breakdown_bars: tuple


def random_style(rng: np.random.Generator) -> TrackStyle:
    def partials(n_max):
        n = rng.integers(2, n_max + 1)
        amps = 1.0 / np.arange(1, n + 1) ** rng.uniform(0.5, 2.5)
        if rng.random() < 0.4:
            amps[1::2] *= rng.uniform(0.0, 0.3)  # hollow, clarinet-like
        return amps * rng.uniform(0.5, 1.0, n)

    return TrackStyle(
        bpm=float(rng.uniform(70, 170)), root_midi=int(rng.integers(40, 60)),
        scale=SCALES[rng.choice(list(SCALES))], lead_partials=partials(10),
        pad_partials=partials(6), lead_octave=int(rng.integers(1, 3)),
        drums=bool(rng.random() < 0.75),
        kick_pattern=(rng.random(16) < np.tile([0.9, 0.1, 0.3, 0.1], 4)).astype(float),
        hat_pattern=(rng.random(16) < rng.uniform(0.3, 0.9)).astype(float),
        noise_colour=float(rng.uniform(0.2, 0.95)), swell_hz=float(rng.uniform(0.03, 0.15)),
        breakdown_bars=tuple(rng.choice(32, size=2, replace=False)))


def _midi_hz(midi) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69) / 12)


def _add_note(out, sr, start_s, dur_s, hz, partials, attack_s, decay):
    start, n = int(start_s * sr), int(dur_s * sr)
    if start >= len(out) or n <= 0:
        return
    n = min(n, len(out) - start)
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / attack_s) * np.exp(-decay * t)
    k = np.arange(1, len(partials) + 1)[:, None]
    keep = (k[:, 0] * hz) < sr / 2.2
    tone = partials[keep] @ np.sin(2 * np.pi * hz * k[keep] * t)
    out[start:start + n] += (env * tone).astype(np.float32)


def render_track(style: TrackStyle, duration_s: float, sr: int, rng) -> np.ndarray:
    """Render ``duration_s`` seconds of one track (mono float32, RMS normalised)."""
    n = int(duration_s * sr)
    out = np.zeros(n, dtype=np.float32)
    beat = 60.0 / style.bpm
    degrees = np.array(style.scale)
    step = beat / 4
    for bar_start in np.arange(0, duration_s, 4 * beat):
        chord = style.root_midi + degrees[rng.choice(len(degrees), 3, replace=False)] + 12
        for note in chord:  # pad: one sustained chord per bar
            _add_note(out, sr, bar_start, 4 * beat, _midi_hz(note), style.pad_partials * 0.25,
                      0.3, 0.3)
        _add_note(out, sr, bar_start, 2 * beat, _midi_hz(chord[0] - 24), np.array([1.0, 0.4]),
                  0.01, 1.5)  # bass
        for i in range(8):  # lead: eighth notes, some rests
            if rng.random() < 0.7:
                note = style.root_midi + 12 * style.lead_octave + rng.choice(degrees)
                _add_note(out, sr, bar_start + i * beat / 2, beat / 2, _midi_hz(note),
                          style.lead_partials * 0.35, 0.01, 4.0)
        if style.drums:
            _add_drums(out, sr, bar_start, step, style, rng)
    _apply_swells(out, sr, style, beat)
    rms = np.sqrt(np.mean(out ** 2)) + 1e-9
    return out * (TARGET_RMS / rms)


def _add_drums(out, sr, bar_start, step, style, rng):
    for i in range(16):
        start = int((bar_start + i * step) * sr)
        if style.kick_pattern[i]:
            t = np.arange(int(0.15 * sr)) / sr
            kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 20)
            _mix(out, start, 0.8 * kick)
        if style.hat_pattern[i]:
            noise = rng.standard_normal(int(0.05 * sr))
            bright = noise - style.noise_colour * np.concatenate([[0], noise[:-1]])
            _mix(out, start, 0.15 * bright * np.exp(-np.arange(len(noise)) / sr * 60))


def _mix(out, start, signal):
    stop = min(len(out), start + len(signal))
    if start < stop:
        out[start:stop] += signal[:stop - start].astype(np.float32)


def _apply_swells(out, sr, style, beat):
    """Slow gain swells (+-4 dB) and two 2-bar breakdowns: loudness changes inside tracks too."""
    t = np.arange(len(out)) / sr
    gain_db = 4.0 * np.sin(2 * np.pi * style.swell_hz * t)
    bar = (t / (4 * beat)).astype(int) % 32
    for first in style.breakdown_bars:
        gain_db[(bar == first) | (bar == first + 1)] -= 6.0
    out *= (10 ** (gain_db / 20)).astype(np.float32)


def make_clip(rng, clip_s: float = 30.0, sr: int = 22050):
    """One clip: ``(y, boundaries_s, transitions)`` with 1-4 interior boundaries."""
    n_bounds = int(rng.integers(1, 5)) if clip_s >= 25 else 1
    while True:
        times = np.sort(rng.uniform(3.0, clip_s - 3.0, n_bounds))
        if np.all(np.diff(np.concatenate([[0], times, [clip_s]])) >= 5.0):
            break
    edges = np.concatenate([[0.0], times, [clip_s]])
    kinds = rng.choice(["cut", "linear", "equal_power"], size=n_bounds, p=[0.3, 0.35, 0.35])
    fades = [0.0 if k == "cut" else float(rng.uniform(1.0, min(10.0, gap_limit)))
             for k, gap_limit in zip(kinds, _fade_limits(edges))]
    y = np.zeros(int(clip_s * sr), dtype=np.float32)
    previous = None  # (raw piece, its start time) of the outgoing track
    for i in range(len(edges) - 1):
        pad_in = fades[i - 1] / 2 if i > 0 else 0.0
        pad_out = fades[i] / 2 if i < n_bounds else 0.0
        start, stop = edges[i] - pad_in, edges[i + 1] + pad_out
        piece = render_track(random_style(rng), stop - start, sr, rng)
        if previous is not None:  # same loudness on both sides of the crossover
            piece *= _rms(previous[0], edges[i] - 2 - previous[1], edges[i] - previous[1], sr) / \
                _rms(piece, pad_in, pad_in + 2, sr)
        previous = (piece.copy(), start)
        piece *= _fade_envelope(len(piece), sr, pad_in * 2, pad_out * 2,
                                kinds[i - 1] if i > 0 else "cut",
                                kinds[i] if i < n_bounds else "cut")
        _mix(y, int(round(start * sr)), piece)
    peak = np.abs(y).max()
    if peak > 0.98:
        y *= 0.98 / peak
    transitions = [{"time_s": float(t), "kind": str(k), "fade_s": f} for t, k, f in
                   zip(times, kinds, fades)]
    return y, times, transitions


def _rms(y, start_s, stop_s, sr) -> float:
    segment = y[max(0, int(start_s * sr)):max(1, int(stop_s * sr))]
    return float(np.sqrt(np.mean(segment ** 2)) + 1e-9)


def _fade_limits(edges):
    # A fade may use at most 80 % of the shorter neighbouring segment.
    gaps = np.diff(edges)
    return [0.8 * min(gaps[i], gaps[i + 1]) for i in range(len(gaps) - 1)]


def _fade_envelope(n, sr, fade_in_s, fade_out_s, kind_in, kind_out):
    env = np.ones(n, dtype=np.float32)
    for length_s, kind, rising in ((fade_in_s, kind_in, True), (fade_out_s, kind_out, False)):
        m = min(n, int(round(length_s * sr)))
        if m <= 0:
            continue
        ramp = np.linspace(0.0, 1.0, m, dtype=np.float32)
        if kind == "equal_power":
            ramp = np.sin(0.5 * np.pi * ramp)
        if rising:
            env[:m] *= ramp
        else:
            env[n - m:] *= ramp[::-1]
    return env


def _write_clip(out_dir: Path, index: int, clip_s: float, seed: int, sr: int) -> dict:
    rng = np.random.default_rng([seed, index])  # each clip independent of n_clips and order
    y, times, transitions = make_clip(rng, clip_s, sr)
    stem = f"clip_{index:03d}"
    with atomic_path(out_dir / f"{stem}.wav") as tmp:
        sf.write(tmp, y, sr, subtype="PCM_16", format="WAV")
    write_boundaries(out_dir / f"{stem}.txt", times, "txt")
    return {"file": f"{stem}.wav", "n_boundaries": len(times),
            "transitions": ";".join(f"{t['time_s']:.3f}:{t['kind']}:{t['fade_s']:.2f}"
                                    for t in transitions)}


def write_dataset(out_dir, n_clips: int = 48, clip_s: float = 30.0, seed: int = 0,
                  sr: int = 22050, jobs: int = 1) -> Path:
    """Write ``clip_NNN.wav`` + ``clip_NNN.txt`` and ``manifest.csv`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                                 initializer=die_with_parent) as pool:
            rows = list(pool.map(_write_clip, [out_dir] * n_clips, range(n_clips),
                                 [clip_s] * n_clips, [seed] * n_clips, [sr] * n_clips))
    else:
        rows = [_write_clip(out_dir, i, clip_s, seed, sr) for i in range(n_clips)]
    with atomic_path(out_dir / "manifest.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out_dir
