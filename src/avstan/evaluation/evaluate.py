"""Evaluate a model file on a store's partition, and calibrate one on devel.

:func:`evaluate_model_file` is ``avstan evaluate``: load the model (``TrainedModel``),
keep the recordings it can read, score them (``scoring.py``) on the timeline
``timeline.py`` chooses, raw and after the post-processing chain stored in the model (or
one fitted now on devel), and write the reports (``reports.py``).
:func:`attach_postprocessing` fits that chain on devel and stores it in the model file.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from avstan.data.clips import skipped_summary, usable_recordings
from avstan.data.images import is_image_store
from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation.postprocess import PostProcessing, chains_from_dicts
from avstan.evaluation.reports import write_evaluation
from avstan.evaluation.scoring import Evaluation, evaluate_model, fit_chains
from avstan.models.model_file import TrainedModel


def attach_postprocessing(model_path: str | Path, store_root: str | Path,
                          device: str = "cpu", shifts: Sequence[int] | None = None
                          ) -> dict[str, PostProcessing]:
    """Fit the chain on the store's devel partition and save it into the model file, so
    evaluation and prediction apply it unchanged."""
    trained = TrainedModel.load(model_path, device)
    # The frames stay in their files, read a clip at a time: memory does not grow with
    # the partition (evaluate_model_file too).
    store = RecordingStore.open(store_root)
    devel, _ = usable(trained, store.load_partition("devel", lazy_frames=True), store_root)
    if not devel:
        raise AvstanError(f"{store_root}: no devel recordings to fit the post-processing on")
    trained.check_recordings(devel, model_path, store_root)
    chains = fit_chains(trained.network, devel, trained.targets, trained.clip_length,
                        device=device, shifts=shifts)
    trained.with_postprocessing({t: c.to_dict() for t, c in chains.items()}).save(model_path)
    return chains


def evaluate_model_file(model_path: str | Path, store_root: str | Path, partition: str = "test",
                        output: str | Path | None = None, device: str = "cpu",
                        batch_size: int = 32, progress: bool = True, postprocess: bool = True,
                        shifts: Sequence[int] | None = None) -> Evaluation:
    """Evaluate a ``model.pt`` on a store's partition; with ``output``, write the metrics
    (JSON and markdown), the per-step predictions CSV and a plot per recording.

    With ``postprocess`` the scores after the AVEC chain are reported too: the chain stored
    in the model file (``avstan train`` fits it on devel), or else one fitted now on the
    store's devel partition (which must then have labels)."""
    trained = TrainedModel.load(model_path, device)
    store = RecordingStore.open(store_root)
    if is_image_store(store.attrs):
        # a shard of face images is not a timeline: each image is scored on its own, and a
        # chain of smoothing over steps (the video filter a model file carries) does not apply
        postprocess = False
    recordings, skipped = usable(trained, store.load_partition(partition, lazy_frames=True),
                                 store_root)
    if not recordings:
        raise AvstanError(f"{store_root}: no complete recordings the model can read in the "
                          f"{partition!r} partition")
    chains = (chains_from_dicts(trained.postprocessing)
              if postprocess and shifts is None else None)
    devel = (usable(trained, store.load_partition("devel", lazy_frames=True), store_root)[0]
             if postprocess and chains is None else None)
    if postprocess and chains is None and not devel:
        raise AvstanError(f"{store_root}: no devel recordings to fit the post-processing on; "
                          "pass --no-postprocess to score raw predictions only")
    trained.check_recordings(recordings + (devel or []), model_path, store_root)
    evaluation = evaluate_model(trained.network, recordings, trained.targets,
                                trained.clip_length, trained.model_name, partition, batch_size,
                                device, progress, devel=devel, shifts=shifts, chains=chains)
    evaluation.skipped = skipped
    if output is not None:
        write_evaluation(evaluation, Path(output))
    return evaluation


def usable(trained: TrainedModel, recordings: Sequence, store_root: str | Path
           ) -> tuple[list, list[str]]:
    """The recordings that have every input the model reads; the others are named in a
    warning (e.g. a video without audio for an audio model) and returned as reasons."""
    kept, skipped = usable_recordings(recordings, trained.input_names)
    for line in skipped_summary(skipped):
        warnings.warn(f"{store_root}: {line}", stacklevel=3)
    return kept, skipped
