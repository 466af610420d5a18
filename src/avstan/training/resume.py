"""What a resumed run needs to replay the run it continues, bit for bit on CPU.

``last.ckpt`` is written at the end of every epoch; Lightning saves the weights, the
optimiser, the loops' counters and the callbacks' states, but not the random generators.
A run resumed from it used to start the next epoch from the state ``seed_everything``
leaves after building the model, so the shuffle order, the augmentation draws and the
dropout masks of every later epoch differed from an uninterrupted run's (and so did the
model). :class:`RandomStateCheckpoint` saves every generator the training draws from in
the checkpoint and puts them back when the run resumes, so the epoch after the checkpoint
replays exactly; :class:`ResumableCSVLogger` drops the log rows of the epoch the
interrupted attempt did not finish, so ``metrics.csv`` holds each epoch's rows once.

Every random draw of training comes from the generators saved here: the DataLoader's
shuffle (``RandomSampler`` seeds itself from torch's global generator at each epoch),
the augmentation (``data.clips.augment_clip`` draws from it too), dropout, and the seeds
of DataLoader workers. With workers (``training.num_workers`` > 0) the training loader
starts new ones each epoch, seeded from torch's generator as the epoch starts, and the
devel loader seeds its kept workers from a generator of its own
(``training.module.RecordingDataModule``); without workers, runs draw exactly as before.

Where it is not exact:

- On a GPU, cuDNN and atomic-add kernels are not deterministic (``deterministic=False``),
  so two uninterrupted runs differ already. A resumed run draws the same random numbers
  (the CUDA generator is saved too), so it differs only through those kernels, as a second
  uninterrupted run does; not measured on a GPU here.
- A kill in the milliseconds between the write of an epoch's ``last.ckpt`` and Lightning's
  logging of that epoch's training loss (``train/loss_epoch``, logged after the epoch-end
  callbacks) leaves that one value out of ``metrics.csv``; the model is unaffected.
- TensorBoard's log keeps the interrupted attempt's events beside the resumed ones
  (TensorBoard shows the later of two events at a step).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only


def random_states() -> dict[str, Any]:
    """Torch's (CPU and CUDA), numpy's and Python's global generator states,
    as tensors, ints and tuples only, so a weights-only load reads them."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    python_version, python_state, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        # the current device's only (each process of a distributed run has its own), and
        # only once CUDA is in use: asking before would start it on a CPU run
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_initialized() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "python": {"version": python_version, "state": list(python_state),
                   "gauss": python_gauss},
    }


def set_random_states(states: dict[str, Any]) -> None:
    """Put back the generator states :func:`random_states` returned."""
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"][0])  # applied when CUDA starts, if later
    saved = states["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32),
                         saved["position"], saved["has_gauss"], saved["cached_gaussian"]))
    saved = states["python"]
    random.setstate((saved["version"], tuple(saved["state"]), saved["gauss"]))


class RandomStateCheckpoint(L.Callback):
    """Saves the random generators' states in every checkpoint and puts them back when a
    run resumes from one.

    The states are taken when the checkpoint is written, at the end of an epoch (after its
    validation); nothing draws from them between that moment and the next epoch's first
    draw (the training loader's iterator), so the resumed epoch draws exactly what the
    uninterrupted run drew. They are put back as the checkpoint is loaded, before the fit
    loop starts: a resumed Lightning run makes the epoch's loader iterator (one draw)
    before ``on_train_epoch_start``, an uninterrupted one after it, and both after the
    states are in place.

    In a distributed run every process restores the states of process 0, which wrote the
    checkpoint: all processes are seeded alike and draw alike (the distributed sampler
    keeps its own seed), so they held the same states.
    """

    def state_dict(self) -> dict[str, Any]:
        return {"random_states": random_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "random_states" in state_dict:
            set_random_states(state_dict["random_states"])


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger, made to keep the rows of the epochs a resumed run has done.

    The stock writer deletes an existing ``metrics.csv`` when it is created; this one puts
    back the earlier rows of the epochs up to ``resume_epoch`` (the epoch of the checkpoint
    the run resumes from; None keeps none, as a fresh run) and registers their columns, so
    the writer appends after them. The rows of the interrupted epoch are dropped: the
    resumed run logs that epoch again.
    """

    def __init__(self, *args: Any, resume_epoch: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_epoch = resume_epoch

    @property
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        if rank_zero_only.rank != 0:
            # The other processes of a distributed run get a stand-in that writes nothing;
            # they must not touch the file either (they used to rewrite it under process 0).
            return super().experiment
        path = Path(self.log_dir) / "metrics.csv"
        header, rows = [], []
        if path.is_file() and self.resume_epoch is not None:
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                header, rows = list(reader.fieldnames or []), list(reader)
            rows = rows_through_epoch(rows, self.resume_epoch)
        writer = super().experiment  # deletes metrics.csv
        if header:
            writer.metrics_keys = sorted(header)
            with path.open("w", newline="") as handle:
                rewriter = csv.DictWriter(handle, fieldnames=writer.metrics_keys)
                rewriter.writeheader()
                rewriter.writerows(rows)
        return writer


def rows_through_epoch(rows: list[dict[str, str]], epoch: int) -> list[dict[str, str]]:
    """The rows of a Lightning CSV log that belong to epochs up to ``epoch`` (rows without
    an epoch, e.g. ones logged before training, are kept)."""
    def keep(row: dict[str, str]) -> bool:
        value = row.get("epoch")
        try:
            return not value or int(float(value)) <= epoch
        except ValueError:
            return True
    return [row for row in rows if keep(row)]
