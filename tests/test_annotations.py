import json

import numpy as np
import pytest

from boundaries.data.annotations import (
    find_annotation,
    format_boundaries,
    read_boundaries,
    write_boundaries,
)
from boundaries.errors import AnnotationError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_txt_with_comments_blank_lines_and_labels(tmp_path):
    path = write(tmp_path, "a.txt", "# boundaries\n\n1.5\n3.25 chorus\n  7 # end of verse\n")
    assert read_boundaries(path).tolist() == [1.5, 3.25, 7.0]


def test_zero_and_end_are_not_boundaries(tmp_path):
    path = write(tmp_path, "a.txt", "0\n2\n4\n10.0\n")
    assert read_boundaries(path, duration_s=10.0).tolist() == [2.0, 4.0]


def test_lab_interior_edges(tmp_path):
    path = write(tmp_path, "a.lab", "0.0 2.0 intro\n2.0 5.5 verse\n5.5 9.0 chorus\n")
    assert read_boundaries(path).tolist() == [2.0, 5.5]


def test_lab_gap_makes_both_edges_boundaries(tmp_path):
    path = write(tmp_path, "a.lab", "0 2 a\n3 5 b\n")
    assert read_boundaries(path).tolist() == [2.0, 3.0]


def test_lab_overlap_fails_with_line(tmp_path):
    path = write(tmp_path, "a.lab", "0 3 a\n2 5 b\n")
    with pytest.raises(AnnotationError, match=r"a.lab:2: .*overlaps"):
        read_boundaries(path)


def jams_doc(namespace="segment_open"):
    return {"annotations": [
        {"namespace": "beat", "data": [{"time": 0.5, "duration": 0, "value": 1}]},
        {"namespace": namespace, "data": [
            {"time": 0.0, "duration": 4.0, "value": "A", "confidence": 1},
            {"time": 4.0, "duration": 3.0, "value": "B", "confidence": 1},
            {"time": 7.0, "duration": 3.0, "value": "A", "confidence": 1}]}]}


def test_jams_segment_annotation(tmp_path):
    path = write(tmp_path, "a.jams", json.dumps(jams_doc("segment_salami_upper")))
    assert read_boundaries(path).tolist() == [4.0, 7.0]


def test_jams_without_segments_fails(tmp_path):
    doc = jams_doc()
    doc["annotations"] = doc["annotations"][:1]
    path = write(tmp_path, "a.jams", json.dumps(doc))
    with pytest.raises(AnnotationError, match="a.jams: no segment annotation"):
        read_boundaries(path)


def test_csv_with_header(tmp_path):
    path = write(tmp_path, "a.csv", "time,label\n1.0,x\n2.5,y\n")
    assert read_boundaries(path).tolist() == [1.0, 2.5]


@pytest.mark.parametrize("text,pattern", [
    ("1.0\nabc\n", r"a.txt:2: 'abc' is not a number"),
    ("1.0\n-2\n", r"a.txt:2: negative time"),
    ("3.0\n1.0\n", r"a.txt:2: time 1.0 comes after 3.0; sort"),
    ("1.0\n1.0\n", r"a.txt:2: duplicate time 1.0"),
    ("1.0\n50\n", r"a.txt:2: time 50.0 s is beyond the audio's duration"),
    ("nan\n", r"a.txt:1: 'nan' is not a finite time"),
])
def test_malformed_txt_names_file_and_line(tmp_path, text, pattern):
    path = write(tmp_path, "a.txt", text)
    with pytest.raises(AnnotationError, match=pattern):
        read_boundaries(path, duration_s=10.0)


def test_empty_annotation_means_no_boundaries(tmp_path):
    assert read_boundaries(write(tmp_path, "a.txt", "")).size == 0


def test_unknown_extension(tmp_path):
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        read_boundaries(write(tmp_path, "a.xml", "<x/>"))


def test_find_annotation_prefers_txt(tmp_path):
    audio = tmp_path / "song.mp3"
    write(tmp_path, "song.lab", "0 1 a\n")
    assert find_annotation(audio).suffix == ".lab"
    write(tmp_path, "song.txt", "")
    assert find_annotation(audio).suffix == ".txt"
    assert find_annotation(tmp_path / "other.wav") is None


@pytest.mark.parametrize("fmt", ["txt", "lab", "jams", "csv"])
def test_written_formats_parse_back(tmp_path, fmt):
    times = np.array([1.234, 5.5, 9.87])
    path = tmp_path / f"out.{fmt}"
    if fmt == "csv":
        path.write_text("boundary_s\n" + "".join(f"{t}\n" for t in times))
    else:
        write_boundaries(path, times, fmt, duration_s=12.0)
    assert np.allclose(read_boundaries(path, duration_s=12.0), times, atol=5e-4)


def test_json_format_holds_strengths_and_extra():
    doc = json.loads(format_boundaries([1.0], "json", duration_s=3.0, strengths=[0.4],
                                       extra={"threshold": 0.2}))
    assert doc == {"boundaries_s": [1.0], "duration_s": 3.0, "strengths": [0.4], "threshold": 0.2}
