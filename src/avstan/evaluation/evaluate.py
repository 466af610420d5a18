"""Evaluate a model file on a store's partition, and calibrate one on devel.

:func:`evaluate_model_file` is ``avstan evaluate``: load the model (``TrainedModel``),
keep the recordings it can read, score them (``scoring.py``) on the timeline
``timeline.py`` chooses, raw and after the post-processing chain stored in the model (or
one fitted now on devel), and write the reports (``reports.py``).
:func:`attach_postprocessing` fits that chain on devel and stores it in the model file.

**Image stores** (face images, one per step: ``data.images``) are not a timeline. On them
the chain is fitted and applied without its median step: centring and scaling are fitted
on the devel images (the AVEC statistics of the concatenated partition, as for video);
the model file then carries the fixed median of :data:`data.images.IMAGE_MODEL_SMOOTHING`
ahead of them for video, where predict applies the whole chain.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from avstan.data.clips import skipped_summary, usable_recordings
from avstan.data.images import IMAGE_MODEL_SMOOTHING, is_image_store
from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation.postprocess import DEFAULT_WINDOWS, PostProcessing, chains_from_dicts
from avstan.evaluation.reports import write_evaluation
from avstan.evaluation.scoring import Evaluation, evaluate_model, fit_chains
from avstan.models.model_file import TrainedModel

IMAGE_WINDOWS = (1,)  # no median is fitted or applied on images: they are not a timeline


def image_chains(chains: dict[str, PostProcessing] | None
                 ) -> dict[str, PostProcessing] | None:
    """A model file's chains as they apply to single images: without the median step, and
    None unless they were fitted on devel (a fixed median alone leaves nothing to apply)."""
    if not chains or not all(chain.fitted for chain in chains.values()):
        return None
    return {target: replace(chain, median_window=1) for target, chain in chains.items()}


def attach_postprocessing(model_path: str | Path, store_root: str | Path,
                          device: str = "cpu", shifts: Sequence[int] | None = None
                          ) -> dict[str, PostProcessing]:
    """Fit the chain on the store's devel partition and save it into the model file, so
    evaluation and prediction apply it unchanged (on an image store: centring and scaling
    only, behind the fixed median for video; see the module docstring)."""
    trained = TrainedModel.load(model_path, device)
    # The frames stay in their files, read a clip at a time: memory does not grow with
    # the partition (evaluate_model_file too).
    store = RecordingStore.open(store_root)
    devel, _ = usable(trained, store.load_partition("devel", lazy_frames=True), store_root)
    if not devel:
        raise AvstanError(f"{store_root}: no devel recordings to fit the post-processing on")
    trained.check_recordings(devel, model_path, store_root)
    image_store = is_image_store(store.attrs)
    chains = fit_chains(trained.network, devel, trained.targets, trained.clip_length,
                        device=device, shifts=shifts,
                        windows=IMAGE_WINDOWS if image_store else DEFAULT_WINDOWS)
    if image_store:
        chains = {target: replace(chain, **IMAGE_MODEL_SMOOTHING)
                  for target, chain in chains.items()}
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
    # a shard of face images is not a timeline: each image is scored on its own, without
    # the median over steps (see the module docstring)
    image_store = is_image_store(store.attrs)
    recordings, skipped = usable(trained, store.load_partition(partition, lazy_frames=True),
                                 store_root)
    if not recordings:
        raise AvstanError(f"{store_root}: no complete recordings the model can read in the "
                          f"{partition!r} partition")
    chains = (chains_from_dicts(trained.postprocessing)
              if postprocess and shifts is None else None)
    if image_store:
        chains = image_chains(chains)
    devel = (usable(trained, store.load_partition("devel", lazy_frames=True), store_root)[0]
             if postprocess and chains is None else None)
    if postprocess and chains is None and not devel:
        if not image_store:
            raise AvstanError(f"{store_root}: no devel recordings to fit the post-processing "
                              "on; pass --no-postprocess to score raw predictions only")
        postprocess = False  # images without devel: raw scores only, as the model has no fit
    trained.check_recordings(recordings + (devel or []), model_path, store_root)
    evaluation = evaluate_model(trained.network, recordings, trained.targets,
                                trained.clip_length, trained.model_name, partition, batch_size,
                                device, progress, devel=devel, shifts=shifts, chains=chains,
                                windows=IMAGE_WINDOWS if image_store else DEFAULT_WINDOWS)
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
