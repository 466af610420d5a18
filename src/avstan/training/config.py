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
from typing import Annotated, Any

import yaml

from avstan.data.clips import AugmentConfig
from avstan.errors import AvstanError
from avstan.typed_config import OneOf, Range, check_declared, dataclass_from_dict

# Declarations shared by several fields (typed_config: checked where each is read)
AT_LEAST_ONE = Range(ge=1)
NOT_NEGATIVE = Range(ge=0)
POSITIVE = Range(gt=0)
SEED = Range(ge=0, le=2 ** 32 - 1)  # what numpy and Lightning take
THREADS = Range(ge=1, le=1024)
STEPS = Range(ge=1, le=100_000)  # a clip's length or stride, in steps


def batches_or_fraction(value: float | int) -> str:
    """Lightning's limit: a number of batches (an integer >= 1) or a fraction in (0, 1]."""
    if isinstance(value, int):
        return "" if value >= 1 else "a number of batches >= 1 or a fraction in (0, 1]"
    return "" if 0 < value <= 1 else "a fraction in (0, 1] or a whole number of batches"


def device_choice(value: Any) -> str:
    """Lightning's ``devices``: auto, a count (-1: all), a list of indices, or "0,1"."""
    advice = "auto, a number of devices >= 1 (-1: all), or a list of device indices"
    if value == "auto":
        return ""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return "" if parts and all(p.isdigit() for p in parts) else advice
    if isinstance(value, bool):
        return advice
    if isinstance(value, int):
        return "" if value == -1 or 1 <= value <= 100_000 else advice
    if isinstance(value, list):
        good = value and all(isinstance(i, int) and not isinstance(i, bool)
                             and 0 <= i <= 100_000 for i in value)
        return "" if good else advice
    return advice


@dataclass
class ModelSection:
    name: str = "sta3d"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSection:
    store: str = ""
    clip_length: Annotated[int, STEPS] = 16
    # 16 = non-overlapping clips (ICASSP); smaller = overlapping (MM)
    train_stride: Annotated[int, STEPS] = 16
    # step between scored devel steps during training (1 = every step)
    val_stride: Annotated[int, STEPS] = 1
    targets: list[Annotated[str, OneOf("valence", "arousal")]] = field(
        default_factory=lambda: ["valence", "arousal"])
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    # false: leave the face crops in the store's files and read each clip from there (in
    # every DataLoader worker, training.num_workers, its own file handles), for corpora
    # larger than memory; true: load them all first (faster for small corpora)
    frames_in_memory: bool = True

    def __post_init__(self) -> None:
        check_declared(self, "data config", "data.")


@dataclass
class TrainingSection:
    # mse (papers) | ccc (1 - CCC, averaged over targets)
    loss: Annotated[str, OneOf("mse", "ccc")] = "mse"
    lr: Annotated[float, POSITIVE] = 1e-4
    # constant (the papers) | cosine: the learning rate falls from lr to 0 along a half
    # cosine over the run's max_epochs, step by step
    lr_schedule: Annotated[str, OneOf("constant", "cosine")] = "constant"
    # weight of the expression head's cross-entropy (models with expression_classes, on
    # stores with expressions: face images) added to the loss; 0 = off
    expression_weight: Annotated[float, NOT_NEGATIVE] = 0.0
    # a separate learning rate for the attention branch
    attention_lr: Annotated[float | None, POSITIVE] = None
    # weight of the maps' mean normalised entropy added to the loss (0 = off): an
    # unsupervised push towards sharper attention maps, without saying where
    attention_entropy: Annotated[float, NOT_NEGATIVE] = 0.0
    # the entropy term starts at this epoch and ramps up to its weight over this many
    # epochs (0, 0 = full weight from the first step)
    attention_entropy_start: Annotated[float, NOT_NEGATIVE] = 0.0
    attention_entropy_ramp: Annotated[float, NOT_NEGATIVE] = 0.0
    weight_decay: Annotated[float, NOT_NEGATIVE] = 0.0
    # an exponential moving average of the weights, this decay per optimiser step (None =
    # off): the average is what is scored on devel, checkpointed and saved in model.pt
    ema_decay: Annotated[float | None, Range(ge=0, lt=1)] = None
    # the loss on every step of each clip (audio models), not only on the last one
    loss_every_step: bool = False
    batch_size: Annotated[int, Range(ge=1, le=1_000_000)] = 16
    max_epochs: Annotated[int, Range(ge=1, le=1_000_000)] = 30
    # early stopping on devel CCC, in epochs
    patience: Annotated[int, Range(ge=1, le=1_000_000)] = 10
    # which weights model.pt keeps: "best_devel" (the epoch with the best devel CCC, early
    # stopping after `patience`) or "last_epoch" (all max_epochs, the last one kept; the
    # devel partition is then optional, scored when present: a corpus too small to spare
    # speakers for a devel partition, e.g. one fold of a leave-one-speaker-out study)
    keep: Annotated[str, OneOf("best_devel", "last_epoch")] = "best_devel"
    seed: Annotated[int, SEED] = 0
    num_workers: Annotated[int, Range(ge=0, le=1024)] = 0
    accelerator: str = "auto"
    # auto, a number of devices (-1: all), a list of device indices, or "0,1"
    devices: Annotated[Any, device_choice] = "auto"
    num_nodes: Annotated[int, Range(ge=1, le=100_000)] = 1
    strategy: str = "auto"
    # Lightning's precisions (16-mixed needs CUDA; the 16- and bf16-true ones train in
    # half precision throughout)
    precision: Annotated[str, OneOf("32-true", "bf16-mixed", "16-mixed", "64-true",
                                    "bf16-true", "16-true")] = "32-true"
    gradient_clip: Annotated[float | None, POSITIVE] = None
    limit_train_batches: Annotated[int | float | None, batches_or_fraction] = None
    # torch CPU threads; None leaves torch's default
    threads: Annotated[int | None, THREADS] = None
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
        check_declared(self, "training config", "training.")


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
