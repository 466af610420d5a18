"""How far behind its label an eGeMAPS step lies: a linear model reading ahead, on devel.

The functionals of a step describe the window that *ends* at it (``data.audio``), so their
centre lies half a window before the step. This fits a ridge regression (numpy, closed
form) of each step's label on the standardised features of the step ``d`` steps later
(the last step repeated past the end, as ``data.clips`` pads a lookahead), for a grid of
``d``, on the real-speech store of ``benchmarks/real_speech.py`` (prepare it with that
script first), and prints the devel CCC of the best λ for each ``d``: the reach the audio
models' ``lookahead`` option should have. Devel only; test is not read.

    .venv/bin/python benchmarks/speech_lag.py [--speakers 6 18] [--work runs/real_speech]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from avstan.data.audio import fit_standardisation, standardise
from avstan.data.store import LABEL_NAMES, RecordingStore
from avstan.evaluation.baseline import read_ahead
from avstan.metrics import concordance_cc

TRAIN_SPEAKERS = {6: [f"Actor_{n:02d}" for n in range(1, 7)],
                  18: [f"Actor_{n:02d}" for n in range(1, 19)]}
LOOKAHEADS = (0, 2, 4, 6, 8, 10, 12)
PENALTIES = (1.0, 10.0, 100.0, 1e3, 1e4)


def pairs(recordings, lookahead, center, scale, column):
    x = np.concatenate([standardise(read_ahead(r.audio_features, lookahead), center, scale)
                        for r in recordings]).astype(np.float64)
    y = np.concatenate([r.labels[:, column] for r in recordings]).astype(np.float64)
    known = np.isfinite(y)
    return np.c_[x[known], np.ones(known.sum())], y[known]


def ridge_ccc(train, devel, lookahead, center, scale, column) -> float:
    x, y = pairs(train, lookahead, center, scale, column)
    dx, dy = pairs(devel, lookahead, center, scale, column)
    best = -1.0
    for penalty in PENALTIES:
        regulariser = penalty * np.eye(x.shape[1])
        regulariser[-1, -1] = 0.0  # the intercept is not shrunk
        weights = np.linalg.solve(x.T @ x + regulariser, x.T @ y)
        best = max(best, float(concordance_cc(dx @ weights, dy)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, nargs="+", default=[6, 18],
                        choices=sorted(TRAIN_SPEAKERS))
    parser.add_argument("--work", default="runs/real_speech")
    args = parser.parse_args()
    store = RecordingStore.open(Path(args.work) / "store")
    devel = store.load_partition("devel", load_frames=False)
    print("| training speakers | lookahead (steps) | seconds | ridge devel CCC V | CCC A |")
    print("|---|---:|---:|---:|---:|")
    for speakers in args.speakers:
        train = [store.load(name, load_frames=False) for name in TRAIN_SPEAKERS[speakers]]
        center, scale = fit_standardisation(np.concatenate([r.audio_features for r in train]))
        for lookahead in LOOKAHEADS:
            scores = [ridge_ccc(train, devel, lookahead, center, scale, LABEL_NAMES.index(t))
                      for t in ("valence", "arousal")]
            seconds = lookahead / devel[0].step_rate
            print(f"| {speakers} | {lookahead} | {seconds:g} | {scores[0]:.3f} | "
                  f"{scores[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
