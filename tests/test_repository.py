"""The README's promises: its test command is what CI runs; the layout is as documented."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def readme_commands():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not
            line.startswith("#")]


def test_ci_runs_the_readme_test_command():
    install_and_train, install_and_test = readme_commands()[:2]
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    assert install_and_test.replace("pip install ", "pip install -q ") in ci
    assert install_and_train.endswith("python train.py")
    assert "torch==2.13.0" in install_and_train and "torch==2.13.0" in install_and_test


def test_layout():
    for path in ("pyproject.toml", "README.md", "boundaries", "configs/base.yaml", "tests",
                 "data_scripts", "train.py", "evaluate.py", ".ci/run"):
        assert os.path.exists(os.path.join(REPO, path)), path


LIGHT_MODULES = ("detection.peaks", "score.metrics", "data.annotations", "data.labels",
                 "signal.timebase", "signal.audio", "signal.features", "signal.descriptors",
                 "model.boosted", "detection.placement", "detection.gains", "cli")


def test_light_modules_do_not_import_torch():
    imports = "; ".join(f"import boundaries.{name}" for name in LIGHT_MODULES)
    check = f"{imports}; import sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_readme_python_example_runs(tmp_path):
    import numpy as np
    import soundfile as sf

    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    example = re.search(r"## In Python\n\n```python\n(.*?)```", text, re.S).group(1)
    sf.write(tmp_path / "mix.mp3", np.random.default_rng(0).standard_normal(22050 * 20)
             .astype(np.float32) * 0.1, 22050)
    out = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[")


def test_every_benchmark_script_starts():
    """Each benchmark imports what it uses (speed.py once imported a name that had moved)."""
    scripts = sorted(p for p in os.listdir(os.path.join(REPO, "benchmarks")) if p.endswith(".py"))
    assert scripts
    for script in scripts:
        out = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script), "--help"],
                             capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 0, f"{script}: {out.stderr[-500:]}"


def test_the_stated_minimum_track_length_is_the_shipped_models(capsys):
    """The README and ``detect --help`` name the shipped model's minimum track length (they said
    6 s while the model used 4 s)."""
    from boundaries import cli
    from boundaries.model.checkpoints import load_model

    _, cfg, _ = load_model(Path(REPO) / "boundaries" / "assets" / "default.pt")
    shipped = f"{cfg.peaks.min_distance_s:g} s for the shipped"
    with pytest.raises(SystemExit):
        cli.main(["detect", "--help"])
    assert shipped in " ".join(capsys.readouterr().out.split())
    assert shipped in " ".join((Path(REPO) / "README.md").read_text().split())
