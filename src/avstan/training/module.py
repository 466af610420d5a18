"""Lightning wrappers: the model with its loss and optimiser, and the recording-store data."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from avstan.data.clips import (
    AugmentConfig,
    ClipDataset,
    inputs_for_model,
    skipped_summary,
    usable_recordings,
)
from avstan.data.images import is_image_store
from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.metrics import attention_in_mask_ratio, concordance_cc
from avstan.models import create_model
from avstan.models.attention import attention_entropy
from avstan.training.losses import get_loss


def entropy_weight(epoch: float, weight: float, start: float = 0.0, ramp: float = 0.0) -> float:
    """The entropy term's weight at (fractional) ``epoch``: 0 before ``start``, then rising
    linearly from 0 to ``weight`` over ``ramp`` epochs (at once when ``ramp`` is 0)."""
    if epoch < start:
        return 0.0
    if ramp <= 0:
        return weight
    return weight * min(1.0, (epoch - start) / ramp)


class EmotionRegressor(L.LightningModule):
    """A registered model trained to regress valence/arousal at the last step of a clip.

    Logs ``train/loss``, ``val/loss``, ``val/ccc`` (mean over targets, on the concatenation
    of the devel clips — the checkpoint and early-stopping criterion), ``val/ccc_<target>``
    and, when the devel data have salient masks and the model has attention,
    ``val/attention_in_mask``.

    ``attention_lr`` gives the attention branch (the ``attention_branch`` submodule) its
    own learning rate; ``None`` trains everything at ``lr`` as the papers do.
    ``attention_entropy`` = λ > 0 adds λ times the learnt maps' mean normalised entropy
    (``models.attention.attention_entropy``: 1 uniform, 0 one location) to the training
    loss, logged as ``train/attention_entropy``; it needs a model with an attention branch.
    ``attention_entropy_start`` and ``attention_entropy_ramp`` (in epochs) switch the term
    on later: its weight is 0 until epoch ``start``, then grows linearly to λ over ``ramp``
    epochs (:func:`entropy_weight`), so the trunk can learn before the maps are pushed.
    """

    def __init__(self, model_name: str, model_options: dict[str, Any], targets: Sequence[str],
                 loss: str = "mse", lr: float = 1e-4, attention_lr: float | None = None,
                 weight_decay: float = 0.0, attention_entropy: float = 0.0,
                 attention_entropy_start: float = 0.0,
                 attention_entropy_ramp: float = 0.0, loss_every_step: bool = False,
                 lr_schedule: str = "constant", expression_weight: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model_name, targets=list(targets), **model_options)
        if attention_entropy < 0:
            raise AvstanError(f"training.attention_entropy must be >= 0, got {attention_entropy}")
        for name, value in (("start", attention_entropy_start), ("ramp", attention_entropy_ramp)):
            if not value >= 0:
                raise AvstanError(f"training.attention_entropy_{name} must be >= 0 epochs, "
                                  f"got {value}")
        if attention_entropy and getattr(self.model, "attention_branch", None) is None:
            raise AvstanError(f"training.attention_entropy: model {model_name!r} learns no "
                              "attention maps; set it to 0 or train sta3d/static3d")
        if expression_weight and getattr(self.model, "expression", None) is None:
            raise AvstanError(f"training.expression_weight: model {model_name!r} has no "
                              "expression head; set model.options.expression_classes (frame2d) "
                              "or the weight to 0")
        self.targets = tuple(targets)
        self.loss_fn = get_loss(loss)
        self._val_predictions: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []
        self._val_ratios: list[np.ndarray] = []

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Run the model on the batch entries it reads (its ``input_names``)."""
        return self.model(**{name: batch[name] for name in self.model.input_names})

    def training_step(self, batch: dict[str, Any], batch_index: int) -> torch.Tensor:
        out = self(batch)
        if self.hparams.loss_every_step:
            loss = self._every_step_loss(out, batch)
        else:
            loss = self.loss_fn(out["prediction"], batch["target"])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=len(batch["target"]))
        if self.hparams.expression_weight:
            loss = loss + self.hparams.expression_weight * self._expression_loss(out, batch)
        if self.hparams.attention_entropy:
            entropy = attention_entropy(out["attention"])
            self.log("train/attention_entropy", entropy, on_step=False, on_epoch=True,
                     batch_size=len(batch["target"]))
            weight = entropy_weight(self._epoch_progress(batch_index),
                                    self.hparams.attention_entropy,
                                    self.hparams.attention_entropy_start,
                                    self.hparams.attention_entropy_ramp)
            if weight:
                loss = loss + weight * entropy
        return loss

    def _expression_loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]
                         ) -> torch.Tensor:
        """Cross-entropy of the expression head on the samples whose expression is known
        (-1: unknown, ignored); logged as ``train/expression_loss``."""
        expressions = batch.get("expression")
        if expressions is None:
            raise AvstanError("training.expression_weight: the store has no expressions "
                              "(image stores of expression corpora have them); set it to 0")
        known = expressions >= 0
        if not known.any():
            return out["expression_logits"].sum() * 0.0
        loss = torch.nn.functional.cross_entropy(out["expression_logits"][known],
                                                 expressions[known])
        self.log("train/expression_loss", loss, on_step=False, on_epoch=True,
                 batch_size=int(known.sum()))
        return loss

    def _every_step_loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]
                         ) -> torch.Tensor:
        """The loss over every labelled step of every clip: ``step_predictions (B, T, K)``
        against ``step_target (B, T, K)``."""
        if "step_predictions" not in out:
            raise AvstanError(f"training.loss_every_step: model {self.hparams.model_name!r} "
                              "predicts only the last step; train lstm or lstm_ta, or set "
                              "it to false")
        prediction = out["step_predictions"].flatten(0, 1)
        target = batch["step_target"].flatten(0, 1)
        known = torch.isfinite(target).all(dim=1)
        return self.loss_fn(prediction[known], target[known])

    def _epoch_progress(self, batch_index: int) -> float:
        """Training progress in epochs: the epoch plus the fraction of its batches done."""
        trainer = self._trainer
        if trainer is None:
            return 0.0
        batches = trainer.num_training_batches
        within = batch_index / batches if batches and math.isfinite(batches) else 0.0
        return trainer.current_epoch + within

    def validation_step(self, batch: dict[str, Any], batch_index: int) -> None:
        out = self(batch)
        prediction, target = out["prediction"], batch["target"]
        known = torch.isfinite(target).all(dim=1)
        if known.any():
            self.log("val/loss", self.loss_fn(prediction[known], target[known]), on_epoch=True,
                     batch_size=int(known.sum()), sync_dist=True)
        self._val_predictions.append(prediction.detach())
        self._val_targets.append(target)
        if "mask" in batch and "attention" in out:
            ratio = attention_in_mask_ratio(out["attention"].detach().float().cpu().numpy(),
                                            batch["mask"].cpu().numpy(), reduction="none")
            self._val_ratios.append(np.asarray(ratio).ravel())

    def on_validation_epoch_end(self) -> None:
        if not self._val_predictions:
            return
        predictions = torch.cat(self._val_predictions)
        targets = torch.cat(self._val_targets)
        if self.trainer.world_size > 1:
            # The distributed sampler pads every process to the same count, so this stacks.
            predictions = self.all_gather(predictions).flatten(0, 1)
            targets = self.all_gather(targets).flatten(0, 1)
        predictions = predictions.float().cpu().numpy()
        targets = targets.float().cpu().numpy()
        cccs = []
        for column, name in enumerate(self.targets):
            known = np.isfinite(targets[:, column])
            ccc = concordance_cc(predictions[known, column], targets[known, column]) \
                if known.sum() > 1 else 0.0
            cccs.append(ccc)
            self.log(f"val/ccc_{name}", float(ccc))
        self.log("val/ccc", float(np.mean(cccs)), prog_bar=True)
        if self._val_ratios:
            self.log("val/attention_in_mask", float(np.nanmean(np.concatenate(self._val_ratios))),
                     prog_bar=True, sync_dist=True)
        self._val_predictions.clear()
        self._val_targets.clear()
        self._val_ratios.clear()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        attention = getattr(self.model, "attention_branch", None)
        if self.hparams.attention_lr is None or attention is None:
            groups = [{"params": self.model.parameters()}]
        else:
            attention_ids = {id(p) for p in attention.parameters()}
            groups = [
                {"params": [p for p in self.model.parameters() if id(p) not in attention_ids]},
                {"params": list(attention.parameters()), "lr": self.hparams.attention_lr},
            ]
        optimiser = torch.optim.Adam(groups, lr=self.hparams.lr,
                                     weight_decay=self.hparams.weight_decay)
        if self.hparams.lr_schedule == "constant":
            return optimiser
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps)))
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule,
                                                         "interval": "step"}}


class RecordingDataModule(L.LightningDataModule):
    """Train and devel clips from a recording store.

    Training clips end every ``train_stride`` steps and only where labelled, with per-clip
    augmentation; devel clips end every ``val_stride`` steps, without augmentation, with the
    salient masks when the store has them (to follow the attention during training).

    ``input_names`` are the model's inputs ("clip", "audio", "mask"): recordings that lack
    one (a video without audio for an audio model, an audio-only one for a video model) are
    left out with a warning that names them.
    """

    def __init__(self, store: str, targets: Sequence[str], clip_length: int = 16,
                 train_stride: int = 16, val_stride: int = 1, batch_size: int = 16,
                 augment: AugmentConfig | None = None, num_workers: int = 0,
                 crop_size: int | None = None,
                 input_names: Sequence[str] = ("clip",), audio_per_recording: bool = False,
                 step_targets: bool = False, frames_in_memory: bool = True,
                 lookahead: int = 0, with_expressions: bool = False,
                 devel_required: bool = True) -> None:
        super().__init__()
        self.store_root = store
        self.targets = tuple(targets)
        self.clip_length = clip_length
        self.train_stride = train_stride
        self.val_stride = val_stride
        self.batch_size = batch_size
        self.augment = augment
        self.num_workers = num_workers
        self.crop_size = crop_size
        self.input_names = tuple(input_names)
        self.audio_per_recording = audio_per_recording
        self.step_targets = step_targets
        self.frames_in_memory = frames_in_memory
        self.lookahead = lookahead
        self.with_expressions = with_expressions
        self.devel_required = devel_required
        self.skipped: list[str] = []
        self.train_dataset: ClipDataset | None = None
        self.val_dataset: ClipDataset | None = None
        self.step_rate: float | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        store = RecordingStore.open(self.store_root)
        lazy = not self.frames_in_memory
        train, skipped = usable_recordings(store.load_partition("train", lazy_frames=lazy),
                                           self.input_names)
        devel, skipped_devel = usable_recordings(store.load_partition("devel", lazy_frames=lazy),
                                                 self.input_names)
        self.skipped = skipped + skipped_devel
        for line in skipped_summary(self.skipped):
            warnings.warn(f"{self.store_root}: {line}", stacklevel=2)
        needs = " with " + " and ".join(n for n in self.input_names if n != "mask") \
            if self.input_names else ""
        if not train:
            raise AvstanError(f"{self.store_root}: no complete recordings{needs} in the train "
                              "partition")
        if not devel and self.devel_required:
            raise AvstanError(f"{self.store_root}: no complete recordings{needs} in the devel "
                              "partition (needed for checkpointing and early stopping; "
                              "without one, train a fixed number of epochs with "
                              "--set training.keep=last_epoch)")
        video = "clip" in self.input_names
        sizes = {r.crop_size for r in train + devel} if video else set()
        rates = {r.step_rate for r in train + devel}
        if len(sizes) > 1 or len(rates) > 1:
            raise AvstanError(f"{self.store_root}: recordings differ in crop size {sorted(sizes)} "
                              f"or step rate {sorted(rates)}; prepare the corpus with one setting")
        if video and self.crop_size is not None and sizes != {self.crop_size}:
            size = sizes.pop()
            raise AvstanError(f"{self.store_root}: crops are {size} px but the model is built "
                              f"for {self.crop_size}; set model.options.crop_size to match "
                              f"(--set model.options.crop_size={size}) or leave it out")
        self.step_rate = rates.pop()
        flags = inputs_for_model(self.input_names)
        train_masks = flags.pop("with_masks")
        with_masks = video and all(r.salient_mask is not None for r in devel)
        # face images (an image store): each clip is one image held still (ClipDataset)
        flags["static"] = is_image_store(store.attrs)
        self.train_dataset = ClipDataset(train, self.clip_length, self.train_stride,
                                         self.targets, labelled_only=True, augment=self.augment,
                                         with_masks=train_masks,
                                         audio_per_recording=self.audio_per_recording,
                                         step_targets=self.step_targets,
                                         lookahead=self.lookahead,
                                         with_expressions=self.with_expressions, **flags)
        self.val_dataset = None if not devel else ClipDataset(
            devel, self.clip_length, self.val_stride, self.targets, labelled_only=True,
            with_masks=with_masks, audio_per_recording=self.audio_per_recording,
            lookahead=self.lookahead, **flags)
        if len(self.train_dataset) == 0:
            raise AvstanError(f"{self.store_root}: the train partition has no labelled clip")

    def train_dataloader(self) -> DataLoader:
        # Workers start afresh each epoch, seeded from torch's generator as the epoch starts:
        # kept workers would carry their generators over from the epoch before, which a run
        # resumed from a checkpoint cannot replay (training.resume).
        return DataLoader(self.train_dataset, batch_size=self.batch_size, shuffle=True,
                          num_workers=self.num_workers, drop_last=len(self.train_dataset) >
                          self.batch_size, persistent_workers=False)

    @property
    def has_devel(self) -> bool:
        return self.val_dataset is not None

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None:  # training.keep: last_epoch on a store without devel
            return []
        # With kept workers, only the loader's first iterator draws their seed, and in a
        # resumed run it comes at a later epoch than in an uninterrupted one: drawn from
        # torch's generator, it would shift the training's draws (training.resume). Without
        # workers every epoch draws one, resumed or not, and runs draw as they always have.
        workers = self.num_workers > 0
        return DataLoader(self.val_dataset, batch_size=max(self.batch_size, 32), shuffle=False,
                          num_workers=self.num_workers, persistent_workers=workers,
                          generator=torch.Generator().manual_seed(0) if workers else None)

