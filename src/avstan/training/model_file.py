"""One self-describing file per trained model, loadable with ``weights_only=True``.

The file is a plain dict of tensors and primitive values (never pickled objects):

    format          "avstan-model"
    format_version  1
    model_name      registry name, e.g. "sta3d"
    model_options   the keyword arguments of ``create_model`` (crop_size, clip_length, ...)
    targets         ["valence", "arousal"]
    step_rate       steps per second of the data it was trained on
    state_dict      the weights
    metadata        free-form primitive values (config, devel scores, ...)
    postprocessing  optional: the AVEC chain fitted on devel, per target (evaluation stage)

A file from elsewhere, a truncated one, or one of another format version is refused with
one AvstanError line, and nothing in it is executed (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avstan.errors import AvstanError
from avstan.io import atomic_write_bytes
from avstan.models import create_model

FORMAT = "avstan-model"
FORMAT_VERSION = 1


def save_model_file(path: str | Path, model: nn.Module, targets: list[str], step_rate: float,
                    metadata: dict[str, Any] | None = None) -> None:
    """Write a model built by ``create_model`` to ``path`` atomically."""
    options = dict(getattr(model, "model_config", {}))
    options.pop("targets", None)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": model.model_name,
        "model_options": _plain(options),
        "targets": list(targets),
        "step_rate": float(step_rate),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": _plain(metadata or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise AvstanError(f"{path}: cannot write the model file ({exc.strerror}); "
                          "choose a writable output folder") from None


def update_model_file(path: str | Path, **fields: Any) -> None:
    """Add or replace top-level fields (primitive values) of an existing model file."""
    load_model_file(path)  # refuses anything that is not ours
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    payload.update({key: _plain(value) for key, value in fields.items()})
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_model_file(path: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model file; returns the model (eval mode, on ``device``) and the file's dict
    without the weights."""
    path = Path(path)
    if not path.is_file():
        raise AvstanError(f"{path}: model file not found; train one with `avstan train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle means "not our file"
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise AvstanError(f"{path}: not a readable avstan model file ({reason}); "
                          "use a model.pt written by `avstan train`") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise AvstanError(f"{path}: not an avstan model file; use a model.pt written by "
                          "`avstan train`")
    if payload.get("format_version") != FORMAT_VERSION:
        raise AvstanError(f"{path}: model file format version {payload.get('format_version')}, "
                          f"this avstan reads {FORMAT_VERSION}; retrain or use a matching avstan")
    try:
        model = create_model(payload["model_name"], targets=payload["targets"],
                             **payload["model_options"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160]
        raise AvstanError(f"{path}: model file does not match its architecture ({reason}); "
                          "it is damaged or from another avstan version") from None
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.to(device).eval(), info


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
