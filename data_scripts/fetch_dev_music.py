"""Fetch the DEV and DEV2 music (Debian packages of freely licensed game music) into a data folder.

    python data_scripts/fetch_dev_music.py --out data/dev-music            # the ten DEV packages
    python data_scripts/fetch_dev_music.py --out data/dev-music --dev2     # + the DEV2 packages

Downloads the packages with ``apt-get download`` (no root, nothing installed; run
``apt-get update`` first on a fresh machine), unpacks each with ``dpkg-deb -x`` into a temporary
folder and keeps only the music and the package's copyright file:

    data/dev-music/<package>/<music files, as laid out in the package>
    data/dev-music/<package>/copyright

The layout keeps the material's oddities on purpose (ufoai's music stays inside its zip archive,
Frets on Fire songs stay as stems in one folder per song): ``data_scripts/make_mixes.py`` handles
them. Packages already unpacked are skipped, so the script can be re-run after an interruption.
None of this audio is committed to the repository (see ../shared/DATA.md).

DEV2 packages (``--dev2``) are game data packages: only audio files of at least 45 s outside
sound-effect, voice and ambience folders are kept; 0 A.D.'s music is taken out of its 3 GB zip;
tracker modules are rendered to Ogg with ``openmpt123`` (``apt-get install openmpt123``) when it
is installed. The same music ships in more than one package, so a last pass drops later copies of
a track already kept (same length, same coarse spectrum) and lists them in ``OUT/DUPLICATES.txt``:
otherwise a track could straddle the train/test split.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# package -> folder inside the package that holds its music
PACKAGES = {
    "wesnoth-1.16-music": "usr/share/games/wesnoth/1.16/data/core/music",
    "ufoai-music": "usr/share/games/ufoai/base",  # 0music.pk3, a zip of music/*.ogg
    "warzone2100-music": "usr/share/games/warzone2100/music/albums",
    "hedgewars-data": "usr/share/games/hedgewars/Data/Music",
    "supertux-data": "usr/share/games/supertux2/music",
    "fretsonfire-songs-sectoid": "usr/share/games/fretsonfire/data/songs/sectoid",
    "drascula-music": "usr/share/scummvm/drascula/audio",
    "colobot-common-sounds": "usr/share/games/colobot/music",
    "fillets-ng-data": "usr/share/games/fillets-ng/music",
    "extremetuxracer-data": "usr/share/games/etr/music",
}
KEEP_SUFFIXES = {".ogg", ".opus", ".pk3", ".zip", ".json", ".txt"}

# DEV2: package -> folder searched for music (everything under it that passes the filters below)
DEV2_PACKAGES = {
    "0ad-data": "usr/share/games/0ad/mods/public",  # public.zip: members audio/music/**.ogg
    "naev-data": "usr/share/naev/dat/snd/music",
    "widelands-data": "usr/share/games/widelands/data/music",
    "berusky2-data": "usr/share/games/berusky2/music",
    "marsshooter-data": "usr/share/games/marsshooter/audio/music",
    "unknown-horizons": "usr/share/unknown-horizons/content/audio/music",
    "redeclipse-data": "usr/share/games/redeclipse/data",
    "trackballs-data": "usr/share/games/trackballs/music",
    "starfighter-data": "usr/share/starfighter/music",
    "wizznic-data": "usr/share/games/wizznic",
    "davegnukem-data": "usr/share/games/davegnukem/music",
    "enigma-data": "usr/share/games/enigma/music",
    "btanks-data": "usr/share/games/btanks/data/tunes",
    "zaz-data": "usr/share/games/zaz",
    "freecol": "usr/share/games/freecol/default/resources/music",
    "freedink-data": "usr/share/games/dink",
    "wordwarvi-sound": "usr/share/wordwarvi",
    "ardentryst": "usr/share/games/ardentryst/Music",
    "lordsawar-data": "usr/share/games/lordsawar/music",
    "adonthell-data": "usr/share/games/adonthell",
    "frozen-bubble-data": "usr/share/games/frozen-bubble",
    "miceamaze": "usr/share/games/miceamaze/music",
    "noiz2sa-data": "usr/share/games/noiz2sa",
    "lincity-ng-data": "usr/share/games/lincity-ng",
    "hex-a-hop-data": "usr/share/games/hex-a-hop",
    "neverball-common": "usr/share/games/neverball/bgm",
    "amoebax-data": "usr/share/games/amoebax/music",
    "planetblupi-music-ogg": "usr/share/planetblupi/music",
    # tracker modules, rendered with openmpt123 (~3 min a package on one core): DATA.md's
    # fifteen module packages.
    "tecnoballz-data": "usr/share/games/tecnoballz/musics",
    "pekka-kana-2-data": "usr/share/games/pekka-kana-2/data/music",
    "heroes-sound-tracks": "usr/share/games/heroes/mod",
    "freedroid-data": "usr/share/games/freedroid/sound",
    "rafkill-data": "usr/share/games/rafkill",
    "pingus-data": "usr/share/games/pingus/data/music",
    "biniax2-data": "usr/share/games/biniax2/music",
    "pachi-data": "usr/share/pachi/music",
    "open-invaders-data": "usr/share/open-invaders",
    "bomberclone-data": "usr/share/games/bomberclone/music",
    "gemdropx": "usr/share/games/gemdropx/sounds",
    "madbomber-data": "usr/share/games/madbomber/music",
    "bb": "usr/share/bb",
    "penguin-command": "usr/share/games/penguin-command/sound",
    "rockdodger": "usr/share/rockdodger",
}
AUDIO_SUFFIXES = {".ogg", ".opus", ".mp3", ".flac", ".wav"}
MODULE_SUFFIXES = {".mod", ".xm", ".s3m", ".it", ".mtm", ".669", ".med"}
NOT_MUSIC = re.compile(r"(^|/)(sfx|sounds?/(sfx|ambient|ambience|player|voice|announcer|animals)|"
                       r"voice|voices|announcer|ambience|ambient)(/|$)", re.IGNORECASE)
MIN_TRACK_S = 45.0


def download(packages, debs_dir: Path) -> dict:
    """``apt-get download`` whatever is missing; returns package -> .deb path."""
    debs_dir.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs_dir.glob(f"{p}_*.deb"))]
    if missing:
        print(f"downloading {len(missing)} packages into {debs_dir} ...", flush=True)
        result = subprocess.run(["apt-get", "download", *missing], cwd=debs_dir)
        if result.returncode != 0:
            raise SystemExit("error: apt-get download failed; run `apt-get update` once and retry "
                             "(the packages are in Debian main)")
    found = {}
    for package in packages:
        debs = sorted(debs_dir.glob(f"{package}_*.deb"))
        if not debs:
            raise SystemExit(f"error: {package}: no .deb in {debs_dir} after apt-get download; "
                             "run `apt-get update` and retry")
        found[package] = debs[-1]
    return found


def unpack(package: str, deb: Path, out_dir: Path) -> int:
    """Unpack the music of one package into ``out_dir/package``; returns the files kept."""
    target = out_dir / package
    if (target / ".complete").exists():
        return -1
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        music_root = Path(tmp) / PACKAGES[package]
        staging = Path(tmp) / "keep"
        kept = 0
        for path in sorted(music_root.rglob("*")):
            if path.is_file() and path.suffix.lower() in KEEP_SUFFIXES:
                dest = staging / path.relative_to(music_root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), dest)
                kept += 1
        copyright_file = Path(tmp) / "usr/share/doc" / package / "copyright"
        if copyright_file.exists():
            shutil.copy(copyright_file, staging / "copyright")
        if target.exists():  # a half-done earlier attempt
            shutil.rmtree(target)
        staging.rename(target)  # whole package appears at once
    (target / ".complete").touch()
    return kept


def unpack_dev2(package: str, deb: Path, out_dir: Path) -> int:
    """Unpack the music of one DEV2 package into ``out_dir/package`` (whole or not at all)."""
    target = out_dir / package
    if (target / ".complete").exists():
        return -1
    root = DEV2_PACKAGES[package]
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        # Only the music folder leaves the .deb: some packages hold GBs of other game data.
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp, "--wildcards", f"./{root}/*",
                        f"./usr/share/doc/{package}/copyright"], stdin=tar.stdout, check=False)
        tar.wait()
        music_root, staging = Path(tmp) / root, Path(tmp) / "keep"
        staging.mkdir()
        for archive in sorted(music_root.rglob("*.zip")):
            _extract_music_members(archive, music_root)
        kept = sum(_keep_if_music(path, path.relative_to(music_root), staging)
                   for path in sorted(music_root.rglob("*")) if path.is_file())
        copyright_file = Path(tmp) / "usr/share/doc" / package / "copyright"
        if copyright_file.exists():
            shutil.copy(copyright_file, staging / "copyright")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    (target / ".complete").touch()
    return kept


def _extract_music_members(archive: Path, music_root: Path) -> None:
    """0 A.D.: ``public.zip`` holds the game's data; only ``audio/music/**`` is music."""
    import zipfile

    with zipfile.ZipFile(archive) as handle:
        for member in handle.namelist():
            parts = Path(member).parts
            if ("music" in parts and Path(member).suffix.lower() in AUDIO_SUFFIXES
                    and ".." not in parts and not Path(member).is_absolute()):
                handle.extract(member, music_root / archive.stem)
    archive.unlink()


def _keep_if_music(path: Path, relative: Path, staging: Path) -> bool:
    """Move ``path`` into ``staging`` if it is music of at least 45 s (modules rendered first)."""
    import soundfile as sf

    suffix = path.suffix.lower()
    if NOT_MUSIC.search(relative.as_posix()) or suffix not in AUDIO_SUFFIXES | MODULE_SUFFIXES:
        return False
    if suffix in MODULE_SUFFIXES:
        path = _render_module(path)
        if path is None:
            return False
        relative = relative.with_suffix(".ogg")
    try:
        if sf.info(str(path)).duration < MIN_TRACK_S:
            return False
    except (sf.LibsndfileError, RuntimeError):
        return False
    dest = staging / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), dest)
    return True


def _render_module(path: Path):
    """A tracker module rendered once through (no repeats, at most 10 min) to Ogg at 44.1 kHz,
    or None. openmpt123 writes wav only here; the wav becomes Ogg block by block.

    Every fetch must give the same audio, or the training mixes and the trees fitted on them
    change (MODEL_CARD.md, session 28): ``--dither 0`` (openmpt123's default dither is random
    noise on every 16-bit sample), and a module whose playback itself draws random numbers (two
    renders differ) is left out, with a line saying so."""
    import filecmp

    import soundfile as sf

    if shutil.which("openmpt123") is None:
        return None
    first = _openmpt_wav(path)
    if first is None:
        return None
    first = first.replace(f"{path}.first.wav")
    wav = _openmpt_wav(path)
    same = wav is not None and filecmp.cmp(first, wav, shallow=False)
    first.unlink()
    if wav is None:
        return None
    if not same:
        wav.unlink()
        print(f"{path.name}: left out: two renders differ (its playback is random), so no two "
              "fetches would give the same audio", flush=True)
        return None
    ogg = Path(f"{path}.ogg")
    with sf.SoundFile(str(wav)) as src, sf.SoundFile(str(ogg), "w", src.samplerate, src.channels,
                                                      format="OGG", subtype="VORBIS") as dst:
        for block in src.blocks(blocksize=1 << 16, dtype="float32"):
            dst.write(block)  # block by block: one long Vorbis write can crash libvorbis
    wav.unlink()
    return ogg


def _openmpt_wav(path: Path):
    """``path``'s render by openmpt123 beside it (16-bit, no dither), or None."""
    result = subprocess.run(["openmpt123", "--quiet", "--render", "--force", "--output-type",
                             "wav", "--no-float", "--dither", "0", "--samplerate", "44100",
                             "--repeat", "0", "--end-time", "600", str(path)],
                            capture_output=True)
    wav = Path(f"{path}.wav")
    return wav if result.returncode == 0 and wav.exists() else None


def fingerprint(path: Path):
    """(duration_s, coarse spectrum over time) of a track, for finding the same music twice."""
    import soundfile as sf
    import soxr

    with sf.SoundFile(str(path)) as handle:
        duration = handle.frames / handle.samplerate
        handle.seek(min(int(10 * handle.samplerate), max(handle.frames - 1, 0)))
        x = handle.read(int(30 * handle.samplerate), dtype="float32", always_2d=True).mean(1)
        x = soxr.resample(x, handle.samplerate, 8000)
    frames = x[:len(x) // 4000 * 4000].reshape(-1, 4000)  # 0.5 s frames
    if len(frames) == 0:  # shorter than 10.5 s: no print, so never a duplicate
        return duration, np.zeros(0, dtype=np.float32)
    spectrum = np.abs(np.fft.rfft(frames, axis=1))[:, :2000]
    bands = np.log(spectrum.reshape(len(frames), 20, 100).sum(axis=2) + 1e-6)
    flat = (bands - bands.mean()) / (bands.std() + 1e-8)
    return duration, flat.ravel()


def _correlation(a, b) -> float:
    # digital silence, or a file too short to have a print, correlates with nothing
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def drop_duplicates(out_dir: Path, packages) -> list:
    """Delete later copies of music already kept by an earlier package; returns their paths.
    Two files are one track when their lengths agree within 1 s and their coarse spectra over
    time (from 10 s to 40 s) correlate above 0.95."""
    kept, dropped = [], []
    for package in packages:
        for path in sorted((out_dir / package).rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
                continue
            try:
                duration, print_ = fingerprint(path)
            except Exception:  # noqa: BLE001 - unreadable files are reported by make_mixes
                continue
            twin = next((other for owner, other, d, f in kept if owner != package
                         and abs(d - duration) < 1.0 and len(f) == len(print_)
                         and _correlation(f, print_) > 0.95), None)
            if twin is None:
                kept.append((package, path, duration, print_))
            else:
                dropped.append(f"{path.relative_to(out_dir)} = {twin.relative_to(out_dir)}")
                path.unlink()
    return dropped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/dev-music",
                        help="music folder (default: %(default)s)")
    parser.add_argument("--debs", default=None,
                        help="where the .deb files go (default: OUT/../debs); delete it afterwards "
                             "to save ~1 GB")
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES), choices=list(PACKAGES),
                        metavar="PACKAGE", help="a subset of the ten packages")
    parser.add_argument("--dev2", action="store_true",
                        help="also the DEV2 packages (~4.5 GB of downloads, ~1,300 min of music)")
    args = parser.parse_args(argv)
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found; this script needs a Debian or Ubuntu machine "
                  "(or fetch the packages by hand, see ../shared/DATA.md)", file=sys.stderr)
            return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    debs_dir = Path(args.debs) if args.debs else out_dir.parent / "debs"
    debs = download(args.packages, debs_dir)
    for package, deb in debs.items():
        kept = unpack(package, deb, out_dir)
        print(f"{package}: " + ("already unpacked" if kept < 0 else f"{kept} files"), flush=True)
    if args.dev2:
        if shutil.which("openmpt123") is None:
            print("warning: openmpt123 not found: the tracker-module packages give no music "
                  "(apt-get install openmpt123)", file=sys.stderr)
        for package, deb in download(list(DEV2_PACKAGES), debs_dir).items():
            kept = unpack_dev2(package, deb, out_dir)
            print(f"{package}: " + ("already unpacked" if kept < 0 else f"{kept} tracks"),
                  flush=True)
        dropped = drop_duplicates(out_dir, [*args.packages, *DEV2_PACKAGES])
        if dropped:
            (out_dir / "DUPLICATES.txt").write_text("\n".join(dropped) + "\n")
        print(f"{len(dropped)} duplicate tracks dropped (listed in DUPLICATES.txt)")
    print(f"music in {out_dir}; next: python data_scripts/make_mixes.py --tracks {out_dir} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
