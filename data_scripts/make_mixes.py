"""Turn folders of ordinary music files into DJ-style training clips with exact crossover labels.

    python data_scripts/make_mixes.py --tracks data/dev-music --out data/dev-mixes \\
        --n-clips 200 --n-val-clips 40 --split-by group --zips --seed 0 --jobs 2

writes ``OUT/train/mix_NNNN.ogg`` + ``.txt`` (crossover times, the data-set format),
``OUT/val/...`` built only from held-out tracks, and ``OUT/manifest.json`` (the split, and per clip
its source tracks, offsets, speeds, gains and transitions). Train with
``python train.py --set data.train_dir=OUT/train --set data.val_dir=OUT/val``.

Sources: any file soundfile reads, in any format, rate or channel count; the stems of one song in
one folder (song.ogg, guitar.ogg, ...) are summed; members of .zip/.pk3 archives are used with
``--zips``. Tracks too short for a segment, and excerpts of digital silence, are never drawn.
Each clip is fixed by (seed, split, index), so a re-run with more clips keeps the first ones.
"""

import argparse
import sys
from pathlib import Path

from boundaries.errors import BoundariesError
from boundaries.recipes.mixes import (
    EDIT_KINDS,
    KINDS,
    MixSettings,
    find_sources,
    split_sources,
    temporary_extract_dir,
    write_mixes,
)


def _pair(text: str) -> tuple:
    low, high = (float(v) for v in text.split(","))
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW,HIGH with 0 < LOW <= HIGH")
    return low, high


def _number_in(low: float, high: float, what: str):
    """An argparse type: a number from ``low`` to ``high`` (``what`` names it in the error)."""
    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {what} from {low:g} to {high:g}")
        return value
    return parse


_share = _number_in(0, 1, "a share")
_decibels = _number_in(0, 24, "dB")


def _kinds(text: str) -> dict:
    try:
        kinds = {k: float(w) for k, w in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND=WEIGHT,... "
                                         "(e.g. cut=1,eq_high=1)") from None
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds or min(kinds.values()) < 0 or sum(kinds.values()) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: kinds are {', '.join(KINDS)} with weights >= 0, not all 0")
    return kinds


def _edit_kinds(text: str) -> tuple:
    kinds = tuple(k for k in text.split(",") if k)
    if not kinds or set(kinds) - set(EDIT_KINDS) or len(set(kinds)) < len(kinds):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a comma-separated list from {', '.join(EDIT_KINDS)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", nargs="+", required=True, help="folders of music")
    parser.add_argument("--out", required=True, help="output folder (train/, val/, manifest.json)")
    parser.add_argument("--n-clips", type=int, default=100, help="training clips")
    parser.add_argument("--n-val-clips", type=int, default=20, help="validation clips")
    parser.add_argument("--n-test-clips", type=int, default=0,
                        help="extra clips of the validation tracks in test/ (other mixes)")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of the music (by duration) held out for validation")
    parser.add_argument("--split-by", choices=["track", "group"], default="track",
                        help="hold out whole tracks, or whole top-level folders (packages, albums)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--zips", action="store_true", help="use music inside .zip/.pk3 archives")
    parser.add_argument("--no-stems", action="store_true",
                        help="treat song/guitar/... files in one folder as separate tracks")
    parser.add_argument("--clip-s", type=_pair, default=(30.0, 240.0), help="clip length range")
    parser.add_argument("--segment-s", type=_pair, default=(15.0, 75.0),
                        help="time between crossovers")
    parser.add_argument("--overlap-s", type=_pair, default=(2.0, 30.0),
                        help="crossfade / EQ handover length range")
    parser.add_argument("--val-groups", nargs="+", metavar="GROUP",
                        help="hold out exactly these top-level folders (packages) for validation "
                             "instead of a seeded draw")
    parser.add_argument("--test-groups", nargs="+", metavar="GROUP",
                        help="test clips come from these packages, which feed neither training "
                             "nor validation (default: test clips reuse the validation tracks)")
    parser.add_argument("--inner-edits", type=_share, default=0.0,
                        help="share of segments given an unlabelled jump, loop or bass cut "
                             "inside the track (hard negatives; default: %(default)s)")
    parser.add_argument("--edit-kinds", type=_edit_kinds, default=MixSettings.edit_kinds,
                        metavar="KIND,...",
                        help="which edits --inner-edits draws, from " + ", ".join(EDIT_KINDS) +
                             " (tempo: the rest of the track 3-8 %% faster or slower; high_cut: "
                             "a low-pass for 4-16 s; default: " +
                             ",".join(MixSettings.edit_kinds) + ")")
    parser.add_argument("--kinds", type=_kinds, default=None, metavar="KIND=W,...",
                        help="transition kinds and their weights, from cut, linear, equal_power, "
                             "eq, eq_high, gap (default: " +
                             ",".join(f"{k}={w:g}" for k, w in MixSettings().kinds.items()) + ")")
    parser.add_argument("--gain-db", type=_decibels, default=MixSettings.gain_db,
                        help="+- level offset per track around a common loudness (dB)")
    parser.add_argument("--track-ends", type=_share, default=0.0,
                        help="share of excerpts that start at their track's beginning or end at "
                             "its end (intros and endings at crossovers; default: %(default)s)")
    parser.add_argument("--sr", type=int, default=22050, help="sample rate of the mixes")
    parser.add_argument("--format", choices=["ogg", "flac", "wav"], default="ogg")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = MixSettings(sr=args.sr, clip_s=args.clip_s, segment_s=args.segment_s,
                           overlap_s=args.overlap_s, format=args.format,
                           inner_edits=args.inner_edits, edit_kinds=args.edit_kinds,
                           gain_db=args.gain_db,
                           track_ends=args.track_ends,
                           **({"kinds": args.kinds} if args.kinds else {}))
    try:
        with temporary_extract_dir() as extract_dir:
            sources, problems = find_sources(args.tracks, zips=args.zips,
                                             stems=not args.no_stems, extract_dir=extract_dir)
            for line in problems.values():
                print(f"skipped: {line}", file=sys.stderr)
            usable = [s for s in sources if s.duration_s >= settings.segment_s[0]]
            if len(usable) < 4:
                raise BoundariesError(f"{len(usable)} usable tracks (at least "
                                      f"{settings.segment_s[0]:g} s long) in {args.tracks}; "
                                      "a mix needs several")
            test = [s for s in usable if s.group in set(args.test_groups or ())]
            usable = [s for s in usable if s not in test]
            _check_groups(usable + test, [*(args.val_groups or ()), *(args.test_groups or ())])
            if args.val_groups:
                val = [s for s in usable if s.group in set(args.val_groups)]
                train = [s for s in usable if s.group not in set(args.val_groups)]
            else:
                train, val = split_sources(usable, by=args.split_by,
                                           val_fraction=args.val_fraction, seed=args.seed)
            print(_describe_split(usable, train, val, len(sources) - len(usable)), flush=True)
            splits = {"train": (train, args.n_clips), "val": (val, args.n_val_clips),
                      "test": (test or val, args.n_test_clips)}
            info = {"by": "--val-groups" if args.val_groups else args.split_by,
                    "val_fraction": None if args.val_groups else args.val_fraction,
                    "train_sources": [s.name for s in train],
                    "val_sources": [s.name for s in val],
                    "test_sources": [s.name for s in test] if test else "the val sources"}
            done = []
            records = write_mixes(args.out, {k: v for k, v in splits.items() if v[1] > 0},
                                  settings, seed=args.seed, jobs=args.jobs, split_info=info,
                                  progress=lambda r: _progress(done, r))
    except BoundariesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable --out, a full disk, a source that vanished
        print(f"error: {exc.filename or args.out}: {exc.strerror}; check the path, its "
              "permissions and free space", file=sys.stderr)
        return 2
    minutes = sum(r["duration_s"] for r in records) / 60
    crossovers = sum(len(r["transitions"]) for r in records)
    print(f"wrote {len(records)} clips ({minutes:.0f} min, {crossovers} crossovers) and "
          f"manifest.json to {Path(args.out)}")
    return 0


def _check_groups(sources, groups) -> None:
    known = {s.group for s in sources}
    missing = [g for g in groups if g not in known]
    if missing:
        raise BoundariesError(f"--val-groups/--test-groups name {', '.join(missing)}, which hold "
                              "no usable track; use top-level folder names of --tracks")


def _describe_split(usable, train, val, n_short) -> str:
    def minutes(sources):
        return sum(s.duration_s for s in sources) / 60

    groups = sorted({s.group for s in val})
    return (f"{len(usable)} tracks ({minutes(usable):.0f} min; {n_short} shorter than a segment "
            f"left out) | train {len(train)} tracks, {minutes(train):.0f} min | val {len(val)} "
            f"tracks, {minutes(val):.0f} min from {', '.join(groups[:6])}"
            f"{' ...' if len(groups) > 6 else ''}")


def _progress(done, record) -> None:
    done.append(record)
    if len(done) % 20 == 0:
        print(f"  {len(done)} clips", flush=True)


if __name__ == "__main__":
    sys.exit(main())
