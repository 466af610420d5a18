"""Experiment configs: one YAML file per experiment, read into typed dataclasses.

    name: sta3d-demo
    output: runs/sta3d-demo
    model:
      name: sta3d
      options: {crop_size: 48}
    data:
      store: runs/demo/corpus
      train_stride: 4
    training:
      max_epochs: 20

Every key is checked: an unknown or mistyped key is one AvstanError naming the file and
the key. Command-line overrides use dotted paths, ``training.lr=3e-4`` or
``model.options.crop_size=64``, with values parsed as YAML.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avstan.data.clips import AugmentConfig
from avstan.errors import AvstanError
from avstan.typed_config import dataclass_from_dict


@dataclass
class ModelSection:
    name: str = "sta3d"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSection:
    store: str = ""
    clip_length: int = 16
    train_stride: int = 16  # 16 = non-overlapping clips (ICASSP); smaller = overlapping (MM)
    val_stride: int = 1  # step between scored devel steps during training (1 = every step)
    targets: list[str] = field(default_factory=lambda: ["valence", "arousal"])
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    # false: leave the face crops in the store's files and read each clip from there (in
    # every DataLoader worker, training.num_workers, its own file handles), for corpora
    # larger than memory; true: load them all first (faster for small corpora)
    frames_in_memory: bool = True


@dataclass
class TrainingSection:
    loss: str = "mse"  # mse (papers) | ccc (1 - CCC, averaged over targets)
    lr: float = 1e-4
    # constant (the papers) | cosine: the learning rate falls from lr to 0 along a half
    # cosine over the run's max_epochs, step by step
    lr_schedule: str = "constant"
    # weight of the expression head's cross-entropy (models with expression_classes, on
    # stores with expressions: face images) added to the loss; 0 = off
    expression_weight: float = 0.0
    attention_lr: float | None = None  # a separate learning rate for the attention branch
    # weight of the maps' mean normalised entropy added to the loss (0 = off): an
    # unsupervised push towards sharper attention maps, without saying where
    attention_entropy: float = 0.0
    # the entropy term starts at this epoch and ramps up to its weight over this many
    # epochs (0, 0 = full weight from the first step)
    attention_entropy_start: float = 0.0
    attention_entropy_ramp: float = 0.0
    weight_decay: float = 0.0
    # an exponential moving average of the weights, this decay per optimiser step (None =
    # off): the average is what is scored on devel, checkpointed and saved in model.pt
    ema_decay: float | None = None
    # the loss on every step of each clip (audio models), not only on the last one
    loss_every_step: bool = False
    batch_size: int = 16
    max_epochs: int = 30
    patience: int = 10  # early stopping on devel CCC, in epochs
    # which weights model.pt keeps: "best_devel" (the epoch with the best devel CCC, early
    # stopping after `patience`) or "last_epoch" (all max_epochs, the last one kept; the
    # devel partition is then optional, scored when present: a corpus too small to spare
    # speakers for a devel partition, e.g. one fold of a leave-one-speaker-out study)
    keep: str = "best_devel"
    seed: int = 0
    num_workers: int = 0
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    gradient_clip: float | None = None
    limit_train_batches: float | int | None = None
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    # Fusion (av_sta) from trained branches, the MM paper's late fusion: model files of the
    # audio (lstm_ta) and video (sta3d/cnn3d) models, e.g. {audio: runs/a/model.pt}.
    init_branches: dict[str, str] = field(default_factory=dict)
    freeze_branches: bool = False  # with init_branches: train only the fusion layers
    # with init_branches: the fusion starts out predicting exactly what the trained video
    # branch predicts (audio weights zero), so training adds audio only where it helps
    fusion_starts_as_video: bool = False
    # a trained frame model (frame2d) file whose convolutions start the video model's
    # (models.inflate: 2D kernels inflated over time, batch norms folded in)
    init_encoder: str | None = None

    def __post_init__(self) -> None:
        for key in ("batch_size", "max_epochs", "patience", "num_nodes"):
            if getattr(self, key) < 1:
                raise AvstanError(f"training.{key} {getattr(self, key)}: use 1 or more")
        if self.num_workers < 0:
            raise AvstanError(f"training.num_workers {self.num_workers}: use 0 or more")
        if not self.lr > 0:
            raise AvstanError(f"training.lr {self.lr}: use a positive learning rate")
        if self.keep not in ("best_devel", "last_epoch"):
            raise AvstanError(f"training.keep {self.keep!r}: use best_devel or last_epoch")
        if self.lr_schedule not in ("constant", "cosine"):
            raise AvstanError(f"training.lr_schedule {self.lr_schedule!r}: use constant or "
                              "cosine")
        if not self.expression_weight >= 0:
            raise AvstanError(f"training.expression_weight {self.expression_weight}: use 0 "
                              "(off) or a positive weight")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise AvstanError(f"training.ema_decay {self.ema_decay}: use a decay in [0, 1), "
                              "e.g. 0.99, or null for no weight average")


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    output: str = "runs/experiment"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    training: TrainingSection = field(default_factory=TrainingSection)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def packaged_config(name: str) -> Path:
    """Path of a YAML config shipped in the package: ``avstan/configs/<name>.yaml``
    (``name`` may include a folder, e.g. ``paper/icassp_sta3d``)."""
    from importlib import resources

    return Path(str(resources.files("avstan") / "configs" / f"{name}.yaml"))


def overrides_for_model(overrides: list[str] | tuple[str, ...], model: str) -> list[str]:
    """Drop ``model.options.<key>=…`` overrides that ``model`` has no option for, so one set
    of overrides can shrink several models at once (e.g. crop_size for video models only,
    audio_features for audio ones)."""
    from avstan.models import model_arguments

    accepted = model_arguments(model)

    def applies(override: str) -> bool:
        key = override.split("=", 1)[0].split(".")
        return key[:2] != ["model", "options"] or len(key) < 3 or key[2] in accepted

    return [o for o in overrides if applies(o)]


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML experiment file and apply ``key.path=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise AvstanError(f"{path}: config file not found; pass an existing YAML file "
                          "(see configs/ for examples)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        problem = str(exc).replace("\n", " ")
        raise AvstanError(f"{path}: not valid YAML ({problem}); fix the file") from None
    if not isinstance(raw, dict):
        raise AvstanError(f"{path}: a config must be a mapping of sections, "
                          f"got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    return config_from_dict(raw, str(path))


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Set dotted keys, e.g. ``training.lr=3e-4``, in a nested dict (values parsed as YAML)."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise AvstanError(f"override {override!r} must look like section.key=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise AvstanError(f"override {override!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return raw


def config_from_dict(raw: dict[str, Any], where: str = "config") -> ExperimentConfig:
    """Build an ExperimentConfig, checking every key and type; errors name ``where``."""
    return dataclass_from_dict(ExperimentConfig, raw, where)
