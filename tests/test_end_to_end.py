"""train.py -> checkpoint -> boundaries detect -> evaluate.py, on generated audio."""

import json

import numpy as np
import pytest
from conftest import CONFIGS, STEP_BOUNDARIES, SUBPROCESS_ENV, sets, train_tiny, write_corpus

import evaluate
import train
from boundaries import cli
from boundaries.api import DEFAULT_MODEL
from boundaries.data.annotations import read_boundaries


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    corpus, run = train_tiny(tmp, n_files=4)
    return tmp, corpus, run


def test_training_writes_run_folder(trained):
    _, _, run = trained
    for name in ("config.yaml", "metrics.jsonl", "last.pt", "best.pt", "metrics.json"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["frame.roc_auc"]) and metrics["n_files"] == 1


def test_run_folder_config_agrees_with_the_tuned_checkpoint(trained):
    import yaml

    from boundaries.model.checkpoints import load_checkpoint

    _, _, run = trained
    tuned = load_checkpoint(run / "best.pt")["config"]
    assert yaml.safe_load((run / "config.yaml").read_text()) == tuned


def test_detect_writes_every_format_and_they_parse_back(trained, capsys):
    tmp, corpus, run = trained
    out = tmp / "detect"
    code = cli.main(["detect", str(corpus), "-o", str(out), "--checkpoint", str(run / "best.pt"),
                     "--format", "txt,lab,jams,json,csv", "--jobs", "2", "--threshold", "0.01"])
    assert code == 0
    assert "done 4, skipped 0" in capsys.readouterr().out
    for i in range(4):
        for fmt in ("txt", "lab", "jams"):
            read_boundaries(out / f"track_{i}.boundaries.{fmt}", duration_s=8.0)
        doc = json.loads((out / f"track_{i}.boundaries.json").read_text())
        assert doc["settings"]["threshold"] == 0.01
        assert len(doc["boundaries_s"]) == len(doc["strengths"])
    assert (out / "boundaries.csv").read_text().startswith("file,boundary_s,strength")


def test_detect_skips_existing_and_reports_bad_files(trained, capsys):
    tmp, corpus, run = trained
    out = tmp / "detect2"
    args = ["detect", str(corpus), "-o", str(out), "--checkpoint", str(run / "best.pt"),
            "--jobs", "1"]
    assert cli.main(args) == 0
    (corpus / "broken.wav").write_text("not audio")
    before = (out / "track_0.boundaries.txt").stat().st_mtime_ns
    assert cli.main(args) == 1  # one bad file: non-zero exit, the rest still done
    captured = capsys.readouterr()
    assert "skipped 4" in captured.out and "failed 1" in captured.out
    assert "failed: " in captured.err and "broken.wav: cannot decode" in captured.err
    assert "Traceback" not in captured.err
    assert (out / "track_0.boundaries.txt").stat().st_mtime_ns == before
    (corpus / "broken.wav").unlink()


def test_detect_mirrors_the_input_tree(trained):
    tmp, corpus, run = trained
    nested = tmp / "nested"
    (nested / "a" / "b").mkdir(parents=True)
    for i, rel in enumerate(["a/x.wav", "a/b/x.wav"]):
        (nested / rel).write_bytes((corpus / f"track_{i}.wav").read_bytes())
    out = tmp / "mirror"
    assert cli.main(["detect", str(nested), "-o", str(out), "--checkpoint",
                     str(run / "best.pt"), "--jobs", "1", "--save-activations", "--plot"]) == 0
    assert (out / "a" / "x.boundaries.txt").exists()
    assert (out / "a" / "b" / "x.boundaries.txt").exists()
    assert np.load(out / "a" / "x.activations.npy").shape == (1 + 8 * 22050 // 512,)
    assert (out / "a" / "x.boundaries.png").stat().st_size > 1000


def test_evaluate_reports_recall_by_transition_kind_for_make_mixes_folders(trained, capsys):
    """A make_mixes.py folder (manifest.json above the split folder) gets recall per kind in the
    table and the JSON; each file's estimates are checked against the manifest's times."""
    tmp, _, run = trained
    held_out = write_corpus(tmp / "mixes" / "val", n=2, seed=12)
    kinds = ("cut", "linear", "gap")
    (tmp / "mixes" / "manifest.json").write_text(json.dumps({"clips": [
        {"file": f"val/track_{i}.wav",
         "transitions": [{"time_s": t, "kind": kinds[j]} for j, t in enumerate(STEP_BOUNDARIES)]}
        for i in range(2)]}))
    js = tmp / "mixes_eval.json"
    assert evaluate.main(["--checkpoint", str(run / "best.pt"), "--data", str(held_out),
                          "--json", str(js)]) == 0
    assert "by transition kind" in capsys.readouterr().out
    result = json.loads(js.read_text())
    estimates = [np.asarray(f["estimates_s"]) for f in sorted(result["per_file"],
                                                                key=lambda f: f["file"])]
    assert sorted(result["recall_by_kind"]) == sorted(kinds)
    for kind, time_s in zip(kinds, STEP_BOUNDARIES):
        gaps = [np.min(np.abs(e - time_s)) if len(e) else np.inf for e in estimates]
        assert result["recall_by_kind"][kind] == {
            "n": 2, "0.5": np.mean(np.array(gaps) <= 0.5), "3.0": np.mean(np.array(gaps) <= 3.0)}


def test_evaluate_prints_table_and_writes_json(trained, capsys):
    tmp, corpus, run = trained
    held_out = write_corpus(tmp / "held_out", n=2, seed=10)
    js, plots = tmp / "eval.json", tmp / "plots"
    assert evaluate.main(["--checkpoint", str(run / "best.pt"), "--data", str(held_out),
                          "--json", str(js), "--out", str(plots), "--set", "eval.windows=[1.0]",
                          "--set", "eval.windows=[0.5, 3.0]"]) == 0
    assert "mean over files" in capsys.readouterr().out
    result = json.loads(js.read_text())
    for key in ("frame.precision", "frame.recall", "frame.f1", "frame.roc_auc", "frame.pr_auc",
                "frame.accuracy", "naive.accuracy", "boundary.0.5.precision", "boundary.0.5.recall",
                "boundary.0.5.f1", "boundary.3.0.precision", "boundary.3.0.recall",
                "boundary.3.0.f1", "n_files", "per_file"):
        assert key in result, key
    assert result["n_files"] == 2 and len(result["per_file"]) == 2
    assert result["config"]["eval"]["windows"] == [0.5, 3.0]
    positive_share = sum(r["naive"]["accuracy"] for r in result["per_file"]) / 2
    assert result["naive.accuracy"] == positive_share  # the mean of per-file naive accuracies
    assert 0.5 < result["naive.accuracy"] < 1
    for name in ("roc.png", "pr.png", "track_0.activation.png"):
        assert (plots / name).stat().st_size > 1000


def test_user_errors_are_one_line_without_traceback(trained, tmp_path, capsys):
    _, corpus, run = trained
    cases = [
        (["detect", str(corpus), "-o", str(tmp_path), "--checkpoint", str(tmp_path / "no.pt")],
         "checkpoint not found"),
        (["detect", str(tmp_path / "nothing"), "-o", str(tmp_path / "o"), "--checkpoint",
          str(run / "best.pt")], "no such file or folder"),
        (["train", "--set", "train.lrr=1"], "unknown config key 'train.lrr'"),
        (["train", "--config", str(tmp_path / "missing.yaml")], "config file not found"),
        (["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(tmp_path)],
         "no annotated audio files"),
        (["detect", str(corpus), "-o", str(tmp_path), "--checkpoint", str(run / "best.pt"),
          "--format", "xml"], "unknown format"),
        (["detect", str(corpus), "-o", str(tmp_path), "--checkpoint", str(run / "best.pt"),
          "--set", "model.channels=3"], "fixed by the checkpoint"),
    ]
    for argv, message in cases:
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code != 0 and message in err and "Traceback" not in err, (argv, err)


def test_refuses_to_overwrite_a_previous_run(trained, capsys):
    tmp, corpus, run = trained
    assert train.main([*CONFIGS, *sets(tmp, corpus), "--run-dir", str(run)]) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_same_seed_same_metrics(tmp_path):
    corpus = write_corpus(tmp_path / "c", n=3)
    results = []
    for name in ("a", "b"):
        train.main([*CONFIGS, *sets(tmp_path, corpus), "--run-dir", str(tmp_path / name)])
        results.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    for key in ("frame.pr_auc", "frame.roc_auc", "boundary.3.0.f1"):
        assert results[0][key] == results[1][key]


@pytest.mark.slow
def test_torchrun_detect_shards_files_and_equals_one_process(trained, tmp_path):
    import subprocess
    import sys

    _, _, run = trained
    corpus = write_corpus(tmp_path / "corpus", n=5)
    common = ["-m", "boundaries", "detect", str(corpus), "--checkpoint", str(run / "best.pt"),
              "--format", "txt,json,csv", "--jobs", "1"]
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                              "--master_port=29517", *common, "-o", str(tmp_path / "two")],
                             env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    assert sharded.stdout.count("done 5, skipped 0") == 1  # rank 0 reports the whole batch
    single = subprocess.run([sys.executable, *common, "-o", str(tmp_path / "one")],
                            env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == names
    for name in names:
        if not name.endswith(".json"):  # json holds the audio path only; both are the same
            assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text()


def test_tune_writes_a_new_checkpoint_and_export_strips_it(trained, tmp_path, capsys):
    import torch

    from boundaries.model.checkpoints import load_checkpoint, load_model
    from boundaries.score.evaluation import NOVELTY_WEIGHTS

    _, corpus, run = trained
    tuned_path, shipped = tmp_path / "tuned.pt", tmp_path / "model.pt"
    assert cli.main(["tune", str(run / "best.pt"), "--data", str(corpus), "-o",
                     str(tuned_path)]) == 0
    assert "novelty weight" in capsys.readouterr().out
    _, cfg, _ = load_model(tuned_path)
    assert cfg.peaks.novelty_weight in NOVELTY_WEIGHTS
    assert cli.main(["tune", str(run / "best.pt"), "--data", str(corpus), "-o",
                     str(run / "best.pt")]) == 2  # never replaces its input
    assert cli.main(["export", str(tuned_path), str(shipped)]) == 0
    state = load_checkpoint(shipped)
    assert "optimizer" not in state and state["config"]["peaks"] == cfg.to_dict()["peaks"]
    assert state["environment"]["torch"] == torch.__version__  # what it was trained with
    assert shipped.stat().st_size < tuned_path.stat().st_size
    assert cli.main(["detect", str(corpus), "-o", str(tmp_path / "out"), "--checkpoint",
                     str(shipped), "--jobs", "1"]) == 0


def test_detect_uses_the_shipped_model_by_default(tmp_path, capsys):
    from boundaries.model.checkpoints import load_model

    _, cfg, _ = load_model(DEFAULT_MODEL)  # ships inside the package and loads safely
    assert cfg.features.n_mels == 80 and cfg.audio.sr == 22050
    corpus = write_corpus(tmp_path / "corpus", n=1)
    assert cli.main(["detect", str(corpus), "-o", str(tmp_path / "out"), "--jobs", "1",
                     "--format", "json"]) == 0
    written = json.loads((tmp_path / "out" / "track_0.boundaries.json").read_text())
    assert written["settings"]["peaks"]["novelty_weight"] == cfg.peaks.novelty_weight
    assert "done 1" in capsys.readouterr().out
