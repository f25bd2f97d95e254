"""DJ-style training mixes from any folder of music, with exact crossover labels.

Each clip joins excerpts of two or more different source tracks the way DJs hand over: hard cuts,
linear and equal-power crossfades, EQ handovers (``eq``: the incoming track's highs come in first,
the bass is swapped at the middle, the outgoing highs leave last; ``eq_high``, off by default: the
highs are swapped at the middle while the bass crossfades over the whole overlap) and fades
through a short gap. Every
track plays at a small speed offset (a deck without key lock: tempo and pitch move together) and
its own gain. The crossover point is the cut, the middle of the overlap, or the middle of the gap.

Sources are single files, the stems of one song summed (a folder holding ``song.ogg``,
``guitar.ogg``, ...), or members of zip archives when asked. Tracks are split into training and
validation *before* any clip is made, by track or by top-level folder (package, album), so no
source feeds both. Excerpts are read with seeks, never whole files; Ogg is written in blocks
(one long Vorbis write can crash libvorbis).
"""

import json
import logging
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, sosfiltfilt

from boundaries.atomic import write_text
from boundaries.data.annotations import write_boundaries
from boundaries.errors import BoundariesError, first_line
from boundaries.signal.audio import AUDIO_EXTENSIONS, write_audio
from boundaries.signal.features import die_with_parent

logger = logging.getLogger(__name__)

STEM_NAMES = {"song", "guitar", "rhythm", "bass", "drums", "vocals", "keys", "piano", "other"}
ARCHIVE_EXTENSIONS = (".zip", ".pk3")
SILENT_DBFS = -50.0  # an excerpt quieter than this (RMS) is redrawn: digital silence, a long pause
EQ_CROSSOVER_HZ = 200.0
KINDS = ("cut", "linear", "equal_power", "eq", "eq_high", "gap")  # the transitions a mix can use
# the unlabelled edits inside a track (``inner_edits``); the first three are the default
EDIT_KINDS = ("jump", "loop", "bass_cut", "tempo", "high_cut")


@dataclass(frozen=True)
class Source:
    """One source track: a file, or the stems of one song (summed)."""
    name: str  # stable id, relative to its --tracks root (archive members as archive/member)
    group: str  # top-level folder under the root: the package or album
    paths: tuple  # the file, or every stem
    duration_s: float


@dataclass(frozen=True)
class MixSettings:
    sr: int = 22050
    clip_s: tuple = (30.0, 240.0)  # clip length range (log-uniform)
    segment_s: tuple = (15.0, 75.0)  # time between crossovers
    overlap_s: tuple = (2.0, 30.0)  # crossfade and EQ handover length (log-uniform)
    gap_s: tuple = (0.3, 2.0)  # silence in a fade through a gap
    speed: float = 0.04  # +- relative tempo offset per track
    gain_db: float = 3.0  # +- level offset per track around a common RMS
    kinds: dict = field(default_factory=lambda: {"cut": 0.2, "linear": 0.2, "equal_power": 0.2,
                                                 "eq": 0.25, "gap": 0.15})
    # Share of excerpts that start at their track's beginning (half of them) or end at its end
    # (the other half): intros and endings at a crossover, as a mix of whole tracks has them.
    # 0 keeps the clips of older seeds byte-identical (no extra random draws).
    track_ends: float = 0.0
    format: str = "ogg"
    # Share of segments (30 s or longer) given one unlabelled edit inside the track: a jump to
    # another section of it, a loop, or a bass cut. Hard negatives: change that is not a new
    # track. 0 keeps the clips of older seeds byte-identical (no extra random draws).
    inner_edits: float = 0.0
    # Which edits (EDIT_KINDS), drawn with equal chance; the default three keep older seeds'
    # clips byte-identical. ``tempo`` and ``high_cut`` are opt-in (session 20).
    edit_kinds: tuple = ("jump", "loop", "bass_cut")


# ---------------------------------------------------------------- sources


def find_sources(roots, *, zips: bool = False, stems: bool = True, extract_dir=None):
    """Every usable source under ``roots``; returns ``(sources, problems)``.

    ``problems`` maps a path to one line saying why it was skipped (unreadable, not audio).
    Archive members are extracted into ``extract_dir`` (required with ``zips``).
    """
    if zips and extract_dir is None:
        raise ValueError("find_sources(zips=True) needs an extract_dir for the archive members")
    sources, problems = [], {}
    for root in map(Path, roots):
        if not root.is_dir():
            raise BoundariesError(f"{root}: not a folder; pass folders of music with --tracks")
        files = sorted(p for p in root.rglob("*") if p.is_file())
        audio = [(root, p) for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
        if zips:  # members are named as if the archive were a folder: pkg/0music.pk3/music/x.ogg
            base = Path(extract_dir) / root.name
            for archive in (p for p in files if p.suffix.lower() in ARCHIVE_EXTENSIONS):
                audio += [(base, p) for p in _extract_members(archive, root, base, problems)]
        for base, paths in _group_stems(audio, stems):
            source = _describe(base, paths, problems)
            if source is not None:
                sources.append(source)
    return sorted(sources, key=lambda s: s.name), problems


def _extract_members(archive: Path, root: Path, extract_dir: Path, problems) -> list:
    target = extract_dir / archive.relative_to(root)  # keeps the archive in the source's name
    try:
        with zipfile.ZipFile(archive) as handle:
            members = [m for m in handle.namelist()
                       if Path(m).suffix.lower() in AUDIO_EXTENSIONS and _safe_member(m)]
            for member in members:
                handle.extract(member, target)
    except (zipfile.BadZipFile, OSError) as exc:
        problems[archive] = f"{archive}: cannot open the archive ({first_line(exc, 80)}); skipped"
        return []
    return [target / m for m in members]


def _safe_member(name: str) -> bool:
    # Zip members named "../x" or "/x" would be written outside the extraction folder.
    return not Path(name).is_absolute() and ".." not in Path(name).parts


def _group_stems(entries, stems: bool) -> list:
    """``(base, paths)`` per source: single files as 1-tuples, the stems of one song (named
    song, guitar, rhythm, ... in one folder) as one tuple."""
    by_folder = {}
    for base, path in entries:
        by_folder.setdefault((base, path.parent), []).append(path)
    groups = []
    for (base, _), folder_paths in by_folder.items():
        stem_paths = [p for p in folder_paths if p.stem.lower() in STEM_NAMES] if stems else []
        if len(stem_paths) >= 2:
            groups.append((base, tuple(stem_paths)))
        else:
            stem_paths = []
        groups += [(base, (p,)) for p in folder_paths if p not in stem_paths]
    return groups


def _describe(base: Path, paths: tuple, problems) -> "Source | None":
    try:
        durations = [sf.info(str(p)).duration for p in paths]
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        problems[paths[0]] = f"{paths[0]}: cannot decode ({first_line(exc, 80)}); skipped"
        return None
    relative = paths[0].relative_to(base)
    name = relative.parent if len(paths) > 1 else relative
    group = name.parts[0] if len(name.parts) > 1 else str(name)  # a loose file is its own group
    return Source(name=str(name), group=group, paths=tuple(str(p) for p in paths),
                  duration_s=float(min(durations)))


def split_sources(sources, *, by: str = "track", val_fraction: float = 0.2, seed: int = 0):
    """``(train, val)``: whole groups (``by='group'``) or tracks go to validation until it holds
    ``val_fraction`` of the total duration; a group that would overshoot by half the target is
    passed over (if all would, the one nearest the target is taken)."""
    if by not in ("track", "group"):
        raise BoundariesError(f"split by {by!r}: use 'track' or 'group'")
    key = (lambda s: s.name) if by == "track" else (lambda s: s.group)
    groups = sorted({key(s) for s in sources})
    durations = {g: sum(s.duration_s for s in sources if key(s) == g) for g in groups}
    target = val_fraction * sum(durations.values())
    val_groups, val_total = set(), 0.0
    for g in np.random.default_rng(seed).permutation(groups):
        if val_total >= target:
            break
        if val_total + durations[g] <= 1.5 * target:
            val_groups.add(g)
            val_total += durations[g]
    if not val_groups:  # every group is big: take the one nearest the target
        val_groups = {min(groups, key=lambda g: abs(durations[g] - target))}
    if len(groups) < 2 or len(val_groups) == len(groups):
        raise BoundariesError(f"{len(groups)} {by}(s) of music: a split by {by} needs at least "
                              "two; add music or split by track")
    val = [s for s in sources if key(s) in val_groups]
    train = [s for s in sources if key(s) not in val_groups]
    return train, val


# ---------------------------------------------------------------- one clip


def read_excerpt(source: Source, offset_s: float, duration_s: float, sr: int,
                 speed: float = 1.0) -> np.ndarray:
    """``duration_s`` seconds of mono audio at ``sr`` as heard at ``speed`` (1.04 = 4 % faster),
    read from ``offset_s`` in the source with a seek; stems are summed."""
    total = None
    for path in source.paths:
        with sf.SoundFile(path) as handle:
            start = int(offset_s * handle.samplerate)
            n = int(np.ceil(duration_s * speed * handle.samplerate)) + 64
            handle.seek(min(start, max(handle.frames - 1, 0)))
            x = handle.read(n, dtype="float32", always_2d=True).mean(axis=1)
            # Played at `speed`: the source's samples last 1/speed as long.
            y = soxr.resample(x, handle.samplerate * speed, sr, quality="HQ")
        total = y if total is None else total[:len(y)] + y[:len(total)]
    n_out = int(round(duration_s * sr))
    return np.pad(total, (0, max(0, n_out - len(total))))[:n_out].astype(np.float32)


def _dbfs(y) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(y, dtype=np.float64))) + 1e-12))


def _loguniform(rng, low, high) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def plan_layout(rng, settings: MixSettings):
    """Clip length, crossover times, and per crossover its kind and overlap (seconds)."""
    clip_s = _loguniform(rng, *settings.clip_s)
    lo, hi = settings.segment_s
    times, t = [], rng.uniform(min(lo, clip_s / 3), min(hi, clip_s / 2))
    while t < clip_s - min(lo, clip_s / 4):
        times.append(t)
        t += rng.uniform(lo, hi)
    if not times:
        times = [clip_s / 2]
    edges = np.r_[0.0, times, clip_s]
    kinds = list(settings.kinds)
    probs = np.array([settings.kinds[k] for k in kinds], dtype=float)
    transitions = []
    for i, time_s in enumerate(times):
        kind = str(rng.choice(kinds, p=probs / probs.sum()))
        room = 0.9 * min(edges[i + 1] - edges[i], edges[i + 2] - edges[i + 1])
        if kind == "cut":
            overlap = 0.0
        elif kind == "gap":  # fade out, silence (a negative overlap), fade in
            overlap = -rng.uniform(*settings.gap_s)
        else:
            overlap = min(_loguniform(rng, *settings.overlap_s), room)
        transition = {"time_s": float(time_s), "kind": kind, "overlap_s": float(overlap)}
        if kind == "gap":
            transition["fade_s"] = float(rng.uniform(0.5, min(4.0, room / 2)))
        transitions.append(transition)
    return float(clip_s), transitions


def _segment_spans(clip_s, transitions):
    """(start_s, stop_s) of every track in the clip. With overlap o the incoming track starts at
    t - o/2 and the outgoing one stops at t + o/2; a gap is a negative overlap."""
    starts = [0.0] + [t["time_s"] - t["overlap_s"] / 2 for t in transitions]
    stops = [t["time_s"] + t["overlap_s"] / 2 for t in transitions] + [clip_s]
    return list(zip(starts, stops))


def _envelopes(n, sr, transition_in, transition_out):
    """Per-band gain curves (low, high) of one track over its ``n`` samples."""
    low = np.ones(n, dtype=np.float32)
    high = np.ones(n, dtype=np.float32)
    for transition, rising in ((transition_in, True), (transition_out, False)):
        if transition is None or transition["kind"] == "cut":
            continue
        kind, overlap = transition["kind"], transition["overlap_s"]
        length = transition["fade_s"] if kind == "gap" else overlap
        m = min(n, int(round(length * sr)))
        ramp = np.linspace(0.0, 1.0, m, dtype=np.float32)
        if kind == "equal_power":
            ramp = np.sin(0.5 * np.pi * ramp)
        if kind == "eq":  # highs ramp over the incoming half; the bass swaps at the middle
            half = m // 2
            bass = (np.arange(m) >= half).astype(np.float32)
            high_ramp = np.minimum(1.0, ramp * 2) if rising else np.maximum(0.0, ramp * 2 - 1)
            curves = (bass, high_ramp)
        elif kind == "eq_high":  # the highs swap at the middle; the bass crossfades throughout
            curves = (ramp, (np.arange(m) >= m // 2).astype(np.float32))
        else:
            curves = (ramp, ramp)
        for env, curve in zip((low, high), curves):
            if rising:
                env[:m] *= curve
            else:
                env[n - m:] *= curve[::-1]
    return low, high


def make_mix(rng, sources, settings: MixSettings, max_tries: int = 20):
    """One clip: ``(y, crossover_times_s, record)``; ``record`` is the manifest entry."""
    clip_s, transitions = plan_layout(rng, settings)
    spans = _segment_spans(clip_s, transitions)
    sr = settings.sr
    y = np.zeros(int(round(clip_s * sr)), dtype=np.float32)
    used, segments = set(), []
    low_pass = butter(4, EQ_CROSSOVER_HZ, btype="low", fs=sr, output="sos")
    for i, (start, stop) in enumerate(spans):
        piece, segment = _draw_excerpt(rng, sources, used, stop - start, settings, max_tries)
        long_enough = stop - start >= 30.0
        if settings.inner_edits > 0 and long_enough and rng.random() < settings.inner_edits:
            piece, edit = inner_edit(rng, piece, sources, segment, sr, settings.edit_kinds)
            segment["edit"] = {**edit, "time_s": round(start + edit["time_s"], 3)}
        segment.update(start_s=round(start, 3), stop_s=round(stop, 3))
        segments.append(segment)
        low_env, high_env = _envelopes(len(piece), sr, transitions[i - 1] if i else None,
                                       transitions[i] if i < len(transitions) else None)
        if np.any(low_env != high_env):
            low = sosfiltfilt(low_pass, piece).astype(np.float32)
            piece = low * low_env + (piece - low) * high_env
        else:
            piece = piece * low_env
        begin = int(round(start * sr))
        stop_i = min(len(y), begin + len(piece))
        y[begin:stop_i] += piece[:stop_i - begin]
    peak = float(np.abs(y).max())
    if peak > 0.98:  # no clipping; every track keeps its relative level
        y *= 0.98 / peak
    times = np.array([t["time_s"] for t in transitions])
    record = {"duration_s": round(clip_s, 3), "segments": segments,
              "transitions": [{**t, "time_s": round(t["time_s"], 3),
                               "overlap_s": round(t["overlap_s"], 3)} for t in transitions]}
    return y, times, record


def _draw_excerpt(rng, sources, used, duration_s, settings, max_tries):
    for _ in range(max_tries):
        speed = float(1 + rng.uniform(-settings.speed, settings.speed))
        need = duration_s * speed + 0.1
        candidates = [i for i, s in enumerate(sources) if i not in used and s.duration_s >= need]
        if not candidates:
            break
        index = int(rng.choice(candidates))
        source = sources[index]
        offset = float(rng.uniform(0, source.duration_s - need))
        if settings.track_ends > 0 and rng.random() < settings.track_ends:
            offset = 0.0 if rng.random() < 0.5 else source.duration_s - need  # intro or ending
        piece = read_excerpt(source, offset, duration_s, settings.sr, speed)
        level = _dbfs(piece)
        if level < SILENT_DBFS:  # silence or a near-silent passage: draw again
            continue
        used.add(index)
        gain_db = float(rng.uniform(-settings.gain_db, settings.gain_db))
        piece *= np.float32(10 ** ((-20.0 + gain_db - level) / 20))  # common level, +- gain
        return piece, {"source": source.name, "offset_s": round(offset, 3),
                       "speed": round(speed, 4), "gain_db": round(gain_db, 2)}
    raise BoundariesError(f"no unused source of at least {duration_s:.0f} s with sound in it; "
                          "add tracks or lower --segment-s / --clip-s")


def inner_edit(rng, piece, sources, segment, sr, kinds=EDIT_KINDS[:3]):
    """One edit of ``kinds`` inside a track's excerpt, in its middle 40 %: ``(piece, record)``.

    - ``jump``: the rest of the excerpt comes from another section of the same track (a cut or
      a crossfade of up to 2 s), as a DJ jumping to a hot cue;
    - ``loop``: 2-8 s repeated 2-4 times;
    - ``bass_cut``: the bass below 200 Hz removed for 4-16 s (a DJ's EQ kill);
    - ``tempo``: from there on the same track plays 3-8 % faster or slower (a pitch-fader move,
      or a track that changes tempo), joined by a crossfade of up to 2 s;
    - ``high_cut``: everything above 200 Hz removed for 4-16 s (a DJ's low-pass filter).
    """
    n = len(piece)
    at = int(rng.uniform(0.3, 0.7) * n)
    kind = str(rng.choice(list(kinds)))
    if kind in ("jump", "tempo"):
        source = next(s for s in sources if s.name == segment["source"])
        rest_s = (n - at) / sr
        if kind == "jump":
            speed = segment["speed"]
            need = rest_s * speed + 0.1
            offset = float(rng.uniform(0, max(0.0, source.duration_s - need)))
            record = {"kind": kind, "offset_s": round(offset, 3)}
        else:  # where the excerpt is at `at`, played on at another speed
            # rounded as the manifest records it, so the record replays the audio exactly
            speed = round(float(segment["speed"] * (1 + rng.choice([-1, 1])
                                                    * rng.uniform(0.03, 0.08))), 4)
            offset = segment["offset_s"] + at / sr * segment["speed"]
            record = {"kind": kind, "speed": speed}
        piece = _switched(rng, piece, read_excerpt(source, offset, rest_s, sr, speed), at, sr)
    elif kind == "loop":
        length = int(rng.uniform(2.0, 8.0) * sr)
        repeats = int(rng.integers(2, 5))
        loop = np.tile(piece[at:at + length], repeats)[:n - at - length]
        piece = piece.copy()
        piece[at + length:at + length + len(loop)] = loop
        record = {"kind": kind, "length_s": round(length / sr, 3), "repeats": repeats}
    else:  # bass_cut, high_cut
        length = min(int(rng.uniform(4.0, 16.0) * sr), n - at)
        low = sosfiltfilt(butter(4, EQ_CROSSOVER_HZ, btype="low", fs=sr, output="sos"),
                          piece[at:at + length]).astype(np.float32)
        piece = piece.copy()
        piece[at:at + length] = piece[at:at + length] - low if kind == "bass_cut" else low
        record = {"kind": kind, "length_s": round(length / sr, 3)}
    return piece.astype(np.float32), {**record, "time_s": at / sr}


def _switched(rng, piece, other, at, sr):
    """``piece`` up to sample ``at``, then ``other`` at ``piece``'s level, joined by a linear
    crossfade of 0.01-2 s."""
    n = len(piece)
    other = other * np.float32(np.sqrt(np.mean(piece ** 2) / (np.mean(other ** 2) + 1e-12)))
    fade = min(int(rng.uniform(0.01, 2.0) * sr), n - at)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    tail = other.copy()
    tail[:fade] = ramp * other[:fade] + (1 - ramp) * piece[at:at + fade]
    return np.concatenate([piece[:at], tail])[:n]


# ---------------------------------------------------------------- writing


def _write_clip(out_dir: Path, split: str, index: int, sources, settings: MixSettings,
                seed: int) -> dict:
    split_code = {"train": 0, "val": 1, "test": 2}[split]
    rng = np.random.default_rng([seed, split_code, index])  # independent of order and of n
    y, times, record = make_mix(rng, sources, settings)
    name = f"mix_{index:04d}.{settings.format}"
    write_audio(out_dir / split / name, y, settings.sr, settings.format)
    write_boundaries(out_dir / split / f"mix_{index:04d}.txt", times, "txt")
    return {"file": f"{split}/{name}", **record}


def write_mixes(out_dir, splits: dict, settings: MixSettings, seed: int = 0, jobs: int = 1,
                split_info: "dict | None" = None, progress=None) -> list:
    """Write ``{split: (sources, n_clips)}`` as ``OUT/<split>/mix_NNNN.<fmt>`` + ``.txt`` and
    ``OUT/manifest.json``; returns the manifest's clip records."""
    out_dir = Path(out_dir)
    tasks = []
    for split, (sources, n_clips) in splits.items():
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        tasks += [(out_dir, split, i, sources, settings, seed) for i in range(n_clips)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                                 initializer=die_with_parent) as pool:
            futures = [pool.submit(_write_clip, *task) for task in tasks]
            records = [_track(f.result(), progress) for f in futures]
    else:
        records = [_track(_write_clip(*task), progress) for task in tasks]
    manifest = {"seed": seed, "settings": asdict(settings), "split": split_info or {},
                "clips": records}
    write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return records


def _track(record, progress):
    if progress is not None:
        progress(record)
    return record


def temporary_extract_dir():
    """Where archive members are unpacked for one run (removed afterwards)."""
    return tempfile.TemporaryDirectory(prefix="boundaries-mix-")
