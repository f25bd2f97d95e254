"""Fetch the DEV music (ten Debian packages of freely licensed game music) into a data folder.

    python data_scripts/fetch_dev_music.py --out data/dev-music

Downloads the packages with ``apt-get download`` (no root, nothing installed; run
``apt-get update`` first on a fresh machine), unpacks each with ``dpkg-deb -x`` into a temporary
folder and keeps only the music and the package's copyright file:

    data/dev-music/<package>/<music files, as laid out in the package>
    data/dev-music/<package>/copyright

The layout keeps the material's oddities on purpose (ufoai's music stays inside its zip archive,
Frets on Fire songs stay as stems in one folder per song): ``data_scripts/make_mixes.py`` handles
them. Packages already unpacked are skipped, so the script can be re-run after an interruption.
None of this audio is committed to the repository (see ../shared/DATA.md).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/dev-music",
                        help="music folder (default: %(default)s)")
    parser.add_argument("--debs", default=None,
                        help="where the .deb files go (default: OUT/../debs); delete it afterwards "
                             "to save ~1 GB")
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES), choices=list(PACKAGES),
                        metavar="PACKAGE", help="a subset of the ten packages")
    args = parser.parse_args(argv)
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found; this script needs a Debian or Ubuntu machine "
                  "(or fetch the packages by hand, see ../shared/DATA.md)", file=sys.stderr)
            return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    debs = download(args.packages, Path(args.debs) if args.debs else out_dir.parent / "debs")
    for package, deb in debs.items():
        kept = unpack(package, deb, out_dir)
        print(f"{package}: " + ("already unpacked" if kept < 0 else f"{kept} files"), flush=True)
    print(f"music in {out_dir}; next: python data_scripts/make_mixes.py --tracks {out_dir} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
