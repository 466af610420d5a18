"""Training and evaluating the audio and audio-visual models on a store that mixes
recordings with and without audio, and audio-only ones."""

import warnings

import lightning as L
import numpy as np
import pytest
import torch

from avstan.data.audio import fit_standardisation
from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation.evaluate import evaluate_model_file
from avstan.models.model_file import TrainedModel
from avstan.training.config import config_from_dict
from avstan.training.fit import train_experiment
from tests.conftest import AV_FEATURES as FEATURES
from tests.conftest import tiny_config_dict

AUDIO_OPTIONS = {"audio_features": FEATURES, "hidden": 8, "layers": 2}
VIDEO_OPTIONS = {"crop_size": 16, "trunk_channels": [4, 8, 8, 8], "fc_hidden": 8}


def config_for(store, output, model, options, **training):
    raw = tiny_config_dict(store, output, model, max_epochs=1, **training)
    raw["model"]["options"] = options
    return config_from_dict(raw)


def test_audio_model_skips_recordings_without_audio_and_fits_standardisation_on_train(
        tiny_av_store, tmp_path):
    config = config_for(tiny_av_store, tmp_path / "lstm_ta", "lstm_ta", AUDIO_OPTIONS)
    with pytest.warns(UserWarning, match=r"1 recording skipped \(train_000\): it has no "
                                         "audio features"):
        result = train_experiment(config, progress=False)
    trained = TrainedModel.load(result.model_path)
    model = trained.network
    assert any("no audio features" in r for r in trained.metadata["skipped_recordings"])
    store = RecordingStore.open(tiny_av_store)
    train = [r.audio_features for r in store.load_partition("train")
             if r.audio_features is not None]
    assert len(train) == 2  # one with a face and the audio-only one
    center, scale = fit_standardisation(np.concatenate(train))
    torch.testing.assert_close(model.audio_standardiser.center, torch.from_numpy(center))
    torch.testing.assert_close(model.audio_standardiser.scale, torch.from_numpy(scale))
    # Audio-only test recordings are scored too, and nothing is interpolated as "no face".
    evaluation = evaluate_model_file(result.model_path, tiny_av_store, "test", postprocess=False,
                                     progress=False)
    names = {r.name for r in evaluation.recordings}
    assert any(n.endswith("-audio-only") for n in names) and len(names) == 2
    for recording in evaluation.recordings:
        assert np.isfinite(recording.prediction).all()


def test_video_model_skips_audio_only_recordings_by_name(tiny_av_store, tmp_path):
    config = config_for(tiny_av_store, tmp_path / "cnn3d", "cnn3d", VIDEO_OPTIONS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_experiment(config, progress=False)
    skipped = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert skipped and all("-audio-only" in s and "face frames" in s for s in skipped)


def test_fusion_starts_from_trained_branches_and_can_keep_them_frozen(tiny_av_store, tmp_path):
    audio = train_experiment(config_for(tiny_av_store, tmp_path / "a", "lstm_ta", AUDIO_OPTIONS),
                             progress=False)
    video = train_experiment(config_for(tiny_av_store, tmp_path / "v", "cnn3d", VIDEO_OPTIONS),
                             progress=False)
    options = {"crop_size": 16, "audio_features": FEATURES, "video_model": "cnn3d",
               "audio": {"hidden": 8, "layers": 2},
               "video": {k: v for k, v in VIDEO_OPTIONS.items() if k != "crop_size"}}
    config = config_for(tiny_av_store, tmp_path / "av", "av_sta", options,
                        init_branches={"audio": str(audio.model_path),
                                       "video": str(video.model_path)},
                        freeze_branches=True)
    fused = TrainedModel.load(train_experiment(config, progress=False).model_path).network
    for branch, path in (("audio_branch", audio.model_path), ("video_branch", video.model_path)):
        trained = TrainedModel.load(path).network
        for name, value in trained.state_dict().items():
            torch.testing.assert_close(getattr(fused, branch).state_dict()[name], value)
    # The fusion layers did train away from their initialisation.
    assert fused.output.weight.abs().sum() > 0


def test_branch_files_that_do_not_fit_are_one_clear_error(tiny_av_store, tmp_path):
    audio = train_experiment(config_for(tiny_av_store, tmp_path / "a", "lstm_ta", AUDIO_OPTIONS),
                             progress=False)
    options = {"crop_size": 16, "audio_features": FEATURES, "video_model": "cnn3d",
               "audio": {"hidden": 16, "layers": 2},
               "video": {k: v for k, v in VIDEO_OPTIONS.items() if k != "crop_size"}}
    wrong_size = config_for(tiny_av_store, tmp_path / "av", "av_sta", options,
                            init_branches={"audio": str(audio.model_path)})
    with pytest.raises(AvstanError, match="does not fit the audio branch"):
        train_experiment(wrong_size, progress=False)
    wrong_kind = config_for(tiny_av_store, tmp_path / "av2", "av_sta", options,
                            init_branches={"video": str(audio.model_path)})
    with pytest.raises(AvstanError, match="a lstm_ta model, but the video branch is cnn3d"):
        train_experiment(wrong_kind, progress=False)
    not_fusion = config_for(tiny_av_store, tmp_path / "x", "lstm_ta", AUDIO_OPTIONS,
                            init_branches={"audio": str(audio.model_path)})
    with pytest.raises(AvstanError, match="has no branch"):
        train_experiment(not_fusion, progress=False)


def test_audio_feature_count_must_match_the_model(tiny_av_store, tmp_path):
    config = config_for(tiny_av_store, tmp_path / "bad", "lstm",
                        {**AUDIO_OPTIONS, "audio_features": FEATURES + 1})
    with pytest.raises(AvstanError, match=f"have {FEATURES} values per step.*audio_features="):
        train_experiment(config, progress=False)


def test_per_recording_standardisation_and_loss_on_every_step(tiny_av_store, tmp_path):
    from avstan.data.audio import standardise_per_recording

    options = {**AUDIO_OPTIONS, "recording_standardisation": True, "input_noise": 0.1,
               "lstm_dropout": 0.2}
    config = config_for(tiny_av_store, tmp_path / "levers", "lstm", options,
                        loss_every_step=True, loss="ccc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train_experiment(config, progress=False)
    model = TrainedModel.load(result.model_path).network
    assert model.recording_standardisation
    store = RecordingStore.open(tiny_av_store)
    train = [standardise_per_recording(r.audio_features) for r in store.load_partition("train")
             if r.audio_features is not None]
    # The training statistics are those of the per-recording standardised features.
    center, scale = fit_standardisation(np.concatenate(train))
    torch.testing.assert_close(model.audio_standardiser.center, torch.from_numpy(center))
    evaluation = evaluate_model_file(result.model_path, tiny_av_store, "test", postprocess=False,
                                     progress=False)
    assert all(np.isfinite(r.prediction).all() for r in evaluation.recordings)


def test_loss_on_every_step_needs_a_model_that_predicts_every_step(tiny_av_store, tmp_path):
    config = config_for(tiny_av_store, tmp_path / "cnn", "cnn3d", VIDEO_OPTIONS,
                        loss_every_step=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AvstanError, match="loss_every_step.*predicts only the last step"):
            train_experiment(config, progress=False)


class RecordWeights(L.Callback):
    """The trained weights after every optimiser step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.steps.append({n: p.detach().clone() for n, p in module.model.named_parameters()})


@pytest.mark.parametrize("decay", [0.0, 0.8])
def test_ema_decay_saves_the_moving_average_of_the_weights_after_each_step(tiny_av_store,
                                                                          tmp_path, decay):
    """model.pt holds a = w_1, a <- decay * a + (1 - decay) * w_k over the steps k, computed
    here from the weights recorded after each step (one epoch: the best is the last)."""
    config = config_for(tiny_av_store, tmp_path / "ema", "lstm_ta", AUDIO_OPTIONS,
                        ema_decay=decay, lr=0.05)
    record = RecordWeights()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train_experiment(config, progress=False, callbacks=[record])
    assert len(record.steps) >= 3
    average = dict(record.steps[0])
    for step in record.steps[1:]:
        average = {n: decay * average[n] + (1 - decay) * step[n] for n in average}
    saved = dict(TrainedModel.load(result.model_path).network.named_parameters())
    for name, value in average.items():
        torch.testing.assert_close(saved[name].detach(), value, msg=name)
    if decay > 0:  # the average is not the last weights
        assert any(not torch.allclose(saved[n].detach(), record.steps[-1][n]) for n in saved)


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_ema_decay_outside_0_1_is_refused(tiny_av_store, tmp_path, decay):
    with pytest.raises(AvstanError, match="training.ema_decay"):
        config_for(tiny_av_store, tmp_path / "ema", "lstm_ta", AUDIO_OPTIONS, ema_decay=decay)


def test_ema_decay_on_a_lightning_without_the_callback_is_one_clear_error(monkeypatch):
    import lightning.pytorch.callbacks as callbacks

    from avstan.training.fit import weight_average
    monkeypatch.delattr(callbacks, "EMAWeightAveraging")
    with pytest.raises(AvstanError, match="training.ema_decay needs Lightning 2.6"):
        weight_average(0.99)
