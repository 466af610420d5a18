"""The trained-model file: one self-describing ``model.pt``, read and written only here.

The file is a plain dict of tensors and primitive values (never pickled objects), so it
loads with ``torch.load(weights_only=True)``:

    format          "avstan-model"
    format_version  1
    model_name      registry name, e.g. "sta3d"
    model_options   the keyword arguments of ``create_model`` (crop_size, clip_length, ...)
    targets         ["valence", "arousal"]
    step_rate       steps per second of the data it was trained on
    state_dict      the weights
    metadata        primitive values: the training config, devel scores, and what
                    ``predict`` needs to read new media as the training store was made
                    (``alignment_template``, ``audio_window_seconds``, ``redetect_every``,
                    ``detector``)
    postprocessing  optional: the AVEC chain fitted on devel, per target (plain dicts;
                    ``evaluation.postprocess.PostProcessing.from_dict`` reads them)

:class:`TrainedModel` is the typed view of such a file: every reader (evaluate, predict,
stream, export, the demo, benchmarks) goes through :meth:`TrainedModel.load` and its
properties, so a default (e.g. the crop size or the face-search interval of a file written
before the store recorded it) is decided once, here. A file from elsewhere, a truncated
one, or one of another format version is refused with one AvstanError line, and nothing in
it is executed.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import torch
from torch import nn

from avstan.data.audio import DEFAULT_AUDIO_WINDOW, EGEMAPS_NAMES
from avstan.data.detectors import DEFAULT_DETECTOR, DETECTORS
from avstan.data.faces import DEFAULT_REDETECT_EVERY, DEFAULT_TEMPLATE
from avstan.devices import checked_device
from avstan.errors import AvstanError
from avstan.io import atomic_write_bytes
from avstan.models.registry import create_model
from avstan.typed_config import Range, convert_fields

FORMAT = "avstan-model"
FORMAT_VERSION = 1


@dataclass
class TrainedModel:
    """A trained network with everything needed to feed it and read its output.

    ``network`` is the ``nn.Module`` built by ``create_model`` (eval mode after
    :meth:`load`); the other fields are the file's (see the module docstring).
    """

    network: nn.Module
    targets: tuple[str, ...]
    step_rate: float
    metadata: dict[str, Any] = field(default_factory=dict)
    postprocessing: dict[str, dict[str, Any]] | None = None  # target -> chain as a dict

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)
        self.step_rate = float(self.step_rate)
        built_for = tuple(getattr(self.network, "targets", self.targets))
        if built_for != self.targets:
            # A file written this way could not be loaded again: refuse it here.
            raise ValueError(f"the network predicts {built_for}, not {self.targets}")

    @property
    def model_name(self) -> str:
        return self.network.model_name

    @property
    def model_options(self) -> dict[str, Any]:
        """The ``create_model`` options the network was built with (targets excluded)."""
        options = dict(getattr(self.network, "model_config", {}))
        options.pop("targets", None)
        return options

    @property
    def input_names(self) -> tuple[str, ...]:
        """The batch entries the network reads: ``clip`` (video), ``audio``, or both."""
        return tuple(self.network.input_names)

    @property
    def reads_video(self) -> bool:
        return "clip" in self.input_names

    @property
    def reads_audio(self) -> bool:
        return "audio" in self.input_names

    @property
    def clip_length(self) -> int:
        return int(self.network.clip_length)

    @property
    def crop_size(self) -> int | None:
        """S of the face crops the network reads; None for an audio model."""
        if not self.reads_video:
            return None
        return int(self.model_options.get("crop_size") or self.network.crop_size)

    @property
    def alignment_template(self) -> tuple[tuple[float, float], ...] | None:
        """Eye centres and nose tip in units of S, as the training crops were aligned;
        None for an audio model."""
        if not self.reads_video:
            return None
        stored = self.metadata.get("alignment_template")
        return tuple(map(tuple, stored)) if stored else DEFAULT_TEMPLATE

    @property
    def audio_window(self) -> float | None:
        """The eGeMAPS window (s) of the training store; None for a model without audio."""
        if not self.reads_audio:
            return None
        return float(self.metadata.get("audio_window_seconds") or DEFAULT_AUDIO_WINDOW)

    @property
    def redetect_every(self) -> int:
        """The face-search interval (steps) the training store was prepared with."""
        return int(self.metadata.get("redetect_every") or DEFAULT_REDETECT_EVERY)

    @property
    def detector(self) -> str:
        """The face detector the training store was prepared with: a store of real media
        records it; a synthetic one (no detection) gets the default; model files from
        before the detector was recorded were trained on HOG-detected faces."""
        if "detector" not in self.metadata:
            return "hog"
        return str(self.metadata["detector"] or DEFAULT_DETECTOR)

    def face_detector(self, requested: str | None = None) -> str:
        """The detector ``predict`` and ``stream`` use: ``requested`` if given, else the
        training store's (:attr:`detector`)."""
        name = self.detector if requested is None else requested
        if name not in DETECTORS:
            raise AvstanError(f"--detector {name}: unknown face detector; use one of "
                              f"{', '.join(DETECTORS)}")
        return name

    def face_search_interval(self, requested: int | None = None) -> int:
        """k for ``FaceAligner(redetect_every=k)``: ``requested`` if given, else the
        training store's (:attr:`redetect_every`)."""
        every = self.redetect_every if requested is None else requested
        if int(every) < 1:
            raise AvstanError(f"--redetect-every {every}: use 1 (search every step) or more")
        return int(every)

    @property
    def audio_width(self) -> int | None:
        """How many audio features per step the network reads (None: no audio input)."""
        if "audio" not in self.input_names:
            return None
        for module in self.network.modules():
            width = getattr(module, "audio_features", None)
            if isinstance(width, int):
                return width
        return None

    def check_media_audio(self, model_path: str | Path) -> None:
        """Refuse a model whose audio input is not the eGeMAPS functionals that predict and
        stream compute from media (one trained on another store's features, such as the
        low-level-descriptor frames of ``benchmarks/real_speech.py --lld``)."""
        width = self.audio_width
        if width is not None and width != len(EGEMAPS_NAMES):
            raise AvstanError(f"{model_path}: {self.model_name} reads {width} audio features "
                              f"per step, but avstan computes the {len(EGEMAPS_NAMES)} eGeMAPS "
                              "functionals from media; evaluate it on its store (avstan "
                              "evaluate), or train on a store made by avstan prepare")

    def check_recordings(self, recordings: Sequence, model_path: str | Path,
                         store_root: str | Path) -> None:
        """Refuse recordings whose crop size, audio feature width or step rate differs from
        the training data's (the step rate only for a model that learnt one: see
        :attr:`any_step_rate`)."""
        if self.crop_size is not None:
            sizes = {r.crop_size for r in recordings}
            if sizes != {self.crop_size}:
                raise AvstanError(f"{store_root}: crops are {sorted(sizes)} px but {model_path} "
                                  f"was trained on {self.crop_size} px; prepare the corpus "
                                  f"with --crop-size {self.crop_size}")
        width = self.audio_width
        for recording in recordings:
            features = getattr(recording, "audio_features", None)
            if width is not None and features is not None and features.shape[-1] != width:
                raise AvstanError(f"{store_root}: {recording.name}'s audio features are "
                                  f"{features.shape[-1]} wide but {model_path} reads {width}; "
                                  "prepare the store again with this avstan (eGeMAPS v02: 88)")
        rates = {r.step_rate for r in recordings}
        if rates != {self.step_rate} and not self.any_step_rate:
            raise AvstanError(f"{store_root}: step rate {sorted(rates)} but {model_path} was "
                              f"trained at {self.step_rate} steps/s; prepare the corpus at "
                              "that rate")

    @property
    def any_step_rate(self) -> bool:
        """Whether the network reads a store at any step rate: one crop per step (a frame
        model) learns nothing about time, nor does a model trained on face images (each
        held still); its post-processing's windows stay counted in steps."""
        return self.metadata.get("trained_on") == "images" or (
            self.clip_length == 1 and self.input_names == ("clip",))

    def with_postprocessing(self, chains: dict[str, dict[str, Any]]) -> TrainedModel:
        """A copy carrying ``chains`` (target -> ``PostProcessing.to_dict()``)."""
        return replace(self, postprocessing=_plain(chains))

    def save(self, path: str | Path) -> Path:
        """Write the file atomically; an unwritable folder is one AvstanError."""
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_name": self.model_name,
            "model_options": _plain(self.model_options),
            "targets": list(self.targets),
            "step_rate": float(self.step_rate),
            "state_dict": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
            "metadata": _plain(self.metadata),
        }
        if self.postprocessing is not None:
            payload["postprocessing"] = _plain(self.postprocessing)
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path = Path(path)
        try:
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as exc:
            raise AvstanError(f"{path}: cannot write the model file ({exc.strerror}); "
                              "choose a writable output folder") from None
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
        """Read a model file; the network is in eval mode on ``device``."""
        path = Path(path)
        device = checked_device(device)
        if path.is_dir() and (path / "model.pt").is_file():
            raise AvstanError(f"{path}: a run folder, not a model file; use the model.pt "
                              f"inside it ({path / 'model.pt'})")
        if not path.is_file():
            raise AvstanError(f"{path}: model file not found; train one with `avstan train`")
        try:
            with warnings.catch_warnings():  # torch's pickle-protocol notes: not the user's
                warnings.simplefilter("ignore")
                payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to unpickle: "not our file"
            raise AvstanError(f"{path}: not a readable avstan model file "
                              f"({unreadable_reason(path, exc)}); use a model.pt written by "
                              "`avstan train`") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise AvstanError(f"{path}: not an avstan model file; use a model.pt written by "
                              "`avstan train`")
        if payload.get("format_version") != FORMAT_VERSION:
            raise AvstanError(f"{path}: model file format version "
                              f"{payload.get('format_version')}, this avstan reads "
                              f"{FORMAT_VERSION}; retrain or use a matching avstan")
        check_stored_settings(payload, path)
        try:
            network = create_model(payload["model_name"], targets=payload["targets"],
                                   **payload["model_options"])
            network.load_state_dict(payload["state_dict"])
            trained = cls(network.to(device).eval(), tuple(payload["targets"]),
                          float(payload["step_rate"]), dict(payload.get("metadata") or {}),
                          payload.get("postprocessing"))
        except (KeyError, RuntimeError, TypeError, ValueError, AvstanError) as exc:
            reason = str(exc).splitlines()[0][:160]
            raise AvstanError(f"{path}: model file does not match its architecture ({reason}); "
                              "it is damaged or from another avstan version") from None
        return trained


def three_points(value: list) -> str:
    """An alignment template: three [x, y] points in units of the crop side."""
    good = len(value) == 3 and all(len(point) == 2 and all(-1 <= v <= 2 for v in point)
                                   for point in value)
    return "" if good else "three [x, y] points (eye centres, nose tip) in units of S"


def chains_of_mappings(value: dict) -> str:
    """Post-processing: one mapping (a PostProcessing.to_dict()) per target."""
    good = all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items())
    return "" if good else "one mapping of post-processing steps per target"


@dataclass
class StoredSettings:
    """What avstan reads back from a model file besides its weights (the metadata keys
    predict and stream follow, and the post-processing chains), declared with their allowed
    values and checked on load like a config (``typed_config``): an edited file is one line
    naming the key."""

    redetect_every: Annotated[int | None, Range(ge=1, le=100_000)] = None
    alignment_template: Annotated[list[list[float]] | None, three_points] = None
    audio_window_seconds: Annotated[float | None, Range(gt=0, le=600)] = None
    detector: str | None = None
    step_rate: Annotated[float, Range(gt=0, le=1000)] = 4.0
    postprocessing: Annotated[dict | None, chains_of_mappings] = None


def check_stored_settings(payload: dict, path: Path) -> None:
    """One AvstanError naming the file and the key for a stored setting out of its
    declaration (:class:`StoredSettings`)."""
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise AvstanError(f"{path}: metadata must be a mapping; the file is damaged or not "
                          "written by avstan")
    declared = {f for f in StoredSettings.__dataclass_fields__}
    stored = {k: v for k, v in metadata.items() if k in declared}
    stored.update({k: payload[k] for k in ("step_rate", "postprocessing") if k in payload})
    try:
        convert_fields(StoredSettings, stored, str(path))
    except AvstanError as exc:
        raise AvstanError(f"{exc}; the model file was edited or damaged: use the model.pt "
                          "`avstan train` wrote") from None


def unreadable_reason(path: Path, error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words of our own (its
    own message is a long paragraph about PyTorch 2.6 defaults)."""
    text = str(error)
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused:
        return (f"it holds a Python object, {refused.group(1)}, that could run code when "
                "loaded, so avstan does not load it")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if head.startswith(b"PK"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip() is not None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            damaged = True
        if damaged or "zip archive" in text or "central directory" in text:
            return (f"its zip archive is truncated or damaged ({path.stat().st_size} bytes); "
                    "copy or download it again")
        return "its contents are not the tensors and plain data of a model file"
    if head[:1] == b"\x80":
        return ("a plain pickle, not what torch.save writes, and avstan does not unpickle "
                "such files: they can run code")
    return "neither a zip archive nor a pickle: not a torch file"


def _plain(value: Any) -> Any:
    """Convert tuples and numpy scalars so the payload holds only weights_only-safe types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    return str(value)
