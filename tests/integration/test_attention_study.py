"""The attention study runner (benchmarks/attention_study.py), reduced: it runs, writes its
partial results, resumes without redoing finished runs, and its bounds behave."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from avstan.errors import AvstanError

ROOT = Path(__file__).resolve().parents[2]


def load_runner():
    spec = importlib.util.spec_from_file_location("attention_study",
                                                  ROOT / "benchmarks" / "attention_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load_runner()

# The study's own file, made small: fewer, shorter recordings at 24 px, 4-step clips.
REDUCED = [
    "corpus.crop_size=24", "corpus.num_train=8", "corpus.steps_per_recording=160",
    "corpus.num_devel=2", "corpus.num_test=2",
    "experiment.model.options.crop_size=24", "experiment.data.clip_length=4",
    "experiment.data.train_stride=2", "experiment.training.max_epochs=5", "seeds=[0]",
]


def test_the_study_file_builds_every_run_config(tmp_path):
    study = runner.load_study(runner.DEFAULT_STUDY)
    assert {"cnn3d", "mask", "sta3d_papers", "sta3d_levers"} <= set(study["settings"])
    assert len(study["corpora"]) >= 2 and len(study["seeds"]) >= 3
    epochs = set()
    for corpus in study["corpora"]:
        config = runner.corpus_config(study, corpus)
        assert config.crop_size == study["experiment"]["model"]["options"]["crop_size"]
        for setting in study["settings"]:
            experiment = runner.experiment_config(study, setting, tmp_path, 1, tmp_path / "x")
            assert experiment.training.seed == 1
            epochs.add(experiment.training.max_epochs)
            assert experiment.training.patience >= experiment.training.max_epochs
    assert len(epochs) == 1  # equal epochs for every setting


def test_the_study_runs_the_demos_attention_configuration(tmp_path):
    """One setting the full study runs is the demo's sta3d (configs/demo_sta3d.yaml) at the
    study's scale: the same branch options and attention learning rate, so the study's
    verdict is about the configuration users get."""
    from avstan.training.config import load_config, packaged_config

    demo = load_config(packaged_config("demo_sta3d"))
    scale = {"crop_size", "pooled_size"}  # the study's own scale, set for every setting
    wanted = {k: v for k, v in demo.model.options.items() if k not in scale}
    study = runner.load_study(runner.DEFAULT_STUDY)
    matches = []
    for name in study["settings"]:
        experiment = runner.experiment_config(study, name, tmp_path, 0, tmp_path / "x")
        options = {k: v for k, v in experiment.model.options.items() if k not in scale}
        if (experiment.model.name == demo.model.name and options == wanted
                and experiment.training.attention_lr == demo.training.attention_lr):
            matches.append(name)
    assert matches, "no study setting is the demo's sta3d configuration"
    assert any(not study["settings"][name].get("optional") for name in matches)


def test_optional_settings_run_only_when_named():
    study = runner.load_study(runner.DEFAULT_STUDY)
    optional = {n for n, s in study["settings"].items() if s.get("optional")}
    planned = runner.plan_runs(study)
    assert {setting for _, setting, _ in planned} == set(study["settings"]) - optional
    assert len(planned) == len(study["corpora"]) * len(study["seeds"]) * (
        len(study["settings"]) - len(optional))
    named = runner.plan_runs(study, settings=sorted(optional)[:1], corpora=["default"])
    assert named == [("default", sorted(optional)[0], seed) for seed in study["seeds"]]


def test_a_bad_study_key_is_one_clear_error(tmp_path):
    bad = tmp_path / "study.yaml"
    bad.write_text("corpora: {}\nexperiment: {}\nseeds: [0]\nsettings: {a: {options: {}}}\n")
    with pytest.raises(AvstanError, match="setting 'a' needs 'model'"):
        runner.load_study(bad)
    with pytest.raises(AvstanError, match="unknown setting"):
        runner.run_study(runner.load_study(runner.DEFAULT_STUDY), tmp_path, settings=["nope"])


@pytest.mark.slow
def test_reduced_study_runs_resumes_and_the_mask_bound_beats_uniform(tmp_path):
    study = runner.load_study(runner.DEFAULT_STUDY, REDUCED)
    hard = "cluttered"  # a corpus on which attention should matter, learnt at 24 px
    lines = []
    rows = runner.run_study(study, tmp_path, settings=["cnn3d"], corpora=[hard],
                            log=lines.append)
    assert [r["key"] for r in rows] == [f"{hard}/cnn3d/seed0"]
    assert (tmp_path / "summary.md").read_text().count("| cnn3d |") == 1

    lines.clear()
    rows = runner.run_study(study, tmp_path, settings=["cnn3d", "mask"], corpora=[hard],
                            log=lines.append)
    assert "1 finished, 1 to do" in lines[0]  # cnn3d is not trained again
    saved = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["key"] for r in saved] == [f"{hard}/cnn3d/seed0", f"{hard}/mask/seed0"]
    by_setting = {r["setting"]: r for r in rows}
    uniform, mask = by_setting["cnn3d"], by_setting["mask"]
    assert uniform["epochs"] == mask["epochs"] == 5
    assert uniform["attention_in_mask"] is None  # no maps: the trunk alone
    assert mask["attention_in_mask"] > 2.5  # all its attention inside the mask
    mean = {k: (r["ccc_valence"] + r["ccc_arousal"]) / 2 for k, r in by_setting.items()}
    assert mean["mask"] >= mean["cnn3d"] + 0.1, mean
    assert (tmp_path / "pictures" / f"{hard}.png").stat().st_size < 200_000
    summary = (tmp_path / "summary.md").read_text()
    assert "| mask | 1 |" in summary and "| cnn3d | 1 |" in summary


def test_maps_table_reports_mean_and_sample_sd_of_what_the_maps_carry():
    study = {"corpora": {"c": {}}, "settings": {"cnn3d": {}, "sta3d": {}}}
    own, swapped = [0.5, 0.7, 0.9], [0.1, 0.2, 0.6]
    rows = [{"corpus": "c", "setting": "sta3d", "seed": i,
             "attention_stats": {"ccc_own_maps": own[i], "ccc_swapped_maps": swapped[i],
                                 "ccc_uniform_maps": 0.0, "mask_correlation": 0.25}}
            for i in range(3)]
    rows.append({"corpus": "c", "setting": "cnn3d", "seed": 0, "attention_stats": {}})
    table = runner.maps_table(rows, study)
    line = next(row for row in table.splitlines() if row.startswith("| c | sta3d |"))
    cells = [c.strip() for c in line.strip("|").split("|")][2:]
    expected_own = f"{np.mean(own):.2f} ± {np.std(own, ddof=1):.2f}"
    expected_swapped = f"{np.mean(swapped):.2f} ± {np.std(swapped, ddof=1):.2f}"
    assert cells == [expected_own, expected_swapped, "0.00 ± 0.00", "0.25 ± 0.00"]
    assert "| c | cnn3d |" not in table  # no maps, no row
    assert runner.maps_table(rows[3:], study) == ""


def test_a_settings_data_lines_add_to_the_shared_augmentation(tmp_path):
    from avstan.data.clips import AugmentConfig

    study = runner.load_study(runner.DEFAULT_STUDY)
    study["settings"]["shifted"] = {"model": "cnn3d", "data": {"augment": {"shift": 0.2}}}
    shifted = runner.experiment_config(study, "shifted", tmp_path, 0, tmp_path / "x")
    plain = runner.experiment_config(study, "cnn3d", tmp_path, 0, tmp_path / "y")
    assert shifted.data.augment.shift == 0.2 and plain.data.augment.shift == 0.0
    defaults = AugmentConfig()
    assert shifted.data.augment.flip == defaults.flip == plain.data.augment.flip
    assert shifted.data.clip_length == plain.data.clip_length == 8
