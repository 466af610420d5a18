"""Training frame2d on an image store: the model file it writes, the cosine learning-rate
schedule, and the expression head's loss."""

import math
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from avstan.data.corpora.acted import CIRCUMPLEX
from avstan.data.corpora.images import EXPRESSIONS
from avstan.data.faces import DEFAULT_REDETECT_EVERY
from avstan.data.images import IMAGE_MODEL_SMOOTHING
from avstan.data.store import Recording, RecordingStore
from avstan.errors import AvstanError
from avstan.models.model_file import TrainedModel
from avstan.training.config import config_from_dict
from avstan.training.fit import train_experiment
from avstan.training.module import EmotionRegressor
from tests.conftest import tiny_config_dict

CROP = 16
TARGETS = ["valence", "arousal"]
TINY_FRAME = {"crop_size": CROP, "channels": [4, 8], "fc_hidden": 8, "expression_classes": 8}


def image_shard(name: str, partition: str, rng: np.random.Generator,
                images: int = 16) -> Recording:
    """A hand-made shard: random 16×16 images, each labelled with the circumplex point of
    a random expression (a few unknown: -1)."""
    expressions = rng.integers(0, len(EXPRESSIONS), images)
    expressions[::5] = -1
    labels = np.array([CIRCUMPLEX[EXPRESSIONS[e]] if e >= 0 else (0.0, 0.0)
                       for e in expressions], np.float32)
    return Recording(
        name=name, frames=rng.integers(0, 256, (images, CROP, CROP, 3), np.uint8),
        times=np.arange(images, dtype=np.float64), face_found=np.ones(images, bool),
        labels=labels, step_rate=1.0, partition=partition, corpus="tiny-images",
        expressions=expressions,
        image_names=np.array([f"{name}/{i}".encode() for i in range(images)]))


@pytest.fixture(scope="module")
def tiny_image_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_image_store")
    store = RecordingStore.create(root, corpus="tiny-images", kind="images", crop_size=CROP,
                                  step_rate=1.0, detector="yunet", audio_window=None)
    rng = np.random.default_rng(0)
    for name, partition in (("train-0000", "train"), ("train-0001", "train"),
                            ("devel-0000", "devel")):
        store.add(image_shard(name, partition, rng))
    return root


class LearningRates(L.Callback):
    """The learning rate each training step runs with."""

    def __init__(self):
        self.rates = []

    def on_train_batch_start(self, trainer, module, batch, batch_index):
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_training_on_images_writes_the_image_model_file(tiny_image_store, tmp_path):
    raw = tiny_config_dict(tiny_image_store, tmp_path / "run", "frame2d", batch_size=8,
                           expression_weight=0.5, lr_schedule="cosine", lr=1e-3)
    raw["model"]["options"] = dict(TINY_FRAME)
    raw["data"].update(clip_length=1, train_stride=1, val_stride=1)
    rates = LearningRates()
    result = train_experiment(config_from_dict(raw), progress=False, callbacks=[rates])
    trained = TrainedModel.load(result.model_path)
    assert trained.model_name == "frame2d"
    assert trained.postprocessing == {t: IMAGE_MODEL_SMOOTHING for t in TARGETS}
    assert trained.metadata["trained_on"] == "images"
    # an image store records no face-search interval: on video the model follows the face
    # between searches as prepare's default does (fit.py as of this test; it once forced 1)
    assert trained.metadata["redetect_every"] is None
    assert trained.redetect_every == DEFAULT_REDETECT_EVERY
    assert "train/expression_loss" in (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    # 32 training images in batches of 8 for 2 epochs: 8 steps down a half cosine
    steps = 8
    assert len(rates.rates) == steps
    for k, rate in enumerate(rates.rates):
        assert math.isclose(rate, 1e-3 * 0.5 * (1 + math.cos(math.pi * k / steps)),
                            rel_tol=1e-9, abs_tol=1e-15)


def tiny_module(**options) -> EmotionRegressor:
    torch.manual_seed(0)
    return EmotionRegressor("frame2d", dict(TINY_FRAME), TARGETS, **options)


def test_cosine_schedule_falls_to_zero_over_the_estimated_steps():
    module = tiny_module(lr=0.1, lr_schedule="cosine")
    module.trainer = SimpleNamespace(estimated_stepping_batches=10)
    configured = module.configure_optimizers()
    optimiser = configured["optimizer"]
    scheduler = configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step"
    assert optimiser.param_groups[0]["lr"] == pytest.approx(0.1)
    for k in range(1, 11):
        optimiser.step()
        scheduler.step()
        expected = 0.05 * (1 + math.cos(math.pi * k / 10))
        assert optimiser.param_groups[0]["lr"] == pytest.approx(expected, abs=1e-12)
    scheduler.step()  # past the end it stays at zero
    assert optimiser.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_constant_schedule_returns_the_bare_optimiser():
    optimiser = tiny_module(lr=0.1).configure_optimizers()
    assert isinstance(optimiser, torch.optim.Adam)
    assert optimiser.param_groups[0]["lr"] == 0.1


def cross_entropy_by_hand(logits: torch.Tensor, labels: list[int]) -> float:
    """Mean of logsumexp(row) - row[label] over the rows whose label is not -1."""
    terms = []
    for row, label in zip(logits.tolist(), labels, strict=True):
        if label < 0:
            continue
        top = max(row)
        log_sum = top + math.log(sum(math.exp(v - top) for v in row))
        terms.append(log_sum - row[label])
    return sum(terms) / len(terms)


@pytest.mark.filterwarnings("ignore:.*self.log.*:UserWarning")
def test_expression_loss_is_cross_entropy_on_the_known_expressions():
    module = tiny_module(expression_weight=0.5)
    logits = torch.randn(6, 8, generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    labels = [2, -1, 5, -1, 0, 7]
    loss = module._expression_loss({"expression_logits": logits},
                                   {"expression": torch.tensor(labels)})
    assert loss.item() == pytest.approx(cross_entropy_by_hand(logits, labels), rel=1e-12)
    # unknown rows do not count: any logits there give the same loss
    changed = logits.clone()
    changed[[1, 3]] = 100.0 * torch.randn(2, 8, dtype=torch.float64)
    again = module._expression_loss({"expression_logits": changed},
                                    {"expression": torch.tensor(labels)})
    assert again.item() == loss.item()
    # a batch of unknown expressions only: no loss, but one that back-propagates
    leaf = logits.clone().requires_grad_(True)
    none = module._expression_loss({"expression_logits": leaf},
                                   {"expression": torch.full((6,), -1)})
    assert none.item() == 0.0  # the logits' sum times 0.0: exactly zero
    none.backward()
    assert leaf.grad is not None


def test_expression_loss_needs_expressions_and_an_expression_head():
    module = tiny_module(expression_weight=0.5)
    with pytest.raises(AvstanError, match="the store has no expressions"):
        module._expression_loss({"expression_logits": torch.zeros(2, 8)},
                                {"target": torch.zeros(2, 2)})
    no_head = {k: v for k, v in TINY_FRAME.items() if k != "expression_classes"}
    with pytest.raises(AvstanError, match="has no expression head"):
        EmotionRegressor("frame2d", no_head, TARGETS, expression_weight=0.5)
    EmotionRegressor("frame2d", no_head, TARGETS)  # without the weight it is fine


def ccc_by_hand(prediction: np.ndarray, gold: np.ndarray) -> float:
    """Lin's CCC with the biased variances, written out."""
    p, g = prediction.astype(np.float64), gold.astype(np.float64)
    covariance = np.mean((p - p.mean()) * (g - g.mean()))
    return 2 * covariance / (p.var() + g.var() + (p.mean() - g.mean()) ** 2)


def test_calibration_on_images_fits_centre_and_scale_behind_the_fixed_median(
        tiny_image_store, tmp_path):
    from avstan.evaluation.postprocess import chains_from_dicts
    from avstan.experiments.calibrated_training import train_and_calibrate

    raw = tiny_config_dict(tiny_image_store, tmp_path / "run", "frame2d", batch_size=8)
    raw["model"]["options"] = dict(TINY_FRAME)
    raw["data"].update(clip_length=1, train_stride=1, val_stride=1)
    run = train_and_calibrate(config_from_dict(raw), progress=False)
    trained = TrainedModel.load(run.model_path)
    chains = chains_from_dicts(trained.postprocessing)
    assert chains == run.chains
    # the devel images' predictions, one image at a time, by hand
    shard = RecordingStore.open(tiny_image_store).load_partition("devel")[0]
    frames = torch.from_numpy(shard.frames).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        predictions = trained.network.eval()(clip=frames.unsqueeze(2))["prediction"].numpy()
    for k, target in enumerate(TARGETS):
        chain = chains[target]
        # the video's median is the fixed one; what was fitted saw single images
        assert chain.median_window == IMAGE_MODEL_SMOOTHING["median_window"]
        assert chain.fitted
        assert chain.devel_ccc_raw == pytest.approx(
            ccc_by_hand(predictions[:, k], shard.labels[:, k]), abs=1e-5)
        offset = float(shard.labels[:, k].mean() - predictions[:, k].mean())
        assert chain.centre_offset in (0.0, pytest.approx(offset, abs=1e-5))
        assert chain.devel_ccc >= chain.devel_ccc_raw
    # a complete, calibrated run is found as it is: the file is not fitted again
    before = run.model_path.read_bytes()
    again = train_and_calibrate(config_from_dict(raw), progress=False)
    assert again.chains == chains and run.model_path.read_bytes() == before


class FirstBatch(L.Callback):
    """The clips of the first training batch."""

    clip = None

    def on_train_batch_start(self, trainer, module, batch, batch_index):
        if self.clip is None:
            self.clip = batch["clip"].clone()


def test_a_clip_model_trains_and_predicts_on_face_images_as_static_clips(tiny_image_store,
                                                                         tmp_path):
    """Issue 31: the steps of an image store are unrelated faces; a clip model reads each
    image held still for its clip, in training and in prediction."""
    from avstan.data.clips import ClipDataset
    from avstan.evaluation.inference import predict_recordings

    shard = RecordingStore.open(tiny_image_store).load_partition("devel")[0]
    static = ClipDataset([shard], clip_length=4, stride=3, static=True)
    # every third image from the first (a window would start at step 3, its first full one)
    assert static.index[:, 1].tolist() == list(range(0, shard.num_steps, 3))
    for item in (0, 2, 5):
        clip, image = static[item]["clip"], 3 * item  # (3, T, S, S)
        expected = torch.from_numpy(shard.frames[image]).permute(2, 0, 1).float() / 255.0
        for t in range(4):
            torch.testing.assert_close(clip[:, t], expected)
        assert static[item]["target"].tolist() == shard.labels[image].tolist()
    sliding = ClipDataset([shard], clip_length=4)  # the control: a window joins 4 faces
    assert not torch.equal(sliding[5]["clip"][:, 0], sliding[5]["clip"][:, 3])

    raw = tiny_config_dict(tiny_image_store, tmp_path / "run", "sta3d", batch_size=8,
                           max_epochs=1)
    raw["model"]["options"] = {"crop_size": CROP, "encoder_channels": [4, 8],
                               "decoder_channels": [8, 4], "trunk_channels": [4, 8, 8, 8],
                               "fc_hidden": 8}
    raw["data"].update(clip_length=4, train_stride=2, val_stride=1)
    batches = FirstBatch()
    result = train_experiment(config_from_dict(raw), progress=False, callbacks=[batches])
    held_still = batches.clip[:, :, :1].expand_as(batches.clip)  # (B, 3, T, S, S)
    torch.testing.assert_close(batches.clip, held_still)  # training read static clips too
    trained = TrainedModel.load(result.model_path)
    predicted = predict_recordings(trained.network, [shard], TARGETS, 4,
                                   keep_attention=True)[0]
    frames = torch.from_numpy(shard.frames).permute(0, 3, 1, 2).float() / 255.0
    held = frames.unsqueeze(2).expand(-1, -1, 4, -1, -1)  # (N, 3, T, S, S) by hand
    with torch.no_grad():
        out = trained.network.eval()(clip=held)
    np.testing.assert_allclose(predicted.prediction, out["prediction"].numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(predicted.attention, out["attention"][:, -1].numpy(),
                               rtol=1e-5, atol=1e-7)
