import numpy as np

from boundaries.data.annotations import read_boundaries
from boundaries.recipes import synthetic


def test_dataset_is_deterministic(tmp_path):
    a = synthetic.write_dataset(tmp_path / "a", n_clips=2, clip_s=12.0, seed=3)
    b = synthetic.write_dataset(tmp_path / "b", n_clips=2, clip_s=12.0, seed=3)
    for name in ("clip_000.wav", "clip_001.wav", "clip_000.txt", "manifest.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_clip_has_interior_boundaries_and_is_not_clipped():
    y, times, transitions = synthetic.make_clip(np.random.default_rng(1), clip_s=30.0)
    assert len(y) == 30 * 22050 and np.abs(y).max() <= 0.98 + 1e-6
    assert 1 <= len(times) <= 4 and np.all((times > 2.9) & (times < 27.1))
    assert np.all(np.diff(times) >= 5.0)
    assert {t["kind"] for t in transitions} <= {"cut", "linear", "equal_power"}


def _rms_db(y, a, b, sr=22050):
    return 10 * np.log10(np.mean(y[int(a * sr):int(b * sr)] ** 2) + 1e-12)


def test_boundaries_are_not_loudness_jumps():
    """Loudness changes across boundaries are no larger than across random points."""
    rng = np.random.default_rng(7)
    at_bounds, at_random = [], []
    for i in range(12):
        y, times, _ = synthetic.make_clip(np.random.default_rng([0, i]))
        for t in times:
            at_bounds.append(abs(_rms_db(y, t - 2, t) - _rms_db(y, t, t + 2)))
        for t in rng.uniform(3, 27, len(times)):
            at_random.append(abs(_rms_db(y, t - 2, t) - _rms_db(y, t, t + 2)))
    assert np.median(at_bounds) <= np.median(at_random)


def test_annotations_match_manifest(tmp_path):
    root = synthetic.write_dataset(tmp_path, n_clips=3, clip_s=20.0, seed=0)
    lines = (root / "manifest.csv").read_text().splitlines()
    assert len(lines) == 4
    for i in range(3):
        times = read_boundaries(root / f"clip_{i:03d}.txt", duration_s=20.0)
        assert len(times) == int(lines[i + 1].split(",")[1])
