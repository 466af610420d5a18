"""Experiment configs: loading, overrides, and one clear error per mistake."""

from pathlib import Path

import pytest

from avstan.errors import AvstanError
from avstan.models import create_model
from avstan.training.config import load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml"))


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_there_are_configs_to_check():
    assert len(CONFIGS) >= 9


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_builds_its_model(path):
    config = load_config(path)
    model = create_model(config.model.name, targets=config.data.targets, **config.model.options)
    assert model.targets == tuple(config.data.targets)


def test_the_demo_fusion_takes_the_demo_branches_as_they_are_trained():
    """av_sta loads the demo's trained lstm_ta and sta3d into its branches (strictly): the
    branch options in demo_av_sta.yaml must give the same weights (e.g. linear_skip)."""
    configs = Path(__file__).parents[2] / "configs"
    fusion_config = load_config(configs / "demo_av_sta.yaml")
    fusion = create_model("av_sta", targets=fusion_config.data.targets,
                          **fusion_config.model.options)
    for name, branch in (("lstm_ta", fusion.audio_branch), ("sta3d", fusion.video_branch)):
        config = load_config(configs / f"demo_{name}.yaml")
        trained = create_model(name, targets=config.data.targets, **config.model.options)
        branch.load_state_dict(trained.state_dict())  # strict: raises on any mismatch


def test_values_types_and_overrides(tmp_path):
    path = write(tmp_path, "model: {name: cnn3d, options: {crop_size: 48}}\n"
                           "training: {lr: 1e-4, max_epochs: 3}\n")
    config = load_config(path, ["training.lr=3e-4", "model.options.crop_size=64",
                                "data.augment=null", "training.devices=2"])
    assert config.training.lr == pytest.approx(3e-4) and isinstance(config.training.lr, float)
    assert config.model.options == {"crop_size": 64}
    assert config.data.augment is None
    assert config.training.devices == 2
    assert config.training.max_epochs == 3
    assert config.data.clip_length == 16  # default kept


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    assert load_config(write(tmp_path, "training: {lr: 1e-3}\n")).training.lr == 1e-3


@pytest.mark.parametrize("text, overrides, message", [
    ("training: {lrate: 1}\n", [], "unknown key training.lrate"),
    ("trainig: {}\n", [], "unknown key trainig"),
    ("training: {max_epochs: many}\n", [], "training.max_epochs must be int"),
    ("data: {targets: valence}\n", [], "data.targets must be a list"),
    ("data: {augment: {flip: yes, tilt: 3}}\n", [], "unknown key data.augment.tilt"),
    ("- a\n- b\n", [], "must be a mapping"),
    ("training: {lr: [1\n", [], "not valid YAML"),
    ("{}\n", ["training.lr"], "must look like section.key=value"),
])
def test_mistakes_are_one_line_naming_the_file(tmp_path, text, overrides, message):
    path = write(tmp_path, text)
    with pytest.raises(AvstanError, match=message) as info:
        load_config(path, overrides)
    assert str(path) in str(info.value) or "override" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(AvstanError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_model_option_overrides_apply_only_to_models_that_have_the_option():
    from avstan.training.config import overrides_for_model

    overrides = ["model.options.crop_size=16", "model.options.audio_features=6",
                 "model.options={hidden: 8}", "training.lr=1e-3"]
    assert overrides_for_model(overrides, "lstm") == overrides[1:]
    assert overrides_for_model(overrides, "cnn3d") == [overrides[0], *overrides[2:]]
