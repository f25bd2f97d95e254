import csv
import json

import numpy as np
import pytest
import yaml
from conftest import REPO, write_corpus

from boundaries import cli
from boundaries.errors import ConfigError
from boundaries.study import classic
from boundaries.study.runner import parse_strategies, read_study_config

OVER = {"random_over", "smote", "borderline_smote", "svm_smote", "adasyn"}
UNDER = {"random_under", "nearmiss1", "nearmiss2"}
CLEAN = {"tomek", "enn"}
COMBINED = {"smote_enn", "smote_tomek"}


def imbalanced(n=3000, share=0.05, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < share).astype(np.int64)
    x = rng.standard_normal((n, 6)) + 1.5 * y[:, None]  # overlapping classes
    return x.astype(np.float32), y


@pytest.mark.parametrize("name", classic.SAMPLER_NAMES)
def test_each_sampler_moves_the_class_balance_as_it_claims(name):
    x, y = imbalanced()
    before = y.mean()
    sampler = classic.make_sampler(name, seed=0)
    if sampler is None:
        assert name == "none"
        return
    x_new, y_new = sampler.fit_resample(x, y)
    after = y_new.mean()
    if name in OVER | UNDER | COMBINED:  # 'auto' balances the two classes
        assert after == pytest.approx(0.5, abs=0.08), (name, after)
    if name in OVER:
        assert (y_new == 0).sum() == (y == 0).sum()  # negatives untouched, positives added
    if name in UNDER:
        assert (y_new == 1).sum() == (y == 1).sum() and len(y_new) < len(y)
    if name in CLEAN:  # removes negatives near positives only
        assert (y_new == 1).sum() == (y == 1).sum() and before < after < 0.5


def test_classic_fit_never_touches_validation(tiny_cfg):
    from boundaries.train import loop

    train_data, val_data, _ = loop.prepare_data(tiny_cfg, progress=False)
    snapshot = [t.mel.copy() for t in val_data]
    x, y = classic.training_frames(train_data, tiny_cfg, stride=2, max_frames=10_000, seed=0)
    model, resampled = classic.fit(x, y, "smote", "logreg", seed=0)
    assert np.mean(resampled) == pytest.approx(0.5, abs=0.01) and y.mean() < 0.5
    acts = classic.predict(model, classic.validation_features(val_data, tiny_cfg))
    assert [len(a) for a in acts] == [t.n_frames for t in val_data]  # every frame, none resampled
    for track, mel in zip(val_data, snapshot):
        np.testing.assert_array_equal(track.mel, mel)


def test_frame_features_see_a_change():
    rng = np.random.default_rng(0)
    mel = np.concatenate([rng.normal(-40, 1, (32, 400)) + np.linspace(0, 10, 32)[:, None],
                          rng.normal(-40, 1, (32, 400)) + np.linspace(10, 0, 32)[:, None]], axis=1)
    features = classic.frame_features(mel, fps=43.0, windows_s=(1.0,), n_bands=8)
    distance = features[:, 8]  # |after - before| for the 1 s window
    assert features.shape == (800, 8 + 2 + 1)
    assert abs(int(np.argmax(distance)) - 400) <= 2


def test_training_frames_cap_keeps_the_ratio(tiny_cfg):
    from boundaries.train import loop

    train_data, _, _ = loop.prepare_data(tiny_cfg, progress=False)
    x_all, y_all = classic.training_frames(train_data, tiny_cfg, stride=1, max_frames=10**9,
                                           seed=0)
    x, y = classic.training_frames(train_data, tiny_cfg, stride=1, max_frames=400, seed=0)
    assert len(x) == 400 and abs(y.mean() - y_all.mean()) < 0.06


def test_study_config_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="study config not found"):
        read_study_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="'track' must be"):
        parse_strategies({"x": {"track": "magic"}})
    with pytest.raises(ConfigError, match="unknown sampler"):
        parse_strategies({"x": {"track": "classic", "sampler": "smoot"}})
    with pytest.raises(ConfigError, match="unknown"):
        parse_strategies({"a": {"track": "naive"}}, only=["b"])


def test_shipped_study_config_parses_and_covers_the_literature():
    study = read_study_config(f"{REPO}/configs/studies/default.yaml")
    rows = parse_strategies(study.strategies)
    assert {r.sampler for r in rows if r.track == "classic"} == set(classic.SAMPLER_NAMES)
    assert any(r.ensemble > 1 for r in rows) and rows[0].track == "naive"


def test_study_command_writes_table_curves_and_summary(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", n=4)
    study = {"config": {"data": {"cache_dir": str(tmp_path / "cache"), "jobs": 1,
                                 "excerpt_s": 5.0, "excerpt_hop_s": 2.5},
                        "features": {"n_mels": 16},
                        "model": {"conv_channels": [4], "channels": 8, "dilations": [1, 2]},
                        "train": {"batch_size": 4}},
             "train_overrides": {"train.epochs": 1, "train.patience": 0},
             "classic": {"stride": 2, "max_train_frames": 5000},
             "strategies": {"naive": {"track": "naive"},
                            "cnn_bce": {"track": "cnn", "overrides": {"loss.kind": "bce"}},
                            "bagging": {"track": "cnn", "ensemble": 2,
                                        "overrides": {"sampling.strategy": "undersample"}},
                            "smote_logreg": {"track": "classic", "sampler": "smote",
                                             "classifier": "logreg"},
                            "brf": {"track": "classic", "classifier": "balanced_forest"}}}
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    code = cli.main(["study", "--data", str(corpus), "--config", str(config), "--out", str(out),
                     "--strategies", "naive,cnn_bce,bagging,smote_logreg,brf", "--repeats", "2",
                     "--set", "data.val_fraction=0.5"])
    assert code == 0
    for name in ("table.md", "table.csv", "roc.png", "pr.png", "summary.txt", "results.json"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [r["strategy"] for r in rows] == ["naive", "cnn_bce", "bagging", "smote_logreg", "brf"]
    results = json.loads((out / "results.json").read_text())
    naive = results[0]
    intro = (out / "table.md").read_text().splitlines()[0]
    share = float(intro.split("positive share ")[1].split("%")[0]) / 100
    assert naive["mean"]["accuracy"] == pytest.approx(1 - share, abs=1e-4)
    assert naive["mean"]["recall"] == 0 and naive["mean"]["pr_auc"] == pytest.approx(share,
                                                                                     abs=1e-4)
    assert len(results[1]["runs"]) == 2  # repeats
    assert len(list((out / "runs" / "bagging" / "seed0").iterdir())) == 2  # the ensemble
    assert "± " in (out / "table.md").read_text()
    assert "best pr_auc:" in capsys.readouterr().out


def test_study_config_is_typed(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("strategies: {naive: {track: naive}}\nclassic: {stride: 2, windows_s: [2]}\n")
    study = read_study_config(path)
    assert study.classic.stride == 2 and study.classic.windows_s == (2.0,)
    path.write_text("strategies: {naive: {track: naive}}\nclassic: {strid: 2}\n")
    with pytest.raises(ConfigError, match="classic.strid"):
        read_study_config(path)
