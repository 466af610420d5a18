"""Train one experiment and calibrate it: the step ``avstan train``, the demo and
``avstan reproduce`` share.

:func:`train_and_calibrate` trains a config (resumably, ``training.fit``), then fits the
AVEC post-processing chain on the store's devel partition and stores it in ``model.pt``
(``evaluation.evaluate.attach_postprocessing``), so evaluate, predict and stream apply it
unchanged. A run that is already complete and calibrated is returned as it is.

:func:`resolve_init_branches` turns the branch entries of a fusion config
(``training.init_branches``: ``{audio: ..., video: ...}``) into model files: an entry that
is a path to a ``.pt`` is kept; any other entry names a run of the same recipe (a demo
model, a paper config), which the recipe's ``locate`` finds or trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation.evaluate import attach_postprocessing
from avstan.evaluation.postprocess import PostProcessing, chains_from_dicts, describe_notes
from avstan.models.model_file import TrainedModel
from avstan.training.config import ExperimentConfig
from avstan.training.fit import TrainResult, train_experiment


@dataclass
class CalibratedRun:
    """A trained run and the chain stored in its model file (None in the non-zero ranks
    of a distributed run, which do not write the model file, and for a store without a
    devel partition, where a model trained on images keeps its fixed median alone)."""

    result: TrainResult
    chains: dict[str, PostProcessing] | None

    @property
    def model_path(self) -> Path:
        return self.result.model_path


def resolve_init_branches(config: ExperimentConfig,
                          locate: Callable[[str], Path] | None = None) -> None:
    """Replace each ``training.init_branches`` entry that is not a ``.pt`` path with
    ``locate(entry)`` (the trained model file of the run it names), in place.

    Without ``locate`` (a plain ``avstan train``), such an entry is one AvstanError."""
    branches = config.training.init_branches
    for branch, entry in branches.items():
        if str(entry).endswith(".pt"):
            continue
        if locate is None:
            raise AvstanError(f"training.init_branches.{branch}: {entry!r} is not a model "
                              "file; give the path of a trained model.pt")
        branches[branch] = str(locate(entry))


def train_and_calibrate(config: ExperimentConfig, restart: bool = False,
                        progress: bool = True, device: str = "cpu") -> CalibratedRun:
    """Train ``config`` (or resume it, or find it complete), then fit the post-processing
    chain on devel and store it in the model file unless the file already carries a fitted
    one (none is fitted on a store without a devel partition)."""
    result = train_experiment(config, restart=restart, progress=progress)
    if not result.is_global_zero:
        return CalibratedRun(result, None)
    stored = TrainedModel.load(result.model_path).postprocessing
    chains = chains_from_dicts(stored)
    # a model trained on face images is written with the fixed median for video alone;
    # its centring and scaling are fitted here, on the devel images, like any chain
    fitted = chains is not None and all(chain.fitted for chain in chains.values())
    if not fitted and not RecordingStore.open(config.data.store).names("devel"):
        # training.keep: last_epoch on a store without devel: nothing to fit a chain on
        return CalibratedRun(result, chains)
    if not fitted:
        chains = attach_postprocessing(result.model_path, config.data.store, device)
    return CalibratedRun(result, chains)


def describe_chains(chains: dict[str, PostProcessing]) -> str:
    """One line: each target's fitted chain and its devel CCC before and after, and a
    warning for each step that was refused or clipped."""
    def one(target: str, chain: PostProcessing) -> str:
        steps = (f"{target}: median {chain.median_window}, centre {chain.centre_offset:+.3f}, "
                 f"scale {chain.scale_factor:.3f}")
        if not chain.fitted:  # a fixed chain (a model trained on face images, no devel)
            return f"{steps} (fixed, not fitted on devel)"
        return f"{steps} (devel CCC {chain.devel_ccc_raw:.3f} -> {chain.devel_ccc:.3f})"

    line = "; ".join(one(t, c) for t, c in chains.items())
    notes = describe_notes(chains)
    return line if notes is None else f"{line}. Warning: {notes}"
