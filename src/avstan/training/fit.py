"""Train one experiment end to end with Lightning; resumable; writes ``model.pt``.

Output folder layout:

    config.yaml            the resolved experiment config
    checkpoints/best.ckpt  best devel CCC so far;  checkpoints/last.ckpt  the latest epoch
                           (with training.ema_decay, both hold the weights' moving average)
    logs/metrics.csv       CSV log;  tensorboard/  TensorBoard log
    model.pt               the best model as one self-describing file (see models/model_file.py)
    done.json              written last: the run is complete

Running the same config into the same folder again resumes from ``last.ckpt`` (or returns
at once when ``done.json`` exists); checkpoints are read with ``weights_only=True``. The
checkpoint carries the random generators' states, so a resumed run ends with the model
and the log an uninterrupted run gives, bit for bit on CPU (``training.resume``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from avstan.data.images import IMAGE_MODEL_SMOOTHING, is_image_store
from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.io import atomic_write_bytes, ensure_writable_folder
from avstan.models import model_arguments
from avstan.models.frame import FrameCNN
from avstan.models.inflate import init_from_frame_model
from avstan.models.model_file import TrainedModel, unreadable_reason
from avstan.models.packaged import is_packaged_name, packaged_model_path
from avstan.progress import on_terminal
from avstan.training.config import ExperimentConfig, config_from_dict
from avstan.training.module import EmotionRegressor, RecordingDataModule
from avstan.training.resume import RandomStateCheckpoint, ResumableCSVLogger

DONE_NAME = "done.json"


class EpochLines(L.Callback):
    """Progress for a log: one flushed line per epoch (train loss, devel CCC, seconds)
    instead of a progress bar redrawn with carriage returns."""

    def __init__(self, stream=None) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [f"{label} {float(metrics[key]):.4f}" for key, label in
                 (("train/loss_epoch", "train loss"), ("val/ccc", "devel CCC"))
                 if key in metrics]
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {', '.join(parts)} "
              f"({time.monotonic() - self.started:.0f} s)", file=self.stream or sys.stderr,
              flush=True)


@dataclass
class TrainResult:
    output: Path
    model_path: Path
    best_val_ccc: float
    epochs: int
    is_global_zero: bool = True  # False in the other processes of a distributed run


def prepare_output(output: Path, config: ExperimentConfig, restart: bool = False) -> bool:
    """Create the output folder; returns True if a complete run of this config is there.

    A folder holding a run of a *different* config is refused rather than mixed into.
    """
    ensure_writable_folder(output, "the training output")
    saved = output / "config.yaml"
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    if restart:
        for stale in [output / DONE_NAME, output / "checkpoints" / "last.ckpt",
                      output / "checkpoints" / "best.ckpt"]:
            stale.unlink(missing_ok=True)
    elif saved.exists() and (output / "checkpoints").exists() and \
            not _same_config(saved, config):
        raise AvstanError(f"{output}: holds a run of a different config; choose another "
                          "output folder or pass --restart to start over")
    atomic_write_bytes(saved, text.encode())
    return (output / DONE_NAME).exists() and (output / "model.pt").exists()


# How a run is computed, not what it computes: a run resumed or found with other values
# of these is the same run (the threads of a machine with more cores, say).
NOT_THE_EXPERIMENT = ("threads", "num_workers")


def _same_config(saved: Path, config: ExperimentConfig) -> bool:
    """Whether ``saved`` (a run's config.yaml) describes ``config``. Read through
    ``config_from_dict``, so a field added to avstan since (with its default) does not
    make an old run look different; one that cannot be read counts as different; the
    training fields of :data:`NOT_THE_EXPERIMENT` are not compared."""
    try:
        previous = config_from_dict(yaml.safe_load(saved.read_text()), str(saved))
    except (AvstanError, yaml.YAMLError, TypeError, AttributeError):
        return False

    def experiment(dumped: dict) -> dict:
        training = {k: v for k, v in dumped["training"].items()
                    if k not in NOT_THE_EXPERIMENT}
        return {**dumped, "training": training}

    return experiment(previous.to_dict()) == experiment(config.to_dict())


def quiet_lightning() -> None:
    """Keep Lightning's info lines (GPU/TPU available, a hosted-logger tip) off standard
    error on every run; its warnings and errors still show."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 # "[rank: 0] Received SIGTERM: 15": avstan says it is interrupted, once
                 "lightning.pytorch.trainer.connectors.signal_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_torch(threads: int | None) -> None:
    # Denormal floats in the recurrent/attention path made a CPU prototype ~3x slower.
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)


def fit_audio_standardisation(model: torch.nn.Module, recordings: list, store: str) -> None:
    """Set the model's feature standardisation from the training recordings' audio features
    (train partition only; the statistics are buffers, so they are saved with the model)."""
    from avstan.data.audio import fit_standardisation, standardise_per_recording

    per_recording = getattr(model, "recording_standardisation", False)
    features = np.concatenate([standardise_per_recording(r.audio_features) if per_recording
                               else r.audio_features for r in recordings])
    expected = model.audio_standardiser.center.shape[0]
    if features.shape[1] != expected:
        raise AvstanError(f"{store}: audio features have {features.shape[1]} values per step, "
                          f"the model takes {expected}; set model.options.audio_features="
                          f"{features.shape[1]}")
    center, scale = fit_standardisation(features)
    model.audio_standardiser.set_statistics(center, scale)


BRANCHES = {"audio": "audio_branch", "video": "video_branch"}


def init_branches(model: torch.nn.Module, files: dict[str, str], freeze: bool = False) -> None:
    """Load trained branch models (``{"audio": model.pt, "video": model.pt}``) into a fusion
    model's branches; ``freeze`` stops their training (only the fusion layers learn)."""

    unknown = sorted(set(files) - set(BRANCHES))
    if unknown or not all(hasattr(model, BRANCHES[k]) for k in files):
        raise AvstanError(f"training.init_branches: {model.model_name} has no branch "
                          f"{', '.join(unknown or sorted(files))}; it takes audio and video "
                          "branches (av_sta)")
    for key, path in files.items():
        branch = getattr(model, BRANCHES[key])
        trained = TrainedModel.load(path)
        if trained.model_name != branch.model_name:
            raise AvstanError(f"{path}: a {trained.model_name} model, but the {key} branch is "
                              f"{branch.model_name}; train that model first")
        try:
            branch.load_state_dict(trained.network.state_dict())
        except RuntimeError as exc:
            reason = str(exc).splitlines()[0][:160]
            raise AvstanError(f"{path}: does not fit the {key} branch ({reason}); give the "
                              f"branch the trained model's options") from None
        if freeze:
            branch.requires_grad_(False)


def frame_model_to_start_from(path: str) -> tuple[str, FrameCNN]:
    """(file, network) of ``training.init_encoder``: a frame model file, or a packaged
    model's name; anything else is one AvstanError."""
    if is_packaged_name(path):
        path = str(packaged_model_path(path))
    trained = TrainedModel.load(path)
    if not isinstance(trained.network, FrameCNN):
        raise AvstanError(f"training.init_encoder: {path} is a {trained.model_name} model; "
                          "give a frame model file (frame2d, e.g. the packaged one)")
    return path, trained.network


def init_encoder(model: torch.nn.Module, path: str, frame: FrameCNN) -> dict:
    """Start ``model``'s convolutions from ``frame``, the frame model read from ``path``
    (``models.inflate``); returns what the model file records: the source and the layers
    started and left at their start."""
    layers = init_from_frame_model(model, frame, str(path))
    if not layers["started"]:
        raise AvstanError(f"training.init_encoder: {model.model_name} has no convolution a "
                          f"frame model can start; train cnn2d, cnn3d, static3d or sta3d")
    return {"from": str(path), **layers}


def weight_average(decay: float) -> L.Callback:
    """Lightning's EMA callback: it swaps the average in for each devel pass and writes it
    as the checkpoint's weights (the weights being trained travel beside it, for resuming).
    It came with Lightning 2.6; avstan otherwise runs on 2.4."""
    try:
        from lightning.pytorch.callbacks import EMAWeightAveraging
    except ImportError:
        raise AvstanError(f"training.ema_decay needs Lightning 2.6 or later (this is "
                          f"{L.__version__}); upgrade it, or leave ema_decay out") from None
    return EMAWeightAveraging(decay=decay)


def check_resumable(checkpoint: Path) -> int:
    """Refuse, in one line, a checkpoint that cannot be resumed from (truncated, damaged, or
    holding objects a weights-only load refuses — nothing in it is executed); returns the
    epoch it was saved at the end of (counted from 0)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot resume from it"
        if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" not in str(exc):
            reason = "it holds objects a weights-only load refuses"
        else:  # in our words: torch's message is a paragraph, cut mid-word at any length
            reason = unreadable_reason(checkpoint, exc)
        raise AvstanError(f"{checkpoint}: cannot resume from this checkpoint ({reason}); run "
                          "again with --restart, or remove the file") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise AvstanError(f"{checkpoint}: not a Lightning checkpoint of avstan; run again with "
                          "--restart, or remove the file")
    return int(state.get("epoch", 0))


def train_experiment(config: ExperimentConfig, restart: bool = False, progress: bool = True,
                     callbacks: list[L.Callback] | None = None) -> TrainResult:
    """Train ``config`` into ``config.output``; resumes an interrupted run of it.

    ``callbacks`` are added to the Lightning trainer (e.g. for extra logging). A run that
    fails before its first checkpoint (a store it cannot read, a setting Lightning refuses,
    an interrupt in the first epoch) removes what it wrote into the folder: nothing there
    could be resumed, and a failed run leaves no output behind.
    """
    output = Path(config.output)
    before = set(os.listdir(output)) if output.is_dir() else None
    try:
        return _train_experiment(config, restart, progress, callbacks)
    except BaseException:
        if not (output / "checkpoints" / "last.ckpt").exists():
            remove_new_entries(output, before or set())
        raise


def remove_new_entries(output: Path, before: set[str]) -> None:
    """Remove what appeared in ``output`` besides the entries ``before`` (a failed run's
    config.yaml, empty log folders); the folder itself is left to its lock's holder."""
    import shutil

    if not output.is_dir():
        return
    for name in set(os.listdir(output)) - before:
        path = output / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _train_experiment(config: ExperimentConfig, restart: bool, progress: bool,
                      callbacks: list[L.Callback] | None) -> TrainResult:
    output = Path(config.output)
    model_arguments(config.model.name)  # an unknown model is refused before any folder is made
    # and a file to start from that is not a frame model
    start_from = (frame_model_to_start_from(config.training.init_encoder)
                  if config.training.init_encoder else None)
    if prepare_output(output, config, restart):
        done = json.loads((output / DONE_NAME).read_text())
        return TrainResult(output, output / "model.pt", done["best_val_ccc"], done["epochs"])
    section = config.training
    configure_torch(section.threads)
    quiet_lightning()
    L.seed_everything(section.seed, workers=True, verbose=False)
    options = dict(config.model.options)
    options.setdefault("clip_length", config.data.clip_length)
    if "crop_size" in model_arguments(config.model.name) and "crop_size" not in options:
        # A config that does not fix the crop size trains on the store's crops.
        train = RecordingStore.open(config.data.store).load_partition("train", load_frames=False)
        sizes = {r.crop_size for r in train if r.has_video}
        if len(sizes) == 1:
            options["crop_size"] = sizes.pop()
    module = EmotionRegressor(config.model.name, options, config.data.targets, section.loss,
                              section.lr, section.attention_lr, section.weight_decay,
                              section.attention_entropy, section.attention_entropy_start,
                              section.attention_entropy_ramp, section.loss_every_step,
                              section.lr_schedule, section.expression_weight)
    datamodule = RecordingDataModule(
        config.data.store, config.data.targets, config.data.clip_length, config.data.train_stride,
        config.data.val_stride, section.batch_size, config.data.augment, section.num_workers,
        crop_size=options.get("crop_size"), input_names=module.model.input_names,
        audio_per_recording=getattr(module.model, "recording_standardisation", False),
        step_targets=section.loss_every_step, frames_in_memory=config.data.frames_in_memory,
        lookahead=getattr(module.model, "lookahead", 0),
        with_expressions=section.expression_weight > 0,
        devel_required=section.keep == "best_devel")
    datamodule.setup("fit")
    keep_last = section.keep == "last_epoch"
    scored = datamodule.has_devel
    if "audio" in module.model.input_names:
        fit_audio_standardisation(module.model, datamodule.train_dataset.recordings,
                                  config.data.store)
    started_from = (init_encoder(module.model, *start_from)
                    if start_from is not None else None)
    if section.init_branches:
        init_branches(module.model, section.init_branches, section.freeze_branches)
        if section.fusion_starts_as_video:
            if "video" not in section.init_branches:
                raise AvstanError("training.fusion_starts_as_video needs a trained video branch "
                                  "in training.init_branches")
            module.model.start_as_video_branch()
    checkpoints = output / "checkpoints"
    if keep_last:  # every epoch, the last one kept: no devel choice, no early stopping
        best = ModelCheckpoint(dirpath=checkpoints, save_top_k=0, save_last=True,
                               enable_version_counter=False)
        stopping = []
    else:
        best = ModelCheckpoint(dirpath=checkpoints, filename="best", monitor="val/ccc",
                               mode="max", save_last=True, enable_version_counter=False)
        stopping = [EarlyStopping(monitor="val/ccc", mode="max", patience=section.patience)]
    callbacks = [best, *stopping, RandomStateCheckpoint(), *(callbacks or [])]
    if section.ema_decay is not None:
        callbacks.append(weight_average(section.ema_decay))
    bar = progress and on_terminal()
    if bar:
        callbacks.append(TQDMProgressBar(leave=True))
    elif progress:
        callbacks.append(EpochLines())  # a log, not a terminal: one plain line per epoch
    last = checkpoints / "last.ckpt"
    resume_epoch = check_resumable(last) if last.exists() else None
    try:
        trainer = L.Trainer(
            default_root_dir=output, max_epochs=section.max_epochs, accelerator=section.accelerator,
            devices=section.devices, num_nodes=section.num_nodes, strategy=section.strategy,
            precision=section.precision, gradient_clip_val=section.gradient_clip,
            limit_train_batches=section.limit_train_batches, callbacks=callbacks,
            logger=[ResumableCSVLogger(output, name="logs", version="",
                                       resume_epoch=resume_epoch),
                    TensorBoardLogger(output, name="tensorboard", version="")],
            enable_progress_bar=bar, enable_model_summary=False, num_sanity_val_steps=0,
            log_every_n_steps=10, deterministic=False,
            limit_val_batches=None if scored else 0)
    except (MisconfigurationException, ValueError) as exc:
        # e.g. --accelerator gpu on a machine without one, --devices 0
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160].rstrip(".!")
        fix = ("this machine has no such device: use --accelerator cpu (or auto, which "
               "takes a GPU where there is one)" if "backend" in reason.lower()
               or "not available" in reason.lower() else
               "see `avstan train --help` for --accelerator, --devices and --strategy")
        raise AvstanError(f"training.accelerator {section.accelerator!r} / devices "
                          f"{section.devices!r} / strategy {section.strategy!r}: {reason}; "
                          f"{fix}") from None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        # Expected when resuming: the folders hold the interrupted attempt's files.
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        # Lightning 2.6 on torch 2.13 warns about a pytree API on every run; nothing to do.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        try:
            trainer.fit(module, datamodule=datamodule,
                        ckpt_path=last if last.exists() else None, weights_only=True)
        except SystemExit:
            # Lightning turns Ctrl+C into sys.exit(1) after a graceful shutdown; give the
            # caller the interrupt back so it can say how to resume.
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
    if not trainer.is_global_zero:
        return TrainResult(output, output / "model.pt", float("nan"), trainer.current_epoch,
                           is_global_zero=False)
    best_path = Path(best.best_model_path) if best.best_model_path and not keep_last else last
    state = torch.load(best_path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    if keep_last:  # the devel CCC of the kept (last) epoch, when there is a devel partition
        score = trainer.callback_metrics.get("val/ccc") if scored else None
        best_score = float(score) if score is not None else float("nan")
    else:
        best_score = (float(best.best_model_score) if best.best_model_score is not None
                      else float("nan"))
    store_attrs = RecordingStore.open(config.data.store).attrs
    metadata = {"config": config.to_dict(), "best_val_ccc": best_score,
                "epochs": trainer.current_epoch, "store": config.data.store,
                "skipped_recordings": datamodule.skipped,
                # predict computes audio features with the window the store was made with
                "audio_window_seconds": (store_attrs.get("audio_window")
                                         if "audio" in module.model.input_names else None),
                # predict aligns new videos exactly as the training crops were aligned, and
                # follows the face between searches as prepare did
                "alignment_template": datamodule.train_dataset.recordings[0].alignment_template,
                "redetect_every": store_attrs.get("redetect_every"),
                "detector": store_attrs.get("detector")}
    if started_from is not None:
        metadata["init_encoder"] = started_from
    image_store = is_image_store(store_attrs)
    if image_store:  # on video it follows the face between searches as prepare's default does
        metadata["trained_on"] = "images"
    trained = TrainedModel(module.model, tuple(config.data.targets), datamodule.step_rate,
                           metadata)
    if image_store:
        # an image corpus has no devel timeline to fit a smoothing on: the fixed filter
        trained = trained.with_postprocessing({t: dict(IMAGE_MODEL_SMOOTHING)
                                               for t in config.data.targets})
    trained.save(output / "model.pt")
    done = {"best_val_ccc": best_score, "epochs": trainer.current_epoch,
            "best_checkpoint": str(best_path)}
    atomic_write_bytes(output / DONE_NAME, json.dumps(done, indent=1).encode())
    return TrainResult(output, output / "model.pt", best_score, trainer.current_epoch)
