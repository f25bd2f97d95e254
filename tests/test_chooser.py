"""The placement chooser: humps and their candidate starts, the logistic pick, its fit and the
cross-fitted check that keeps it."""

import numpy as np
import pytest

from boundaries.config import load_config
from boundaries.detection import chooser, placement
from boundaries.errors import BoundariesError
from boundaries.train import chooser as stage

FPS = 10.0


def _curve(spans, total_s=60.0):
    """Activations at FPS: ``(start_s, stop_s, height)`` blocks, a small bump at each block's
    first frame so its peak is there."""
    curve = np.zeros(int(total_s * FPS))
    for start, stop, height in spans:
        curve[int(start * FPS):int(stop * FPS)] = height
        curve[int(start * FPS)] = height + 0.01
    return curve


def test_a_broad_hump_gives_starts_inside_both_edges_a_narrow_one_none():
    curve = _curve([(10.0, 30.0, 0.5), (45.0, 47.0, 0.8)])
    broad = chooser.hump(curve, 15.0, 0.5, FPS)
    assert broad.left_s == pytest.approx(10.0) and broad.right_s == pytest.approx(29.9)
    assert broad.starts() == pytest.approx({"base": 15.0, "right": 27.9, "left": 12.0})
    narrow = chooser.hump(curve, 46.0, 0.8, FPS)
    assert narrow.starts() == {"base": 46.0}


def _candidate(placed_s, start_s=None, score=0.5):
    row = np.zeros(placement.N_COLUMNS, dtype=np.float32)
    return chooser.Candidate(placed_s if start_s is None else start_s, placed_s,
                             (score,) * len(chooser.SCORES), row)


def _hump_with_right(t_s=15.0):
    hump = chooser.Hump(t_s, 0.5, t_s - 2.0, t_s + 10.0, 0.5)
    return hump, {"base": _candidate(t_s), "right": _candidate(t_s + 7.0, t_s + 8.0)}


def _chooser(coef):
    n = chooser.N_FEATURES
    return chooser.Chooser({"mean": np.zeros(n), "scale": np.ones(n), "coef": coef,
                            "intercept": np.zeros(1)})


def test_the_pick_follows_the_logits_and_keeps_the_first_candidate_on_a_tie():
    hump, cands = _hump_with_right()
    toward_right = np.zeros(chooser.N_FEATURES)
    toward_right[1] = 1.0  # the "right candidate" column
    assert _chooser(toward_right).pick(hump, cands) == "right"
    assert _chooser(-toward_right).pick(hump, cands) == "base"
    assert _chooser(np.zeros(chooser.N_FEATURES)).pick(hump, cands) == "base"
    assert _chooser(toward_right).pick(hump, {"base": cands["base"]}) == "base"


def test_a_chooser_of_another_feature_count_is_refused():
    with pytest.raises(ValueError, match="coefficients"):
        _chooser(np.zeros(chooser.N_FEATURES - 1))


def _files(folder, right_is_true: bool, n=12):
    """Files of one detection each whose crossover lies at the base or the right candidate."""
    files = []
    for i in range(n):
        hump, cands = _hump_with_right(15.0 + i)
        cands["base"] = _candidate(15.0 + i, score=0.3 + 0.01 * i)
        truth = cands["right" if right_is_true else "base"].placed_s
        files.append(stage.FileDetections(folder, np.array([15.0 + i]), np.array([0.5]), 59.0,
                                          [hump], [cands], np.array([truth]), 60.0))
    return files


def test_the_fit_learns_which_candidate_is_right_and_is_kept_only_where_it_helps():
    cfg = load_config(overrides=["eval.trim=true"])
    files = _files("a", True) + _files("b", True)
    X, y = stage.rows(files)
    assert X.shape == (48, chooser.N_FEATURES) and y.sum() == 24
    fitted = stage.fit(X, y)
    assert all(fitted.pick(h, c) == "right" for f in files for h, c in zip(f.humps, f.candidates))
    without, crossed = stage.cross_fitted(files, cfg)
    assert without == pytest.approx(0.0) and crossed == pytest.approx(1.0)
    assert stage.cross_fitted(_files("a", True), cfg)[1] is None  # one folder: no estimate
    assert stage.fit(np.zeros((3, chooser.N_FEATURES)), np.zeros(3, int)) is None  # one label
    assert stage.estimates(_files("a", False)[0], None) == pytest.approx([15.0])


def test_a_missing_chooser_folder_fails_before_training(tmp_path):
    cfg = load_config(overrides=["track.chooser=true", f"track.chooser_dirs=[{tmp_path / 'x'}]"])
    with pytest.raises(BoundariesError, match="chooser_dirs names no folder"):
        stage.check_folders(cfg)
    stage.check_folders(load_config(overrides=[f"track.chooser_dirs=[{tmp_path / 'x'}]"]))


def test_a_bad_file_in_a_chooser_folder_is_logged_and_the_rest_is_read(tmp_path):
    from conftest import write_corpus

    folder = write_corpus(tmp_path / "held", n=1)
    (folder / "broken.wav").write_bytes(b"not audio")
    (folder / "broken.txt").write_text("10.0\n")
    cfg = load_config(overrides=[f"track.chooser_dirs=[{folder}]"])
    lines = []
    [(name, data)] = list(stage.held_out_folders(cfg, lines.append))
    assert name == str(folder) and len(data) == 1
    assert len(lines) == 1 and "broken.wav" in lines[0]
