"""Trained models shipped inside the package, so ``avstan predict VIDEO`` needs no model
file of one's own.

Each is an ordinary avstan model file (``models.model_file``) under
``avstan/models/packaged/``, found with ``importlib.resources`` and read by
:meth:`TrainedModel.load` (``weights_only=True``, as every model file). Their data, label
mapping, scores and limits are in ``docs/models.md`` (the model card); the config that
reproduces each is named here.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from avstan.errors import AvstanError

PACKAGE_FOLDER = "packaged"
REINSTALL = ("reinstall avstan (pip install --force-reinstall avstan, or pip install -e . in "
             "a checkout)")


@dataclass(frozen=True)
class PackagedModel:
    name: str
    file: str  # under avstan/models/packaged/
    summary: str
    config: str  # the packaged config (avstan/configs/<config>.yaml) that reproduces it


PACKAGED_MODELS: dict[str, PackagedModel] = {m.name: m for m in (
    PackagedModel(
        "frame2d-fer2013", "frame2d_fer2013.pt",
        "frame2d (a 2D CNN over one 48-px grey face crop) trained on FER2013's real faces, "
        "valence/arousal from its seven expressions through the circumplex table, plus an "
        "expression head; on video one prediction per step, median-smoothed over 5 steps",
        "real_faces_frame2d"),
)}
DEFAULT_PACKAGED_MODEL = "frame2d-fer2013"


def packaged_model_path(name: str = DEFAULT_PACKAGED_MODEL) -> Path:
    """The file of packaged model ``name``; one AvstanError when the name is unknown or the
    file is missing from the installation."""
    if name not in PACKAGED_MODELS:
        raise AvstanError(f"no packaged model {name!r}; the packaged models are: "
                          f"{', '.join(PACKAGED_MODELS)} (`avstan models`)")
    path = Path(str(resources.files("avstan.models") / PACKAGE_FOLDER
                    / PACKAGED_MODELS[name].file))
    if not path.is_file():
        raise AvstanError(f"{path}: the packaged model {name} is missing from this "
                          f"installation; {REINSTALL}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip: a cut or damaged copy
        raise AvstanError(f"{path}: the packaged model {name} is damaged (not a complete "
                          f"model file); {REINSTALL}")
    return path


def is_packaged_name(text: str) -> bool:
    return text in PACKAGED_MODELS
