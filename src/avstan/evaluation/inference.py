"""Per-step predictions over whole recordings, by sliding the clip one step at a time.

Every step ``e`` of a recording gets the model's prediction for the clip ending at ``e``
(the first T-1 clips padded with the first frame), so predictions sit on the recording's
step timeline next to its labels. Steps where no face was found get the prediction
interpolated from the nearest steps with a face, as the papers do (their clip holds the
nearest found crop, which says nothing about that moment).

Each result also carries the recording's gold track on the corpus's own timeline
(``gold_times``, ``gold_labels``; None for corpora without one, such as the synthetic
one), which evaluation scores on when every recording has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from avstan.data.clips import ClipDataset, inputs_for_model, usable_recordings, window_indices
from avstan.data.spool import RowSpool
from avstan.data.store import LABEL_NAMES, Recording
from avstan.devices import autocast_for
from avstan.errors import AvstanError
from avstan.evaluation.postprocess import interpolate_missing
from avstan.metrics import attention_in_mask_ratio
from avstan.models.sliding import iter_window_outputs
from avstan.progress import progress_bar


@dataclass
class RecordingPrediction:
    """A model's predictions for one recording: (N, K) on its step timeline, with the gold
    values on the same steps and, when the corpus has one, its own gold track."""

    name: str
    prediction: np.ndarray  # (N, K)
    gold: np.ndarray  # (N, K), NaN where unknown
    times: np.ndarray  # (N,)
    face_found: np.ndarray  # (N,)
    attention_in_mask: float | None = None  # mean per-frame ratio, when masks are known
    # (N, S, S) map of each step's frame, on request (a RowSpool with spool_folder)
    attention: np.ndarray | RowSpool | None = None
    gold_times: np.ndarray | None = None  # (M,) the corpus's own label times
    gold_labels: np.ndarray | None = None  # (M, K) the targets at gold_times, NaN: unknown
    # (N, E) the expression head's class probabilities (data.corpora.images.EXPRESSIONS),
    # for models with one (out["expression_logits"]); interpolated where no face was found
    expressions: np.ndarray | None = None


def gold_track(recording: Recording, targets: Sequence[str]
               ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The recording's gold track for ``targets``: ``(M,)`` times and ``(M, K)`` values,
    or ``(None, None)`` when it has none."""
    if recording.gold_times is None or recording.gold_labels is None:
        return None, None
    columns = [LABEL_NAMES.index(t) for t in targets]
    return recording.gold_times, recording.gold_labels[:, columns]


@torch.inference_mode()
def predict_recordings(model: nn.Module, recordings: Sequence[Recording],
                       targets: Sequence[str], clip_length: int, batch_size: int = 32,
                       device: str | torch.device = "cpu", step: int = 1,
                       progress: bool = False, keep_attention: bool = False,
                       precision: str = "32-true", spool_folder=None
                       ) -> list[RecordingPrediction]:
    """Predict every ``step``-th step of each recording (``step=1``: every step), at
    ``precision`` (``devices.autocast_for``: 32-true, bf16-mixed, or 16-mixed on CUDA).

    Face-only models go through ``models.sliding``, which encodes each frame once for all
    the clips that hold it. On face images (an image store), a clip model reads each image
    held still for its clip (``ClipDataset``'s static clips), as it was trained. With
    ``keep_attention`` (and a model with attention), each result also holds the map the
    clip ending at a step puts on that step's frame.

    When the recordings carry salient masks and the model returns attention, the in-mask
    attention ratio (1.0 = uniform) is averaged over every frame of every clip.

    With ``spool_folder`` the kept maps go to a ``data.spool.RowSpool`` there, row by row,
    instead of memory (a long video's maps: 36 KiB a step at S = 96); close it when done.

    The model reads the inputs its ``input_names`` say (face clips, audio features, masks);
    every recording must have them (filter with ``data.clips.usable_recordings``). Missing
    faces are interpolated only for models that see the face.
    """
    input_names = tuple(model.input_names)
    flags = inputs_for_model(input_names)
    _, lacking = usable_recordings(recordings, input_names)
    if lacking:
        raise AvstanError("cannot predict: " + "; ".join(lacking))
    autocast = autocast_for(device, precision)  # an unknown precision: one line, before work
    was_training = model.training
    model.eval().to(device)
    bar = progress_bar(len(recordings), "predicting", "rec", enabled=progress, leave=False)
    try:
        with autocast:
            results = _predict_each(model, recordings, targets, clip_length, batch_size,
                                    device, step, keep_attention, input_names, flags, bar,
                                    spool_folder)
    finally:
        bar.close()
        model.train(was_training)
    return results


def _predict_each(model, recordings, targets, clip_length, batch_size, device, step,
                  keep_attention, input_names, flags, bar, spool_folder=None
                  ) -> list[RecordingPrediction]:
    """The loop of :func:`predict_recordings` (the model already on ``device``, in eval)."""
    sees_face = flags["with_video"]
    results = []
    for recording in recordings:
        with_masks = recording.salient_mask is not None and sees_face
        predictions, ratios, expressions = [], [], []
        maps = _Maps(spool_folder)
        lookahead = getattr(model, "lookahead", 0)
        # face images (an image store's shard): each clip is one image held still
        static = recording.image_names is not None and clip_length > 1
        if input_names == ("clip",) and not lookahead and not static:
            steps = np.arange(0, recording.num_steps, step)
            for ends, out in iter_window_outputs(model, recording.frames, steps,
                                                 clip_length, batch_size, device):
                predictions.append(out["prediction"].float().cpu())
                expressions.append(expression_probabilities(out))
                if with_masks and "attention" in out:
                    masks = recording.salient_mask[window_indices(ends, clip_length)]
                    ratio = attention_in_mask_ratio(out["attention"].float().cpu().numpy(),
                                                    masks, reduction="none")
                    ratios.append(np.asarray(ratio).ravel())
                if keep_attention and "attention" in out:
                    maps.append(out["attention"][:, -1].float().cpu())
        else:
            dataset = ClipDataset([recording], clip_length, stride=1, targets=targets,
                                  audio_per_recording=getattr(
                                      model, "recording_standardisation", False),
                                  lookahead=lookahead, static=static,
                                  **{**flags,
                                     "with_masks": with_masks or flags["with_masks"]})
            if step > 1:
                dataset.index = dataset.index[::step]
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
            for batch in loader:
                out = model(**{name: batch[name].to(device) for name in input_names})
                predictions.append(out["prediction"].float().cpu())
                expressions.append(expression_probabilities(out))
                if with_masks and "attention" in out:
                    ratio = attention_in_mask_ratio(out["attention"].float().cpu().numpy(),
                                                    batch["mask"].numpy(), reduction="none")
                    ratios.append(np.asarray(ratio).ravel())
                if keep_attention and "attention" in out:
                    maps.append(out["attention"][:, -1].float().cpu())
            steps = dataset.index[:, 1]
        gold = np.stack([recording.labels[steps, LABEL_NAMES.index(t)]
                         for t in targets], axis=1)
        ratio = float(np.nanmean(np.concatenate(ratios))) if ratios else None
        found = recording.face_found[steps]
        prediction = torch.cat(predictions).numpy()
        probabilities = (None if expressions[0] is None  # a model without an expression head
                         else torch.cat(expressions).numpy())
        gold_times, gold_labels = gold_track(recording, targets)
        if sees_face:
            prediction = np.stack([interpolate_missing(column, found)
                                   for column in prediction.T], axis=1)
            if probabilities is not None:  # between two found steps: a convex combination
                probabilities = np.stack([interpolate_missing(column, found)
                                          for column in probabilities.T], axis=1)
        results.append(RecordingPrediction(
            name=recording.name, prediction=prediction, gold=gold,
            times=recording.times[steps], face_found=found, attention_in_mask=ratio,
            attention=maps.result(),
            gold_times=gold_times, gold_labels=gold_labels, expressions=probabilities))
        bar.update(1)
    return results


def expression_probabilities(out: dict) -> torch.Tensor | None:
    """The class probabilities (B, E) of a model output's expression head, on the CPU;
    None for a model without one."""
    if "expression_logits" not in out:
        return None
    return out["expression_logits"].float().softmax(dim=-1).cpu()


class _Maps:
    """The attention maps kept for an overlay: in a list, or in a spool on disk."""

    def __init__(self, folder) -> None:
        self.folder, self.spool, self.maps = folder, None, []

    def append(self, maps: torch.Tensor) -> None:
        if self.folder is None:
            self.maps.append(maps)
            return
        maps = maps.numpy()
        if self.spool is None:
            self.spool = RowSpool(maps.shape[1:], np.float32, self.folder)
        self.spool.append(maps)

    def result(self):
        if self.spool is not None:
            return self.spool
        return torch.cat(self.maps).numpy() if self.maps else None
