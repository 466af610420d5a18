"""The AVEC 2017 audio baseline on any prepared corpus (`avstan baseline`).

As the challenge's reference system (Ringeval et al. 2017): eGeMAPS functionals per step,
standardised with statistics of the training partition, and a linear support-vector
regression per target (liblinear's L2-regularised, L2-loss SVR, scikit-learn's
``LinearSVR(loss="squared_epsilon_insensitive")``) whose complexity C is chosen on the
devel CCC from a grid. Its predictions then go through the same scoring and AVEC
post-processing chain as every avstan model — on the gold standard's own timeline when
every scored recording keeps one (``evaluate.scored_series``) — so an audio model's
numbers can be read next to the challenge's own reference on the same data. Training and
the choice of C use the step labels (the features live on the steps).

Left out, as in our models: the challenge's annotation-delay compensation (the time shift
of the post-processing chain can be switched on instead) and the concatenation of
features over several window lengths.

``lookahead`` (steps, default 0: the challenge's baseline) gives the SVR the same reach as
an audio model's ``lookahead`` option: step ``e`` is predicted from the features of step
``e + lookahead`` (the last step's past the end), whose window, ending at its step, is
centred nearer ``e``. It lets an audio model with a lookahead be compared with a linear
model that reads as far ahead.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avstan.data.audio import fit_standardisation, standardise
from avstan.data.clips import usable_recordings
from avstan.data.store import LABEL_NAMES, Recording, RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation.inference import RecordingPrediction, gold_track
from avstan.evaluation.postprocess import fit_postprocessing
from avstan.evaluation.reports import write_evaluation
from avstan.evaluation.scoring import Evaluation, score_predictions, unlabelled_notes
from avstan.evaluation.timeline import scoring_timeline
from avstan.io import write_report_file
from avstan.metrics import concordance_cc

COMPLEXITIES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
MODEL_NAME = "SVR on eGeMAPS (AVEC 2017 baseline)"


@dataclass
class Baseline:
    """The fitted baseline: standardisation, one SVR per target and the devel grid."""

    center: np.ndarray
    scale: np.ndarray
    regressors: dict[str, object]
    complexity: dict[str, float]
    devel_ccc: dict[str, dict[float, float]]  # target -> C -> devel CCC
    lookahead: int = 0  # steps: step e reads the features of step e + lookahead

    def predict(self, recording: Recording) -> np.ndarray:
        """(N, K) predictions on the recording's step timeline, K = number of targets."""
        features = standardise(read_ahead(recording.audio_features, self.lookahead),
                               self.center, self.scale)
        return np.stack([self.regressors[t].predict(features) for t in self.regressors],
                        axis=1).astype(np.float32)


def read_ahead(features: np.ndarray, lookahead: int) -> np.ndarray:
    """Row ``e`` of the result is row ``e + lookahead`` of ``features`` (the last row past
    the end), as a model with that lookahead reads them (``data.clips``)."""
    if lookahead < 0:
        raise AvstanError(f"lookahead must be >= 0 steps, got {lookahead}")
    rows = np.minimum(np.arange(len(features)) + lookahead, len(features) - 1)
    return features[rows]


def _rows(recordings: Sequence[Recording], column: int, features: list[np.ndarray]
          ) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate(features)
    y = np.concatenate([r.labels[:, column] for r in recordings])
    known = np.isfinite(y)
    return x[known], y[known]


def fit_baseline(train: Sequence[Recording], devel: Sequence[Recording],
                 targets: Sequence[str] = LABEL_NAMES,
                 complexities: Sequence[float] = COMPLEXITIES, seed: int = 0,
                 lookahead: int = 0) -> Baseline:
    """Standardise on ``train``, fit an SVR per C and target, keep the C with the best
    devel CCC (on the concatenated devel steps), refit nothing on devel. With
    ``lookahead``, step e's label is fitted on step e + lookahead's features."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVR

    center, scale = fit_standardisation(np.concatenate([r.audio_features for r in train]))
    train_x = [standardise(read_ahead(r.audio_features, lookahead), center, scale)
               for r in train]
    devel_x = [standardise(read_ahead(r.audio_features, lookahead), center, scale)
               for r in devel]
    regressors, chosen, grid = {}, {}, {}
    for target in targets:
        column = LABEL_NAMES.index(target)
        x, y = _rows(train, column, train_x)
        dx, dy = _rows(devel, column, devel_x)
        if len(y) < 2 or len(dy) < 2:
            raise AvstanError(f"the baseline needs {target} labels in train and devel")
        grid[target], best = {}, None
        for c in complexities:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svr = LinearSVR(C=c, loss="squared_epsilon_insensitive", epsilon=0.0,
                                dual=True, max_iter=20000, random_state=seed).fit(x, y)
            score = float(concordance_cc(svr.predict(dx), dy))
            grid[target][float(c)] = score
            if best is None or score > best[0]:
                best = (score, float(c), svr)
        chosen[target], regressors[target] = best[1], best[2]
    return Baseline(center, scale, regressors, chosen, grid, lookahead)


def _predictions(baseline: Baseline, recordings: Sequence[Recording],
                 targets: Sequence[str]) -> list[RecordingPrediction]:
    columns = [LABEL_NAMES.index(t) for t in targets]
    # Audio does not depend on the face: every step counts as seen (nothing shaded).
    predictions = []
    for r in recordings:
        gold_times, gold_labels = gold_track(r, targets)
        predictions.append(RecordingPrediction(
            r.name, baseline.predict(r), r.labels[:, columns], r.times, np.ones(r.num_steps, bool),
            gold_times=gold_times, gold_labels=gold_labels))
    return predictions


def run_baseline(store_root: str | Path, output: str | Path | None = None,
                 partition: str = "test", targets: Sequence[str] = LABEL_NAMES,
                 complexities: Sequence[float] = COMPLEXITIES,
                 shifts: Sequence[int] | None = None, lookahead: int = 0
                 ) -> tuple[Evaluation, Baseline]:
    """Fit the baseline on train (C on devel), score ``partition`` raw and after the AVEC
    chain fitted on devel; with ``output``, write the same files as `avstan evaluate`
    plus ``baseline.json`` (the chosen C, the devel grid and the lookahead)."""
    if lookahead < 0:
        raise AvstanError(f"lookahead must be >= 0 steps, got {lookahead}")
    bad = [c for c in complexities if not (math.isfinite(c) and c > 0)]
    if bad or not complexities:
        raise AvstanError(f"--complexities {' '.join(f'{c:g}' for c in bad) or '(none)'}: "
                          "the SVR's C must be positive finite numbers, e.g. 1e-4 1e-2 1")
    store = RecordingStore.open(store_root)
    loaded = {}
    skipped: list[str] = []
    for name in ("train", "devel", partition):
        if name not in loaded:
            everything = store.load_partition(name, load_frames=False)
            if not everything:
                needed = ("the baseline is fitted on train" if name == "train" else
                          "devel chooses C and fits the post-processing" if name == "devel"
                          else "it is the one to score")
                raise AvstanError(f"{store_root}: the {name} partition is empty ({needed}); "
                                  "give the corpus a split with train, devel and test")
            loaded[name], reasons = usable_recordings(everything, ("audio",))
            if not loaded[name]:
                raise AvstanError(f"{store_root}: none of the {len(everything)} recordings of "
                                  f"the {name} partition has audio features; prepare the "
                                  "corpus with audio (avstan prepare, without --no-audio)")
            skipped += reasons
    if skipped:  # one line for all of them, not one per recording
        names = [reason.split(":")[0] for reason in skipped]
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        noun = "recording" if len(names) == 1 else "recordings"
        warnings.warn(f"{store_root}: {len(names)} {noun} without audio features left out of "
                      f"the baseline ({shown})", stacklevel=2)
    width = loaded["train"][0].audio_features.shape[1]
    for recordings in loaded.values():
        for recording in recordings:
            if recording.audio_features.shape[1] != width:
                raise AvstanError(
                    f"{store_root}: {recording.name}'s audio features are "
                    f"{recording.audio_features.shape[1]} wide, {loaded['train'][0].name}'s "
                    f"(train) {width}; prepare the whole store again with one avstan version")
    longest = max(r.num_steps for recordings in loaded.values() for r in recordings)
    if lookahead >= longest:
        raise AvstanError(f"--lookahead {lookahead}: every recording is shorter (the longest "
                          f"has {longest} steps), so every step would read the last one; "
                          "use a few steps (the AVEC windows end at their step: 8 = 2 s)")
    baseline = fit_baseline(loaded["train"], loaded["devel"], targets, complexities,
                            lookahead=lookahead)
    devel = _predictions(baseline, loaded["devel"], targets)
    scored = _predictions(baseline, loaded[partition], targets)
    chains = {t: fit_postprocessing([p.prediction[:, k] for p in devel],
                                    [p.gold[:, k] for p in devel], shifts=shifts)
              for k, t in enumerate(targets)}
    processed = [np.stack([chains[t].apply([p.prediction[:, k]])[0]
                           for k, t in enumerate(targets)], axis=1) for p in scored]
    raw_scores = score_predictions(scored, [p.prediction for p in scored], targets, partition)
    evaluation = Evaluation(MODEL_NAME, partition, tuple(targets), raw_scores, None, scored,
                            chains, score_predictions(scored, processed, targets, partition),
                            processed, skipped, timeline=scoring_timeline(scored),
                            notes=unlabelled_notes(scored, raw_scores, targets, partition))
    if output is not None:
        output = Path(output)
        write_evaluation(evaluation, output)
        summary = {"complexity": baseline.complexity, "lookahead": baseline.lookahead,
                   "devel_ccc_by_complexity": {t: {str(c): v for c, v in grid.items()}
                                               for t, grid in baseline.devel_ccc.items()},
                   "train_recordings": [r.name for r in loaded["train"]],
                   "devel_recordings": [r.name for r in loaded["devel"]]}
        write_report_file(output / "baseline.json", json.dumps(summary, indent=1).encode())
    return evaluation, baseline
