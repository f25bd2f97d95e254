"""Boundary annotations in and out: ``.txt``, ``.lab``, ``.jams`` and ``.csv``.

A boundary is an interior point in seconds: 0 and the end of the file are never boundaries.

- ``.txt``: one time per line (the mir_eval events format); blank lines and ``#`` comments are
  allowed, and anything after the time on a line is ignored (a label).
- ``.lab``: ``start end [label]`` per line; the boundaries are the segment edges without the
  first start and the last end (mir_eval's ``trim`` convention).
- ``.jams``: the first annotation in a ``segment_*`` namespace (or ``multi_segment``), read as
  intervals like ``.lab``. JAMS is plain JSON, so it is read with :mod:`json` rather than the
  ``jams`` package, which would pull in pandas for a dozen lines of parsing.
- ``.csv``: one time per row in the first column; a non-numeric first row is a header. The
  separator is ``,``, ``;`` or a tab (whichever the first row uses); with ``;`` or tabs a decimal
  comma is read as a decimal point, and with ``,`` a bare ``3,5`` is refused as ambiguous.

Every problem raises :class:`AnnotationError` naming the file and line.
"""

import csv
import io
import json
import re
from pathlib import Path

import numpy as np

from boundaries.atomic import write_text
from boundaries.errors import AnnotationError, first_line

ANNOTATION_EXTENSIONS = (".txt", ".lab", ".jams", ".csv")
END_TOLERANCE_S = 0.1  # a time within this of the file end is the end, not beyond it


def _number(text: str, path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{path}:{line}: {text!r} is not a number of seconds; fix or "
                              "remove the line") from None
    if not np.isfinite(value):
        raise AnnotationError(f"{path}:{line}: {text!r} is not a finite time; fix the line")
    if value < 0:
        raise AnnotationError(f"{path}:{line}: negative time {value}; times are seconds >= 0")
    return value


def _content_lines(text: str):
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            yield number, line


def _read_events(path, text: str):
    return [(line, _number(content.split()[0], path, line)) for line, content in
            _content_lines(text)]


DECIMAL_COMMA = re.compile(r"^\s*\d+\s*,\s*\d+\s*$")


def _read_csv(path, text: str):
    first = next((line for _, line in _content_lines(text)), "")
    delimiter = ";" if ";" in first else "\t" if "\t" in first else ","
    events = []
    for line, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        field = row[0].strip()
        if delimiter != ",":
            field = field.replace(",", ".")  # ; or tab separated: a decimal comma is a point
        elif DECIMAL_COMMA.match(",".join(row[:2])) and len(row) == 2:
            raise AnnotationError(f"{path}:{line}: {','.join(row)!r} is ambiguous (a decimal "
                                  "comma, or a time and a label?); write 3.5, or separate "
                                  "columns with ';'")
        if line == 1 and not _looks_numeric(field):
            continue  # header
        events.append((line, _number(field, path, line)))
    return events


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_lab(path, text: str):
    intervals = []
    for line, content in _content_lines(text):
        parts = content.split()
        if len(parts) < 2:
            raise AnnotationError(f"{path}:{line}: expected 'start end [label]', got {content!r}")
        intervals.append((line, _number(parts[0], path, line), _number(parts[1], path, line)))
    return _interval_edges(path, intervals)


def _read_jams(path, text: str):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    annotations = doc.get("annotations", []) if isinstance(doc, dict) else []
    if not isinstance(annotations, list):
        raise AnnotationError(f"{path}: 'annotations' must be a list of annotations")
    for index, ann in enumerate(annotations):
        namespace = str(ann.get("namespace", ""))
        if namespace.startswith("segment_") or namespace == "multi_segment":
            data = ann.get("data", [])
            if isinstance(data, dict):  # JAMS 0.2 stored columns
                data = [dict(zip(data, row)) for row in zip(*data.values())]
            if not isinstance(data, list):
                raise AnnotationError(f"{path}: annotation {index}: 'data' must be a list of "
                                      "observations")
            return _interval_edges(path, [_jams_interval(path, index, i, o)
                                          for i, o in enumerate(data)])
    raise AnnotationError(f"{path}: no segment annotation (namespace segment_* or multi_segment);"
                          " add one or use a .txt file of boundary times")


def _jams_interval(path, index, i, observation):
    where = f"annotation {index} item {i}"
    if not isinstance(observation, dict) or not all(
            isinstance(observation.get(k), (int, float)) and not isinstance(observation.get(k),
                                                                            bool)
            for k in ("time", "duration")):
        raise AnnotationError(f"{path}: {where}: needs numeric 'time' and 'duration' (seconds), "
                              f"got {repr(observation)[:80]}")
    start = _number(str(observation["time"]), path, where)
    return where, start, _number(str(observation["time"] + observation["duration"]), path, where)


def _interval_edges(path, intervals):
    """Interior edges of contiguous (possibly gapped) segments, each tagged with its line."""
    intervals = sorted(intervals, key=lambda item: item[1])
    events = []
    for index, (line, start, end) in enumerate(intervals):
        if end <= start:
            raise AnnotationError(f"{path}:{line}: segment ends ({end}) before it starts ({start})")
        if index and start < intervals[index - 1][2] - 1e-9:
            raise AnnotationError(f"{path}:{line}: segment starting at {start} overlaps the "
                                  f"previous one (ends {intervals[index - 1][2]}); fix the edges")
        if index:
            events.append((line, start))
            if start > intervals[index - 1][2] + 1e-9:  # a gap: both edges are boundaries
                events.insert(-1, (intervals[index - 1][0], intervals[index - 1][2]))
    return events


READERS = {".txt": _read_events, ".lab": _read_lab, ".jams": _read_jams, ".csv": _read_csv}


def read_boundaries(path, duration_s=None) -> np.ndarray:
    """Read interior boundary times from an annotation file.

    Parameters
    ----------
    path : str or Path
        ``.txt``, ``.lab``, ``.jams`` or ``.csv`` (see the module docstring).
    duration_s : float > 0, optional
        The audio's duration; times beyond it (past ``END_TOLERANCE_S``) are errors, and times at
        0 or at the end are dropped since they are not boundaries.

    Returns
    -------
    times_s : np.ndarray [shape=(n_boundaries,), dtype=float64], seconds, strictly increasing

    Raises
    ------
    AnnotationError
        Unreadable file, unknown extension, non-numeric, negative, unsorted, duplicate, overlapping
        or out-of-range times; the message names the file and line.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise AnnotationError(f"{path}: unknown annotation format; use .txt, .lab, .jams or .csv")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read annotation ({exc})") from None
    try:
        events = reader(path, text)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError,
            csv.Error) as exc:  # whatever else a malformed file throws: one line, not a crash
        raise AnnotationError(f"{path}: malformed annotation ({type(exc).__name__}: "
                              f"{first_line(exc, 100)}); fix or remove the file") from None
    for (_, previous), (line, time) in zip(events, events[1:]):
        if time == previous:
            raise AnnotationError(f"{path}:{line}: duplicate time {time}; remove one")
        if time < previous:
            raise AnnotationError(f"{path}:{line}: time {time} comes after {previous}; sort the "
                                  "times in increasing order")
    return _interior(path, events, duration_s)


def _interior(path, events, duration_s) -> np.ndarray:
    times = []
    for line, time in events:
        if duration_s is not None and time > duration_s + END_TOLERANCE_S:
            raise AnnotationError(f"{path}:{line}: time {time} s is beyond the audio's duration "
                                  f"({duration_s:.3f} s); is this the right annotation?")
        if time > 0 and (duration_s is None or time < duration_s):
            times.append(time)
    return np.asarray(times, dtype=np.float64)


def find_annotation(audio_path):
    """The annotation beside ``audio_path`` (NAME.txt, .lab, .jams, .csv), or None."""
    audio_path = Path(audio_path)
    for ext in ANNOTATION_EXTENSIONS:
        candidate = audio_path.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


def mix_records(audio_paths) -> list:
    """The make_mixes.py manifest record of each file (which source plays where, each
    transition's time and kind), read from ``manifest.json`` one folder above the file's split
    folder; None for a file no manifest lists."""
    manifests, records = {}, []
    for audio_path in map(Path, audio_paths):
        manifest_path = audio_path.parent.parent / "manifest.json"
        if manifest_path not in manifests:
            manifests[manifest_path] = _clips_by_file(manifest_path)
        records.append(manifests[manifest_path].get(audio_path.resolve()))
    return records


def _clips_by_file(manifest_path: Path) -> dict:
    if not manifest_path.is_file():
        return {}
    manifest = json.loads(manifest_path.read_text())
    return {(manifest_path.parent / c["file"]).resolve(): c for c in manifest.get("clips", [])}


def format_boundaries(times_s, fmt: str, duration_s=None, strengths=None, extra=None) -> str:
    """Text of a boundary file in ``fmt`` (txt, lab, jams or json); see :func:`write_boundaries`."""
    times = [float(t) for t in np.asarray(times_s, dtype=np.float64)]
    if fmt == "txt":
        return "".join(f"{t:.3f}\n" for t in times)
    edges = [0.0, *times] + ([float(duration_s)] if duration_s is not None else [])
    segments = list(zip(edges[:-1], edges[1:]))
    if fmt == "lab":
        return "".join(f"{a:.3f}\t{b:.3f}\tsegment_{i}\n" for i, (a, b) in enumerate(segments))
    if fmt == "jams":
        # a segment's confidence: the strength of the boundary that opens it (none for the first)
        opening = [None, *(float(s) for s in strengths)] if strengths is not None else []
        data = [{"time": a, "duration": b - a, "value": f"segment_{i}",
                 "confidence": opening[i] if i < len(opening) else None}
                for i, (a, b) in enumerate(segments)]
        extra = extra or {}
        tool = f"boundaries {extra.get('boundaries_version', '')}".strip()
        metadata = {"annotation_tools": tool, "data_source": "automatic (machine estimate)",
                    "annotator": {"name": "boundaries", "model_id": extra.get("model_id")},
                    "annotation_rules": "confidence: the strength of the boundary opening the "
                                        f"segment ({extra.get('strength_meaning', 'see sandbox')})"}
        doc = {"file_metadata": {"duration": duration_s},
               "annotations": [{"namespace": "segment_open", "data": data,
                                "annotation_metadata": metadata, "sandbox": extra}],
               "sandbox": {}}
        return json.dumps(doc, indent=1)
    if fmt == "json":
        doc = {"boundaries_s": times, "duration_s": duration_s,
               "strengths": [float(s) for s in strengths] if strengths is not None else None,
               **(extra or {})}
        return json.dumps(doc, indent=1)
    raise ValueError(f"unknown boundary format {fmt!r}")


def write_boundaries(path, times_s, fmt: str = "txt", duration_s=None, strengths=None,
                     extra=None) -> None:
    """Write boundary times atomically.

    ``txt``: one time per line (3 decimals). ``lab``: segments ``start end label`` (needs
    ``duration_s`` for the last segment). ``jams``: a ``segment_open`` annotation. ``json``: times,
    strengths and whatever ``extra`` holds (model, threshold).
    """
    write_text(path, format_boundaries(times_s, fmt, duration_s, strengths, extra))
