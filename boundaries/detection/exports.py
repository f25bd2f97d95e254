"""Exports for DJ software and editors: CUE sheets, Audacity labels, tracklists, Rekordbox XML.

Each writer takes a recording's crossovers in seconds and returns text; none needs more than the
standard library (Rekordbox's collection is written with :mod:`xml.etree`). Track ``n`` starts at
the ``n-1``-th crossover; track 1 starts at 0.
"""

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

from boundaries.errors import printable

CUE_FRAMES_PER_S = 75  # the CD frame rate of CUE sheets' INDEX mm:ss:ff


def track_starts(boundaries_s) -> list:
    """Start of every track: 0, then each crossover."""
    return [0.0, *(float(t) for t in boundaries_s)]


def cue_time(seconds: float) -> str:
    """``mm:ss:ff`` at 75 frames per second (minutes may pass 99, as players accept)."""
    frames = int(seconds * CUE_FRAMES_PER_S + 0.5)  # half up, as CD tools round
    minutes, frames = divmod(frames, 60 * CUE_FRAMES_PER_S)
    secs, frames = divmod(frames, CUE_FRAMES_PER_S)
    return f"{minutes:02d}:{secs:02d}:{frames:02d}"


def clock(seconds: float, hours: bool = False) -> str:
    """``mm:ss``, or ``h:mm:ss`` (from an hour on, or always with ``hours``)."""
    total = int(seconds + 0.5)
    h, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{h}:{minutes:02d}:{secs:02d}" if h or hours else f"{minutes:02d}:{secs:02d}"


def _quoted(text: str) -> str:
    return text.replace('"', "'")


def cue_sheet(boundaries_s, audio_name: str, generator: str = "boundaries") -> str:
    """A CUE sheet with one ``TRACK nn AUDIO`` per track of the recording."""
    kind = "MP3" if audio_name.lower().endswith(".mp3") else "WAVE"
    lines = [f'REM GENERATOR "{_quoted(generator)}"', f'FILE "{_quoted(audio_name)}" {kind}']
    for n, start in enumerate(track_starts(boundaries_s), start=1):
        lines += [f"  TRACK {n:02d} AUDIO", f'    TITLE "Track {n}"',
                  f"    INDEX 01 {cue_time(start)}"]
    return "\n".join(lines) + "\n"


def audacity_labels(boundaries_s) -> str:
    """Audacity's label track: ``start<TAB>end<TAB>label``, a point label per crossover."""
    return "".join(f"{t:.6f}\t{t:.6f}\tcrossover {n}\n"
                   for n, t in enumerate(boundaries_s, start=1))


def tracklist(boundaries_s) -> str:
    """``mm:ss  Track n`` per track (``h:mm:ss`` on every line of a mix past an hour)."""
    starts = track_starts(boundaries_s)
    long_mix = starts[-1] >= 3600 - 0.5  # one format for every line of a mix past an hour
    return "".join(f"{clock(t, long_mix)}  Track {n}\n" for n, t in enumerate(starts, start=1))


def rekordbox_xml(recordings, generator_version: str) -> str:
    """Rekordbox's XML collection: one ``TRACK`` per recording, a memory cue
    (``POSITION_MARK`` Type 0, Num -1) at each crossover, named after the track it starts.

    ``recordings``: ``(audio_path, duration_s, boundaries_s)`` triples.
    """
    root = ET.Element("DJ_PLAYLISTS", Version="1.0.0")
    ET.SubElement(root, "PRODUCT", Name="boundaries", Version=generator_version, Company="")
    collection = ET.SubElement(root, "COLLECTION", Entries=str(len(recordings)))
    for track_id, (path, duration_s, boundaries_s) in enumerate(recordings, start=1):
        path = Path(path).resolve()
        track = ET.SubElement(collection, "TRACK", TrackID=str(track_id),
                              Name=printable(path.stem),
                              Location="file://localhost" + quote(os.fsencode(path)),
                              TotalTime=str(int(round(duration_s))))
        for n, t in enumerate(boundaries_s, start=2):
            ET.SubElement(track, "POSITION_MARK", Name=f"Track {n}", Type="0",
                          Start=f"{float(t):.3f}", Num="-1")
    playlists = ET.SubElement(root, "PLAYLISTS")
    ET.SubElement(playlists, "NODE", Type="0", Name="ROOT", Count="0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
