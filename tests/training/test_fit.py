"""Training end to end on a tiny store: outputs, resume after an interruption, reuse."""

import json

import lightning as L
import numpy as np
import pytest
import torch

from avstan.errors import AvstanError
from avstan.models.model_file import TrainedModel
from avstan.training.config import config_from_dict
from avstan.training.fit import train_experiment
from tests.conftest import tiny_config_dict


class StopInSecondEpoch(L.Callback):
    """Ctrl+C at the third batch of the second epoch (the first epoch is checkpointed)."""

    def on_train_batch_start(self, trainer, module, batch, batch_index):
        if trainer.current_epoch == 1 and batch_index == 2:
            raise KeyboardInterrupt


class CountBatches(L.Callback):
    def __init__(self):
        self.batches = 0

    def on_train_batch_end(self, *args):
        self.batches += 1


def test_training_writes_a_loadable_model_and_logs(tiny_store, tmp_path):
    config = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", "sta3d"))
    result = train_experiment(config, progress=False)
    assert result.epochs == 2
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    log = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert "val/ccc" in log and "val/attention_in_mask" in log
    trained = TrainedModel.load(result.model_path)
    model = trained.network
    assert trained.model_name == "sta3d" and trained.targets == ("valence", "arousal")
    assert trained.step_rate == 4.0 and trained.model_options["crop_size"] == 16
    out = model(torch.rand(2, 3, 4, 16, 16))
    assert torch.isfinite(out["prediction"]).all()
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    assert np.isfinite(done["best_val_ccc"]) and done["best_val_ccc"] == result.best_val_ccc


def test_a_finished_run_is_not_trained_again(tiny_store, tmp_path):
    config = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", max_epochs=1))
    first = train_experiment(config, progress=False)
    stamp = first.model_path.stat().st_mtime_ns
    counter = CountBatches()
    second = train_experiment(config, progress=False, callbacks=[counter])
    assert counter.batches == 0 and second.model_path.stat().st_mtime_ns == stamp
    assert second.best_val_ccc == first.best_val_ccc


@pytest.mark.parametrize(("workers", "ema_decay"), [(0, None), (1, None), (0, 0.9)])
def test_an_interrupted_run_resumes_to_what_an_uninterrupted_run_gives(workers, ema_decay,
                                                                       tiny_store, tmp_path):
    config = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", max_epochs=2,
                                               num_workers=workers, ema_decay=ema_decay))
    with pytest.raises(KeyboardInterrupt):
        train_experiment(config, progress=False, callbacks=[StopInSecondEpoch()])
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    assert not (tmp_path / "run" / "done.json").exists()
    counter = CountBatches()
    result = train_experiment(config, progress=False, callbacks=[counter])
    full = CountBatches()
    reference = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "ref", max_epochs=2,
                                                  num_workers=workers, ema_decay=ema_decay))
    whole = train_experiment(reference, progress=False, callbacks=[full])
    assert 2 * counter.batches == full.batches  # only the second epoch ran after resuming
    assert result.epochs == 2 and (tmp_path / "run" / "done.json").exists()
    # The epoch after the checkpoint replays the uninterrupted run's draws (shuffle,
    # augmentation, dropout): the same weights, bit for bit, and the same score.
    resumed = TrainedModel.load(result.model_path).network.state_dict()
    for name, value in TrainedModel.load(whole.model_path).network.state_dict().items():
        assert torch.equal(resumed[name], value), name
    assert result.best_val_ccc == whole.best_val_ccc
    # The log keeps the epoch trained before the interruption, and has the interrupted
    # epoch's rows once (the attempt's rows are dropped).
    log = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert log == (tmp_path / "ref" / "logs" / "metrics.csv").read_text()
    assert {row.split(",")[0] for row in log.splitlines()[1:] if row} == {"0", "1"}


def test_a_different_config_in_the_same_folder_is_refused(tiny_store, tmp_path):
    config = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", max_epochs=1))
    train_experiment(config, progress=False)
    changed = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", max_epochs=1,
                                                lr=1e-3))
    with pytest.raises(AvstanError, match="different config.*--restart"):
        train_experiment(changed, progress=False)
    # other threads or loader workers compute the same run: it is found complete
    same = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", max_epochs=1,
                                             threads=2, num_workers=1))
    before = (tmp_path / "run" / "model.pt").read_bytes()
    assert train_experiment(same, progress=False).epochs == 1
    assert (tmp_path / "run" / "model.pt").read_bytes() == before
    assert train_experiment(changed, restart=True, progress=False).epochs == 1


def test_crop_size_mismatch_is_a_clear_error(tiny_store, tmp_path):
    raw = tiny_config_dict(tiny_store, tmp_path / "run")
    raw["model"]["options"]["crop_size"] = 32
    with pytest.raises(AvstanError, match="crops are 16 px but the model is built for 32"):
        train_experiment(config_from_dict(raw), progress=False)


def test_attention_lr_puts_the_attention_branch_in_its_own_group(tiny_store, tmp_path):
    from avstan.training.module import EmotionRegressor

    module = EmotionRegressor("sta3d", {"crop_size": 16, "clip_length": 4},
                              ["valence", "arousal"], lr=1e-4, attention_lr=1e-2)
    optimiser = module.configure_optimizers()
    lrs = [group["lr"] for group in optimiser.param_groups]
    assert lrs == [1e-4, 1e-2]
    attention = {id(p) for p in module.model.attention_branch.parameters()}
    assert {id(p) for p in optimiser.param_groups[1]["params"]} == attention
    total = sum(len(g["params"]) for g in optimiser.param_groups)
    assert total == len(list(module.model.parameters()))


def test_a_run_saved_before_a_config_field_existed_is_reused(tiny_store, tmp_path):
    import yaml

    config = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", max_epochs=1))
    first = train_experiment(config, progress=False)
    saved = tmp_path / "run" / "config.yaml"
    old = yaml.safe_load(saved.read_text())
    del old["training"]["fusion_starts_as_video"]  # as written by an earlier avstan
    saved.write_text(yaml.safe_dump(old, sort_keys=False))
    again = train_experiment(config, progress=False)
    assert again.epochs == first.epochs and again.model_path == first.model_path
    # A field the config does not know (a later avstan's) is a different config.
    old["training"]["from_the_future"] = 1
    saved.write_text(yaml.safe_dump(old, sort_keys=False))
    with pytest.raises(AvstanError, match="different config"):
        train_experiment(config, progress=False)


def test_attention_entropy_term_is_added_to_the_loss_and_needs_learnt_maps(tiny_store):
    """training_step's loss = the regression loss + λ · the maps' normalised entropy,
    the entropy computed here independently (scipy) from the maps the model returns."""
    import torch
    from scipy.stats import entropy

    from avstan.training.module import EmotionRegressor

    torch.manual_seed(0)
    module = EmotionRegressor("sta3d", {"crop_size": 16, "clip_length": 4},
                              ["valence", "arousal"], attention_entropy=0.3)
    module.log = lambda *args, **kwargs: None  # no trainer attached
    batch = {"clip": torch.rand(3, 3, 4, 16, 16), "target": torch.rand(3, 2) * 2 - 1}
    module.eval()  # dropout off, so two forward passes agree
    out = module(batch)
    maps = out["attention"].detach().numpy().reshape(-1, 16 * 16)
    expected = (torch.nn.functional.mse_loss(out["prediction"], batch["target"]).item()
                + 0.3 * np.mean([entropy(m) for m in maps]) / np.log(256))
    assert module.training_step(batch, 0).item() == pytest.approx(expected, rel=1e-5)

    with pytest.raises(AvstanError, match="learns no attention maps"):
        EmotionRegressor("cnn3d", {"crop_size": 16, "clip_length": 4}, ["valence"],
                         attention_entropy=0.1)
    with pytest.raises(AvstanError, match="must be >= 0"):
        EmotionRegressor("sta3d", {"crop_size": 16, "clip_length": 4}, ["valence"],
                         attention_entropy=-1.0)


def test_entropy_weight_is_off_before_start_then_ramps_linearly_to_its_weight():
    from avstan.training.module import entropy_weight

    assert entropy_weight(0.0, 0.03) == 0.03  # no schedule: full weight from the start
    assert entropy_weight(1.99, 0.03, start=2) == 0.0
    assert entropy_weight(2.0, 0.03, start=2) == 0.03  # no ramp: on at once
    ramp = [entropy_weight(e, 0.04, start=1, ramp=4) for e in np.arange(0, 8, 0.5)]
    expected = [0.04 * min(max((e - 1) / 4, 0.0), 1.0) for e in np.arange(0, 8, 0.5)]
    assert ramp == pytest.approx(expected)
    assert ramp[2 + 4] == pytest.approx(0.02)  # halfway through the ramp: half the weight


def test_attention_entropy_start_leaves_the_loss_alone_until_then(tiny_store):
    """Before ``attention_entropy_start`` the training loss is the regression loss alone;
    a trained run logs the entropy and its schedule is validated."""
    import torch

    from avstan.training.module import EmotionRegressor

    torch.manual_seed(0)
    module = EmotionRegressor("sta3d", {"crop_size": 16, "clip_length": 4},
                              ["valence", "arousal"], attention_entropy=0.3,
                              attention_entropy_start=1.0)
    module.log = lambda *args, **kwargs: None  # no trainer attached: epoch 0
    batch = {"clip": torch.rand(3, 3, 4, 16, 16), "target": torch.rand(3, 2) * 2 - 1}
    module.eval()
    plain = torch.nn.functional.mse_loss(module(batch)["prediction"], batch["target"]).item()
    assert module.training_step(batch, 0).item() == pytest.approx(plain, rel=1e-6)

    # Halfway through epoch 1 of a one-epoch ramp from epoch 1: half the weight, 0.15.
    from types import SimpleNamespace

    from scipy.stats import entropy

    module.hparams.attention_entropy_ramp = 1.0
    module._trainer = SimpleNamespace(current_epoch=1, num_training_batches=4)
    maps = module(batch)["attention"].detach().numpy().reshape(-1, 16 * 16)
    expected = plain + 0.15 * np.mean([entropy(m) for m in maps]) / np.log(256)
    assert module.training_step(batch, 2).item() == pytest.approx(expected, rel=1e-5)
    for key in ("attention_entropy_start", "attention_entropy_ramp"):
        with pytest.raises(AvstanError, match=f"{key} must be >= 0"):
            EmotionRegressor("sta3d", {"crop_size": 16, "clip_length": 4}, ["valence"],
                             attention_entropy=0.1, **{key: -1.0})


def store_without_devel(source, root):
    """``source``'s recordings with its devel recording moved to train: no devel partition."""
    import dataclasses

    from avstan.data.store import RecordingStore

    old = RecordingStore.open(source)
    store = RecordingStore.create(root, corpus="no-devel", **dict(old.attrs))
    for name in old.names():
        recording = old.load(name)
        if recording.partition == "devel":
            recording = dataclasses.replace(recording, partition="train")
        store.add(recording)
    return root


def test_keep_last_epoch_trains_every_epoch_and_keeps_the_last(tiny_store, tmp_path):
    # patience 1 would stop a best_devel run early on a flat devel score; last_epoch trains
    # max_epochs and saves the weights of the last checkpoint, not of the best devel epoch
    config = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", max_epochs=3,
                                               patience=1, keep="last_epoch"))
    result = train_experiment(config, progress=False)
    assert result.epochs == 3
    assert not (tmp_path / "run" / "checkpoints" / "best.ckpt").exists()
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    kept = TrainedModel.load(result.model_path).network.state_dict()
    for name, value in kept.items():
        assert torch.equal(last["state_dict"][f"model.{name}"], value), name
    log = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert "val/ccc" in log and np.isfinite(result.best_val_ccc)  # devel still scored


def test_keep_last_epoch_needs_no_devel_partition(tiny_store, tmp_path):
    from avstan.experiments.calibrated_training import train_and_calibrate

    root = store_without_devel(tiny_store, tmp_path / "store")
    refused = config_from_dict(tiny_config_dict(root, tmp_path / "refused", max_epochs=1))
    with pytest.raises(AvstanError, match="devel partition.*training.keep=last_epoch"):
        train_experiment(refused, progress=False)
    config = config_from_dict(tiny_config_dict(root, tmp_path / "run", max_epochs=2,
                                               keep="last_epoch"))
    run = train_and_calibrate(config, progress=False)
    assert run.result.epochs == 2 and np.isnan(run.result.best_val_ccc)
    assert run.chains is None  # no devel to fit a post-processing chain on
    trained = TrainedModel.load(run.model_path)
    assert trained.postprocessing is None
    assert trained.metadata["config"]["training"]["keep"] == "last_epoch"
    log = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert "val/ccc" not in log and "train/loss_epoch" in log


def test_keep_takes_two_values():
    with pytest.raises(AvstanError, match="training.keep 'best'.*best_devel or last_epoch"):
        config_from_dict({"training": {"keep": "best"}})
