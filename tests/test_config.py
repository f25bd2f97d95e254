import os

import pytest
import yaml
from conftest import REPO

from boundaries.config import Config, load_config, parse_override
from boundaries.errors import ConfigError

BASE = os.path.join(REPO, "configs", "base.yaml")


def test_base_yaml_lists_every_knob_with_its_default():
    with open(BASE) as handle:
        data = yaml.safe_load(handle)
    assert load_config([BASE]) == Config()
    assert set(data) == set(Config().to_dict())
    for section, values in Config().to_dict().items():
        assert set(data[section]) == set(values), section


def test_every_shipped_config_loads():
    from boundaries.study.runner import parse_strategies, read_study_config

    for root, _, files in os.walk(os.path.join(REPO, "configs")):
        for name in files:
            path = os.path.join(root, name)
            if os.path.basename(root) == "studies":  # study configs: rows, and a config section
                study = read_study_config(path)
                parse_strategies(study.strategies)
                load_config([BASE], layers=[study.config])
            else:
                load_config([BASE, path])


def test_overrides_are_typed():
    cfg = load_config([BASE], ["train.lr=3e-4", "model.dilations=[1, 2]", "train.amp=false",
                               "loss.class_weight=[1, 20]"])
    assert cfg.train.lr == 3e-4 and cfg.model.dilations == (1, 2) and cfg.train.amp is False
    assert cfg.loss.class_weight == [1, 20]


@pytest.mark.parametrize("override,pattern", [
    ("train.lrr=1", "unknown config key 'train.lrr'"),
    ("nosuch.x=1", "unknown config key 'nosuch'"),
    ("train.epochs=many", "config key 'train.epochs': must be int"),
    ("features.hop_length=0", "features.hop_length"),
    ("loss.kind=hinge", "loss.kind"),
    ("labels.radius_s=20", "labels.radius_s"),
    ("features.fmax=20000", "features.fmax"),
    ("train.amp=3", "must be true or false"),
    ("track.min_track_lengths_s=[]", "track.min_track_lengths_s"),
    ("track.plateau_levels=[0.4, 1.5]", "track.plateau_levels"),
    ("track.expected_f_fine=true", "'track.expected_f_fine': needs track.expected_f: true"),
])
def test_bad_values_fail_naming_the_key(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config([BASE], [override])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "nope.yaml"])


def test_unsafe_yaml_is_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([path])


def test_override_syntax():
    assert parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_override("train.lr")
