"""train_and_calibrate: train, fit the chain on devel, store it; resolve_init_branches."""

import pytest

from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation.evaluate import usable
from avstan.evaluation.scoring import fit_chains
from avstan.experiments.calibrated_training import (
    describe_chains,
    resolve_init_branches,
    train_and_calibrate,
)
from avstan.models.model_file import TrainedModel
from avstan.training.config import config_from_dict
from tests.conftest import tiny_config_dict


def test_the_stored_chain_is_the_one_fitted_on_devel_and_is_not_refitted(tiny_store, tmp_path):
    config = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", "cnn2d",
                                               max_epochs=1))
    run = train_and_calibrate(config, progress=False)
    trained = TrainedModel.load(run.model_path)
    assert trained.postprocessing == {t: c.to_dict() for t, c in run.chains.items()}
    devel, _ = usable(trained, RecordingStore.open(tiny_store).load_partition("devel"),
                      tiny_store)
    refitted = fit_chains(trained.network, devel, trained.targets, trained.clip_length)
    assert {t: c.to_dict() for t, c in refitted.items()} == trained.postprocessing
    written = run.model_path.stat().st_mtime_ns
    again = train_and_calibrate(config, progress=False)
    assert again.model_path.stat().st_mtime_ns == written  # complete and calibrated: kept
    assert {t: c.to_dict() for t, c in again.chains.items()} == trained.postprocessing
    line = describe_chains(again.chains)
    assert line.count("devel CCC") == 2 and "valence: median" in line


def test_branch_names_are_located_and_paths_kept(tiny_store, tmp_path):
    raw = tiny_config_dict(tiny_store, tmp_path / "run", "av_sta")
    raw["training"]["init_branches"] = {"audio": "lstm_ta", "video": "runs/sta3d/model.pt"}
    config = config_from_dict(raw)
    asked = []
    resolve_init_branches(config, lambda name: asked.append(name) or tmp_path / name / "m.pt")
    assert asked == ["lstm_ta"]
    assert config.training.init_branches == {"audio": str(tmp_path / "lstm_ta" / "m.pt"),
                                             "video": "runs/sta3d/model.pt"}


def test_a_branch_name_without_a_recipe_is_one_clear_error(tiny_store, tmp_path):
    raw = tiny_config_dict(tiny_store, tmp_path / "run", "av_sta")
    raw["training"]["init_branches"] = {"audio": "lstm_ta"}
    with pytest.raises(AvstanError, match="init_branches.audio: 'lstm_ta' is not a model file"):
        resolve_init_branches(config_from_dict(raw))


def test_trains_printed_line_warns_of_a_refused_scaling():
    from avstan.evaluation.postprocess import PostProcessing

    chains = {"valence": PostProcessing(devel_ccc_raw=0.002, devel_ccc=0.002,
                                        notes=["scaling ×143 refused: devel correlation 0.118 "
                                               "is within noise (needs > 2 × 0.150)"]),
              "arousal": PostProcessing(devel_ccc_raw=0.5, devel_ccc=0.6)}
    line = describe_chains(chains)
    assert "\n" not in line
    assert line.endswith(". Warning: valence: scaling ×143 refused: devel correlation 0.118 "
                         "is within noise (needs > 2 × 0.150)")
    assert "Warning" not in describe_chains({"arousal": chains["arousal"]})
